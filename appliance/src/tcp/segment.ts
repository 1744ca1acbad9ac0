// The TCP segment representation the state machine consumes and produces (smoltcp's `TcpRepr`): a parsed,
// plain object with no pointers into header bytes except `payload`, which may be a view over the received
// datagram (the connection copies what it keeps). The wire codec (appliance/src/wire/tcp.ts) parses into
// and emits from this; the mapping is field for field:
//   srcPort/dstPort ← ports; seq/ack ← tcpSeq/tcpAck; flags ← tcpFlags (same bit layout, TcpFlag);
//   window ← tcpWindow (raw, unscaled); mss/windowScale/sackPermitted/sack/timestamp ← TcpOptions
//   (−1 there means absent, undefined here); payload ← bytes [payloadOff, payloadOff + payloadLen).

import { TcpFlag } from '../wire/tcp.ts'
import { type Seq, seqAdd } from './seq.ts'

/** Flag bits as laid out in byte 13 of the TCP header (RFC 9293 §3.1): the wire codec's, one definition. */
export const Flag = TcpFlag

/** One SACK block (RFC 2018 §3): [left, right) in sequence space. */
export interface SackBlock {
  readonly left: Seq
  readonly right: Seq
}

/** The TCP timestamps option (RFC 7323 §3.2). */
export interface Timestamp {
  readonly val: number
  readonly ecr: number
}

export interface TcpRepr {
  srcPort: number
  dstPort: number
  seq: Seq
  /** Meaningful only when flags has ACK. */
  ack: Seq
  /** Bitwise OR of Flag values. */
  flags: number
  /** The 16-bit window field as on the wire: not yet shifted by the window scale. */
  window: number
  /** MSS option (RFC 9293 §3.7.1); SYN segments only. */
  mss?: number
  /** Window scale shift (RFC 7323 §2.2), 0–14 after clamping; SYN segments only. */
  windowScale?: number
  /** SACK-permitted (RFC 2018 §2); SYN segments only. */
  sackPermitted?: boolean
  /** SACK blocks (RFC 2018 §3), at most 4 (3 beside timestamps). */
  sack?: readonly SackBlock[]
  timestamp?: Timestamp
  payload: Uint8Array
}

const EMPTY = new Uint8Array(0)

/** Sequence space the segment occupies: data plus one for SYN and one for FIN (RFC 9293 §3.4). */
export function segLen(s: TcpRepr): number {
  return s.payload.length + (s.flags & Flag.SYN ? 1 : 0) + (s.flags & Flag.FIN ? 1 : 0)
}

/** Builds a segment with defaults for whatever is not given; for tests and for RSTs. */
export function makeSegment(p: Partial<TcpRepr> & Pick<TcpRepr, 'seq'>): TcpRepr {
  return {
    srcPort: p.srcPort ?? 0,
    dstPort: p.dstPort ?? 0,
    seq: p.seq,
    ack: p.ack ?? (0 as Seq),
    flags: p.flags ?? 0,
    window: p.window ?? 0,
    mss: p.mss,
    windowScale: p.windowScale,
    sackPermitted: p.sackPermitted,
    sack: p.sack,
    timestamp: p.timestamp,
    payload: p.payload ?? EMPTY,
  }
}

const FLAG_NAMES: [number, string][] = [
  [Flag.SYN, 'S'],
  [Flag.FIN, 'F'],
  [Flag.RST, 'R'],
  [Flag.PSH, 'P'],
  [Flag.ACK, '.'],
]

/** tcpdump-style one-liner (absolute sequence numbers), for traces and failure messages. */
export function formatSegment(s: TcpRepr): string {
  let f = ''
  for (const [bit, ch] of FLAG_NAMES) if (s.flags & bit) f += ch
  let out = `${s.srcPort} > ${s.dstPort} [${f}] seq ${s.seq}`
  if (s.payload.length) out += `:${seqAdd(s.seq, s.payload.length)}`
  if (s.flags & Flag.ACK) out += ` ack ${s.ack}`
  out += ` win ${s.window}`
  const o: string[] = []
  if (s.mss !== undefined) o.push(`mss ${s.mss}`)
  if (s.windowScale !== undefined) o.push(`wscale ${s.windowScale}`)
  if (s.sackPermitted) o.push('sackOK')
  if (s.sack?.length) o.push(`sack ${s.sack.map((b) => `${b.left}:${b.right}`).join(' ')}`)
  if (s.timestamp) o.push(`TS val ${s.timestamp.val} ecr ${s.timestamp.ecr}`)
  if (o.length) out += ` <${o.join(',')}>`
  out += ` length ${s.payload.length}`
  return out
}
