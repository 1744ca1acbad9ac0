// IPv4 (RFC 791) view functions over a buffer, and the parse step of packet.ts.
//
// Fragments (decision, see also fastpath): an IPv4 datagram is a fragment when MF is set or the fragment
// offset is non-zero. The first fragment (offset 0) carries the L4 header and is handled like any packet,
// except that rewriting rules are not applied to it (an L4 checksum covers the whole datagram, which the
// appliance never reassembles). Later fragments carry no ports: they follow the verdict of the flow their
// first fragment created (fragment cache keyed by src, dst, protocol, id) and are dropped with a counter
// when that flow is unknown (e.g. they arrive before the first fragment).

import { checksum, sum16 } from './checksum.ts'
import { M } from './counters.ts'
import type { ParsedPacket } from './packet.ts'

export const IPV4_MIN_HEADER = 20
export const IPV4_MF = 0x2000
export const IPV4_DF = 0x4000

export const Frag = { none: 0, first: 1, later: 2 } as const

export const ipv4 = {
  totalLength: (b: Uint8Array, o: number) => (b[o + 2]! << 8) | b[o + 3]!,
  setTotalLength(b: Uint8Array, o: number, v: number) {
    b[o + 2] = v >> 8
    b[o + 3] = v & 0xff
  },
  headerLength: (b: Uint8Array, o: number) => (b[o]! & 15) * 4,
  protocol: (b: Uint8Array, o: number) => b[o + 9]!,
  /** Recomputes the header checksum (RFC 791 §3.1) */
  fillChecksum(b: Uint8Array, o: number) {
    b[o + 10] = 0
    b[o + 11] = 0
    const c = checksum(b, o, (b[o]! & 15) * 4)
    b[o + 10] = c >> 8
    b[o + 11] = c & 0xff
  },
}

/**
 * Checks the IPv4 header at b[off, end) and fills the network-layer fields of `p`. The datagram ends at
 * off + Total Length; trailing bytes beyond it (link padding) are ignored, fewer bytes than it are an error.
 */
export function parseIpv4(b: Uint8Array, off: number, end: number, p: ParsedPacket): number {
  if (end - off < IPV4_MIN_HEADER) return M.ipv4_truncated
  const vihl = b[off]!
  if (vihl >> 4 !== 4) return M.ipv4_version
  const ihl = (vihl & 15) * 4
  if (ihl < IPV4_MIN_HEADER) return M.ipv4_header_length
  if (off + ihl > end) return M.ipv4_truncated
  const total = (b[off + 2]! << 8) | b[off + 3]!
  if (total < ihl || off + total > end) return M.ipv4_total_length
  // RFC 1812 §5.2.2: a forwarder verifies the header checksum. A correct header sums to 0xffff (or to 0
  // when every word is 0, which the version check already excludes).
  const hs =
    ihl === IPV4_MIN_HEADER
      ? ((b[off]! << 8) | b[off + 1]!) +
        ((b[off + 2]! << 8) | b[off + 3]!) +
        ((b[off + 4]! << 8) | b[off + 5]!) +
        ((b[off + 6]! << 8) | b[off + 7]!) +
        ((b[off + 8]! << 8) | b[off + 9]!) +
        ((b[off + 10]! << 8) | b[off + 11]!) +
        ((b[off + 12]! << 8) | b[off + 13]!) +
        ((b[off + 14]! << 8) | b[off + 15]!) +
        ((b[off + 16]! << 8) | b[off + 17]!) +
        ((b[off + 18]! << 8) | b[off + 19]!)
      : sum16(b, off, ihl)
  if (fold16(hs) !== 0xffff) return M.ipv4_checksum
  if (ihl > IPV4_MIN_HEADER) {
    const r = checkIpv4Options(b, off + IPV4_MIN_HEADER, off + ihl)
    if (r !== 0) return r
  }
  const ff = (b[off + 6]! << 8) | b[off + 7]!
  const fragOffset = (ff & 0x1fff) * 8
  const protocol = b[off + 9]!
  p.family = 4
  p.ipOff = off
  p.ipEnd = off + total
  p.srcOff = off + 12
  p.dstOff = off + 16
  p.protocol = protocol
  p.l4Off = off + ihl
  p.fragId = (b[off + 4]! << 8) | b[off + 5]!
  p.fragOffset = fragOffset
  if (fragOffset !== 0) {
    // RFC 1858 §4: a TCP fragment at offset 8 can only exist to overwrite the flags of the first one.
    if (protocol === 6 && fragOffset === 8) return M.ipv4_fragment_overlap
    p.fragment = Frag.later
  } else p.fragment = ff & IPV4_MF ? Frag.first : Frag.none
  return M.ok
}

function fold16(s: number): number {
  let x = s
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000)
  return x
}

/** RFC 791 §3.1 options: EOL (0) ends the list, NOP (1) is one byte, the rest are type-length-value with length ≥ 2. */
export function checkIpv4Options(b: Uint8Array, o: number, end: number): number {
  let i = o
  while (i < end) {
    const t = b[i]!
    if (t === 0) return M.ok
    if (t === 1) {
      i++
      continue
    }
    if (i + 1 >= end) return M.ipv4_option
    const l = b[i + 1]!
    if (l < 2 || i + l > end) return M.ipv4_option
    i += l
  }
  return M.ok
}

/** Writes a 20-byte IPv4 header (no options, DF set, TTL 64) with a correct checksum. */
export function writeIpv4Header(
  b: Uint8Array,
  o: number,
  protocol: number,
  total: number,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  ttl = 64,
): void {
  b[o] = 0x45
  b[o + 1] = 0
  b[o + 2] = total >> 8
  b[o + 3] = total & 0xff
  b[o + 4] = 0
  b[o + 5] = 0
  b[o + 6] = IPV4_DF >> 8
  b[o + 7] = 0
  b[o + 8] = ttl
  b[o + 9] = protocol
  for (let i = 0; i < 4; i++) {
    b[o + 12 + i] = src[srcOff + i]!
    b[o + 16 + i] = dst[dstOff + i]!
  }
  ipv4.fillChecksum(b, o)
}
