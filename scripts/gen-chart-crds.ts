// Copies crds/*.yaml into charts/flowgate/crds/, which Helm installs on first install (and never
// upgrades: see docs/deploy-eks.md). Run after `npm run gen:crd`:
//   npm exec -- node scripts/gen-chart-crds.ts
// test/chart/chart.test.ts fails when the chart's copy differs from crds/.
import { copyFileSync, readdirSync, rmSync } from 'node:fs'

const from = new URL('../crds/', import.meta.url)
const to = new URL('../charts/flowgate/crds/', import.meta.url)
const wanted = readdirSync(from).filter((f) => f.endsWith('.yaml'))
for (const f of readdirSync(to)) if (!wanted.includes(f)) rmSync(new URL(f, to))
for (const f of wanted) {
  copyFileSync(new URL(f, from), new URL(f, to))
  console.log(`wrote ${new URL(f, to).pathname}`)
}
