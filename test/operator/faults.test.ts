// Injected faults the operator must survive: dropped watches, 410 Gone, stalled (silent) watches, 500s
// on lists and status writes, slow responses, ELBv2 throttling and 5xx.
import test from 'ava'
import type { RunningOperator } from '../../operator/src/main.ts'
import { allowPolicy, Cluster, sleep, waitFor } from './harness.ts'

async function metric(
  op: RunningOperator,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = op.metrics.registry.getSingleMetric(name)
  if (!m) throw new Error(`no metric ${name}`)
  const { values } = await m.get()
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
    .reduce((n, v) => n + v.value, 0)
}

async function converged(c: Cluster, op: RunningOperator, port: string, what: string): Promise<void> {
  await c.applyPolicy('p', allowPolicy(100, port))
  await waitFor(
    () => op.bundle()?.policies[0]?.spec.match?.ports?.[0] === port && c.allRun(op.bundle()!.version),
    `${what}: the edit to reach every appliance`,
  )
  await waitFor(
    () =>
      c.condition('p', 'Ready')?.status === 'True' &&
      c.condition('p', 'Ready')?.observedGeneration === c.policy('p')!.metadata.generation,
    `${what}: Ready for the new generation`,
  )
}

async function setup(t: { teardown(fn: () => Promise<void>): void }) {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  await c.addAppliance('app-a', '10.0.0.1')
  await c.addAppliance('app-b', '10.0.0.2')
  const op = await c.startOperator()
  await converged(c, op, '443', 'initial')
  return { c, op }
}

test('a dropped watch is re-established and no change is lost', async (t) => {
  const { c, op } = await setup(t)
  const dropped = c.kube.dropWatches()
  t.true(dropped >= 2, 'there were watches to drop')
  await converged(c, op, '1001', 'after the drop')
  await waitFor(
    () => c.kube.openWatches('flowpolicies') >= 1 && c.kube.openWatches('pods') >= 1,
    'watches back',
  )
  const restarts = await metric(op, 'flowgate_operator_watch_restarts_total', { resource: 'flowpolicies' })
  t.true(restarts >= 1)
  t.log(`watch restarts after a drop: ${restarts}`)
})

test('410 Gone makes the informer relist, even when the relist first fails with 500', async (t) => {
  const { c, op } = await setup(t)
  const lists = () =>
    c.kube.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/flowpolicies')).length
  const before = lists()
  c.kube.inject({
    match: (r) => r.plural === 'flowpolicies' && r.method === 'GET' && !r.watch,
    status: 500,
    count: 2,
  })
  c.kube.compact()
  await converged(c, op, '1002', 'after 410')
  t.true(
    (await metric(op, 'flowgate_operator_watch_restarts_total', {
      resource: 'flowpolicies',
      reason: 'gone',
    })) >= 1,
  )
  t.true(lists() >= before + 3, 'relisted after two failed lists')
  t.true(
    (await metric(op, 'flowgate_operator_watch_restarts_total', {
      resource: 'flowpolicies',
      reason: 'error',
    })) >= 2,
  )
})

test('a watch that goes silent is restarted', async (t) => {
  const { c, op } = await setup(t)
  t.true(c.kube.stallWatches() >= 2)
  // While stalled, the edit is invisible; the silence timeout (2 s here) restarts the watch.
  const t0 = Date.now()
  await converged(c, op, '1003', 'after a stall')
  t.true((await metric(op, 'flowgate_operator_watch_restarts_total', { reason: 'silent' })) >= 1)
  t.log(`converged ${Date.now() - t0} ms after the stall`)
})

test('500s and slow answers on status writes are retried with backoff', async (t) => {
  const { c, op } = await setup(t)
  const statusPatch = (r: { subresource?: string; method: string }) =>
    r.subresource === 'status' && r.method === 'PATCH'
  c.kube.inject({ match: statusPatch, status: 500, count: 3 })
  // then the next one is answered slowly (but within the client's patience)
  const slow = c.kube.inject({ match: statusPatch, delayMs: 700, count: 1 })
  await converged(c, op, '1004', 'with failing status writes')
  t.is(slow.count, 0, 'the slow answer was served')
  t.true((await metric(op, 'flowgate_operator_reconcile_errors_total', { reconciler: 'policies' })) >= 1)
  const failedPatches = c.kube.requests.filter((r) => r.method === 'PATCH' && r.status === 500).length
  t.is(failedPatches, 3)
})

test('ELBv2 throttling and 5xx are retried; the new appliance is registered', async (t) => {
  const { c, op } = await setup(t)
  await waitFor(() => c.elb.activeIds().length === 2, 'two targets')
  c.elb.throttle(3, ['DescribeTargetHealth', 'RegisterTargets'])
  c.elb.fail(2, ['RegisterTargets'])
  await c.addAppliance('app-c', '10.0.0.3')
  await waitFor(() => c.elb.activeIds().includes('10.0.0.3'), 'the third appliance registered')
  const throttled = await metric(op, 'flowgate_operator_aws_retries_total', { reason: 'throttled' })
  const server = await metric(op, 'flowgate_operator_aws_retries_total', { reason: 'server' })
  t.true(throttled >= 3, `throttled retries: ${throttled}`)
  t.is(server, 2)
  t.is(c.elb.calls.filter((x) => x.status === 400).length, 3)
  // Nothing else was disturbed.
  t.deepEqual(c.elb.activeIds(), ['10.0.0.1', '10.0.0.2', '10.0.0.3'])
  await sleep(100)
})
