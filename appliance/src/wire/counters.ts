// Malformed-packet reasons, named once. The code is the index in MALFORMED_REASONS (0 = ok), so a parser
// returns a small integer on the hot path and metrics are registered from the list later:
// flowgate_packets_malformed_total{reason}. Codes are stable: append, never reorder.

export const MALFORMED_REASONS = [
  'ok',
  // Geneve (RFC 8926 §3) and the AWS options (GWLB.md)
  'geneve_truncated',
  'geneve_version',
  'geneve_oam',
  'geneve_options_length',
  'geneve_option_length',
  'geneve_aws_option_length',
  'geneve_critical_option',
  'geneve_protocol',
  'geneve_no_endpoint',
  // IPv4 (RFC 791)
  'ipv4_truncated',
  'ipv4_version',
  'ipv4_header_length',
  'ipv4_total_length',
  'ipv4_checksum',
  'ipv4_option',
  'ipv4_fragment_overlap',
  // IPv6 (RFC 8200)
  'ipv6_truncated',
  'ipv6_version',
  'ipv6_payload_length',
  'ipv6_ext_header',
  'ipv6_ext_order',
  'ipv6_ext_limit',
  'ipv6_jumbo',
  // L4
  'tcp_truncated',
  'tcp_data_offset',
  'tcp_option',
  'udp_truncated',
  'udp_length',
  'udp_zero_checksum_v6',
  'icmp_truncated',
  // appended later (codes are stable)
  'ipv6_routing_type0',
] as const

export type MalformedReason = (typeof MALFORMED_REASONS)[number]

/** reason name → code; `M.ok === 0` */
export const M = Object.freeze(
  Object.fromEntries(MALFORMED_REASONS.map((r, i) => [r, i])) as { [K in MalformedReason]: number },
)

export function malformedReason(code: number): MalformedReason | 'unknown' {
  return MALFORMED_REASONS[code] ?? 'unknown'
}

/** Per-reason counters; a Float64Array so they never wrap and incrementing never allocates. */
export class MalformedCounters {
  readonly counts = new Float64Array(MALFORMED_REASONS.length)
  inc(code: number): void {
    if (code > 0 && code < this.counts.length) this.counts[code]!++
  }
  get(reason: MalformedReason): number {
    return this.counts[M[reason]]!
  }
  /** [reason, count] for every reason with a non-zero count */
  *entries(): Generator<[MalformedReason, number]> {
    for (let i = 1; i < this.counts.length; i++)
      if (this.counts[i]! > 0) yield [MALFORMED_REASONS[i]!, this.counts[i]!]
  }
}
