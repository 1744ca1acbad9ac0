// The seam between the appliance process and its packet path: main.ts starts one of these and asks it
// whether it is alive; the packet path reads the current policy from the store on every new flow.
import type { Logger } from 'pino'
import type { CertificateAuthority } from '../ca/index.ts'
import type { ApplianceMetrics } from '../control/metrics.ts'
import type { PolicyStore } from '../policy/policy-store.ts'

export interface DataplaneContext {
  store: PolicyStore
  metrics: ApplianceMetrics
  log: Logger
  bind: string
  genevePort: number
  /** the interception CA (--ca-cert); without it flows that must be intercepted are reset */
  ca?: CertificateAuthority
}

export interface Dataplane {
  /** true while the receive loop runs and its socket is bound */
  alive(): boolean
  /** why not, when it is not alive */
  detail(): string
  close(): Promise<void>
}

export type DataplaneFactory = (ctx: DataplaneContext) => Promise<Dataplane>
