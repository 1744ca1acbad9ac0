// IPv6 (RFC 8200) header and a bounded walk over extension headers.
//
// The walk is safe against hostile chains: every header must end inside the payload, offsets strictly
// increase (each header is ≥ 8 bytes), at most IPV6_MAX_EXT headers are accepted, and Hop-by-Hop may only
// come first (§4.1). Fragments follow the IPv4 policy described in ipv4.ts; an "atomic fragment" (offset 0,
// M clear, RFC 6946) is treated as a whole packet.

import { M } from './counters.ts'
import { Frag } from './ipv4.ts'
import type { ParsedPacket } from './packet.ts'

export const IPV6_HEADER = 40
export const IPV6_MAX_EXT = 8

export const NextHeader = {
  hopByHop: 0,
  routing: 43,
  fragment: 44,
  esp: 50,
  ah: 51,
  noNext: 59,
  destOpts: 60,
  mobility: 135,
  hip: 139,
  shim6: 140,
} as const

export const ipv6 = {
  payloadLength: (b: Uint8Array, o: number) => (b[o + 4]! << 8) | b[o + 5]!,
  setPayloadLength(b: Uint8Array, o: number, v: number) {
    b[o + 4] = v >> 8
    b[o + 5] = v & 0xff
  },
}

export function parseIpv6(b: Uint8Array, off: number, end: number, p: ParsedPacket): number {
  if (end - off < IPV6_HEADER) return M.ipv6_truncated
  if (b[off]! >> 4 !== 6) return M.ipv6_version
  const plen = (b[off + 4]! << 8) | b[off + 5]!
  let nh = b[off + 6]!
  // RFC 2675 jumbograms say length 0 plus a Hop-by-Hop option; GWLB's inner packets stop at 8,500 bytes.
  if (plen === 0 && nh === NextHeader.hopByHop) return M.ipv6_jumbo
  const ipEnd = off + IPV6_HEADER + plen
  if (ipEnd > end) return M.ipv6_payload_length
  p.family = 6
  p.ipOff = off
  p.ipEnd = ipEnd
  p.srcOff = off + 8
  p.dstOff = off + 24
  p.fragment = Frag.none
  p.fragId = 0
  p.fragOffset = 0
  p.fragHeaderOff = -1
  let o = off + IPV6_HEADER
  let count = 0
  for (;;) {
    let hlen: number
    if (
      nh === NextHeader.hopByHop ||
      nh === NextHeader.routing ||
      nh === NextHeader.destOpts ||
      nh === NextHeader.mobility ||
      nh === NextHeader.hip ||
      nh === NextHeader.shim6
    ) {
      if (nh === NextHeader.hopByHop && count !== 0) return M.ipv6_ext_order
      if (o + 2 > ipEnd) return M.ipv6_ext_header
      hlen = (b[o + 1]! + 1) * 8
      // RFC 5095 deprecates the type 0 routing header (amplification, firewall bypass); one with segments
      // left would be executed by the destination, so it is refused here.
      if (nh === NextHeader.routing && o + 4 <= ipEnd && b[o + 2] === 0 && b[o + 3] !== 0)
        return M.ipv6_routing_type0
    } else if (nh === NextHeader.ah) {
      // RFC 4302 §2.2: Payload Len is in 4-byte words, minus 2
      if (o + 2 > ipEnd) return M.ipv6_ext_header
      hlen = (b[o + 1]! + 2) * 4
    } else if (nh === NextHeader.fragment) {
      if (o + 8 > ipEnd) return M.ipv6_ext_header
      if (p.fragHeaderOff >= 0) return M.ipv6_ext_order // §4.1: each header at most once
      hlen = 8
      const fo = (b[o + 2]! << 8) | b[o + 3]!
      p.fragHeaderOff = o
      p.fragOffset = fo & 0xfff8
      p.fragId = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0
      if (p.fragOffset !== 0) p.fragment = Frag.later
      else if (fo & 1) p.fragment = Frag.first
    } else break
    if (o + hlen > ipEnd) return M.ipv6_ext_header
    if (++count > IPV6_MAX_EXT) return M.ipv6_ext_limit
    nh = b[o]!
    o += hlen
    // §4.5: headers after the Fragment header of a later fragment are in its (opaque) data.
    if (p.fragment === Frag.later) break
  }
  p.protocol = nh
  p.l4Off = o
  return M.ok
}

/** Writes a 40-byte IPv6 header (hop limit 64, no extension headers). */
export function writeIpv6Header(
  b: Uint8Array,
  o: number,
  nextHeader: number,
  payloadLen: number,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  hopLimit = 64,
): void {
  b[o] = 0x60
  b[o + 1] = 0
  b[o + 2] = 0
  b[o + 3] = 0
  b[o + 4] = payloadLen >> 8
  b[o + 5] = payloadLen & 0xff
  b[o + 6] = nextHeader
  b[o + 7] = hopLimit
  for (let i = 0; i < 16; i++) {
    b[o + 8 + i] = src[srcOff + i]!
    b[o + 24 + i] = dst[dstOff + i]!
  }
}
