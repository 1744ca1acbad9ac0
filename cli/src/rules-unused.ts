// Pure part of `flowgate rules unused`: which rules had no hit since a time, from FlowPolicy status.rules
// (written by the operator from the appliances' counters). No I/O, the clock passed in.
//
// A rule is unused since T when status.rules has it with no lastHit, or a lastHit before T. A policy whose
// status has no rules yet (the operator has not read usage: too new, or usage is off) and a rule missing
// from status.rules (added after the last refresh) are not judged: they are returned as `unknown`.

export interface UnusedRule {
  policy: string
  rule: string
  hits: number
  /** RFC 3339, or null when never hit */
  lastHit: string | null
}

export interface UnusedReport {
  unused: UnusedRule[]
  /** policy/rule pairs whose usage is not in status yet */
  unknown: { policy: string; rule: string }[]
}

// biome-ignore lint/suspicious/noExplicitAny: FlowPolicy objects as the API returns them
type Obj = Record<string, any>

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DURATION = /^(?:\d+[smhdw])+$/
const RFC3339 = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2}))?$/

/** `--since`: an RFC 3339 time (or a date, UTC midnight) or a duration back from now (7d, 12h, 1w2d, 90m). */
export function parseSince(text: string, now: number): number {
  const s = text.trim()
  if (DURATION.test(s)) {
    let ms = 0
    for (const m of s.matchAll(/(\d+)([smhdw])/g)) ms += Number(m[1]) * UNITS[m[2]!]!
    return now - ms
  }
  if (RFC3339.test(s)) {
    const t = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s)
    if (Number.isFinite(t)) return t
  }
  throw new Error(
    `--since: "${text}" is neither an RFC 3339 time (2026-01-31T00:00:00Z) nor a duration (7d, 12h, 90m)`,
  )
}

export function unusedRules(policies: readonly Obj[], since: number): UnusedReport {
  const out: UnusedReport = { unused: [], unknown: [] }
  const sorted = [...policies].sort((a, b) =>
    String(a?.metadata?.name).localeCompare(String(b?.metadata?.name)),
  )
  for (const p of sorted) {
    const policy = String(p?.metadata?.name ?? '')
    const specRules: unknown[] = Array.isArray(p?.spec?.rules) ? p.spec.rules : []
    const status: Obj[] | undefined = Array.isArray(p?.status?.rules) ? p.status.rules : undefined
    for (const r of specRules) {
      const rule = (r as Obj)?.name
      if (typeof rule !== 'string') continue
      const u = status?.find((x) => x?.name === rule)
      if (!u) {
        out.unknown.push({ policy, rule })
        continue
      }
      const last = typeof u.lastHit === 'string' ? Date.parse(u.lastHit) : Number.NaN
      if (Number.isFinite(last) && last >= since) continue
      out.unused.push({
        policy,
        rule,
        hits: typeof u.hits === 'number' ? u.hits : 0,
        lastHit: Number.isFinite(last) ? u.lastHit : null,
      })
    }
  }
  return out
}

export function formatTable(rows: readonly UnusedRule[]): string {
  const table = [
    ['POLICY', 'RULE', 'HITS', 'LAST HIT'],
    ...rows.map((r) => [r.policy, r.rule, String(r.hits), r.lastHit ?? 'never']),
  ]
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
  return table
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}
