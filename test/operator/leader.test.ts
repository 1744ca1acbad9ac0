// Leader election between operator replicas on a coordination.k8s.io/v1 Lease.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { allowPolicy, Cluster, NS, sleep, waitFor } from './harness.ts'

const sum = async (m: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await m.get()).values.reduce((n, v) => n + v.value, 0)

test.serial(
  'two operators: exactly one leads and only it writes; a partitioned leader steps down and the other takes over within the lease time',
  async (t) => {
    const c = await Cluster.start()
    t.teardown(() => c.close())
    await c.addAppliance('app-a', '10.0.0.1')
    const a = await c.startOperator({ identity: 'op-a' }, 'op-a')
    const b = await c.startOperator({ identity: 'op-b' }, 'op-b')
    await waitFor(() => c.leader(), 'one leader')
    // Watch leadership over a few renew periods: never two at once.
    for (let i = 0; i < 20; i++) {
      t.true(c.operators.filter((o) => o.isLeader()).length <= 1)
      await sleep(50)
    }
    const leader = c.leader()!
    const standby = leader === a ? b : a
    const lease = c.kube.get('leases', 'flowgate-operator', NS)!
    t.is(lease.spec.holderIdentity, leader.identity)

    await c.applyPolicy('p', allowPolicy())
    await waitFor(() => c.condition('p', 'Ready')?.status === 'True', 'the policy Ready')
    t.true((await sum(leader.metrics.statusWrites)) > 0)
    t.is(await sum(standby.metrics.statusWrites), 0, 'the standby wrote no status')
    t.is(await sum(standby.metrics.pushes), 0, 'the standby pushed nothing')
    t.is(await sum(standby.metrics.targetChanges), 0, 'the standby changed no targets')

    // Partition the leader from the API server: every request it makes fails.
    let leaderStopped = 0
    let standbyStarted = 0
    c.kube.inject({ match: (r) => r.user === leader.identity, status: 503, count: Number.POSITIVE_INFINITY })
    const cut = Date.now()
    await waitFor(
      () => {
        if (!leaderStopped && !leader.isLeader()) leaderStopped = Date.now()
        if (!standbyStarted && standby.isLeader()) standbyStarted = Date.now()
        return leaderStopped && standbyStarted
      },
      'failover',
      5000,
    )
    t.true(leaderStopped <= standbyStarted, 'the old leader stopped acting before the new one started')
    // renewDeadline 800 ms, leaseDuration 1200 ms, retry 200 ms: the standby takes over once the lease
    // record has been unchanged for leaseDuration, so within lease + a retry period or two.
    t.true(standbyStarted - cut < 1200 + 1000, `failover took ${standbyStarted - cut} ms`)
    t.log(`leader stepped down after ${leaderStopped - cut} ms, standby led after ${standbyStarted - cut} ms`)
    t.is(c.kube.get('leases', 'flowgate-operator', NS)!.spec.holderIdentity, standby.identity)
    t.true(c.kube.get('leases', 'flowgate-operator', NS)!.spec.leaseTransitions >= 1)

    // The new leader acts: an edit reaches the appliance.
    const before = c.appliances[0]!.running()
    await c.applyPolicy('p', allowPolicy(100, '8443'))
    await waitFor(() => c.appliances[0]!.running() !== before, 'the new leader to push the edit')
    c.kube.clearFaults()
    // The healed old leader stays a standby.
    await sleep(600)
    t.false(leader.isLeader())
    t.true(standby.isLeader())
  },
)

test.serial('a leader that stops releases the Lease and the standby takes over at once', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  const a = await c.startOperator({ identity: 'op-a', leaseDurationMs: 5000, renewDeadlineMs: 3000 }, 'op-a')
  await waitFor(() => a.isLeader(), 'the first operator to lead')
  const b = await c.startOperator({ identity: 'op-b', leaseDurationMs: 5000, renewDeadlineMs: 3000 }, 'op-b')
  await sleep(400)
  t.false(b.isLeader())
  const t0 = Date.now()
  await c.stopOperator(a)
  t.is(c.kube.get('leases', 'flowgate-operator', NS)!.spec.holderIdentity, '', 'released')
  await waitFor(() => b.isLeader(), 'the standby to lead', 3000)
  // Far sooner than the 5 s lease: it did not wait for expiry.
  t.true(Date.now() - t0 < 1500, `took over after ${Date.now() - t0} ms`)
})

test.serial(
  'a leader whose renewals stall stops writing at once, though its other requests still work',
  async (t) => {
    const c = await Cluster.start()
    t.teardown(() => c.close())
    await c.addAppliance('app-a', '10.0.0.1')
    await c.addAppliance('app-b', '10.0.0.2')
    const a = await c.startOperator({ identity: 'op-a' }, 'op-a')
    await waitFor(() => a.isLeader(), 'op-a to lead')
    const b = await c.startOperator({ identity: 'op-b' }, 'op-b')
    await c.applyPolicy('p', allowPolicy())
    await waitFor(() => c.condition('p', 'Ready')?.status === 'True', 'Ready under op-a')
    // Only op-a's Lease writes hang (a slow etcd, an overloaded API server); everything else it does works.
    c.kube.inject({
      match: (r) => r.user === 'op-a' && r.plural === 'leases' && r.method === 'PUT',
      delayMs: 5000,
      count: Number.POSITIVE_INFINITY,
    })
    await waitFor(() => !a.isLeader(), 'op-a to step down', 3000)
    const steppedDown = Date.now()
    await waitFor(() => b.isLeader(), 'op-b to take over', 3000)
    const pushesBefore = (await a.metrics.pushes.get()).values[0]?.value ?? 0
    // Changes now: pod churn and policy edits. Only op-b may act on them.
    for (const port of ['1001', '1002']) {
      await c.applyPolicy('p', allowPolicy(100, port))
      await waitFor(
        () => b.bundle()?.policies[0]?.spec.match?.ports?.[0] === port && c.allRun(b.bundle()!.version),
        `edit ${port}`,
      )
    }
    await c.addAppliance('app-c', '10.0.0.3')
    await waitFor(() => c.elb.activeIds().includes('10.0.0.3'), 'the new appliance registered by op-b')
    await waitFor(() => c.condition('p', 'Ready')?.message?.startsWith('3/3'), 'status by op-b')
    const writesByA = c.kube.requests.filter(
      (r) => r.user === 'op-a' && r.at > steppedDown && ['PATCH', 'POST'].includes(r.method),
    )
    t.deepEqual(writesByA, [], 'op-a wrote nothing to the API after stepping down')
    t.is((await a.metrics.pushes.get()).values[0]?.value ?? 0, pushesBefore, 'op-a pushed nothing')
    t.is(c.leader(), b, 'op-b leads alone')
  },
)

test.serial('SIGTERM: the operator process releases the Lease and exits cleanly', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('fixtures/operator-child.ts', import.meta.url)), c.kube.url, c.tokenPath],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  await waitFor(() => out.includes('leading'), 'the child to lead', 10_000)
  t.is(c.kube.get('leases', 'flowgate-operator', NS)!.spec.holderIdentity, 'child')
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  child.kill('SIGTERM')
  t.is(await exited, 0)
  t.true(out.includes('stopped'))
  t.is(c.kube.get('leases', 'flowgate-operator', NS)!.spec.holderIdentity, '', 'released on SIGTERM')
})
