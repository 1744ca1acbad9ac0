// The capture filter: a small tcpdump-like language, parsed once per capture into a matcher the packet
// loop calls per packet (closures over precomputed bytes; evaluating allocates nothing).
//
//   expr      := or
//   or        := and ( ('or' | '||') and )*
//   and       := unary ( ('and' | '&&') unary )*
//   unary     := ('not' | '!') unary | '(' expr ')' | primitive
//   primitive := [src | dst] host ADDRESS          an IPv4/IPv6 address
//              | [src | dst] net CIDR              10.0.0.0/8, fd00::/16 (host bits zero)
//              | [src | dst] port N[-M]            TCP and UDP ports (a range is inclusive)
//              | tcp | udp | icmp | icmp6 | ip | ip6
//              | proto N | proto tcp|udp|icmp|icmp6
//              | endpoint vpce-0123456789abcdef0   the GWLB endpoint the flow came through
//              | side client | side server        which connection of a terminated flow (below)
//
// `and` binds tighter than `or`, as in tcpdump; the empty filter matches everything. Addresses and ports
// are the inner packet's. `side server` is the appliance's own connection to the server of a flow it
// terminates (tcpProxy, Inspect); everything else — the client's connection and whole flows that are not
// terminated — is `side client`.

import { parseCidr } from '../../../policy/src/cidr.ts'
import { parseEndpointId } from '../wire/geneve.ts'
import { IpProto } from '../wire/packet.ts'

/** 0: the client side, 1: the server side (the appliance's upstream connection of a terminated flow) */
export type Side = 0 | 1
export const CLIENT_SIDE: Side = 0
export const SERVER_SIDE: Side = 1

/** What a filter looks at: ParsedPacket has these fields; a flow's key can be shaped the same way. */
export interface Matchable {
  readonly buf: Uint8Array
  readonly family: 4 | 6
  readonly srcOff: number
  readonly dstOff: number
  readonly protocol: number
  readonly hasL4: boolean
  readonly srcPort: number
  readonly dstPort: number
  /** offset of the 8-byte GWLB endpoint id in buf */
  readonly endpointOff: number
}

export type Matcher = (p: Matchable, side: Side) => boolean

export class FilterError extends Error {
  readonly code = 'FG_ERR_FILTER'
}

export interface CaptureFilter {
  /** the filter as given (trimmed); '' matches everything */
  readonly text: string
  readonly matches: Matcher
}

const ALL: Matcher = () => true

const PROTOCOLS: Record<string, number> = {
  tcp: IpProto.TCP,
  udp: IpProto.UDP,
  icmp: IpProto.ICMP,
  icmp6: IpProto.ICMPv6,
}

export function parseFilter(input: string): CaptureFilter {
  const text = input.trim()
  if (text === '') return { text, matches: ALL }
  const tokens = tokenize(text)
  let i = 0
  const peek = () => tokens[i]
  const fail = (what: string): never => {
    const t = tokens[i]
    throw new FilterError(
      t ? `filter: ${what} at "${t.text}" (position ${t.pos + 1})` : `filter: ${what} at the end`,
    )
  }
  const next = (what: string): string => {
    const t = tokens[i]
    if (!t) return fail(`expected ${what}`)
    i++
    return t.text
  }
  const is = (...words: string[]) => {
    const t = peek()
    return t !== undefined && words.includes(t.text.toLowerCase())
  }

  function or(): Matcher {
    let m = and()
    while (is('or', '||')) {
      i++
      const a = m
      const b = and()
      m = (p, s) => a(p, s) || b(p, s)
    }
    return m
  }
  function and(): Matcher {
    let m = unary()
    while (is('and', '&&')) {
      i++
      const a = m
      const b = unary()
      m = (p, s) => a(p, s) && b(p, s)
    }
    return m
  }
  function unary(): Matcher {
    if (is('not', '!')) {
      i++
      const a = unary()
      return (p, s) => !a(p, s)
    }
    if (is('(')) {
      i++
      const m = or()
      if (!is(')')) fail('expected ")"')
      i++
      return m
    }
    return primitive()
  }
  function primitive(): Matcher {
    const t = peek()
    if (!t) return fail('expected a term')
    const word = t.text.toLowerCase()
    let dir: 'src' | 'dst' | undefined
    if (word === 'src' || word === 'dst') {
      dir = word
      i++
      if (!is('host', 'net', 'port')) fail(`expected host, net or port after ${dir}`)
    }
    const kw = next('a term').toLowerCase()
    switch (kw) {
      case 'host':
      case 'net': {
        const at = i
        const arg = next(kw === 'host' ? 'an address' : 'a CIDR')
        if (kw === 'host' && arg.includes('/')) {
          i = at
          fail('host takes an address; use net for a CIDR')
        }
        const r = parseCidr(arg)
        if (!r.ok) {
          i = at
          fail(r.message)
        }
        const c = (r as Extract<typeof r, { ok: true }>).cidr
        return addressMatcher(c.family, c.bytes, c.prefix, dir)
      }
      case 'port': {
        const at = i
        const arg = next('a port or range')
        const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(arg)
        const lo = m ? Number(m[1]) : -1
        const hi = m?.[2] !== undefined ? Number(m[2]) : lo
        if (!m || lo > 65535 || hi > 65535 || hi < lo) {
          i = at
          fail('expected a port 0-65535 or a range N-M')
        }
        return portMatcher(lo, hi, dir)
      }
      case 'tcp':
      case 'udp':
      case 'icmp':
      case 'icmp6': {
        const n = PROTOCOLS[kw]!
        return (p) => p.protocol === n
      }
      case 'ip':
        return (p) => p.family === 4
      case 'ip6':
        return (p) => p.family === 6
      case 'proto': {
        const at = i
        const arg = next('a protocol').toLowerCase()
        const n = PROTOCOLS[arg] ?? (/^\d{1,3}$/.test(arg) ? Number(arg) : -1)
        if (n < 0 || n > 255) {
          i = at
          fail('expected a protocol number 0-255 or tcp, udp, icmp, icmp6')
        }
        return (p) => p.protocol === n
      }
      case 'endpoint': {
        const at = i
        const id = parseEndpointId(next('an endpoint id').toLowerCase())
        if (!id) {
          i = at
          fail('expected a GWLB endpoint id (vpce- and 17 hex digits)')
        }
        return endpointMatcher(id!)
      }
      case 'side': {
        const at = i
        const v = next('client or server').toLowerCase()
        if (v !== 'client' && v !== 'server') {
          i = at
          fail('expected client or server')
        }
        const want: Side = v === 'client' ? CLIENT_SIDE : SERVER_SIDE
        return (_p, s) => s === want
      }
      default:
        i--
        return fail('unknown term (host, net, port, tcp, udp, icmp, icmp6, ip, ip6, proto, endpoint, side)')
    }
  }

  const matches = or()
  if (i < tokens.length) fail('expected and, or, or the end')
  return { text, matches }
}

interface Token {
  text: string
  pos: number
}

function tokenize(s: string): Token[] {
  const out: Token[] = []
  for (const m of s.matchAll(/\(|\)|&&|\|\||!|[^\s()!&|]+|[&|]/g)) {
    if (m[0] === '&' || m[0] === '|') throw new FilterError(`filter: "${m[0]}" at position ${m.index + 1}`)
    out.push({ text: m[0], pos: m.index })
  }
  return out
}

function prefixAt(b: Uint8Array, off: number, net: Uint8Array, prefix: number): boolean {
  const full = prefix >> 3
  for (let k = 0; k < full; k++) if (b[off + k] !== net[k]) return false
  const rest = prefix & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return (b[off + full]! & mask) === net[full]
}

function addressMatcher(family: 4 | 6, net: Uint8Array, prefix: number, dir?: 'src' | 'dst'): Matcher {
  if (dir === 'src') return (p) => p.family === family && prefixAt(p.buf, p.srcOff, net, prefix)
  if (dir === 'dst') return (p) => p.family === family && prefixAt(p.buf, p.dstOff, net, prefix)
  return (p) =>
    p.family === family && (prefixAt(p.buf, p.srcOff, net, prefix) || prefixAt(p.buf, p.dstOff, net, prefix))
}

const hasPorts = (p: Matchable) => p.hasL4 && (p.protocol === IpProto.TCP || p.protocol === IpProto.UDP)

function portMatcher(lo: number, hi: number, dir?: 'src' | 'dst'): Matcher {
  if (dir === 'src') return (p) => hasPorts(p) && p.srcPort >= lo && p.srcPort <= hi
  if (dir === 'dst') return (p) => hasPorts(p) && p.dstPort >= lo && p.dstPort <= hi
  return (p) => hasPorts(p) && ((p.srcPort >= lo && p.srcPort <= hi) || (p.dstPort >= lo && p.dstPort <= hi))
}

function endpointMatcher(id: Uint8Array): Matcher {
  return (p) => {
    const o = p.endpointOff
    if (o < 0) return false
    for (let k = 0; k < 8; k++) if (p.buf[o + k] !== id[k]) return false
    return true
  }
}
