// The Grafana dashboard and the PrometheusRule may only name metrics the code defines, and only label
// values the code emits, so a renamed metric fails here instead of silently emptying a panel or an alert.
import { readFileSync } from 'node:fs'
import test from 'ava'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { loadChart, renderChart } from '../support/helm-render.ts'

const root = new URL('../../', import.meta.url)
const read = (p: string) => readFileSync(new URL(p, root), 'utf8')

// The metric definitions, one module per component (STYLE.md).
const SOURCES = ['appliance/src/control/metrics.ts', 'operator/src/metrics.ts']
const defined = new Set<string>()
for (const f of SOURCES)
  for (const m of read(f).matchAll(/['`](flowgate_[a-z0-9_]+)['`]/g)) defined.add(m[1]!)
// prom-client's default process/Node.js metrics, under the prefix the appliance registers them with
const prefix = /collectDefaultMetrics\(\{[^}]*prefix: '([a-z_]+)'/.exec(
  read('appliance/src/control/metrics.ts'),
)?.[1]
if (prefix) {
  const r = new Registry()
  collectDefaultMetrics({ register: r, prefix })
  for (const m of r.getMetricsAsArray()) defined.add(m.name)
  defined.delete(prefix)
}
// series Prometheus makes itself
const BUILTIN = new Set(['up'])

const PROMQL_WORDS = new Set(
  (
    'sum min max avg count stddev stdvar topk bottomk quantile count_values group rate irate increase delta ' +
    'idelta deriv histogram_quantile abs absent absent_over_time ceil floor round clamp clamp_min clamp_max ' +
    'label_replace label_join vector scalar time timestamp sort sort_desc avg_over_time max_over_time ' +
    'min_over_time sum_over_time count_over_time last_over_time changes resets predict_linear by without on ' +
    'ignoring group_left group_right and or unless offset bool inf nan'
  ).split(' '),
)

/** Metric names in a PromQL expression: identifiers left after removing strings, matchers, groupings, ranges. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\w+/g, ' ')
    .replace(/\$\w+/g, ' ')
  const names = [...stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)].map((m) => m[0])
  return names.filter((n) => !PROMQL_WORDS.has(n) && !/^\d/.test(n))
}

function known(name: string): boolean {
  if (BUILTIN.has(name) || defined.has(name)) return true
  const base = name.replace(/_(bucket|sum|count)$/, '')
  return base !== name && defined.has(base)
}

const dashboard = JSON.parse(read('deploy/grafana/flowgate-dashboard.json'))
type Panel = { title: string; targets?: { expr: string }[]; panels?: Panel[] }
const dashExprs: [string, string][] = (dashboard.panels as Panel[])
  .flatMap((p) => [p, ...(p.panels ?? [])])
  .flatMap((p) => (p.targets ?? []).map((t) => [p.title, t.expr] as [string, string]))

const chart = loadChart(new URL('charts/flowgate', root).pathname)
const rules = renderChart(chart, {
  values: {
    monitoring: { prometheusRule: { enabled: true } },
    gwlb: {
      targetGroupArn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fg/0123456789abcdef',
    },
  },
})
  .objects.find((o) => o.kind === 'PrometheusRule')!
  .spec.groups.flatMap((g: { rules: { alert: string; expr: string }[] }) => g.rules)
const ruleExprs: [string, string][] = rules.map((r: { alert: string; expr: string }) => [r.alert, r.expr])

test('the metric definitions were found', (t) => {
  t.true(defined.has('flowgate_packets_total'))
  t.true(defined.has('flowgate_operator_leader_status'))
  t.true(
    defined.has('flowgate_appliance_process_resident_memory_bytes'),
    'prom-client defaults under the prefix',
  )
})

test('metricNames extracts metric names from PromQL', (t) => {
  t.deepEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y", z=~"q|r"}[5m]))) / on (pod) b > 3 * c offset 5m',
    ),
    ['a_bucket', 'b', 'c'],
  )
})

test('the dashboard has panels for both components', (t) => {
  t.true(dashExprs.length >= 30)
  t.true(dashExprs.some(([, e]) => e.includes('flowgate_operator_')))
  t.true(dashExprs.some(([, e]) => e.includes('flowgate_packets_total')))
  t.is(dashboard.uid, 'flowgate')
})

for (const [what, exprs] of [
  ['the Grafana dashboard', dashExprs],
  ['the PrometheusRule', ruleExprs],
] as const) {
  test(`${what} uses only metrics the code defines`, (t) => {
    const unknown = exprs.flatMap(([title, e]) =>
      metricNames(e)
        .filter((n) => !known(n))
        .map((n) => `${title}: ${n}`),
    )
    t.deepEqual(unknown, [])
    t.true(exprs.every(([, e]) => metricNames(e).length > 0))
  })
}

test('the alerts named in the issue exist: appliance unhealthy, bundle not programmed, drop spike, GWLB targets', (t) => {
  const names = rules.map((r: { alert: string }) => r.alert)
  for (const a of [
    'FlowgateApplianceUnhealthy',
    'FlowgateBundleNotProgrammed',
    'FlowgateDropRateSpike',
    'FlowgateGwlbTargetsUnhealthy',
  ])
    t.true(names.includes(a), a)
})

test('drop reasons and label values the rules and dashboard select on are ones the code emits', (t) => {
  const appliance = ['appliance/src/fastpath/counters.ts', 'appliance/src/dataplane/gwlb-dataplane.ts']
    .map(read)
    .join('\n')
  for (const [, e] of [...ruleExprs, ...dashExprs]) {
    for (const m of e.matchAll(/reason!?=~?"([^"]+)"/g))
      for (const reason of m[1]!.split('|'))
        t.true(appliance.includes(`'${reason}'`), `drop reason ${reason}`)
    for (const m of e.matchAll(/result="([^"]+)"/g))
      t.true(read('appliance/src/main.ts').includes(`'${m[1]}'`), m[1]!)
    for (const m of e.matchAll(/container="([^"]+)"/g)) t.true(['appliance', 'operator'].includes(m[1]!))
  }
})

test('the chart names its containers as the rules and dashboard select them', (t) => {
  const r = renderChart(chart)
  const names = r.objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')
    .map((o) => o.spec.template.spec.containers[0].name)
    .sort()
  t.deepEqual(names, ['appliance', 'operator'])
})

function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', '}': '{', ']': '[' }
  const stack: string[] = []
  for (const ch of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ('({['.includes(ch)) stack.push(ch)
    else if (ch in pairs && stack.pop() !== pairs[ch]) return false
  }
  return stack.length === 0
}

test('every expression is balanced and selects by label (no bare metric across namespaces)', (t) => {
  for (const [title, e] of [...ruleExprs, ...dashExprs]) {
    t.true(balanced(e), `${title}: ${e}`)
    t.notRegex(e, /\{\s*\}|,\s*\}|\{\s*,/, `${title}: an empty or dangling matcher`)
    for (const name of metricNames(e))
      t.regex(e, new RegExp(`${name}\\{[^}]*namespace=`), `${title}: ${name}`)
  }
})

test('the dashboard layout: unique panel ids, panels inside the 24-column grid, none overlapping', (t) => {
  const panels = dashboard.panels as {
    id: number
    title: string
    gridPos: { x: number; y: number; w: number; h: number }
  }[]
  t.is(new Set(panels.map((p) => p.id)).size, panels.length)
  const cells = new Set<string>()
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos
    t.true(x >= 0 && w > 0 && x + w <= 24, p.title)
    for (let i = x; i < x + w; i++)
      for (let j = y; j < y + h; j++) {
        t.false(cells.has(`${i},${j}`), `${p.title} overlaps another panel at ${i},${j}`)
        cells.add(`${i},${j}`)
      }
  }
  const vars = dashboard.templating.list.map((v: { name: string }) => v.name)
  for (const [title, e] of dashExprs)
    for (const m of e.matchAll(/\$(\w+)/g))
      if (!m[1]!.startsWith('__')) t.true(vars.includes(m[1]), `${title}: $${m[1]} is a dashboard variable`)
})
