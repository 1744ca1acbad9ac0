// Geneve (RFC 8926) as GWLB sends it: an 8-byte base header and options of class 0x0108 (Amazon) carrying
// the GWLB endpoint id (type 1), attachment id (type 2) and flow cookie (type 3) — GWLB.md "Wire format".
//
//  0                   1                   2                   3
//  |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//  |        Virtual Network Identifier (VNI)       |    Reserved   |
//  |                    Variable-Length Options                    |

import { M } from './counters.ts'

export const GENEVE_PORT = 6081
export const GENEVE_BASE_LEN = 8
/** RFC 8926 §3.4: Opt Len is 6 bits of 4-byte words */
export const GENEVE_MAX_LEN = GENEVE_BASE_LEN + 63 * 4
export const AWS_OPTION_CLASS = 0x0108
export const AwsOption = { endpointId: 1, attachmentId: 2, flowCookie: 3 } as const
export const ETHERTYPE_IPV4 = 0x0800
export const ETHERTYPE_IPV6 = 0x86dd
/** GWLB's three options: 12 + 12 + 8 bytes → a 40-byte Geneve header */
export const GWLB_GENEVE_LEN = 40

/** Fields parseGeneve fills in (ParsedPacket implements it). Offsets are -1 when the option is absent. */
export interface GeneveFields {
  geneveLen: number
  protocolType: number
  vni: number
  endpointOff: number
  attachmentOff: number
  cookieOff: number
}

/**
 * Checks the Geneve header at b[0, len) and records where the AWS options' data lies. Total: returns a
 * MalformedReason code (0 = ok), never throws.
 */
export function parseGeneve(b: Uint8Array, len: number, out: GeneveFields): number {
  if (len < GENEVE_BASE_LEN) return M.geneve_truncated
  const b0 = b[0]!
  // §3.4: "Packets received by a tunnel endpoint with an unknown version MUST be dropped."
  if (b0 >> 6 !== 0) return M.geneve_version
  const hlen = GENEVE_BASE_LEN + (b0 & 0x3f) * 4
  if (hlen > len) return M.geneve_options_length
  // §3.4: O marks a control message, not a data packet to forward. GWLB never sets it.
  if (b[1]! & 0x80) return M.geneve_oam
  const proto = (b[2]! << 8) | b[3]!
  if (proto !== ETHERTYPE_IPV4 && proto !== ETHERTYPE_IPV6) return M.geneve_protocol
  out.geneveLen = hlen
  out.protocolType = proto
  out.vni = (b[4]! << 16) | (b[5]! << 8) | b[6]!
  out.endpointOff = -1
  out.attachmentOff = -1
  out.cookieOff = -1
  // §3.5: options are TLVs (class 16, type 8, 3 reserved bits, length 5 bits in 4-byte words). Walk them by
  // class/type, never by position; every option must end inside the options area.
  let o = GENEVE_BASE_LEN
  while (o < hlen) {
    if (o + 4 > hlen) return M.geneve_option_length
    const cls = (b[o]! << 8) | b[o + 1]!
    const type = b[o + 2]!
    const dlen = (b[o + 3]! & 0x1f) * 4
    const next = o + 4 + dlen
    if (next > hlen) return M.geneve_option_length
    if (cls === AWS_OPTION_CLASS) {
      if (type === AwsOption.endpointId) {
        if (dlen !== 8) return M.geneve_aws_option_length
        if (out.endpointOff < 0) out.endpointOff = o + 4
      } else if (type === AwsOption.attachmentId) {
        if (dlen !== 8) return M.geneve_aws_option_length
        if (out.attachmentOff < 0) out.attachmentOff = o + 4
      } else if (type === AwsOption.flowCookie) {
        if (dlen !== 4) return M.geneve_aws_option_length
        if (out.cookieOff < 0) out.cookieOff = o + 4
      } else if (type & 0x80) return M.geneve_critical_option
    } else if (type & 0x80) {
      // §3.5.1: the high bit of the type marks a critical option; one we do not understand means drop.
      return M.geneve_critical_option
    }
    o = next
  }
  // The endpoint id is half of every flow key (GWLB.md "Flows"): a packet without it cannot be handled.
  if (out.endpointOff < 0) return M.geneve_no_endpoint
  return M.ok
}

const HEX = '0123456789abcdef'

/** The 8-byte endpoint id as AWS prints it: "vpce-" + 17 hex digits (the first is always 0). */
export function formatEndpointId(b: Uint8Array, off: number): string {
  let s = 'vpce-0'
  for (let i = 0; i < 8; i++) {
    const x = b[off + i]!
    s += HEX[x >> 4]! + HEX[x & 15]!
  }
  return s
}

/** "vpce-0123456789abcdef0" → 8 bytes; undefined unless it is exactly that shape with a leading 0 digit. */
export function parseEndpointId(id: string): Uint8Array | undefined {
  const m = /^vpce-0([0-9a-f]{16})$/.exec(id)
  if (!m) return undefined
  return Uint8Array.from(Buffer.from(m[1]!, 'hex'))
}

export interface GeneveOptionsInit {
  protocolType: number
  endpointId: string | Uint8Array
  attachmentId?: Uint8Array
  cookie: number
  /** raw extra options appended after the AWS ones (tests: unknown options, odd layouts) */
  extraOptions?: Uint8Array
  vni?: number
}

/** Writes a GWLB-style Geneve header at b[off]; returns its length. For tests and the GWLB stand-in. */
export function writeGeneve(b: Uint8Array, off: number, g: GeneveOptionsInit): number {
  const extra = g.extraOptions ?? new Uint8Array(0)
  const optLen = 32 + extra.length
  if (optLen % 4 !== 0 || optLen > 252)
    throw new RangeError('Geneve options must be a multiple of 4, ≤ 252 bytes')
  const ep = typeof g.endpointId === 'string' ? parseEndpointId(g.endpointId) : g.endpointId
  if (ep?.length !== 8) throw new RangeError(`bad endpoint id ${String(g.endpointId)}`)
  b[off] = optLen / 4
  b[off + 1] = 0
  b[off + 2] = g.protocolType >> 8
  b[off + 3] = g.protocolType & 0xff
  const vni = g.vni ?? 0
  b[off + 4] = (vni >> 16) & 0xff
  b[off + 5] = (vni >> 8) & 0xff
  b[off + 6] = vni & 0xff
  b[off + 7] = 0
  let o = off + 8
  const opt = (type: number, data: Uint8Array) => {
    b[o] = AWS_OPTION_CLASS >> 8
    b[o + 1] = AWS_OPTION_CLASS & 0xff
    b[o + 2] = type
    b[o + 3] = data.length / 4
    b.set(data, o + 4)
    o += 4 + data.length
  }
  opt(AwsOption.endpointId, ep)
  opt(AwsOption.attachmentId, g.attachmentId ?? new Uint8Array(8))
  const c = g.cookie >>> 0
  opt(AwsOption.flowCookie, Uint8Array.of(c >>> 24, (c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff))
  b.set(extra, o)
  return 8 + optLen
}
