// What /healthz, /readyz and /livez say, as a pure function of the appliance's state.
//
// /healthz is the GWLB target group's health check: it passes only while this appliance should get
// new flows — a policy is loaded, the packet loop is alive, and it is not draining. Failing it is how a
// leaving appliance stops getting new flows while GWLB keeps sending the existing ones (GWLB.md).
// /readyz (Kubernetes readiness) says the same. /livez (Kubernetes liveness) only says the process
// answers: a draining appliance must not be restarted by the kubelet.

export interface HealthInputs {
  policyVersion: string | undefined
  loopAlive: boolean
  loopDetail: string
  draining: boolean
}

export interface HealthReport {
  ok: boolean
  status: 200 | 503
  body: { status: 'ok' | 'unavailable'; policyVersion: string | null; draining: boolean; reasons: string[] }
}

export function health(h: HealthInputs): HealthReport {
  const reasons: string[] = []
  if (!h.policyVersion) reasons.push('no policy loaded')
  if (!h.loopAlive) reasons.push(`packet loop not running: ${h.loopDetail}`)
  if (h.draining) reasons.push('draining')
  const ok = reasons.length === 0
  return {
    ok,
    status: ok ? 200 : 503,
    body: {
      status: ok ? 'ok' : 'unavailable',
      policyVersion: h.policyVersion ?? null,
      draining: h.draining,
      reasons,
    },
  }
}
