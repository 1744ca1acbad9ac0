// The operator's HTTP surface: /healthz, /readyz and /metrics with the flowgate_operator_* metrics.
import test from 'ava'
import { allowPolicy, Cluster, waitFor } from './harness.ts'

test('healthz, readyz and metrics are served, and the metrics tell leadership, pushes and targets', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  await c.addAppliance('app-a', '10.0.0.1')
  const op = await c.startOperator({ listen: { host: '127.0.0.1', port: 0 } })
  t.truthy(op.url)
  t.is((await fetch(`${op.url}/healthz`)).status, 200)
  await waitFor(async () => (await fetch(`${op.url}/readyz`)).status === 200, 'ready')
  await c.applyPolicy('p', allowPolicy())
  await waitFor(() => c.elb.activeIds().length === 1, 'the target registered')
  const text = await (await fetch(`${op.url}/metrics`)).text()
  t.regex(text, /^flowgate_operator_leader_status 1$/m)
  t.regex(text, /^flowgate_operator_bundle_pushes_total [1-9]/m)
  t.regex(text, /^flowgate_operator_targets_registered_targets 1$/m)
  t.regex(text, /^flowgate_operator_queue_depth_keys\{queue="appliances"\} \d+$/m)
  t.regex(text, /^flowgate_operator_reconcile_duration_seconds_count\{reconciler="policies"\} [1-9]/m)
  for (const line of text.split('\n').filter((l) => l.startsWith('# TYPE'))) {
    t.regex(line, /^# TYPE flowgate_operator_[a-z_]+ /, 'every metric is flowgate_operator_*')
  }
  const url = op.url!
  await c.stopOperator(op)
  await t.throwsAsync(fetch(`${url}/healthz`), undefined, 'the server is closed on stop')
})
