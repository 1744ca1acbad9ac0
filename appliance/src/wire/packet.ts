// One Geneve datagram (as the UDP socket hands it over: the outer IPv4/UDP headers are already gone) parsed
// into one reusable ParsedPacket: offsets into the datagram, never copies, so parsing allocates nothing.
// parsePacket is total: it returns a MalformedReason code (0 = ok) and never throws.
//
//  0           geneveLen = ipOff                      l4Off        payloadOff          ipEnd   len
//  | Geneve+opts | IPv4/IPv6 header (+ext headers) | TCP/UDP/ICMP | payload ............ | pad |

import { pseudoSum4, pseudoSum6, sum16 } from './checksum.ts'
import { M } from './counters.ts'
import { ETHERTYPE_IPV4, formatEndpointId, type GeneveFields, parseGeneve } from './geneve.ts'
import { parseIcmp } from './icmp.ts'
import { Frag, parseIpv4 } from './ipv4.ts'
import { parseIpv6 } from './ipv6.ts'
import { parseTcp, TcpOptions } from './tcp.ts'
import { parseUdp } from './udp.ts'

export const IpProto = { ICMP: 1, TCP: 6, UDP: 17, ICMPv6: 58 } as const

const EMPTY = Buffer.alloc(0)

export class ParsedPacket implements GeneveFields {
  /** the datagram; index 0 is the first byte of the Geneve header */
  buf: Buffer = EMPTY
  /** bytes received */
  len = 0
  // Geneve
  geneveLen = 0
  protocolType = 0
  vni = 0
  /** offset of the 8-byte endpoint id (always ≥ 0 after a successful parse) */
  endpointOff = -1
  attachmentOff = -1
  cookieOff = -1
  // IP
  family: 4 | 6 = 4
  /** = geneveLen */
  ipOff = 0
  /** end of the inner packet (ipOff + IPv4 total length / IPv6 40 + payload length) */
  ipEnd = 0
  srcOff = 0
  dstOff = 0
  /** upper-layer protocol (after IPv6 extension headers) */
  protocol = 0
  l4Off = 0
  /** Frag.none | Frag.first | Frag.later */
  fragment: number = Frag.none
  /** IPv4 identification or IPv6 fragment header identification */
  fragId = 0
  /** fragment offset in bytes */
  fragOffset = 0
  /** IPv6 only: offset of the Fragment extension header, -1 if none */
  fragHeaderOff = -1
  // L4; hasL4 is false for later fragments and protocols we do not parse
  hasL4 = false
  /** TCP/UDP ports; ICMP echo: the identifier on both; otherwise 0 */
  srcPort = 0
  dstPort = 0
  tcpSeq = 0
  tcpAck = 0
  tcpFlags = 0
  tcpWindow = 0
  readonly tcpOptions = new TcpOptions()
  /** -1 unless ICMP/ICMPv6 */
  icmpType = -1
  icmpCode = -1
  /** L4 payload (for ICMP: after the 8-byte header) */
  payloadOff = 0
  payloadLen = 0

  /** "vpce-…" (allocates a string: call per flow, not per packet) */
  endpointId(): string {
    return formatEndpointId(this.buf, this.endpointOff)
  }
  /** Source/destination address as a view (allocates a view object: per flow, not per packet). */
  src(): Uint8Array {
    return this.buf.subarray(this.srcOff, this.srcOff + (this.family === 4 ? 4 : 16))
  }
  dst(): Uint8Array {
    return this.buf.subarray(this.dstOff, this.dstOff + (this.family === 4 ? 4 : 16))
  }
  cookie(): number {
    const b = this.buf
    const o = this.cookieOff
    return o < 0 ? -1 : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
  }
  /** inner packet length */
  get innerLen(): number {
    return this.ipEnd - this.ipOff
  }
}

/** Parses b[0, len) into p. Returns 0 or a MalformedReason code; p is only meaningful after 0. */
export function parsePacket(b: Buffer, len: number, p: ParsedPacket): number {
  p.buf = b
  p.hasL4 = false
  p.srcPort = 0
  p.dstPort = 0
  p.tcpFlags = 0
  p.tcpSeq = 0
  p.tcpAck = 0
  p.icmpType = -1
  p.icmpCode = -1
  p.payloadOff = 0
  p.payloadLen = 0
  p.fragHeaderOff = -1
  // Total even for a nonsensical length (negative, NaN, beyond the buffer).
  let n = len | 0
  if (n > b.length) n = b.length
  if (n < 0) n = 0
  p.len = n
  let r = parseGeneve(b, n, p)
  if (r !== 0) return r
  const ipOff = p.geneveLen
  if (p.protocolType === ETHERTYPE_IPV4) {
    // The Geneve protocol type and the IP version nibble must agree (RFC 8926 §3.4).
    if (n > ipOff && b[ipOff]! >> 4 !== 4) return M.ipv4_version
    r = parseIpv4(b, ipOff, n, p)
  } else {
    if (n > ipOff && b[ipOff]! >> 4 !== 6) return M.ipv6_version
    r = parseIpv6(b, ipOff, n, p)
  }
  if (r !== 0) return r
  if (p.fragment === Frag.later) return M.ok
  const end = p.ipEnd
  switch (p.protocol) {
    case IpProto.TCP:
      r = parseTcp(b, p.l4Off, end, p)
      break
    case IpProto.UDP:
      r = parseUdp(b, p.l4Off, end, p)
      break
    case IpProto.ICMP:
      if (p.family !== 4) return M.ok
      r = parseIcmp(b, p.l4Off, end, p)
      break
    case IpProto.ICMPv6:
      if (p.family !== 6) return M.ok
      r = parseIcmp(b, p.l4Off, end, p)
      break
    default:
      // Other protocols (GRE, ESP, SCTP, …) are flows on addresses and protocol alone.
      p.payloadOff = p.l4Off
      p.payloadLen = end - p.l4Off
      return M.ok
  }
  if (r === 0) p.hasL4 = true
  return r
}

/** Sum of the pseudo-header (or 0 for ICMPv4, whose checksum has none) for an L4 length. */
export function l4PseudoSum(b: Uint8Array, p: ParsedPacket, l4len: number): number {
  if (p.protocol === IpProto.ICMP) return 0
  return p.family === 4
    ? pseudoSum4(b, p.srcOff, p.dstOff, p.protocol, l4len)
    : pseudoSum6(b, p.srcOff, p.dstOff, p.protocol, l4len)
}

/** Offset of the L4 checksum field from l4Off, or -1 (TCP 16, UDP 6, ICMP/ICMPv6 2). */
export function l4ChecksumField(protocol: number): number {
  return protocol === IpProto.TCP
    ? 16
    : protocol === IpProto.UDP
      ? 6
      : protocol === IpProto.ICMP || protocol === IpProto.ICMPv6
        ? 2
        : -1
}

/** Whether the L4 checksum of an unfragmented packet verifies (UDP over IPv4 with checksum 0 counts as valid). */
export function l4ChecksumOk(p: ParsedPacket): boolean {
  const b = p.buf
  const f = l4ChecksumField(p.protocol)
  if (f < 0 || !p.hasL4 || p.fragment !== Frag.none) return true
  const l4len = p.protocol === IpProto.UDP ? (b[p.l4Off + 4]! << 8) | b[p.l4Off + 5]! : p.ipEnd - p.l4Off
  if (p.protocol === IpProto.UDP && p.family === 4 && b[p.l4Off + 6] === 0 && b[p.l4Off + 7] === 0)
    return true
  let s = sum16(b, p.l4Off, l4len, l4PseudoSum(b, p, l4len))
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000)
  return s === 0xffff
}
