// One flow record: pure, no I/O, no clock. Field names are VPC Flow Logs v5's where one exists, so that
// existing flow-log tooling (Athena tables, jq one-liners) reads them; flowgate's own fields follow.
//
// Semantics (differences from VPC Flow Logs, which sees one direction of one interface per record):
// - One record per flow and reporting interval, covering BOTH directions. `srcaddr`/`srcport` are the
//   flow's initiator (the sender of its first packet), `dstaddr`/`dstport` the responder. `packets` and
//   `bytes` are both directions summed; `orig-packets`/`orig-bytes` (initiator → responder) and
//   `reply-packets`/`reply-bytes` split them. Bytes are inner IP bytes (header included), as VPC counts.
// - Counts are since the flow's previous record (a long-lived flow gets one every interval, then a last
//   one when it ends), so summing a flow's records gives its totals, as with VPC's aggregation windows.
// - `start`/`end` (unix seconds): the first packet of the flow or the previous record's time, and the last
//   packet seen in this record's window.
// - `tcp-flags`: OR of the flags seen in the window, VPC's encoding (FIN 1, SYN 2, RST 4, SYN-ACK 18).
// - `action`: ACCEPT when the flow's bytes went through (Allow, or Inspect: relayed or intercepted by the L7
//   path), REJECT otherwise (Deny, Reject, a flow still undecided). `verdict` is flowgate's own action —
//   for a terminated flow the one its first bytes got (Inspect when its requests decide one by one) —,
//   `mode` the deciding entry's mode.
// - Omitted: `account-id`, `interface-id`, `vpc-id`, `subnet-id`, `instance-id` (an appliance behind GWLB
//   sees none of them; the GWLB endpoint is `endpoint-id`), `flow-direction` (ingress/egress of an
//   interface has no meaning for a bump-in-the-wire appliance; orig/reply says it), `pkt-srcaddr`/
//   `pkt-dstaddr` (GWLB does not translate inner packets: they would equal srcaddr/dstaddr).
// - `srcport`/`dstport` are 0 for protocols without ports (ICMP, ICMPv6: the flow table keys echo flows
//   on their identifier, which VPC does not report either).
// - `aws-account-id`: the AWS account of the first SigV4-signed request seen on the flow (intercepted
//   flows only: the account is decoded from the access key id the request is signed with), and
//   `aws-account-ids` every distinct one, first seen first, at most MAX_FLOW_ACCOUNTS. Not VPC's
//   `account-id`, which is the owner of the interface that saw the packets.
// - Unknown flowgate fields are null rather than absent, so every record has the same keys.

import { formatAddress } from '../../../policy/src/cidr.ts'
import type { Decision } from '../../../policy/src/engine/index.ts'
import type { FlowKey } from '../flow/table.ts'
import { formatEndpointId } from '../wire/geneve.ts'

/** Why a record was written: a periodic one for a live flow, or the flow ended (and how). */
export type RecordReason = 'active' | 'closed' | 'expired' | 'evicted' | 'removed'

export interface FlowL7 {
  sni?: string | null | undefined
  host?: string | null | undefined
  tlsVersion?: string | null | undefined
  /** the appliance terminated the flow's TLS (Inspect) */
  intercepted?: boolean
  /** the decision the L7 path took for a terminated flow; stands over the fast path's (pending) one */
  decision?: Decision | undefined
  /** AWS accounts of SigV4-signed requests seen on the flow, first seen first (≤ MAX_FLOW_ACCOUNTS) */
  awsAccountIds?: string[]
}

/** Distinct AWS accounts a flow's record lists; more are not noted. */
export const MAX_FLOW_ACCOUNTS = 8

export interface FlowRecordInput {
  key: FlowKey
  /** ms since the epoch */
  startMs: number
  endMs: number
  /** this window's counts: [orig, reply] */
  packets: readonly [number, number]
  bytes: readonly [number, number]
  /** VPC-encoded TCP flags seen in the window (FlowTable.tcpFlags) */
  tcpFlags: number
  decision: Decision | undefined
  l7?: FlowL7 | undefined
  reason: RecordReason
}

export interface FlowRecord {
  version: 5
  type: 'IPv4' | 'IPv6'
  srcaddr: string
  dstaddr: string
  srcport: number
  dstport: number
  protocol: number
  packets: number
  bytes: number
  start: number
  end: number
  action: 'ACCEPT' | 'REJECT'
  'log-status': 'OK'
  'tcp-flags': number
  'endpoint-id': string
  'orig-packets': number
  'orig-bytes': number
  'reply-packets': number
  'reply-bytes': number
  policy: string | null
  rule: string | null
  mode: string | null
  verdict: string
  'audit-policy': string | null
  'audit-rule': string | null
  'audit-action': string | null
  sni: string | null
  host: string | null
  'tls-version': string | null
  intercepted: boolean
  'aws-account-id': string | null
  'aws-account-ids': string[] | null
  'record-reason': RecordReason
}

/** ACCEPT when the flow's bytes went through: a final Allow, or Inspect (through the L7 path). */
export function vpcAction(d: Decision | undefined): 'ACCEPT' | 'REJECT' {
  return d?.kind === 'final' && (d.action === 'Allow' || d.action === 'Inspect') ? 'ACCEPT' : 'REJECT'
}

/** TCP, UDP, SCTP, UDP-Lite: protocols whose flow key holds real ports */
const PORTED = new Set([6, 17, 132, 136])

export function buildFlowRecord(r: FlowRecordInput): FlowRecord {
  const d = r.decision
  const ported = PORTED.has(r.key.protocol)
  const entry = d?.entry
  const audit = d?.audit
  return {
    version: 5,
    type: r.key.family === 4 ? 'IPv4' : 'IPv6',
    srcaddr: formatAddress(r.key.src),
    dstaddr: formatAddress(r.key.dst),
    srcport: ported ? r.key.srcPort : 0,
    dstport: ported ? r.key.dstPort : 0,
    protocol: r.key.protocol,
    packets: r.packets[0] + r.packets[1],
    bytes: r.bytes[0] + r.bytes[1],
    start: Math.floor(r.startMs / 1000),
    end: Math.floor(r.endMs / 1000),
    action: vpcAction(d),
    'log-status': 'OK',
    'tcp-flags': r.tcpFlags,
    'endpoint-id': formatEndpointId(r.key.endpointId, 0),
    'orig-packets': r.packets[0],
    'orig-bytes': r.bytes[0],
    'reply-packets': r.packets[1],
    'reply-bytes': r.bytes[1],
    policy: entry?.policy.name ?? null,
    rule: entry?.rule?.name ?? null,
    mode: entry?.mode ?? null,
    verdict: d ? (d.kind === 'pending' ? 'Pending' : d.action) : 'None',
    'audit-policy': audit?.policy.name ?? null,
    'audit-rule': audit?.rule?.name ?? null,
    'audit-action': audit?.action ?? null,
    sni: r.l7?.sni ?? null,
    host: r.l7?.host ?? null,
    'tls-version': r.l7?.tlsVersion ?? null,
    intercepted: r.l7?.intercepted === true,
    'aws-account-id': r.l7?.awsAccountIds?.[0] ?? null,
    'aws-account-ids': r.l7?.awsAccountIds?.length ? [...r.l7.awsAccountIds] : null,
    'record-reason': r.reason,
  }
}
