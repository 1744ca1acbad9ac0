// Rule usage reconciler, pure part: the appliances' hit counters (GET /v1/rule-usage) → each FlowPolicy's
// status.rules. No I/O.
//
// hits: the sum over the appliances whose last report we hold (one per running pod; an appliance that does
// not answer keeps its previous report until its pod goes), so it is the hits since each appliance started
// and drops when one restarts — Prometheus' flowgate_rule_hits_total is the series to take rates of.
// lastHit: the latest of the reported times and the one already in status, so a restart never moves it
// back and "unused since T" (lastHit absent or before T) stays true to what was seen.
import type { RuleUsageReport } from '../../../appliance/src/admin/plugin.ts'
import type { ConfigBundle } from '../../../policy/src/bundle.ts'

export interface RuleUsageStatus {
  name: string
  hits: number
  lastHit?: string
}

/** hits and latest hit (ms) per policy, then per rule (null: the policy's defaultAction) */
export type SummedUsage = Map<string, Map<string | null, { hits: number; lastHit: number }>>

export function sumUsage(reports: Iterable<RuleUsageReport>): SummedUsage {
  const out: SummedUsage = new Map()
  for (const report of reports) {
    for (const r of report.rules ?? []) {
      if (typeof r?.policy !== 'string' || !Number.isFinite(r.hits) || r.hits < 0) continue
      const rules = out.get(r.policy) ?? out.set(r.policy, new Map()).get(r.policy)!
      const cur = rules.get(r.rule ?? null) ?? { hits: 0, lastHit: 0 }
      const at = r.lastHit ? Date.parse(r.lastHit) : 0
      rules.set(r.rule ?? null, {
        hits: cur.hits + Math.floor(r.hits),
        lastHit: Number.isFinite(at) && at > cur.lastHit ? at : cur.lastHit,
      })
    }
  }
  return out
}

/** The status.rules a policy should have: its rules in spec order, with the summed counts. */
export function desiredRules(
  ruleNames: readonly string[],
  summed: Map<string | null, { hits: number; lastHit: number }> | undefined,
  existing: readonly RuleUsageStatus[] | undefined,
): RuleUsageStatus[] {
  return ruleNames.map((name) => {
    const got = summed?.get(name)
    const before = existing?.find((e) => e?.name === name)?.lastHit
    const beforeMs = before ? Date.parse(before) : 0
    const last = Math.max(got?.lastHit ?? 0, Number.isFinite(beforeMs) ? beforeMs : 0)
    const r: RuleUsageStatus = { name, hits: got?.hits ?? 0 }
    if (last > 0) r.lastHit = new Date(last).toISOString()
    return r
  })
}

/** The rule names of each policy in the bundle (the valid policies, as the appliances run them). */
export function ruleNamesByPolicy(bundle: ConfigBundle): Map<string, string[]> {
  return new Map(bundle.policies.map((p) => [p.name, (p.spec.rules ?? []).map((r) => r.name)]))
}

/** The merge patch that sets status.rules, or undefined when it already says the same. */
export function rulesPatch(
  current: readonly RuleUsageStatus[] | undefined,
  desired: RuleUsageStatus[],
): object | undefined {
  const same =
    current !== undefined &&
    current.length === desired.length &&
    current.every(
      (c, i) =>
        c?.name === desired[i]!.name && c.hits === desired[i]!.hits && c.lastHit === desired[i]!.lastHit,
    )
  // A merge patch replaces the list whole; the other status fields are left to the policies reconciler.
  return same ? undefined : { status: { rules: desired } }
}
