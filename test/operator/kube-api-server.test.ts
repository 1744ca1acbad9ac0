// The test API server's own semantics, through the real @kubernetes/client-node: the operator's tests
// are only as good as this server's fidelity to the real one.

import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node'
import test from 'ava'
import { KubeApiServer } from '../support/kube-api-server.ts'
import { waitFor } from './harness.ts'

const fp = { group: 'flowgate.io', version: 'v1alpha1', plural: 'flowpolicies' }

async function setup(t: { teardown(fn: () => unknown): void }) {
  const kube = await new KubeApiServer({ podTerminationMs: 200 }).start()
  t.teardown(() => kube.close())
  const kc = new KubeConfig()
  kc.loadFromOptions(kube.kubeconfig())
  return { kube, kc, custom: kc.makeApiClient(CustomObjectsApi) }
}

const code = async (p: Promise<unknown>) => {
  try {
    await p
    return 200
  } catch (err) {
    return (err as { code: number }).code
  }
}

test('custom resources: generation bumps on spec changes only; status only through /status; stale writes get 409', async (t) => {
  const { custom } = await setup(t)
  const body = {
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'p' },
    spec: { a: 1 },
    status: { x: 1 },
  }
  const created = await custom.createClusterCustomObject({ ...fp, body })
  t.is(created.metadata.generation, 1)
  t.is(created.status, undefined, 'status dropped on create')
  t.is(await code(custom.createClusterCustomObject({ ...fp, body })), 409)

  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
  const s1 = await custom.patchClusterCustomObjectStatus(
    { ...fp, name: 'p', body: { status: { ok: true } } },
    merge,
  )
  t.is(s1.metadata.generation, 1, 'a status write does not bump generation')
  t.deepEqual(s1.status, { ok: true })
  const viaMain = await custom.patchClusterCustomObject(
    { ...fp, name: 'p', body: { status: { ok: false } } },
    merge,
  )
  t.deepEqual(viaMain.status, { ok: true }, 'the main endpoint ignores status')
  const s2 = await custom.patchClusterCustomObjectStatus(
    { ...fp, name: 'p', body: { spec: { a: 9 }, status: { ok: 2 } } },
    merge,
  )
  t.deepEqual(s2.spec, { a: 1 }, '/status ignores spec')
  const labelled = await custom.patchClusterCustomObject(
    { ...fp, name: 'p', body: { metadata: { labels: { l: 'v' } } } },
    merge,
  )
  t.is(labelled.metadata.generation, 1, 'a metadata change does not bump generation')
  const edited = await custom.replaceClusterCustomObject({
    ...fp,
    name: 'p',
    body: { ...labelled, spec: { a: 2 } },
  })
  t.is(edited.metadata.generation, 2)
  t.is(
    await code(
      custom.replaceClusterCustomObject({ ...fp, name: 'p', body: { ...labelled, spec: { a: 3 } } }),
    ),
    409,
  )
  const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)
  t.is(
    await code(custom.patchClusterCustomObject({ ...fp, name: 'p', body: { spec: { a: 4 } } }, strategic)),
    415,
  )
  // a guarded JSON patch (test + remove), as for finalizers
  const json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)
  const ops = [
    { op: 'test', path: '/metadata/labels/l', value: 'v' },
    { op: 'remove', path: '/metadata/labels/l' },
  ]
  t.deepEqual(
    (await custom.patchClusterCustomObject({ ...fp, name: 'p', body: ops }, json)).metadata.labels,
    {},
  )
  t.is(await code(custom.patchClusterCustomObject({ ...fp, name: 'p', body: ops }, json)), 422)
  t.is(await code(custom.getClusterCustomObject({ ...fp, name: 'nope' })), 404)
})

test('watch: replay from a resourceVersion, label selectors, 410 after compaction, pagination over a snapshot', async (t) => {
  const { kube, kc } = await setup(t)
  const core = kc.makeApiClient(CoreV1Api)
  const pod = (name: string, app: string) => ({
    metadata: { name, namespace: 'ns', labels: { app } },
    spec: { containers: [] },
  })
  kube.put('pods', pod('a', 'x'))
  kube.put('pods', pod('b', 'x'))
  kube.put('pods', pod('c', 'y'))
  const page1 = await core.listNamespacedPod({ namespace: 'ns', labelSelector: 'app=x', limit: 1 })
  t.is(page1.items.length, 1)
  t.truthy(page1.metadata?._continue)
  kube.put('pods', pod('a2', 'x')) // after the snapshot: not on page 2
  const page2 = await core.listNamespacedPod({
    namespace: 'ns',
    labelSelector: 'app=x',
    limit: 5,
    _continue: page1.metadata!._continue!,
  })
  t.deepEqual(
    page2.items.map((p) => p.metadata?.name),
    ['b'],
  )
  t.falsy(page2.metadata?._continue)

  const events: string[] = []
  const controller = await new Watch(kc).watch(
    '/api/v1/namespaces/ns/pods',
    { labelSelector: 'app=x', resourceVersion: page1.metadata!.resourceVersion! },
    (type, obj) => events.push(`${type}:${obj.metadata?.name ?? obj.code}`),
    () => events.push('done'),
  )
  await waitFor(() => events.includes('ADDED:a2'), 'replayed history')
  kube.put('pods', pod('b', 'y')) // leaves the selector → DELETED for this watcher
  kube.put('pods', pod('c', 'x')) // enters it → ADDED
  await waitFor(() => events.includes('DELETED:b') && events.includes('ADDED:c'), 'selector transitions')
  kube.compact()
  await waitFor(() => events.includes('ERROR:410') && events.includes('done'), '410 on the open watch')
  controller.abort()
  const late: string[] = []
  await new Watch(kc).watch(
    '/api/v1/namespaces/ns/pods',
    { resourceVersion: page1.metadata!.resourceVersion! },
    (type, obj) => late.push(`${type}:${obj.code}`),
    () => late.push('done'),
  )
  await waitFor(() => late.join() === 'ERROR:410,done', 'a watch from a compacted resourceVersion gets 410')
  t.pass()
})

test('pods terminate gracefully; leases conflict on a stale resourceVersion', async (t) => {
  const { kube, kc } = await setup(t)
  const core = kc.makeApiClient(CoreV1Api)
  kube.put('pods', { metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [] } })
  await core.deleteNamespacedPod({ name: 'p', namespace: 'ns' })
  const terminating = await core.readNamespacedPod({ name: 'p', namespace: 'ns' })
  t.truthy(terminating.metadata?.deletionTimestamp, 'still there, terminating')
  await waitFor(() => !kube.get('pods', 'p', 'ns'), 'gone after the grace period', 2000)

  const leases = kc.makeApiClient(CoordinationV1Api)
  const l = await leases.createNamespacedLease({
    namespace: 'ns',
    body: { metadata: { name: 'l' }, spec: { holderIdentity: 'a', renewTime: new V1MicroTime() } },
  })
  const renewed = await leases.replaceNamespacedLease({
    name: 'l',
    namespace: 'ns',
    body: { ...l, spec: { ...l.spec, holderIdentity: 'b' } },
  })
  t.is(renewed.spec?.holderIdentity, 'b')
  t.is(
    await code(
      leases.replaceNamespacedLease({
        name: 'l',
        namespace: 'ns',
        body: { ...l, spec: { ...l.spec, holderIdentity: 'c' } },
      }),
    ),
    409,
  )
})
