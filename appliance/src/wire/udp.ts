// UDP (RFC 768); over IPv6 the checksum is mandatory (RFC 8200 §8.1).

import { M } from './counters.ts'
import { Frag } from './ipv4.ts'
import type { ParsedPacket } from './packet.ts'

export const UDP_HEADER = 8

export const udp = {
  length: (b: Uint8Array, o: number) => (b[o + 4]! << 8) | b[o + 5]!,
  setLength(b: Uint8Array, o: number, v: number) {
    b[o + 4] = v >> 8
    b[o + 5] = v & 0xff
  },
  checksum: (b: Uint8Array, o: number) => (b[o + 6]! << 8) | b[o + 7]!,
}

export function parseUdp(b: Uint8Array, off: number, end: number, p: ParsedPacket): number {
  if (end - off < UDP_HEADER) return M.udp_truncated
  const len = (b[off + 4]! << 8) | b[off + 5]!
  // A first fragment holds only part of the datagram the length describes.
  if (len < UDP_HEADER || (p.fragment === Frag.none && off + len > end)) return M.udp_length
  const csum = (b[off + 6]! << 8) | b[off + 7]!
  if (p.family === 6 && csum === 0) return M.udp_zero_checksum_v6
  p.srcPort = (b[off]! << 8) | b[off + 1]!
  p.dstPort = (b[off + 2]! << 8) | b[off + 3]!
  p.payloadOff = off + UDP_HEADER
  // The UDP length, not the IP length, bounds the payload (bytes after it are not part of the datagram).
  p.payloadLen = p.fragment === Frag.none ? len - UDP_HEADER : end - off - UDP_HEADER
  return M.ok
}
