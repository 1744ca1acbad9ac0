// Packet construction for tests, fuzz corpus and benchmarks, written independently of the codecs under
// test (own checksum, own header layout) so the two cross-check each other.
import ipaddr from 'ipaddr.js'

export const EP = 'vpce-01234567890abcdef'
export const EP_BYTES = Buffer.from('1234567890abcdef', 'hex')

/** Reference Internet checksum: the textbook loop (RFC 1071 §4.1). */
export function refChecksum(...parts: Uint8Array[]): number {
  const all = Buffer.concat(parts)
  let s = 0
  for (let i = 0; i < all.length; i += 2) s += (all[i]! << 8) + (i + 1 < all.length ? all[i + 1]! : 0)
  while (s >> 16) s = (s & 0xffff) + (s >> 16)
  return ~s & 0xffff
}

export const addr = (s: string) => Buffer.from(ipaddr.parse(s).toByteArray())

export interface Inner {
  src: string
  dst: string
  /** protocol number */
  proto: number
  sport?: number
  dport?: number
  payload?: Uint8Array
  seq?: number
  ack?: number
  /** TCP flags byte */
  flags?: number
  tcpOptions?: Uint8Array
  icmpType?: number
  icmpCode?: number
  icmpId?: number
  ipOptions?: Uint8Array
  /** IPv4: fragment offset in bytes and MF */
  fragOffset?: number
  mf?: boolean
  ipId?: number
  /** IPv6: raw extension headers inserted between the fixed header and L4; first byte of each is patched */
  ext?: { type: number; body: Uint8Array }[]
  /** zero UDP checksum */
  noUdpChecksum?: boolean
}

function pseudo(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (src.length === 4) return Buffer.concat([src, dst, Buffer.from([0, proto, len >> 8, len & 0xff])])
  const l = Buffer.alloc(8)
  l.writeUInt32BE(len, 0)
  l[7] = proto
  return Buffer.concat([src, dst, l])
}

export function l4(i: Inner, src: Buffer, dst: Buffer): Buffer {
  const payload = Buffer.from(i.payload ?? new Uint8Array(0))
  let h: Buffer
  if (i.proto === 6) {
    const opts = Buffer.from(i.tcpOptions ?? new Uint8Array(0))
    h = Buffer.alloc(20 + opts.length)
    h.writeUInt16BE(i.sport ?? 40000, 0)
    h.writeUInt16BE(i.dport ?? 80, 2)
    h.writeUInt32BE((i.seq ?? 1000) >>> 0, 4)
    h.writeUInt32BE((i.ack ?? 0) >>> 0, 8)
    h[12] = ((20 + opts.length) / 4) << 4
    h[13] = i.flags ?? 0x18
    h.writeUInt16BE(65535, 14)
    opts.copy(h, 20)
    const seg = Buffer.concat([h, payload])
    seg.writeUInt16BE(refChecksum(pseudo(src, dst, 6, seg.length), seg), 16)
    return seg
  }
  if (i.proto === 17) {
    h = Buffer.alloc(8)
    h.writeUInt16BE(i.sport ?? 40000, 0)
    h.writeUInt16BE(i.dport ?? 53, 2)
    h.writeUInt16BE(8 + payload.length, 4)
    const seg = Buffer.concat([h, payload])
    if (!i.noUdpChecksum) seg.writeUInt16BE(refChecksum(pseudo(src, dst, 17, seg.length), seg) || 0xffff, 6)
    return seg
  }
  if (i.proto === 1 || i.proto === 58) {
    h = Buffer.alloc(8)
    h[0] = i.icmpType ?? (i.proto === 1 ? 8 : 128)
    h[1] = i.icmpCode ?? 0
    h.writeUInt16BE(i.icmpId ?? 0x1234, 4)
    h.writeUInt16BE(1, 6)
    const seg = Buffer.concat([h, payload])
    const ps = i.proto === 58 ? pseudo(src, dst, 58, seg.length) : Buffer.alloc(0)
    seg.writeUInt16BE(refChecksum(ps, seg), 2)
    return seg
  }
  return payload
}

export function ipPacket(i: Inner): Buffer {
  const src = addr(i.src)
  const dst = addr(i.dst)
  const seg = i.fragOffset ? Buffer.from(i.payload ?? new Uint8Array(0)) : l4(i, src, dst)
  if (src.length === 4) {
    const opts = Buffer.from(i.ipOptions ?? new Uint8Array(0))
    const h = Buffer.alloc(20 + opts.length)
    h[0] = 0x40 | ((20 + opts.length) / 4)
    h.writeUInt16BE(h.length + seg.length, 2)
    h.writeUInt16BE(i.ipId ?? 0x4242, 4)
    h.writeUInt16BE(((i.fragOffset ?? 0) / 8) | (i.mf ? 0x2000 : 0), 6)
    h[8] = 64
    h[9] = i.proto
    src.copy(h, 12)
    dst.copy(h, 16)
    opts.copy(h, 20)
    h.writeUInt16BE(refChecksum(h), 10)
    return Buffer.concat([h, seg])
  }
  const exts = i.ext ?? []
  const chain: Buffer[] = []
  for (let k = 0; k < exts.length; k++) {
    const e = Buffer.from(exts[k]!.body)
    e[0] = k + 1 < exts.length ? exts[k + 1]!.type : i.proto
    chain.push(e)
  }
  const rest = Buffer.concat([...chain, seg])
  const h = Buffer.alloc(40)
  h[0] = 0x60
  h.writeUInt16BE(rest.length, 4)
  h[6] = exts.length ? exts[0]!.type : i.proto
  h[7] = 64
  src.copy(h, 8)
  dst.copy(h, 24)
  return Buffer.concat([h, rest])
}

/** A GWLB Geneve header (RFC 8926 + AWS options), hand-assembled. */
export function geneveHeader(
  o: { v6?: boolean; cookie?: number; endpoint?: Buffer; extra?: Buffer; order?: number[] } = {},
): Buffer {
  const opts: Record<number, Buffer> = {
    1: Buffer.concat([Buffer.from([1, 8, 1, 2]), o.endpoint ?? EP_BYTES]),
    2: Buffer.concat([Buffer.from([1, 8, 2, 2]), Buffer.alloc(8)]),
    3: Buffer.concat([Buffer.from([1, 8, 3, 1]), Buffer.from([0, 0, 0, 0])]),
  }
  opts[3]!.writeUInt32BE((o.cookie ?? 0xc00c1e) >>> 0, 4)
  const body = Buffer.concat([...(o.order ?? [1, 2, 3]).map((t) => opts[t]!), o.extra ?? Buffer.alloc(0)])
  const base = Buffer.from([body.length / 4, 0, o.v6 ? 0x86 : 0x08, o.v6 ? 0xdd : 0x00, 0, 0, 0, 0])
  return Buffer.concat([base, body])
}

export function datagram(i: Inner, g: Parameters<typeof geneveHeader>[0] = {}): Buffer {
  const inner = ipPacket(i)
  return Buffer.concat([geneveHeader({ ...g, v6: inner[0]! >> 4 === 6 }), inner])
}

export const tcp4 = (over: Partial<Inner> = {}): Inner => ({
  src: '10.0.0.1',
  dst: '203.0.113.9',
  proto: 6,
  sport: 40000,
  dport: 80,
  ...over,
})
export const udp4 = (over: Partial<Inner> = {}): Inner => ({
  src: '10.0.0.1',
  dst: '203.0.113.9',
  proto: 17,
  sport: 40000,
  dport: 3000,
  ...over,
})
export const tcp6 = (over: Partial<Inner> = {}): Inner => ({
  src: 'fd00::1',
  dst: '2001:db8::9',
  proto: 6,
  sport: 40000,
  dport: 443,
  ...over,
})
export const udp6 = (over: Partial<Inner> = {}): Inner => ({
  src: 'fd00::1',
  dst: '2001:db8::9',
  proto: 17,
  sport: 40000,
  dport: 3000,
  ...over,
})
