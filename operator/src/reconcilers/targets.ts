// Targets reconciler, pure part: the GWLB target group's IP targets should be the node IPs of the ready
// appliance pods. Decisions, in order:
// - a registered target whose node has no appliance pod is a stray: deregister it;
// - a registered target whose only pods are terminating (or finished) is leaving: deregister it, while
//   the pod keeps serving its existing flows through the drain period (see operator/README.md);
// - a ready pod that runs the current bundle and is not registered (or is draining): register it;
// - a ready pod whose bundle we do not know yet (we just started, or just became leader) changes
//   nothing either way, so an operator restart causes no churn;
// - readiness flapping of a registered pod does not deregister it: GWLB's own health check already
//   stops new flows to an unhealthy target, and deregistering would break its existing ones.
import type { TargetDescription } from '../aws/elbv2.ts'
import type { ApplianceView } from './appliances.ts'

export interface TargetPlan {
  register: string[]
  deregister: string[]
}

export function planTargets(input: {
  appliances: ApplianceView[]
  /** last bundle version seen on each appliance (by key); absent = unknown */
  versions: ReadonlyMap<string, string>
  desiredVersion: string | undefined
  registered: TargetDescription[]
}): TargetPlan {
  const byNode = new Map<string, ApplianceView[]>()
  for (const a of input.appliances) {
    if (!a.nodeIP) continue
    const list = byNode.get(a.nodeIP) ?? []
    list.push(a)
    byNode.set(a.nodeIP, list)
  }
  const active = new Set(input.registered.filter((t) => !t.state.includes('draining')).map((t) => t.id))
  const register: string[] = []
  const deregister: string[] = []
  for (const id of active) {
    const pods = byNode.get(id) ?? []
    if (!pods.some((a) => a.running && !a.terminating)) deregister.push(id)
  }
  for (const [ip, pods] of byNode) {
    if (active.has(ip)) continue
    const serving = pods.some(
      (a) =>
        a.ready &&
        !a.terminating &&
        input.desiredVersion !== undefined &&
        input.versions.get(a.key) === input.desiredVersion,
    )
    if (serving) register.push(ip)
  }
  return { register: register.sort(), deregister: deregister.sort() }
}
