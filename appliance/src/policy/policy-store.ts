// The appliance's current policy: the verified bundle and the engine built from it, swapped as one
// reference so the packet loop never sees half of a change (ARCHITECTURE.md: "swapped atomically").
import { type ConfigBundle, verifyBundle } from '../../../policy/src/bundle.ts'
import { PolicyEngine } from '../../../policy/src/engine/index.ts'
import type { CheckedPolicy } from '../../../policy/src/validate.ts'

export interface ActivePolicy {
  readonly bundle: ConfigBundle
  readonly engine: PolicyEngine
  readonly loadedAt: Date
  /** where it came from: a file path, "admin-api", "state-dir" */
  readonly source: string
}

export type PolicyListener = (next: ActivePolicy, previous: ActivePolicy | undefined) => void

export class PolicyStore {
  private active: ActivePolicy | undefined
  private readonly listeners = new Set<PolicyListener>()

  get current(): ActivePolicy | undefined {
    return this.active
  }

  /** Builds the engine first and swaps only if that worked; throws (keeping the old policy) otherwise. */
  apply(bundle: ConfigBundle, policies: readonly CheckedPolicy[], source: string): ActivePolicy {
    const engine = new PolicyEngine(policies, bundle.fleetDefault)
    const next: ActivePolicy = { bundle, engine, loadedAt: new Date(), source }
    const previous = this.active
    this.active = next
    for (const l of this.listeners) l(next, previous)
    return next
  }

  /** Verifies an untrusted bundle (admin API, state file) and applies it. */
  applyUntrusted(value: unknown, source: string): ActivePolicy {
    const { bundle, policies } = verifyBundle(value)
    return this.apply(bundle, policies, source)
  }

  onChange(listener: PolicyListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
