// Rule usage end to end: appliances running the real admin API count hits over the engine of the bundle
// the operator pushed them; the operator reads them through GET /v1/rule-usage and writes FlowPolicy
// status.rules through the in-process Kubernetes API — only when something changed.
import test from 'ava'
import type { FlowFacts } from '../../policy/src/engine/index.ts'
import { type Appliance, allowPolicy, Cluster, sleep, waitFor } from './harness.ts'

const INTERVAL = 300

const WEB = {
  priority: 200,
  match: { protocols: ['TCP'] },
  rules: [
    { name: 'http', when: { ports: ['80'] }, action: 'Allow' },
    { name: 'never', when: { ports: ['9'] }, action: 'Allow' },
  ],
}

const facts = (dstPort: number, sni?: string): FlowFacts => ({
  endpoint: 'vpce-01234567890abcdef',
  family: 4,
  src: Uint8Array.of(10, 0, 0, 1),
  dst: Uint8Array.of(203, 0, 113, 9),
  protocol: 6,
  dstPort,
  ...(sni ? { sni } : {}),
})

/** n flows decided on appliance `a` by its running engine, at time `at` */
function hits(a: Appliance, n: number, f: FlowFacts, at: number) {
  for (let i = 0; i < n; i++) a.usage.record(a.engine!.decide(f), at)
}

const rulesPatches = (c: Cluster, name: string) =>
  c.kube.requests.filter(
    (r) => r.method === 'PATCH' && r.path.endsWith(`/flowpolicies/${name}/status`) && r.status === 200,
  ).length

test('appliances report hits; the operator sums them into status.rules, keeps lastHit across a restart, and writes nothing when nothing changed', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  const a = await c.addAppliance('app-a', '10.0.0.1')
  const b = await c.addAppliance('app-b', '10.0.0.2')
  const op = await c.startOperator({ usageIntervalMs: INTERVAL })
  await c.applyPolicy('egress', allowPolicy(100, '443'))
  await c.applyPolicy('web', WEB)
  await waitFor(() => op.bundle()?.policies.length === 2, 'a bundle with both policies')
  await waitFor(() => c.allRun(op.bundle()!.version), 'both appliances to run it')

  // every rule listed, in spec order, before anything is hit
  await waitFor(() => c.policy('web')?.status?.rules?.length === 2, 'status.rules on web')
  t.deepEqual(c.policy('web')!.status.rules, [
    { name: 'http', hits: 0 },
    { name: 'never', hits: 0 },
  ])
  t.deepEqual(c.policy('egress')!.status.rules, [{ name: 'aws', hits: 0 }])

  const t1 = Date.parse('2026-01-02T03:04:05.000Z')
  hits(a, 3, facts(80), t1)
  hits(b, 2, facts(80), t1 + 1000)
  hits(b, 1, facts(443, 's3.amazonaws.com'), t1 + 2000)
  await waitFor(() => c.policy('web')?.status?.rules?.[0]?.hits === 5, 'five hits of web/http')
  t.deepEqual(c.policy('web')!.status.rules, [
    { name: 'http', hits: 5, lastHit: '2026-01-02T03:04:06.000Z' },
    { name: 'never', hits: 0 },
  ])
  await waitFor(() => c.policy('egress')?.status?.rules?.[0]?.hits === 1, 'one hit of egress/aws')
  t.deepEqual(c.policy('egress')!.status.rules, [
    { name: 'aws', hits: 1, lastHit: '2026-01-02T03:04:07.000Z' },
  ])
  // the rest of status is the policies reconciler's and is still there
  t.is(c.condition('web', 'Ready')?.status, 'True')

  // nothing changed: no patch of either policy over many intervals
  const before = rulesPatches(c, 'web') + rulesPatches(c, 'egress')
  await sleep(INTERVAL * 8)
  t.is(rulesPatches(c, 'web') + rulesPatches(c, 'egress'), before, 'no status write without new hits')

  // one more hit: patched once more, at the next interval
  hits(a, 1, facts(80), t1 + 60_000)
  await waitFor(() => c.policy('web')?.status?.rules?.[0]?.hits === 6, 'the sixth hit')
  t.is(c.policy('web')!.status.rules[0].lastHit, '2026-01-02T03:05:05.000Z')
  t.is(rulesPatches(c, 'egress') + rulesPatches(c, 'web'), before + 1, 'only web was patched')

  // app-a restarts and counts from zero: hits are what the running appliances report, lastHit stays
  await c.restartAppliance(a, 1)
  await waitFor(() => c.policy('web')?.status?.rules?.[0]?.hits === 2, 'hits without the restarted appliance')
  t.is(c.policy('web')!.status.rules[0].lastHit, '2026-01-02T03:05:05.000Z')
})

test('an appliance that does not answer keeps its last report; status is not rewritten lower', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  const a = await c.addAppliance('app-a', '10.0.0.1')
  const b = await c.addAppliance('app-b', '10.0.0.2')
  const op = await c.startOperator({ usageIntervalMs: INTERVAL })
  await c.applyPolicy('web', WEB)
  await waitFor(() => op.bundle() && c.allRun(op.bundle()!.version), 'both appliances to run the bundle')
  const at = Date.parse('2026-03-01T00:00:00.000Z')
  hits(a, 4, facts(80), at)
  hits(b, 1, facts(80), at)
  await waitFor(() => c.policy('web')?.status?.rules?.[0]?.hits === 5, 'five hits')
  const patches = rulesPatches(c, 'web')
  // app-b's admin API goes away while its pod stays Running (a hung process, a network partition)
  await b.app?.close()
  b.app = undefined
  await sleep(INTERVAL * 5)
  t.is(c.policy('web')!.status.rules[0].hits, 5)
  t.is(rulesPatches(c, 'web'), patches)
  t.true(
    (await op.metrics.registry.getSingleMetricAsString('flowgate_operator_usage_reports_total')).includes(
      'result="error"',
    ),
  )
})
