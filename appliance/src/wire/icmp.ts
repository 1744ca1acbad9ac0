// ICMP (RFC 792) and ICMPv6 (RFC 4443): parsing, and building the destination-unreachable messages the
// appliance sends when a policy rejects a flow.

import { checksum, pseudoSum6 } from './checksum.ts'
import { M } from './counters.ts'
import { Frag, writeIpv4Header } from './ipv4.ts'
import { writeIpv6Header } from './ipv6.ts'
import type { ParsedPacket } from './packet.ts'

export const IcmpType = { echoReply: 0, unreachable: 3, echoRequest: 8, timeExceeded: 11 } as const
export const Icmp6Type = { unreachable: 1, packetTooBig: 2, echoRequest: 128, echoReply: 129 } as const

/** Why we refuse: a closed port, or a policy (administratively prohibited, RFC 1812 §5.2.7.1 / RFC 4443 §3.1). */
export const Unreachable = { port: 0, adminProhibited: 1 } as const
export type UnreachableKind = (typeof Unreachable)[keyof typeof Unreachable]

/** RFC 1812 §4.3.2.3: quote as much as fits in 576 bytes; RFC 4443 §2.4(c): in the IPv6 minimum MTU. */
export const ICMP4_MAX = 576
export const ICMP6_MAX = 1280

export function isIcmpError(family: 4 | 6, type: number): boolean {
  // RFC 4443 §2.1: types 0-127 are errors. ICMPv4 errors: unreachable, source quench, redirect, time
  // exceeded, parameter problem.
  return family === 6 ? type < 128 : type === 3 || type === 4 || type === 5 || type === 11 || type === 12
}

export function isEcho(family: 4 | 6, type: number): boolean {
  return family === 4
    ? type === IcmpType.echoRequest || type === IcmpType.echoReply
    : type === Icmp6Type.echoRequest || type === Icmp6Type.echoReply
}

/**
 * ICMP header at b[off, end). Echo request and reply use the identifier as both "ports", so a ping and its
 * replies are one flow; every other message has ports 0.
 */
export function parseIcmp(b: Uint8Array, off: number, end: number, p: ParsedPacket): number {
  // ICMPv4 messages all have an 8-byte header; ICMPv6 has 4 bytes plus a body whose size depends on the type.
  if (end - off < (p.family === 4 ? 8 : 4)) return M.icmp_truncated
  const type = b[off]!
  p.icmpType = type
  p.icmpCode = b[off + 1]!
  if (isEcho(p.family, type)) {
    if (end - off < 8) return M.icmp_truncated
    const id = (b[off + 4]! << 8) | b[off + 5]!
    p.srcPort = id
    p.dstPort = id
  }
  const body = Math.min(off + 8, end)
  p.payloadOff = body
  p.payloadLen = end - body
  return M.ok
}

function isMulticastOrBroadcast4(b: Uint8Array, o: number): boolean {
  return (b[o]! & 0xf0) === 0xe0 || (b[o] === 255 && b[o + 1] === 255 && b[o + 2] === 255 && b[o + 3] === 255)
}

function isUnspecified(b: Uint8Array, o: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[o + i] !== 0) return false
  return true
}

/**
 * Whether an ICMP error may be sent about p (RFC 1122 §3.2.2, RFC 4443 §2.4(e)): never about an ICMP
 * error, a non-first fragment, a packet to a multicast/broadcast address or from an address that does not
 * name a single host.
 */
export function mayReplyWithIcmpError(p: ParsedPacket): boolean {
  const b = p.buf
  if (p.fragment === Frag.later) return false
  if ((p.protocol === 1 || p.protocol === 58) && p.icmpType >= 0 && isIcmpError(p.family, p.icmpType))
    return false
  if (p.family === 4) {
    if (isMulticastOrBroadcast4(b, p.dstOff) || isMulticastOrBroadcast4(b, p.srcOff)) return false
    return !isUnspecified(b, p.srcOff, 4)
  }
  if (b[p.dstOff] === 0xff || b[p.srcOff] === 0xff) return false
  return !isUnspecified(b, p.srcOff, 16)
}

/**
 * Writes, at out[o], an IP packet carrying a destination-unreachable message about the inner packet of p,
 * sent back to its source from its destination (the appliance answers as the host it protects). Returns the
 * inner packet's length, or 0 when RFC 1122 §3.2.2 / RFC 4443 §2.4(e) forbid an error about this packet.
 */
export function writeUnreachable(out: Uint8Array, o: number, p: ParsedPacket, kind: UnreachableKind): number {
  if (!mayReplyWithIcmpError(p)) return 0
  const b = p.buf
  const orig = p.ipEnd - p.ipOff
  if (p.family === 4) {
    const quote = Math.min(orig, ICMP4_MAX - 28)
    const total = 28 + quote
    writeIpv4Header(out, o, 1, total, b, p.dstOff, b, p.srcOff)
    const i = o + 20
    out[i] = IcmpType.unreachable
    out[i + 1] = kind === Unreachable.port ? 3 : 13
    out.fill(0, i + 2, i + 8)
    out.set(b.subarray(p.ipOff, p.ipOff + quote), i + 8)
    const c = checksum(out, i, 8 + quote)
    out[i + 2] = c >> 8
    out[i + 3] = c & 0xff
    return total
  }
  const quote = Math.min(orig, ICMP6_MAX - 48)
  const plen = 8 + quote
  writeIpv6Header(out, o, 58, plen, b, p.dstOff, b, p.srcOff)
  const i = o + 40
  out[i] = Icmp6Type.unreachable
  out[i + 1] = kind === Unreachable.port ? 4 : 1
  out.fill(0, i + 2, i + 8)
  out.set(b.subarray(p.ipOff, p.ipOff + quote), i + 8)
  const c = checksum(out, i, plen, pseudoSum6(out, o + 8, o + 24, 58, plen))
  out[i + 2] = c >> 8
  out[i + 3] = c & 0xff
  return 40 + plen
}

/** Where the packet quoted by an ICMP error sits (RFC 792 / RFC 4443 §2.4(c): IP header + leading L4 bytes). */
export class QuotedPacket {
  family: 4 | 6 = 4
  srcOff = 0
  dstOff = 0
  protocol = 0
  /** 0 when the quote is too short to hold them or the protocol has none */
  srcPort = 0
  dstPort = 0
}

/**
 * Reads the packet quoted in an ICMP error whose body starts at p.payloadOff. Lenient about lengths (a quote
 * is truncated by design) but every read is bounded by the ICMP message. Returns false when there is no
 * usable quote (not an error message, wrong family, truncated header, a later fragment).
 */
export function readQuoted(p: ParsedPacket, q: QuotedPacket): boolean {
  if (p.protocol !== (p.family === 4 ? 1 : 58) || p.icmpType < 0 || !isIcmpError(p.family, p.icmpType))
    return false
  const b = p.buf
  const o = p.payloadOff
  const end = p.ipEnd
  let l4: number
  if (p.family === 4) {
    if (end - o < 20 || b[o]! >> 4 !== 4) return false
    const ihl = (b[o]! & 15) * 4
    if (ihl < 20 || o + ihl > end) return false
    if (((b[o + 6]! << 8) | b[o + 7]!) & 0x1fff) return false
    q.srcOff = o + 12
    q.dstOff = o + 16
    q.protocol = b[o + 9]!
    l4 = o + ihl
  } else {
    if (end - o < 40 || b[o]! >> 4 !== 6) return false
    q.srcOff = o + 8
    q.dstOff = o + 24
    let nh = b[o + 6]!
    l4 = o + 40
    for (let n = 0; n < 8 && (nh === 0 || nh === 43 || nh === 60 || nh === 44); n++) {
      if (l4 + 8 > end) return false
      if (nh === 44 && ((b[l4 + 2]! << 8) | b[l4 + 3]!) & 0xfff8) return false
      const len = nh === 44 ? 8 : (b[l4 + 1]! + 1) * 8
      nh = b[l4]!
      l4 += len
    }
    q.protocol = nh
  }
  q.family = p.family
  q.srcPort = 0
  q.dstPort = 0
  if ((q.protocol === 6 || q.protocol === 17) && l4 + 4 <= end) {
    q.srcPort = (b[l4]! << 8) | b[l4 + 1]!
    q.dstPort = (b[l4 + 2]! << 8) | b[l4 + 3]!
  } else if ((q.protocol === 1 || q.protocol === 58) && l4 + 8 <= end && isEcho(q.family, b[l4]!)) {
    q.srcPort = q.dstPort = (b[l4 + 4]! << 8) | b[l4 + 5]!
  }
  return true
}
