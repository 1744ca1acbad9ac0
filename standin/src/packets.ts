// The stand-in's own packet helpers: a Geneve header as GWLB builds it, inner flow keys, and checksum
// verification for IPv4/IPv6 with TCP/UDP/ICMP/ICMPv6. Deliberately independent of appliance/src/wire: the
// stand-in is the oracle the appliance's codecs are judged by, so it must not share their bugs.

export const GENEVE_LEN = 40
export const AWS_CLASS = 0x0108

export interface GwlbOptions {
  /** 8 bytes: the vpce- endpoint id */
  endpointId: Uint8Array
  /** 8 bytes; zero when no attachment */
  attachmentId: Uint8Array
  cookie: number
}

/** A 40-byte Geneve header with GWLB's three AWS options (GWLB.md "Wire format"). */
export function gwlbGeneveHeader(protocol: 0x0800 | 0x86dd, o: GwlbOptions): Buffer {
  const h = Buffer.alloc(GENEVE_LEN)
  h[0] = (GENEVE_LEN - 8) / 4 // version 0, option length in 4-byte words
  h[1] = 0 // O=0, C=0
  h.writeUInt16BE(protocol, 2)
  // VNI 0, reserved 0
  let o8 = 8
  const opt = (type: number, data: Uint8Array) => {
    h.writeUInt16BE(AWS_CLASS, o8)
    h[o8 + 2] = type
    h[o8 + 3] = data.length / 4
    h.set(data, o8 + 4)
    o8 += 4 + data.length
  }
  opt(1, o.endpointId)
  opt(2, o.attachmentId)
  const c = Buffer.alloc(4)
  c.writeUInt32BE(o.cookie >>> 0)
  opt(3, c)
  return h
}

/** RFC 1071 ones'-complement sum, unfolded. */
export function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc
  let i = off
  const end = off + len
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!
  if (i < end) s += b[i]! << 8
  return s
}

export function fold(s: number): number {
  let x = s
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000)
  return x
}

export interface InnerInfo {
  family: 4 | 6
  protocol: number
  src: string
  dst: string
  srcPort: number
  dstPort: number
  /** direction-independent key of the 5-tuple */
  flowKey: string
}

function addrString(b: Uint8Array, off: number, family: 4 | 6): string {
  if (family === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`
  const parts: string[] = []
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16))
  return parts.join(':')
}

/**
 * Reads an inner IP packet's 5-tuple. Returns a reason string for what the stand-in cannot forward.
 * IPv6 extension headers are not walked: the peers in our namespaces send none.
 */
export function innerInfo(p: Uint8Array): InnerInfo | string {
  if (p.length < 1) return 'empty'
  const v = p[0]! >> 4
  let family: 4 | 6
  let proto: number
  let l4: number
  let src: string
  let dst: string
  if (v === 4) {
    if (p.length < 20) return 'ipv4-truncated'
    family = 4
    l4 = (p[0]! & 15) * 4
    proto = p[9]!
    src = addrString(p, 12, 4)
    dst = addrString(p, 16, 4)
  } else if (v === 6) {
    if (p.length < 40) return 'ipv6-truncated'
    family = 6
    l4 = 40
    proto = p[6]!
    src = addrString(p, 8, 6)
    dst = addrString(p, 24, 6)
  } else return 'not-ip'
  let sp = 0
  let dp = 0
  if ((proto === 6 || proto === 17) && p.length >= l4 + 4) {
    sp = (p[l4]! << 8) | p[l4 + 1]!
    dp = (p[l4 + 2]! << 8) | p[l4 + 3]!
  } else if ((proto === 1 || proto === 58) && p.length >= l4 + 8) {
    // ICMP echo: the identifier plays the port on both sides, so request and reply are one flow.
    sp = dp = (p[l4 + 4]! << 8) | p[l4 + 5]!
  }
  const a = `${src}|${sp}`
  const b = `${dst}|${dp}`
  const flowKey = `${family}|${proto}|${a < b ? `${a}|${b}` : `${b}|${a}`}`
  return { family, protocol: proto, src, dst, srcPort: sp, dstPort: dp, flowKey }
}

/** Checks every checksum of an inner packet; returns a reason for the first bad one, or null. */
export function innerChecksumError(p: Uint8Array): string | null {
  const v = p[0]! >> 4
  if (v === 4) {
    const ihl = (p[0]! & 15) * 4
    if (ihl < 20 || p.length < ihl) return 'ipv4-header-length'
    const total = (p[2]! << 8) | p[3]!
    if (total !== p.length) return 'ipv4-total-length'
    if (fold(sum16(p, 0, ihl)) !== 0xffff) return 'ipv4-header-checksum'
    const frag = ((p[6]! << 8) | p[7]!) & 0x3fff
    if (frag !== 0) return null // fragments: the L4 checksum spans the whole datagram
    const proto = p[9]!
    const l4len = total - ihl
    let pseudo = sum16(p, 12, 8) + proto + l4len
    if (proto === 1) pseudo = 0 // ICMPv4 has no pseudo-header
    if (proto === 17 && l4len >= 8 && p[ihl + 6] === 0 && p[ihl + 7] === 0) return null // UDP checksum absent
    if (proto === 6 || proto === 17 || proto === 1) {
      if (fold(sum16(p, ihl, l4len, pseudo)) !== 0xffff) return `ipv4-${protoName(proto)}-checksum`
    }
    return null
  }
  if (v === 6) {
    if (p.length < 40) return 'ipv6-truncated'
    const plen = (p[4]! << 8) | p[5]!
    if (plen + 40 !== p.length) return 'ipv6-payload-length'
    const proto = p[6]!
    if (proto === 6 || proto === 17 || proto === 58) {
      const pseudo = sum16(p, 8, 32) + proto + plen
      if (fold(sum16(p, 40, plen, pseudo)) !== 0xffff) return `ipv6-${protoName(proto)}-checksum`
    }
    return null
  }
  return 'not-ip'
}

function protoName(p: number): string {
  return p === 6 ? 'tcp' : p === 17 ? 'udp' : p === 1 ? 'icmp' : p === 58 ? 'icmpv6' : String(p)
}

/** Mulberry32: a small seeded PRNG, so loss and reordering replay exactly from the seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A minimal IPv4/UDP inner packet with valid checksums (for tests that need one without a real peer). */
export function ipv4Udp(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Buffer {
  const p = Buffer.alloc(28 + payload.length)
  p[0] = 0x45
  p.writeUInt16BE(p.length, 2)
  p[8] = 64
  p[9] = 17
  src.split('.').forEach((x, i) => {
    p[12 + i] = Number(x)
  })
  dst.split('.').forEach((x, i) => {
    p[16 + i] = Number(x)
  })
  p.writeUInt16BE(~fold(sum16(p, 0, 20)) & 0xffff, 10)
  p.writeUInt16BE(sport, 20)
  p.writeUInt16BE(dport, 22)
  p.writeUInt16BE(8 + payload.length, 24)
  p.set(payload, 28)
  const c = ~fold(sum16(p, 20, 8 + payload.length, sum16(p, 12, 8) + 17 + 8 + payload.length)) & 0xffff
  p.writeUInt16BE(c === 0 ? 0xffff : c, 26)
  return p
}
