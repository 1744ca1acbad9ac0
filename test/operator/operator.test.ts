// End-to-end scenarios of the operator against the in-process Kubernetes API and ELBv2 servers and
// appliances running the real admin API.

import { CoreV1Api } from '@kubernetes/client-node'
import test from 'ava'
import { allowPolicy, Cluster, NS, sleep, waitFor } from './harness.ts'

const statusWrites = (c: Cluster) =>
  c.kube.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status') && r.status === 200).length

test('apply, edit and delete policies: bundles and status converge, and nothing is written when nothing changed', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  await c.addAppliance('app-a', '10.0.0.1')
  await c.addAppliance('app-b', '10.0.0.2')
  await c.addAppliance('app-c', '10.0.0.3')
  const op = await c.startOperator()

  // apply
  await c.applyPolicy('egress', allowPolicy(100, '443'))
  await waitFor(() => op.bundle()?.policies.some((p) => p.name === 'egress'), 'a bundle with the policy')
  const v1 = op.bundle()!.version
  await waitFor(() => c.allRun(v1), 'all appliances to run the first bundle')
  await waitFor(() => c.condition('egress', 'Ready')?.status === 'True', 'Ready=True')
  const s1 = c.policy('egress')!.status
  t.is(s1.observedGeneration, 1)
  t.is(s1.bundleVersion, v1)
  t.deepEqual(s1.appliances, { total: 3, programmed: 3 })
  const byType = Object.fromEntries(s1.conditions.map((x: { type: string }) => [x.type, x]))
  t.like(byType.Accepted, { status: 'True', reason: 'Valid', observedGeneration: 1 })
  t.like(byType.Programmed, { status: 'True', reason: 'AllAppliancesUpdated', observedGeneration: 1 })
  t.regex(byType.Programmed.message, new RegExp(`3/3 appliances run bundle ${v1}`))

  // nothing changed → no status write, through several resync periods
  const writes = statusWrites(c)
  await sleep(3500)
  t.is(statusWrites(c), writes, 'no status write when nothing changed')

  // edit: generation 2, new bundle everywhere, observedGeneration follows
  await c.applyPolicy('egress', allowPolicy(100, '8443'))
  t.is(c.policy('egress')!.metadata.generation, 2)
  await waitFor(() => op.bundle()?.version !== v1, 'a new bundle')
  const v2 = op.bundle()!.version
  t.is(op.bundle()!.policies[0]!.generation, 2)
  await waitFor(() => c.allRun(v2), 'all appliances to run the edited bundle')
  await waitFor(
    () =>
      c.condition('egress', 'Programmed')?.observedGeneration === 2 &&
      c.condition('egress', 'Ready')?.status === 'True',
    'status for generation 2',
  )
  // Accepted did not flip, so its lastTransitionTime stays.
  t.is(c.condition('egress', 'Accepted')!.lastTransitionTime, byType.Accepted.lastTransitionTime)

  // a second policy, then delete the first
  await c.applyPolicy('ingress', allowPolicy(50, '80'))
  await waitFor(() => op.bundle()?.policies.length === 2, 'two policies in the bundle')
  t.deepEqual(
    op.bundle()!.policies.map((p) => p.name),
    ['ingress', 'egress'],
    'ordered by priority',
  )
  await c.deletePolicy('egress')
  await waitFor(() => op.bundle()?.policies.length === 1, 'the deleted policy to leave the bundle')
  const v3 = op.bundle()!.version
  await waitFor(() => c.allRun(v3), 'all appliances to run the bundle without it')
  await waitFor(() => c.condition('ingress', 'Ready')?.status === 'True', 'the other policy Ready')
  t.true(op.metrics.registry.getSingleMetric('flowgate_operator_bundle_pushes_total') !== undefined)
})

test('an invalid policy is rejected naming the field, with an Event, and the others are unaffected', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  await c.addAppliance('app-a', '10.0.0.1')
  await c.addAppliance('app-b', '10.0.0.2')
  const op = await c.startOperator()
  await c.applyPolicy('good', allowPolicy(100, '443'))
  await c.applyPolicy('bad', {
    match: { sources: ['10.0.0.0/33'], ports: ['9000-80'] },
    rules: [{ name: 'r', action: 'Allow' }],
  })
  await waitFor(() => c.condition('bad', 'Accepted')?.status === 'False', 'Accepted=False on the bad policy')
  const accepted = c.condition('bad', 'Accepted')!
  t.is(accepted.reason, 'Invalid')
  t.regex(accepted.message, /spec\.match\.sources\[0\]/)
  t.regex(accepted.message, /spec\.match\.ports\[0\]/)
  t.is(c.condition('bad', 'Ready')!.status, 'False')
  t.deepEqual(c.policy('bad')!.status.appliances, { total: 2, programmed: 0 })

  await waitFor(() => c.condition('good', 'Ready')?.status === 'True', 'the good policy Ready')
  t.deepEqual(
    op.bundle()!.policies.map((p) => p.name),
    ['good'],
  )
  t.true(c.allRun(op.bundle()!.version))

  const events = () => c.kube.list('events', 'default').filter((e) => e.regarding?.name === 'bad')
  await waitFor(() => events().length === 1, 'an Event about the bad policy')
  t.like(events()[0], {
    reason: 'Invalid',
    type: 'Warning',
    reportingController: 'flowgate.io/operator',
    regarding: { kind: 'FlowPolicy', name: 'bad' },
  })
  t.regex(events()[0]!.note, /spec\.match\.ports\[0\]/)
  // Resyncs do not repeat the Event.
  await sleep(3200)
  t.is(events().length, 1)

  // Fixing it accepts it and programs it.
  await c.applyPolicy('bad', { match: { sources: ['10.0.0.0/8'] }, rules: [{ name: 'r', action: 'Allow' }] })
  await waitFor(() => c.condition('bad', 'Ready')?.status === 'True', 'the fixed policy Ready')
  t.is(c.condition('bad', 'Accepted')!.observedGeneration, 2)
})

test('an appliance that restarts and misses pushes comes back on its persisted bundle and is brought up to date', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  const a = await c.addAppliance('app-a', '10.0.0.1')
  await c.addAppliance('app-b', '10.0.0.2')
  const op = await c.startOperator()
  await c.applyPolicy('p', allowPolicy(100, '443'))
  await waitFor(() => op.bundle() && c.allRun(op.bundle()!.version), 'first bundle everywhere')
  const v1 = op.bundle()!.version
  const failuresBefore = (await op.metrics.pushFailures.get()).values.reduce((n, v) => n + v.value, 0)

  let v2 = ''
  await c.restartAppliance(a, 1, async () => {
    await c.applyPolicy('p', allowPolicy(100, '8443'))
    await waitFor(() => op.bundle()?.version !== v1, 'the second bundle')
    v2 = op.bundle()!.version
    await waitFor(() => c.appliances[1]!.running() === v2, 'the other appliance to get it')
    // pushes to the stopped appliance fail and are retried with backoff
    await waitFor(
      async () =>
        (await op.metrics.pushFailures.get()).values.reduce((n, v) => n + v.value, 0) > failuresBefore,
      'push failures to the stopped appliance',
    )
  })
  // On start it restored v1 from its state directory before the operator called again.
  const restartIndex = a.applied.findIndex((x, i) => i > 0 && x.version === v1)
  t.true(restartIndex > 0, 'restored the persisted bundle at start')
  await waitFor(() => a.running() === v2, 'the restarted appliance to get the new bundle')
  t.deepEqual(
    a.applied.map((x) => x.version),
    [v1, v1, v2],
  )
  await waitFor(() => c.condition('p', 'Ready')?.status === 'True', 'Ready again')
})

test('a terminating appliance pod is deregistered before it exits; a stray target is removed', async (t) => {
  const c = await Cluster.start({ podTerminationMs: 2000 })
  t.teardown(() => c.close())
  await c.addAppliance('app-a', '10.0.0.1')
  await c.addAppliance('app-b', '10.0.0.2')
  c.elb.addTarget('10.0.9.9')
  const op = await c.startOperator()
  await c.applyPolicy('p', allowPolicy())
  await waitFor(
    () => JSON.stringify(c.elb.activeIds()) === JSON.stringify(['10.0.0.1', '10.0.0.2']),
    'both appliances registered and the stray gone',
  )
  t.true(
    c.elb.callsOf('DeregisterTargets').some((x) => x.targets.includes('10.0.9.9')),
    'the stray was deregistered',
  )
  t.true(op.isLeader())

  const core = c.kc.makeApiClient(CoreV1Api)
  const deleted = Date.now()
  await core.deleteNamespacedPod({ name: 'app-a', namespace: NS, gracePeriodSeconds: 2 })
  const gone = await waitFor(() => (c.kube.get('pods', 'app-a', NS) ? 0 : Date.now()), 'the pod to exit')
  const dereg = c.elb.callsOf('DeregisterTargets').find((x) => x.targets.includes('10.0.0.1'))
  t.truthy(dereg, 'the leaving appliance was deregistered')
  t.true(dereg!.at < gone, 'deregistered before the pod exited')
  t.true(dereg!.at - deleted < 1500, `deregistered ${dereg!.at - deleted} ms after the delete`)
  t.log(`deregistered ${dereg!.at - deleted} ms after the delete; the pod exited after ${gone - deleted} ms`)
  t.deepEqual(c.elb.activeIds(), ['10.0.0.2'])
  await waitFor(() => c.policy('p')?.status?.appliances?.total === 1, 'the status to count one appliance')
  // The remaining appliance is untouched: registered once, never deregistered.
  t.false(c.elb.callsOf('DeregisterTargets').some((x) => x.targets.includes('10.0.0.2')))
})

test('an operator restart causes no target churn and no redundant pushes', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  for (let i = 1; i <= 3; i++) await c.addAppliance(`app-${i}`, `10.0.0.${i}`)
  const op1 = await c.startOperator()
  await c.applyPolicy('p', allowPolicy())
  await waitFor(() => c.elb.activeIds().length === 3, 'three targets registered')
  const version = op1.bundle()!.version
  await waitFor(() => c.allRun(version), 'bundle everywhere')
  await c.stopOperator(op1)

  const calls = c.elb.calls.length
  const applied = c.appliances.map((a) => a.applied.length)
  const op2 = await c.startOperator({ identity: 'second' })
  await waitFor(() => op2.isLeader(), 'the new operator to lead')
  await waitFor(() => op2.applianceVersions().size === 3, 'the new operator to learn what the appliances run')
  await sleep(2000)
  const after = c.elb.calls.slice(calls)
  t.deepEqual(
    after.filter((x) => x.action === 'RegisterTargets' || x.action === 'DeregisterTargets'),
    [],
    'no Register/DeregisterTargets after the restart',
  )
  t.true(
    after.some((x) => x.action === 'DescribeTargetHealth'),
    'it did look',
  )
  t.deepEqual(
    c.appliances.map((a) => a.applied.length),
    applied,
    'no appliance re-applied its bundle',
  )
  t.is(op2.bundle()!.version, version, 'the same bundle, byte for byte')
})

test('an appliance that refuses the bundle is not registered and holds Programmed at Pending until it accepts', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  await c.addAppliance('app-a', '10.0.0.1')
  const b = await c.addAppliance('app-b', '10.0.0.2')
  b.refuse = true
  const op = await c.startOperator()
  await c.applyPolicy('p', allowPolicy())
  await waitFor(() => c.appliances[0]!.running() === op.bundle()?.version, 'the healthy appliance programmed')
  await waitFor(() => c.condition('p', 'Programmed')?.message?.startsWith('1/2'), 'Programmed 1/2')
  t.like(c.condition('p', 'Programmed'), { status: 'False', reason: 'Pending' })
  t.is(c.condition('p', 'Ready')!.status, 'False')
  await waitFor(() => c.elb.activeIds().length === 1, 'one target')
  await sleep(300)
  t.deepEqual(c.elb.activeIds(), ['10.0.0.1'], 'the refusing appliance is not registered')
  t.true((await op.metrics.pushFailures.get()).values.some((v) => v.labels.reason === '500' && v.value > 0))
  b.refuse = false
  await waitFor(() => b.running() === op.bundle()!.version, 'the appliance to accept on a retry')
  await waitFor(() => c.elb.activeIds().length === 2, 'then it is registered')
  await waitFor(() => c.condition('p', 'Ready')?.status === 'True', 'and the policy Ready')
})
