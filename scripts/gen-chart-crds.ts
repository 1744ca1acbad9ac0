// Copies into charts/flowgate/ what the chart ships but is made elsewhere:
// - crds/*.yaml → charts/flowgate/crds/ (Helm installs them on first install and never upgrades them:
//   see docs/deploy-eks.md);
// - deploy/grafana/flowgate-dashboard.json → charts/flowgate/dashboards/flowgate.json (the optional
//   Grafana dashboard ConfigMap; Helm can only read files inside the chart).
// Run after `npm run gen:crd` or after editing the dashboard:
//   npm exec -- node scripts/gen-chart-crds.ts
// test/chart/chart.test.ts fails when a copy differs from its source.
import { copyFileSync, readdirSync, rmSync } from 'node:fs'

const repo = new URL('../', import.meta.url)
const chart = new URL('charts/flowgate/', repo)

const from = new URL('crds/', repo)
const to = new URL('crds/', chart)
const wanted = readdirSync(from).filter((f) => f.endsWith('.yaml'))
for (const f of readdirSync(to)) if (!wanted.includes(f)) rmSync(new URL(f, to))
const copies: [URL, URL][] = wanted.map((f) => [new URL(f, from), new URL(f, to)])
copies.push([
  new URL('deploy/grafana/flowgate-dashboard.json', repo),
  new URL('dashboards/flowgate.json', chart),
])
for (const [src, dst] of copies) {
  copyFileSync(src, dst)
  console.log(`wrote ${dst.pathname}`)
}
