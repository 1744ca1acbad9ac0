// TCP (RFC 9293) header view and options (MSS RFC 9293 §3.2, window scale and timestamps RFC 7323,
// SACK-permitted and SACK RFC 2018).

import { M } from './counters.ts'
import type { ParsedPacket } from './packet.ts'

export const TCP_MIN_HEADER = 20
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const

export const TcpOptionKind = {
  eol: 0,
  nop: 1,
  mss: 2,
  windowScale: 3,
  sackPermitted: 4,
  sack: 5,
  timestamps: 8,
} as const

/** Options of one segment; reused across packets (fields reset by parseTcpOptions). -1 = absent. */
export class TcpOptions {
  mss = -1
  windowScale = -1
  sackPermitted = false
  /** number of SACK blocks (≤ 4, RFC 2018 §3) and their edges: left0, right0, left1, … */
  sackBlocks = 0
  readonly sack = new Uint32Array(8)
  tsVal = -1
  tsEcr = -1
}

/**
 * Walks the options in b[o, end). Known kinds must have their exact lengths; any option must fit. A
 * malformed list is an error (Linux ignores the bad option; a forwarder cannot know which reading the
 * endpoint will take, so it drops).
 */
export function parseTcpOptions(b: Uint8Array, o: number, end: number, out: TcpOptions): number {
  out.mss = -1
  out.windowScale = -1
  out.sackPermitted = false
  out.sackBlocks = 0
  out.tsVal = -1
  out.tsEcr = -1
  let i = o
  while (i < end) {
    const kind = b[i]!
    if (kind === TcpOptionKind.eol) break
    if (kind === TcpOptionKind.nop) {
      i++
      continue
    }
    if (i + 1 >= end) return M.tcp_option
    const len = b[i + 1]!
    if (len < 2 || i + len > end) return M.tcp_option
    switch (kind) {
      case TcpOptionKind.mss:
        if (len !== 4) return M.tcp_option
        out.mss = (b[i + 2]! << 8) | b[i + 3]!
        break
      case TcpOptionKind.windowScale:
        if (len !== 3) return M.tcp_option
        out.windowScale = b[i + 2]!
        break
      case TcpOptionKind.sackPermitted:
        if (len !== 2) return M.tcp_option
        out.sackPermitted = true
        break
      case TcpOptionKind.sack: {
        const n = (len - 2) / 8
        if (n < 1 || n > 4 || !Number.isInteger(n)) return M.tcp_option
        for (let k = 0; k < n * 2; k++) out.sack[k] = u32(b, i + 2 + k * 4)
        out.sackBlocks = n
        break
      }
      case TcpOptionKind.timestamps:
        if (len !== 10) return M.tcp_option
        out.tsVal = u32(b, i + 2)
        out.tsEcr = u32(b, i + 6)
        break
    }
    i += len
  }
  return M.ok
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
}

export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24
  b[o + 1] = (v >>> 16) & 0xff
  b[o + 2] = (v >>> 8) & 0xff
  b[o + 3] = v & 0xff
}

/** TCP header at b[off, end) (end = the IP payload's end). Fills ports, seq/ack, flags, payload. */
export function parseTcp(b: Uint8Array, off: number, end: number, p: ParsedPacket): number {
  if (end - off < TCP_MIN_HEADER) return M.tcp_truncated
  const doff = (b[off + 12]! >> 4) * 4
  if (doff < TCP_MIN_HEADER || off + doff > end) return M.tcp_data_offset
  if (doff > TCP_MIN_HEADER) {
    const r = parseTcpOptions(b, off + TCP_MIN_HEADER, off + doff, p.tcpOptions)
    if (r !== 0) return r
  } else parseTcpOptions(b, off, off, p.tcpOptions)
  p.srcPort = (b[off]! << 8) | b[off + 1]!
  p.dstPort = (b[off + 2]! << 8) | b[off + 3]!
  p.tcpSeq = u32(b, off + 4)
  p.tcpAck = u32(b, off + 8)
  p.tcpFlags = b[off + 13]!
  p.tcpWindow = (b[off + 14]! << 8) | b[off + 15]!
  p.payloadOff = off + doff
  p.payloadLen = end - off - doff
  return M.ok
}

/** Sequence space a segment occupies: data plus one for SYN and one for FIN (RFC 9293 §3.4). */
export function segmentLength(p: ParsedPacket): number {
  return p.payloadLen + (p.tcpFlags & TcpFlag.SYN ? 1 : 0) + (p.tcpFlags & TcpFlag.FIN ? 1 : 0)
}
