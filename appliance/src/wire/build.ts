// Builders for the packets the appliance itself emits. Each writes a whole Geneve datagram into a
// caller-owned buffer: the flow's Geneve header byte for byte as received (GWLB.md "Returning a packet"),
// then the inner packet. They return the datagram length, or 0 when nothing may be sent.

import { checksum, pseudoSum4, pseudoSum6 } from './checksum.ts'
import { type UnreachableKind, writeUnreachable } from './icmp.ts'
import { writeIpv4Header } from './ipv4.ts'
import { writeIpv6Header } from './ipv6.ts'
import type { ParsedPacket } from './packet.ts'
import { putU32, TcpFlag } from './tcp.ts'

/** Largest datagram a builder writes: Geneve header (≤ 260) + an unreachable quoting ≤ 1280 bytes. */
export const BUILD_MAX = 2048

/** Copies p's Geneve header to out[0, geneveLen). */
function copyGeneve(p: ParsedPacket, out: Uint8Array): number {
  out.set(p.buf.subarray(0, p.geneveLen), 0)
  return p.geneveLen
}

function writeTcp(
  out: Uint8Array,
  o: number,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
): void {
  out[o] = srcPort >> 8
  out[o + 1] = srcPort & 0xff
  out[o + 2] = dstPort >> 8
  out[o + 3] = dstPort & 0xff
  putU32(out, o + 4, seq)
  putU32(out, o + 8, ack)
  out[o + 12] = 5 << 4
  out[o + 13] = flags
  out.fill(0, o + 14, o + 20) // window 0, checksum, urgent pointer
}

function tcpSegment(
  p: ParsedPacket,
  out: Uint8Array,
  towardSender: boolean,
  seq: number,
  ack: number,
  flags: number,
): number {
  const b = p.buf
  const g = copyGeneve(p, out)
  // Toward the sender we speak as the destination host; toward the receiver as the sender.
  const srcOff = towardSender ? p.dstOff : p.srcOff
  const dstOff = towardSender ? p.srcOff : p.dstOff
  const sport = towardSender ? p.dstPort : p.srcPort
  const dport = towardSender ? p.srcPort : p.dstPort
  const ipLen = p.family === 4 ? 20 : 40
  const t = g + ipLen
  if (p.family === 4) writeIpv4Header(out, g, 6, ipLen + 20, b, srcOff, b, dstOff)
  else writeIpv6Header(out, g, 6, 20, b, srcOff, b, dstOff)
  writeTcp(out, t, sport, dport, seq, ack, flags)
  const ps = p.family === 4 ? pseudoSum4(out, g + 12, g + 16, 6, 20) : pseudoSum6(out, g + 8, g + 24, 6, 20)
  const c = checksum(out, t, 20, ps)
  out[t + 16] = c >> 8
  out[t + 17] = c & 0xff
  return t + 20
}

/**
 * A RST answering p, sent to p's sender as if from p's destination — RFC 9293 §3.10.7.1 (connection does
 * not exist): "If the incoming segment has the ACK bit set, the reset takes its sequence number from the
 * ACK field of the segment; otherwise, the reset has sequence number zero and the ACK field is set to the
 * sum of the sequence number and segment length of the incoming segment." Never in reply to a RST (§3.10.7.1).
 */
export function buildRstToSender(p: ParsedPacket, out: Uint8Array): number {
  if (p.protocol !== 6 || !p.hasL4 || p.tcpFlags & TcpFlag.RST) return 0
  if (p.tcpFlags & TcpFlag.ACK) return tcpSegment(p, out, true, p.tcpAck, 0, TcpFlag.RST)
  const segLen = p.payloadLen + (p.tcpFlags & TcpFlag.SYN ? 1 : 0) + (p.tcpFlags & TcpFlag.FIN ? 1 : 0)
  return tcpSegment(p, out, true, 0, (p.tcpSeq + segLen) >>> 0, TcpFlag.RST | TcpFlag.ACK)
}

/**
 * A RST to p's destination as if from p's sender, for a segment the appliance withholds (SNI/Host deny
 * after peeking). Its sequence number is p's own: the receiver has not seen p, so that is exactly its
 * RCV.NXT, the one value RFC 5961 §3.2 accepts without a challenge ACK.
 */
export function buildRstToReceiver(p: ParsedPacket, out: Uint8Array): number {
  if (p.protocol !== 6 || !p.hasL4 || p.tcpFlags & TcpFlag.RST) return 0
  const ack = p.tcpFlags & TcpFlag.ACK
  return tcpSegment(p, out, false, p.tcpSeq, ack ? p.tcpAck : 0, TcpFlag.RST | (ack ? TcpFlag.ACK : 0))
}

/** ICMP/ICMPv6 destination unreachable about p, to p's sender; 0 when RFC 1122 §3.2.2 forbids one. */
export function buildUnreachable(p: ParsedPacket, kind: UnreachableKind, out: Uint8Array): number {
  const g = copyGeneve(p, out)
  const n = writeUnreachable(out, g, p, kind)
  return n === 0 ? 0 : g + n
}

/**
 * A return datagram from a stored Geneve header (the flow table's copy) and an inner packet: what the
 * appliance sends for a flow outside the receive path (timers, the L7 path).
 */
export function buildReturnDatagram(
  geneve: Uint8Array,
  geneveLen: number,
  inner: Uint8Array,
  innerOff: number,
  innerLen: number,
  out: Uint8Array,
): number {
  if (geneveLen + innerLen > out.length) return 0
  out.set(geneve.subarray(0, geneveLen), 0)
  out.set(inner.subarray(innerOff, innerOff + innerLen), geneveLen)
  return geneveLen + innerLen
}

/** The fields of a TCP segment the encoder writes; structurally the TCP stack's `TcpRepr` (tcp/segment.ts). */
export interface TcpSegmentFields {
  srcPort: number
  dstPort: number
  seq: number
  ack: number
  flags: number
  /** raw 16-bit window field */
  window: number
  mss?: number | undefined
  windowScale?: number | undefined
  sackPermitted?: boolean | undefined
  sack?: readonly { readonly left: number; readonly right: number }[] | undefined
  timestamp?: { readonly val: number; readonly ecr: number } | undefined
  payload: Uint8Array
}

/** Bytes of TCP options writeTcpOptions emits for seg (a multiple of 4, ≤ 40). */
function writeTcpOptions(out: Uint8Array, o: number, seg: TcpSegmentFields): number {
  let i = o
  if (seg.mss !== undefined) {
    out[i++] = 2
    out[i++] = 4
    out[i++] = (seg.mss >> 8) & 0xff
    out[i++] = seg.mss & 0xff
  }
  if (seg.timestamp) {
    if (seg.sackPermitted) {
      out[i++] = 4
      out[i++] = 2
    } else {
      out[i++] = 1
      out[i++] = 1
    }
    out[i++] = 8
    out[i++] = 10
    putU32(out, i, seg.timestamp.val)
    putU32(out, i + 4, seg.timestamp.ecr)
    i += 8
  } else if (seg.sackPermitted) {
    out[i++] = 1
    out[i++] = 1
    out[i++] = 4
    out[i++] = 2
  }
  if (seg.windowScale !== undefined) {
    out[i++] = 1
    out[i++] = 3
    out[i++] = 3
    out[i++] = seg.windowScale
  }
  const sack = seg.sack
  if (sack && sack.length > 0) {
    // What fits in the 40 bytes of option space after the rest (RFC 2018 §3: 4 blocks, 3 beside timestamps).
    const n = Math.min(sack.length, Math.floor((40 - (i - o) - 4) / 8))
    if (n > 0) {
      out[i++] = 1
      out[i++] = 1
      out[i++] = 5
      out[i++] = 2 + 8 * n
      for (let k = 0; k < n; k++) {
        putU32(out, i, sack[k]!.left)
        putU32(out, i + 4, sack[k]!.right)
        i += 8
      }
    }
  }
  return i - o
}

/**
 * A whole Geneve datagram carrying one TCP segment from `src` to `dst` (4 or 16 address bytes): the Geneve
 * header given (the flow's, byte for byte), an IPv4 (DF) or IPv6 header, the TCP header with seg's options
 * (MSS, SACK-permitted, timestamps, window scale, SACK) and payload, both checksums filled. Returns the
 * datagram length, or 0 when it does not fit in out.
 */
export function buildTcpSegment(
  geneve: Uint8Array,
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  seg: TcpSegmentFields,
  out: Uint8Array,
  /** where in `out` the datagram starts, and where the room for it ends (a slot of a send ring) */
  base = 0,
  limit = out.length,
): number {
  const g = base + geneve.length
  const ipLen = family === 4 ? 20 : 40
  // Options first into their place, to know the header length.
  const t = g + ipLen
  if (t + 60 + seg.payload.length > limit) return 0
  out.set(geneve, base)
  const optLen = writeTcpOptions(out, t + 20, seg)
  const tcpLen = 20 + optLen + seg.payload.length
  if (family === 4) writeIpv4Header(out, g, 6, ipLen + tcpLen, src, 0, dst, 0)
  else writeIpv6Header(out, g, 6, tcpLen, src, 0, dst, 0)
  writeTcp(out, t, seg.srcPort, seg.dstPort, seg.seq >>> 0, seg.ack >>> 0, seg.flags)
  out[t + 12] = ((20 + optLen) / 4) << 4
  out[t + 14] = (seg.window >> 8) & 0xff
  out[t + 15] = seg.window & 0xff
  out.set(seg.payload, t + 20 + optLen)
  const ps =
    family === 4 ? pseudoSum4(out, g + 12, g + 16, 6, tcpLen) : pseudoSum6(out, g + 8, g + 24, 6, tcpLen)
  const c = checksum(out, t, tcpLen, ps)
  out[t + 16] = c >> 8
  out[t + 17] = c & 0xff
  return t + tcpLen - base
}
