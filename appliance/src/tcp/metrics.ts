// TCP counters, named once (STYLE.md). Plain numbers updated on the hot path; the control plane mirrors
// them into prom-client under the names in TCP_METRIC_NAMES.

import { STATE_COUNT, STATE_NAMES } from './state.ts'

export class TcpMetrics {
  /** Gauge: connections currently in each state, indexed by State. */
  readonly connectionsByState = new Array<number>(STATE_COUNT).fill(0)
  segmentsSent = 0
  segmentsReceived = 0
  /** Segments sent again (RTO, fast recovery, tail loss probes, zero-window probes). */
  retransmits = 0
  /** Segments resent during fast recovery (deemed lost by RACK, duplicate ACKs or a partial ACK). */
  fastRetransmits = 0
  /** Fast recovery episodes (RFC 6675 / RFC 6937): losses repaired without waiting for the RTO. */
  fastRecoveries = 0
  rtoExpiries = 0
  /** RFC 8985 §7 tail loss probes sent, and those found to have repaired a loss. */
  tailLossProbes = 0
  tailLossProbeRecoveries = 0
  /** Gauge: bytes held in out-of-order queues. */
  outOfOrderBytes = 0
  /** Out-of-order segments dropped because the reassembly queue was full. */
  outOfOrderDrops = 0
  resetsSent = 0
  resetsReceived = 0
  challengeAcksSent = 0
  /** Challenge ACKs suppressed by the RFC 5961 §7 rate limit. */
  challengeAcksSuppressed = 0
  pawsRejects = 0
  /** SYNs dropped or half-open connections evicted because the half-open table was full. */
  synFloodDrops = 0
  /** Connections refused because maxConnections was reached. */
  connectionLimitDrops = 0
  zeroWindowProbes = 0
  keepaliveProbes = 0
  connectionsOpened = 0
  connectionTimeouts = 0
}

/** Prometheus names (flowgate_<thing>_<unit>_total) for each counter; the state gauge has a `state` label. */
export const TCP_METRIC_NAMES = {
  connectionsByState: 'flowgate_tcp_connections',
  segmentsSent: 'flowgate_tcp_segments_sent_total',
  segmentsReceived: 'flowgate_tcp_segments_received_total',
  retransmits: 'flowgate_tcp_retransmitted_segments_total',
  fastRetransmits: 'flowgate_tcp_fast_retransmits_total',
  fastRecoveries: 'flowgate_tcp_fast_recoveries_total',
  rtoExpiries: 'flowgate_tcp_rto_expiries_total',
  tailLossProbes: 'flowgate_tcp_tail_loss_probes_total',
  tailLossProbeRecoveries: 'flowgate_tcp_tail_loss_probe_recoveries_total',
  outOfOrderBytes: 'flowgate_tcp_out_of_order_bytes',
  outOfOrderDrops: 'flowgate_tcp_out_of_order_dropped_segments_total',
  resetsSent: 'flowgate_tcp_resets_sent_total',
  resetsReceived: 'flowgate_tcp_resets_received_total',
  challengeAcksSent: 'flowgate_tcp_challenge_acks_sent_total',
  challengeAcksSuppressed: 'flowgate_tcp_challenge_acks_suppressed_total',
  pawsRejects: 'flowgate_tcp_paws_rejected_segments_total',
  synFloodDrops: 'flowgate_tcp_syn_flood_drops_total',
  connectionLimitDrops: 'flowgate_tcp_connection_limit_drops_total',
  zeroWindowProbes: 'flowgate_tcp_zero_window_probes_total',
  keepaliveProbes: 'flowgate_tcp_keepalive_probes_total',
  connectionsOpened: 'flowgate_tcp_connections_opened_total',
  connectionTimeouts: 'flowgate_tcp_connection_timeouts_total',
} as const satisfies Record<keyof TcpMetrics, string>

/** Label values for connectionsByState, in State order. */
export const TCP_STATE_LABELS = STATE_NAMES
