// Appliances reconciler, pure part: which pods are appliances we push to, where to reach them, and
// whether a pod needs a push. Appliance pods use hostNetwork, so the pod IP is the node IP; the admin
// port is the container port named "admin" (falling back to the operator's default).
import type { V1Pod } from '@kubernetes/client-node'

export interface ApplianceView {
  key: string
  name: string
  namespace: string
  uid: string
  /** where the admin API listens (status.podIP; equal to the node IP for hostNetwork pods) */
  address: string | undefined
  adminPort: number
  /** the node IP GWLB sends to: the target to register (status.hostIP) */
  nodeIP: string | undefined
  running: boolean
  ready: boolean
  terminating: boolean
  /** sum of container restarts: a change means the appliance process restarted */
  restarts: number
}

export function applianceView(pod: V1Pod, defaultAdminPort: number): ApplianceView {
  const m = pod.metadata ?? {}
  let adminPort = defaultAdminPort
  for (const c of pod.spec?.containers ?? []) {
    const p = c.ports?.find((x) => x.name === 'admin')
    if (p) {
      adminPort = p.containerPort
      break
    }
  }
  const running = pod.status?.phase === 'Running'
  return {
    key: `${m.namespace}/${m.name}`,
    name: m.name ?? '',
    namespace: m.namespace ?? '',
    uid: m.uid ?? '',
    address: pod.status?.podIP,
    adminPort,
    nodeIP: pod.status?.hostIP ?? pod.status?.podIP,
    running,
    ready: running && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    terminating: m.deletionTimestamp !== undefined && m.deletionTimestamp !== null,
    restarts: (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
  }
}

/** Pods we push the bundle to: running with an address and not on their way out. */
export function isPushTarget(a: ApplianceView): boolean {
  return a.running && !a.terminating && a.address !== undefined
}

export type PushAction = { kind: 'skip' } | { kind: 'verify' } | { kind: 'push' }

/**
 * What to do for one appliance: nothing when it is not a push target or there is no bundle yet; push
 * when the version we last saw differs from the desired one (or is unknown); otherwise verify (a cheap
 * GET) — an appliance may have restarted and come back with an older bundle.
 */
export function pushAction(
  a: ApplianceView,
  known: string | undefined,
  desired: string | undefined,
): PushAction {
  if (!isPushTarget(a) || desired === undefined) return { kind: 'skip' }
  if (known === undefined) return { kind: 'verify' }
  return known === desired ? { kind: 'verify' } : { kind: 'push' }
}
