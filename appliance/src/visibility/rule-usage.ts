// Per-rule hit counters: one hit per flow a rule decides (and per HTTP request it decides on an
// intercepted flow), plus the time of the latest hit. Read by /metrics (flowgate_rule_hits_total), by the
// admin API (GET /v1/rule-usage) and from there by the operator, which sums them into FlowPolicy
// status.rules.
//
// Counting is on the packet loop's hot path, so it is two typed-array writes indexed by the deciding
// entry's index in the current engine; nothing allocates. The arrays belong to one engine and are replaced
// when the engine is (a new bundle): counts carry over by (policy, rule) name, so a rule that survives a
// bundle change keeps counting up, and rules that left the bundle leave the counters — the label set is
// always the bundle's rules (bounded cardinality). An entry of an older engine (a flow decided before the
// swap) is counted under its name by a slower lookup.
//
// Which entries count: the Enforce entry that decided, and the Audit entry that would have (an Audit
// policy is there to learn whether its rules match). A policy's defaultAction is counted too, with rule
// null. The fleet default (no policy) is not a rule and is not counted.
import type { Decision, Entry } from '../../../policy/src/engine/index.ts'

export interface RuleHits {
  policy: string
  /** null: the policy's defaultAction */
  rule: string | null
  hits: number
  /** ms since the epoch; null when never hit */
  lastHit: number | null
}

const keyOf = (policy: string, rule: string | null | undefined) => `${policy}\0${rule ?? ''}`

export class RuleUsage {
  private entries: readonly Entry[] = []
  /** hits[i]: hits of entries[i]'s (policy, rule), carried across engines */
  private hits = new Float64Array(0)
  /** lastHit[i]: ms since the epoch, 0 = never */
  private lastHit = new Float64Array(0)
  private byKey = new Map<string, number>()

  /** Switches to an engine's entries, carrying counts over by (policy, rule). */
  setEntries(entries: readonly Entry[]): void {
    if (entries === this.entries) return
    const hits = new Float64Array(entries.length)
    const lastHit = new Float64Array(entries.length)
    const byKey = new Map<string, number>()
    for (const [i, e] of entries.entries()) {
      const k = keyOf(e.policy.name, e.rule?.name)
      byKey.set(k, i)
      const old = this.byKey.get(k)
      if (old !== undefined) {
        hits[i] = this.hits[old]!
        lastHit[i] = this.lastHit[old]!
      }
    }
    this.entries = entries
    this.hits = hits
    this.lastHit = lastHit
    this.byKey = byKey
  }

  /** One hit for entry `e` at `now` (ms). Allocation-free for entries of the current engine. */
  hit(e: Entry, now: number): void {
    let i = e.index
    if (this.entries[i] !== e) {
      const found = this.byKey.get(keyOf(e.policy.name, e.rule?.name))
      if (found === undefined) return // the rule has left the bundle
      i = found
    }
    this.hits[i]!++
    if (now > this.lastHit[i]!) this.lastHit[i] = now
  }

  /**
   * One hit for what decided `d` (its Enforce entry and the Audit entry that matched before it), for
   * decisions taken outside the fast path: each HTTP request of an intercepted flow. Pending decisions
   * decide nothing yet and are not counted.
   */
  record(d: Decision | undefined, now: number = Date.now()): void {
    if (d?.kind !== 'final') return
    if (d.entry) this.hit(d.entry, now)
    if (d.audit) this.hit(d.audit, now)
  }

  /** Every entry of the current bundle with its counts, in evaluation order. */
  snapshot(): RuleHits[] {
    return this.entries.map((e, i) => ({
      policy: e.policy.name,
      rule: e.rule?.name ?? null,
      hits: this.hits[i]!,
      lastHit: this.lastHit[i]! > 0 ? this.lastHit[i]! : null,
    }))
  }
}
