// Fast-path outcomes and drop reasons, named once (metrics: flowgate_packets_total{verdict},
// flowgate_packets_dropped_total{reason}). Codes are indexes: append, never reorder.

export const OUTCOMES = ['pass', 'drop', 'reject', 'rewrite', 'hold', 'divert'] as const
export type OutcomeName = (typeof OUTCOMES)[number]
export const Outcome = { pass: 0, drop: 1, reject: 2, rewrite: 3, hold: 4, divert: 5 } as const

export const DROP_REASONS = [
  'none',
  'malformed',
  'policy_deny',
  /** Reject where no reply may be sent (RST answering a RST, ICMP error about an ICMP error, …) */
  'policy_reject_silent',
  'drop_if_contains',
  'drop_every_nth',
  'fragment_unknown_flow',
  'flow_table_full',
  'rewrite_too_large',
  /** a Reject whose ICMP error was suppressed by the rate limit (RFC 4443 §2.4(f), RFC 1812 §4.3.2.8) */
  'reject_rate_limited',
] as const
export type DropReason = (typeof DROP_REASONS)[number]
export const Drop = Object.freeze(
  Object.fromEntries(DROP_REASONS.map((r, i) => [r, i])) as { [K in DropReason]: number },
)

/** Flow verdicts as stored in FlowTable.verdict */
export const Verdict = { none: 0, allow: 1, deny: 2, reject: 3, pending: 4, divert: 5 } as const
