// Policies reconciler, pure part: from the FlowPolicy objects, their validation and what the appliances
// run, compute each policy's desired status and whether it differs from what the object has. No I/O.
import type { BundlePolicy, ConfigBundle } from '../../../policy/src/bundle.ts'
import { formatFieldError } from '../../../policy/src/errors.ts'
import type { PolicyValidation } from '../../../policy/src/validate.ts'
import type { RuleUsageStatus } from './usage.ts'

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  observedGeneration: number
  lastTransitionTime: string
}

export interface PolicyStatus {
  observedGeneration: number
  /** the fleet bundle the operator is rolling out (it contains this policy when Accepted) */
  bundleVersion: string
  conditions: Condition[]
  appliances: { total: number; programmed: number }
}

export interface FlowPolicyObject {
  metadata?: { name?: string; generation?: number; uid?: string; resourceVersion?: string }
  /** status.rules is written by the usage reconciler (usage.ts), the rest by this one */
  status?: Partial<PolicyStatus> & { rules?: RuleUsageStatus[] }
}

/** "name@generation": the unit an appliance can be said to run. */
export function policyRef(p: { name: string; generation?: number }): string {
  return `${p.name}@${p.generation ?? 0}`
}

export function bundleRefs(bundle: ConfigBundle): Set<string> {
  return new Set(bundle.policies.map((p: BundlePolicy) => policyRef(p)))
}

/**
 * Condition messages may be 32 KiB, but an events.k8s.io Event note only 1 KiB, and the same text goes
 * into both; bytes, not characters, are what the API server counts.
 */
const MAX_MESSAGE_BYTES = 1024

export function clip(s: string): string {
  if (Buffer.byteLength(s) <= MAX_MESSAGE_BYTES) return s
  let cut = s.slice(0, MAX_MESSAGE_BYTES)
  // '…' is 3 bytes in UTF-8; shorten until it fits (at most MAX_MESSAGE_BYTES steps).
  while (cut.length > 0 && Buffer.byteLength(cut) > MAX_MESSAGE_BYTES - 3) cut = cut.slice(0, -1)
  // never end on half of a surrogate pair
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1)
  return `${cut}…`
}

export function invalidMessage(v: PolicyValidation): string {
  return clip(v.errors.map(formatFieldError).join('; '))
}

export interface StatusInput {
  generation: number
  validation: PolicyValidation
  /** appliances that should run the fleet's bundle */
  total: number
  /** of those, how many run a bundle that contains this policy at this generation */
  programmed: number
  bundleVersion: string
  /** the existing conditions, to keep lastTransitionTime when a status does not flip */
  existing: Condition[] | undefined
  now: string
}

export function desiredStatus(i: StatusInput): PolicyStatus {
  const g = i.generation
  const accepted: Omit<Condition, 'lastTransitionTime'> = i.validation.ok
    ? {
        type: 'Accepted',
        status: 'True',
        reason: 'Valid',
        message: 'the policy is valid',
        observedGeneration: g,
      }
    : {
        type: 'Accepted',
        status: 'False',
        reason: 'Invalid',
        message: invalidMessage(i.validation),
        observedGeneration: g,
      }
  let programmed: Omit<Condition, 'lastTransitionTime'>
  if (!i.validation.ok) {
    programmed = {
      type: 'Programmed',
      status: 'False',
      reason: 'Invalid',
      message: 'an invalid policy is not sent to appliances',
      observedGeneration: g,
    }
  } else if (i.total === 0) {
    programmed = {
      type: 'Programmed',
      status: 'Unknown',
      reason: 'NoAppliances',
      message: 'no appliance pods are running',
      observedGeneration: g,
    }
  } else {
    const all = i.programmed >= i.total
    programmed = {
      type: 'Programmed',
      status: all ? 'True' : 'False',
      reason: all ? 'AllAppliancesUpdated' : 'Pending',
      message: `${i.programmed}/${i.total} appliances run bundle ${i.bundleVersion}`,
      observedGeneration: g,
    }
  }
  const ready: Omit<Condition, 'lastTransitionTime'> =
    accepted.status === 'True' && programmed.status === 'True'
      ? { type: 'Ready', status: 'True', reason: 'Ready', message: programmed.message, observedGeneration: g }
      : {
          type: 'Ready',
          status: programmed.status === 'Unknown' ? 'Unknown' : 'False',
          reason: accepted.status !== 'True' ? 'Invalid' : programmed.reason,
          message: accepted.status !== 'True' ? accepted.message : programmed.message,
          observedGeneration: g,
        }
  const withTime = (c: Omit<Condition, 'lastTransitionTime'>): Condition => {
    const old = i.existing?.find((e) => e.type === c.type)
    // metav1.Condition: lastTransitionTime moves only when the status flips.
    return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : i.now }
  }
  return {
    observedGeneration: g,
    bundleVersion: i.bundleVersion,
    conditions: [withTime(accepted), withTime(programmed), withTime(ready)],
    appliances: { total: i.total, programmed: i.validation.ok ? i.programmed : 0 },
  }
}

/** The merge patch body that brings `current` to `desired`, or undefined when nothing would change. */
export function statusPatch(current: FlowPolicyObject['status'], desired: PolicyStatus): object | undefined {
  const same =
    current?.observedGeneration === desired.observedGeneration &&
    current?.bundleVersion === desired.bundleVersion &&
    JSON.stringify(current?.conditions ?? []) === JSON.stringify(desired.conditions) &&
    JSON.stringify(current?.appliances ?? null) === JSON.stringify(desired.appliances)
  // Only our fields: status.rules (usage counters) belongs to another writer and a merge patch keeps it.
  return same ? undefined : { status: desired }
}

/** Whether writing `desired` over `current` newly rejects the policy (so an Event is due). */
export function newlyRejected(current: FlowPolicyObject['status'], desired: PolicyStatus): boolean {
  const was = current?.conditions?.find((c) => c.type === 'Accepted')
  const now = desired.conditions.find((c) => c.type === 'Accepted')!
  if (now.status !== 'False') return false
  return (
    was?.status !== 'False' ||
    was.message !== now.message ||
    was.observedGeneration !== now.observedGeneration
  )
}
