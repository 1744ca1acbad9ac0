// CIDR parsing and set operations used by validation, compilation and the matcher's prefix tries.
import ipaddr from 'ipaddr.js'

export interface Cidr {
  family: 4 | 6
  /** network address, 4 or 16 bytes, host bits zero */
  bytes: Uint8Array
  prefix: number
}

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; message: string }

const quote = (s: string) => JSON.stringify(s)

function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text)
  // Zone ids ("fe80::1%eth0") name an interface on one host; they mean nothing in a policy.
  if (!text.includes('%') && ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text)
  return undefined
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a single host). Host bits must be zero. */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/')
  const addrText = slash < 0 ? text : text.slice(0, slash)
  const addr = parseAddress(addrText)
  if (!addr) return { ok: false, message: `${quote(text)} is not an IPv4 or IPv6 address or CIDR` }
  const family: 4 | 6 = addr.kind() === 'ipv4' ? 4 : 6
  const max = family === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { ok: false, message: `${quote(text)} has an invalid prefix length (IPv${family}: 0-${max})` }
    }
    prefix = Number(p)
  }
  const bytes = Uint8Array.from(addr.toByteArray())
  const masked = maskBytes(bytes, prefix)
  if (!bytesEqual(bytes, masked)) {
    const suggestion = `${formatAddress(masked)}/${prefix}`
    return { ok: false, message: `${quote(text)} has host bits set; did you mean ${suggestion}?` }
  }
  return { ok: true, cidr: { family, bytes: masked, prefix } }
}

export function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    out[i] = bytes[i]! & (0xff << (8 - bits)) & 0xff
  }
  return out
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export function formatAddress(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString()
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.bytes)}/${c.prefix}`
}

/** Bit i (0 = most significant) of an address. */
export function bitAt(bytes: Uint8Array, i: number): number {
  return (bytes[i >> 3]! >> (7 - (i & 7))) & 1
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false
  return bytesEqual(maskBytes(inner.bytes, outer.prefix), outer.bytes)
}

export function cidrContainsAddress(c: Cidr, family: 4 | 6, addr: Uint8Array): boolean {
  if (c.family !== family) return false
  const full = c.prefix >> 3
  for (let i = 0; i < full; i++) if (addr[i] !== c.bytes[i]) return false
  const rest = c.prefix & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return (addr[full]! & mask) === c.bytes[full]
}

/**
 * Intersection of two CIDR sets (undefined = everything). Two prefixes overlap only when one contains
 * the other, so the intersection is the more specific of each overlapping pair.
 */
export function intersectCidrs(a: Cidr[] | undefined, b: Cidr[] | undefined): Cidr[] | undefined {
  if (!a) return b
  if (!b) return a
  const out: Cidr[] = []
  for (const x of a) {
    for (const y of b) {
      if (cidrContains(x, y)) out.push(y)
      else if (cidrContains(y, x)) out.push(x)
    }
  }
  return dedupeCidrs(out)
}

export function dedupeCidrs(list: Cidr[]): Cidr[] {
  const seen = new Map<string, Cidr>()
  for (const c of list) seen.set(formatCidr(c), c)
  return [...seen.values()]
}
