// The operator's pure parts (decisions, queue, backoff) and its clients against the test servers.

import { CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node'
import test from 'ava'
import { GENEVE_PORT, retryReason, TARGET_BATCH, TargetGroupClient } from '../../operator/src/aws/elbv2.ts'
import { OperatorErrorCodes } from '../../operator/src/errors.ts'
import { backoffDelay } from '../../operator/src/kube/backoff.ts'
import { Informer, type KubeObject } from '../../operator/src/kube/informer.ts'
import { WorkQueue } from '../../operator/src/kube/workqueue.ts'
import { parseOperatorArgs } from '../../operator/src/options.ts'
import { type ApplianceView, pushAction } from '../../operator/src/reconcilers/appliances.ts'
import { clip, desiredStatus, newlyRejected, statusPatch } from '../../operator/src/reconcilers/policies.ts'
import { planTargets } from '../../operator/src/reconcilers/targets.ts'
import { validateFlowPolicy } from '../../policy/src/validate.ts'
import { Elbv2Server } from '../support/elbv2-server.ts'
import { KubeApiServer } from '../support/kube-api-server.ts'
import { sleep, waitFor } from './harness.ts'

// ------------------------------------------------------------------ backoff and queue

test('backoff: full jitter within [window/2, window], capped', (t) => {
  const o = { baseMs: 10, maxMs: 1000 }
  t.is(backoffDelay(0, { ...o, random: () => 0 }), 5)
  t.is(backoffDelay(0, { ...o, random: () => 1 }), 10)
  t.is(backoffDelay(3, { ...o, random: () => 1 }), 80)
  t.is(backoffDelay(20, { ...o, random: () => 1 }), 1000)
  t.is(backoffDelay(20, { ...o, random: () => 0 }), 500)
})

test('work queue: keys are de-duplicated and one key never runs twice at once', async (t) => {
  const q = new WorkQueue({ name: 't', concurrency: 4 })
  let running = 0
  let maxRunning = 0
  const runs: string[] = []
  q.start(async (key) => {
    running++
    maxRunning = Math.max(maxRunning, running)
    runs.push(key)
    await sleep(30)
    running--
    return undefined
  })
  for (let i = 0; i < 10; i++) q.add('a')
  await waitFor(() => running === 1, "'a' running", 1000)
  // 'a' is running now; adds while it runs make exactly one more run afterwards.
  for (let i = 0; i < 10; i++) q.add('a')
  await sleep(100)
  t.deepEqual(runs, ['a', 'a'])
  t.is(maxRunning, 1)
  await q.shutdown()
})

test('work queue: failures retry with per-key exponential backoff; success forgets', async (t) => {
  const q = new WorkQueue({ name: 't', baseDelayMs: 20, maxDelayMs: 1000, random: () => 1 })
  const at: number[] = []
  q.start(async () => {
    at.push(Date.now())
    if (at.length < 4) throw new Error('not yet')
    return undefined
  })
  q.add('k')
  await waitFor(() => at.length === 4, 'four attempts', 3000)
  const gaps = at.slice(1).map((x, i) => x - at[i]!)
  // 20, 40, 80 ms (+ timer slack)
  t.true(gaps[0]! >= 18 && gaps[1]! >= 38 && gaps[2]! >= 78, gaps.join(','))
  // Only lower bounds: a loaded machine can make any timer late, never early.
  await sleep(20)
  t.is(q.failures('k'), 0)
  await q.shutdown()
})

test('work queue: the overall retry bucket limits a failing fleet', async (t) => {
  const q = new WorkQueue({ name: 't', baseDelayMs: 1, maxDelayMs: 1, qps: 20, burst: 5, concurrency: 8 })
  let calls = 0
  q.start(async () => {
    calls++
    throw new Error('always')
  })
  for (let i = 0; i < 20; i++) q.add(`k${i}`)
  await sleep(500)
  // 20 first attempts + burst 5 + ~20 qps × 0.5 s of retries, far below the unlimited ~thousands.
  t.true(calls <= 20 + 5 + 12, `calls: ${calls}`)
  t.true(calls > 20)
  await q.shutdown()
})

test('work queue: stop aborts running handlers and keeps keys for the next start', async (t) => {
  const q = new WorkQueue({ name: 't' })
  let aborted = false
  const seen: string[] = []
  q.start(async (key, signal) => {
    seen.push(key)
    if (key === 'slow') {
      await new Promise((r) => signal.addEventListener('abort', r, { once: true }))
      aborted = signal.aborted
    }
    return undefined
  })
  q.add('slow')
  await sleep(10)
  q.add('later')
  await q.stop()
  t.true(aborted)
  t.deepEqual(seen, ['slow'])
  q.start(async (key) => {
    seen.push(key)
    return undefined
  })
  await waitFor(() => seen.includes('later'), 'the kept key', 1000)
  await q.shutdown()
})

// ------------------------------------------------------------------ decisions

const view = (over: Partial<ApplianceView>): ApplianceView => ({
  key: `ns/${over.name ?? 'a'}`,
  name: 'a',
  namespace: 'ns',
  uid: 'u',
  address: '127.0.0.1',
  adminPort: 9443,
  nodeIP: '10.0.0.1',
  running: true,
  ready: true,
  terminating: false,
  restarts: 0,
  ...over,
})

test('planTargets: register ready pods on the current bundle, deregister leaving ones and strays, keep the unknown', (t) => {
  const pods = [
    view({ name: 'ready-current', nodeIP: '10.0.0.1' }),
    view({ name: 'ready-old', nodeIP: '10.0.0.2' }),
    view({ name: 'ready-unknown', nodeIP: '10.0.0.3' }),
    view({ name: 'terminating', nodeIP: '10.0.0.4', terminating: true }),
    view({ name: 'not-ready-registered', nodeIP: '10.0.0.5', ready: false }),
    view({ name: 'registered-unknown', nodeIP: '10.0.0.6' }),
    // a DaemonSet rollover on one node: old pod leaving, new one ready
    view({ name: 'roll-old', nodeIP: '10.0.0.7', terminating: true }),
    view({ name: 'roll-new', nodeIP: '10.0.0.7' }),
    view({ name: 'ready-current-draining', nodeIP: '10.0.0.8' }),
  ]
  const versions = new Map([
    ['ns/ready-current', 'v2'],
    ['ns/ready-old', 'v1'],
    ['ns/roll-new', 'v2'],
    ['ns/ready-current-draining', 'v2'],
  ])
  const registered = ['10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7', '10.0.9.9'].map((id) => ({
    id,
    port: GENEVE_PORT,
    state: 'healthy',
  }))
  registered.push({ id: '10.0.0.8', port: GENEVE_PORT, state: 'draining' })
  const plan = planTargets({ appliances: pods, versions, desiredVersion: 'v2', registered })
  t.deepEqual(plan, { register: ['10.0.0.1', '10.0.0.8'], deregister: ['10.0.0.4', '10.0.9.9'] })
  // no bundle yet: nothing registered, strays still removed
  t.deepEqual(planTargets({ appliances: pods, versions, desiredVersion: undefined, registered }).register, [])
})

test('pushAction: skip non-targets, push when behind, verify otherwise', (t) => {
  t.is(pushAction(view({ terminating: true }), 'v1', 'v2').kind, 'skip')
  t.is(pushAction(view({ running: false }), 'v1', 'v2').kind, 'skip')
  t.is(pushAction(view({}), 'v1', undefined).kind, 'skip')
  t.is(pushAction(view({}), 'v1', 'v2').kind, 'push')
  t.is(pushAction(view({}), undefined, 'v2').kind, 'verify')
  t.is(pushAction(view({}), 'v2', 'v2').kind, 'verify')
})

test('desiredStatus: conditions, observedGeneration, and lastTransitionTime only on flips', (t) => {
  const valid = validateFlowPolicy({
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'p' },
    spec: { rules: [{ name: 'r', action: 'Allow' }] },
  })
  const invalid = validateFlowPolicy({
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'p' },
    spec: { match: { ports: ['90-80'] }, rules: [] },
  })
  const s1 = desiredStatus({
    generation: 3,
    validation: valid,
    total: 4,
    programmed: 2,
    bundleVersion: 'abc',
    existing: undefined,
    now: 'T1',
  })
  t.like(s1.conditions[1], {
    type: 'Programmed',
    status: 'False',
    reason: 'Pending',
    message: '2/4 appliances run bundle abc',
  })
  t.like(s1.conditions[2], { type: 'Ready', status: 'False', observedGeneration: 3 })
  const s2 = desiredStatus({
    generation: 3,
    validation: valid,
    total: 4,
    programmed: 4,
    bundleVersion: 'abc',
    existing: s1.conditions,
    now: 'T2',
  })
  t.is(s2.conditions[0]!.lastTransitionTime, 'T1', 'Accepted did not flip')
  t.is(s2.conditions[1]!.lastTransitionTime, 'T2', 'Programmed flipped')
  t.is(statusPatch({ ...s2 }, s2), undefined, 'no patch when equal')
  t.truthy(statusPatch(s1, s2))
  const none = desiredStatus({
    generation: 1,
    validation: valid,
    total: 0,
    programmed: 0,
    bundleVersion: 'abc',
    existing: undefined,
    now: 'T',
  })
  t.like(none.conditions[1], { status: 'Unknown', reason: 'NoAppliances' })
  const bad = desiredStatus({
    generation: 2,
    validation: invalid,
    total: 4,
    programmed: 4,
    bundleVersion: 'abc',
    existing: s2.conditions,
    now: 'T3',
  })
  t.like(bad.conditions[0], { status: 'False', reason: 'Invalid' })
  t.regex(bad.conditions[0]!.message, /spec\.match\.ports\[0\]/)
  t.deepEqual(bad.appliances, { total: 4, programmed: 0 })
  t.true(newlyRejected(s2, bad))
  t.false(newlyRejected(bad, bad))
  t.false(newlyRejected(undefined, s2))
})

// ------------------------------------------------------------------ ELBv2 client

test('ELBv2: non-retryable errors fail at once with FG_ERR_AWS; batches of TARGET_BATCH', async (t) => {
  const elb = await new Elbv2Server().start()
  t.teardown(() => elb.close())
  const retries: string[] = []
  const bad = new TargetGroupClient({
    targetGroupArn: `${elb.targetGroupArn}-nope`,
    client: elb.clientConfig(),
    backoffBaseMs: 1,
    onRetry: (op, why) => retries.push(`${op}:${why}`),
  })
  t.teardown(() => bad.destroy())
  const err = await t.throwsAsync(bad.describeTargets())
  t.is((err as { code?: string }).code, OperatorErrorCodes.aws)
  t.regex(err!.message, /TargetGroupNotFound|not found/)
  t.deepEqual(retries, [])

  const tg = new TargetGroupClient({
    targetGroupArn: elb.targetGroupArn,
    client: elb.clientConfig(),
    backoffBaseMs: 1,
  })
  t.teardown(() => tg.destroy())
  const ids = Array.from({ length: TARGET_BATCH * 2 + 5 }, (_, i) => `10.1.${i >> 8}.${i & 255}`)
  await tg.register(ids)
  t.is(elb.callsOf('RegisterTargets').length, 3)
  t.is((await tg.describeTargets()).length, ids.length)
  // a public address is refused by ELBv2 and not retried
  const refused = await t.throwsAsync(tg.register(['8.8.8.8']))
  t.regex(refused!.message, /InvalidTarget|not a valid private/)
  // retries stop after maxAttempts
  const few = new TargetGroupClient({
    targetGroupArn: elb.targetGroupArn,
    client: elb.clientConfig(),
    backoffBaseMs: 1,
    maxAttempts: 3,
  })
  t.teardown(() => few.destroy())
  elb.throttle(5)
  const before = elb.calls.length
  await t.throwsAsync(few.describeTargets())
  t.is(elb.calls.length - before, 3, 'three attempts, then it gives up')
  // a hung request times out and is retried like a 5xx
  elb.clearFaults()
  elb.hang(1, ['DescribeTargetHealth'])
  const retried: string[] = []
  const t0 = Date.now()
  const slowOk = new TargetGroupClient({
    targetGroupArn: elb.targetGroupArn,
    client: elb.clientConfig(),
    backoffBaseMs: 1,
    requestTimeoutMs: 200,
    onRetry: (op, why) => retried.push(`${op}:${why}`),
  })
  t.teardown(() => slowOk.destroy())
  t.is((await slowOk.describeTargets()).length, ids.length)
  t.deepEqual(retried, ['DescribeTargetHealth:server'])
  t.true(Date.now() - t0 < 2000, 'did not wait for the hung answer')
  t.is(retryReason({ name: 'Throttling' }), 'throttled')
  t.is(retryReason({ name: 'ValidationError', $metadata: { httpStatusCode: 400 } }), undefined)
  t.is(retryReason({ name: 'InternalFailure', $metadata: { httpStatusCode: 500 } }), 'server')
})

// ------------------------------------------------------------------ informer against the API server

test('informer: paginated list, then watch; deletions while disconnected are seen on relist', async (t) => {
  const kube = await new KubeApiServer().start()
  t.teardown(() => kube.close())
  const kc = new KubeConfig()
  kc.loadFromOptions(kube.kubeconfig())
  const custom = kc.makeApiClient(CustomObjectsApi)
  for (let i = 0; i < 7; i++) kube.put('flowpolicies', { metadata: { name: `p${i}` }, spec: { i } })
  const changes: string[] = []
  const listCalls: (string | undefined)[] = []
  const inf = new Informer<KubeObject>({
    name: 'flowpolicies',
    watch: new Watch(kc),
    path: '/apis/flowgate.io/v1alpha1/flowpolicies',
    pageSize: 3,
    silenceMs: 5000,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    list: (q) => {
      listCalls.push(q.continue)
      return custom.listClusterCustomObject({
        group: 'flowgate.io',
        version: 'v1alpha1',
        plural: 'flowpolicies',
        limit: q.limit,
        ...(q.continue ? { _continue: q.continue } : {}),
      })
    },
    onChange: (e, o) => changes.push(`${e}:${o.metadata?.name}`),
  })
  inf.start()
  t.teardown(() => inf.stop())
  await inf.waitForSync()
  t.is(inf.store.size, 7)
  t.is(listCalls.length, 3, 'three pages of 3')
  t.truthy(listCalls[1])
  await waitFor(() => kube.openWatches('flowpolicies') === 1, 'the watch')
  kube.put('flowpolicies', { metadata: { name: 'p7' }, spec: {} })
  await waitFor(() => inf.store.has('p7'), 'the watched addition')
  // Delete one while the history is compacted: the watch gets 410, the relist notices the deletion.
  kube.compact()
  kube.remove('flowpolicies', 'p0')
  await waitFor(() => !inf.store.has('p0'), 'the deletion via relist')
  t.true(changes.includes('deleted:p0'))
  t.is(inf.store.size, 7)
})

test("informer: the client library's own inactivity abort is a quiet watch, re-watched at once, not an error", async (t) => {
  const kube = await new KubeApiServer().start()
  t.teardown(() => kube.close())
  const kc = new KubeConfig()
  kc.loadFromOptions(kube.kubeconfig())
  const custom = kc.makeApiClient(CustomObjectsApi)
  const watch = new Watch(kc)
  // The library aborts a watch after requestTimeoutMs (30 s in 2.0.1) without data; shorten it here.
  ;(watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 150
  const reasons: string[] = []
  const inf = new Informer<KubeObject>({
    name: 'flowpolicies',
    watch,
    path: '/apis/flowgate.io/v1alpha1/flowpolicies',
    silenceMs: 60_000,
    backoffBaseMs: 2000,
    backoffMaxMs: 2000,
    list: () =>
      custom.listClusterCustomObject({ group: 'flowgate.io', version: 'v1alpha1', plural: 'flowpolicies' }),
    onChange: () => {},
    onRestart: (r) => reasons.push(r),
  })
  inf.start()
  t.teardown(() => inf.stop())
  await waitFor(() => reasons.length >= 3, 'three quiet-watch restarts', 3000)
  t.true(
    reasons.every((r) => r === 'silent'),
    reasons.join(','),
  )
  // With a 2 s error backoff this would take seconds; a quiet restart is immediate.
  const t0 = Date.now()
  kube.put('flowpolicies', { metadata: { name: 'late' }, spec: {} })
  await waitFor(() => inf.store.has('late'), 'the change', 1000)
  t.true(Date.now() - t0 < 1000)
})

test('parseOperatorArgs: flags over environment, region from the ARN, field-precise refusals', (t) => {
  const arn = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/flowgate/0123456789abcdef'
  const o = parseOperatorArgs(
    [
      '--namespace',
      'fg',
      '--token-file=/var/run/token',
      '--admin-port',
      '9444',
      '--events-namespace=ops',
      '--admin-server-name',
      'fg-appliance.fg.svc',
    ],
    {
      POD_NAMESPACE: 'ignored',
      FLOWGATE_TARGET_GROUP_ARN: arn,
      POD_NAME: 'operator-7d9c',
    },
  )
  t.like(o, {
    eventsNamespace: 'ops',
    adminServerName: 'fg-appliance.fg.svc',
    namespace: 'fg',
    tokenFile: '/var/run/token',
    adminPort: 9444,
    targetGroupArn: arn,
    region: 'eu-west-1',
    identity: 'operator-7d9c',
    handleSignals: true,
    listen: { host: '0.0.0.0', port: 8080 },
  })
  t.is(
    parseOperatorArgs(['--token-file', 'x'], { POD_NAMESPACE: 'env-ns', AWS_REGION: 'us-east-2' }).namespace,
    'env-ns',
  )
  const refuse = (args: string[], re: RegExp) => {
    const err = t.throws(() => parseOperatorArgs(args, {}))
    t.is((err as { code?: string }).code, 'FG_ERR_CONFIG')
    t.regex(err!.message, re)
  }
  refuse(['--token-file', 'x'], /--namespace/)
  refuse(['--namespace', 'n'], /--token-file/)
  refuse(['--namespace', 'n', '--token-file', 'x', '--admin-port', '70000'], /--admin-port/)
  refuse(['--namespace', 'n', '--token-file', 'x', '--target-group-arn', 'arn:nope'], /--target-group-arn/)
  refuse(['--namespace', 'n', '--token-file', 'x', '--fleet-default', 'Maybe'], /--fleet-default/)
  refuse(['--namespace', 'n', '--token-file', 'x', '--bogus', '1'], /unknown option --bogus/)
  refuse(['--namespace'], /needs a value/)
})

test('clip: messages fit the 1 KiB Event note in bytes, multi-byte text included', (t) => {
  t.is(clip('short'), 'short')
  for (const s of ['x'.repeat(5000), 'é'.repeat(3000), '😀'.repeat(1000)]) {
    const c = clip(s)
    t.true(Buffer.byteLength(c) <= 1024, `${Buffer.byteLength(c)}`)
    t.true(c.endsWith('…'))
    t.false(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(c), 'no lone high surrogate')
    t.true(Buffer.byteLength(c) > 1000)
  }
})

test('informer: a list that hangs is abandoned after its timeout and retried', async (t) => {
  const kube = await new KubeApiServer().start()
  t.teardown(() => kube.close())
  const kc = new KubeConfig()
  kc.loadFromOptions(kube.kubeconfig())
  const custom = kc.makeApiClient(CustomObjectsApi)
  kube.put('flowpolicies', { metadata: { name: 'p' }, spec: {} })
  const hung = kube.inject({ match: (r) => r.method === 'GET' && !r.watch, delayMs: 4000, count: 1 })
  const reasons: string[] = []
  const inf = new Informer<KubeObject>({
    name: 'flowpolicies',
    watch: new Watch(kc),
    path: '/apis/flowgate.io/v1alpha1/flowpolicies',
    requestTimeoutMs: 300,
    backoffBaseMs: 10,
    backoffMaxMs: 20,
    list: () =>
      custom.listClusterCustomObject({ group: 'flowgate.io', version: 'v1alpha1', plural: 'flowpolicies' }),
    onChange: () => {},
    onRestart: (r) => reasons.push(r),
  })
  const t0 = Date.now()
  inf.start()
  t.teardown(() => inf.stop())
  await inf.waitForSync()
  t.true(inf.store.has('p'))
  t.is(hung.count, 0, 'the first list hung')
  t.deepEqual(reasons, ['error'])
  t.true(Date.now() - t0 < 2000, `synced after ${Date.now() - t0} ms`)
})

test('informer: the periodic relist catches a change a stalled watch never delivered', async (t) => {
  const kube = await new KubeApiServer().start()
  t.teardown(() => kube.close())
  const kc = new KubeConfig()
  kc.loadFromOptions(kube.kubeconfig())
  const custom = kc.makeApiClient(CustomObjectsApi)
  kube.put('flowpolicies', { metadata: { name: 'p' }, spec: { v: 1 } })
  const reasons: string[] = []
  const inf = new Informer<KubeObject & { spec?: { v: number } }>({
    name: 'flowpolicies',
    watch: new Watch(kc),
    path: '/apis/flowgate.io/v1alpha1/flowpolicies',
    silenceMs: 60_000,
    relistMs: 400,
    list: () =>
      custom.listClusterCustomObject({ group: 'flowgate.io', version: 'v1alpha1', plural: 'flowpolicies' }),
    onChange: () => {},
    onRestart: (r) => reasons.push(r),
  })
  inf.start()
  t.teardown(() => inf.stop())
  await inf.waitForSync()
  await waitFor(() => kube.openWatches('flowpolicies') === 1, 'the watch')
  kube.stallWatches()
  kube.put('flowpolicies', { metadata: { name: 'p' }, spec: { v: 2 } })
  await waitFor(() => inf.store.get('p')?.spec?.v === 2, 'the change via relist', 2000)
  t.true(reasons.includes('relist'))
  t.false(reasons.includes('silent'))
})
