// What the data plane knows about a flow when it asks for a decision.

export const PROTOCOL_NUMBERS = { TCP: 6, UDP: 17, ICMP: 1, ICMPv6: 58 } as const

export interface FlowFacts {
  /** GWLB endpoint id, "vpce-…" */
  endpoint: string
  family: 4 | 6
  /** 4 or 16 bytes (a view over the packet is fine) */
  src: Uint8Array
  dst: Uint8Array
  /** IP protocol number */
  protocol: number
  /** destination port; ignored for protocols without ports */
  dstPort: number
  // L7 facts: undefined = not known yet (the decision may come back pending), null = known absent.
  /** TLS SNI from the ClientHello */
  sni?: string | null
  /** HTTP Host (without port); on TLS flows that are not intercepted, pass the SNI here */
  host?: string | null
  method?: string | null
  /** request path without the query string */
  path?: string | null
  /** request headers, names lower-case */
  headers?: ReadonlyMap<string, readonly string[]> | null
}

/** Facts still missing for a decision, as a bit mask. */
export const Need = { sni: 1, host: 2, method: 4, path: 8, headers: 16 } as const
export const NEED_TLS_PEEK = Need.sni
export const NEED_HTTP = Need.host | Need.method | Need.path | Need.headers

export function needsOf(facts: FlowFacts): number {
  let m = 0
  if (facts.sni === undefined) m |= Need.sni
  if (facts.host === undefined) m |= Need.host
  if (facts.method === undefined) m |= Need.method
  if (facts.path === undefined) m |= Need.path
  if (facts.headers === undefined) m |= Need.headers
  return m
}

export function hasPorts(protocol: number): boolean {
  return protocol === 6 || protocol === 17
}

/** "Example.COM:8443" → "example.com"; IPv6 literals lose their brackets. */
export function normalizeHost(host: string): string {
  // Fast path: what clients nearly always send is already lower-case, without port or trailing dot.
  let clean = host.length > 0
  for (let i = 0; clean && i < host.length; i++) {
    const c = host.charCodeAt(i)
    if ((c >= 65 && c <= 90) || c === 58 || c === 91 || c <= 32) clean = false
  }
  if (clean && host.charCodeAt(host.length - 1) !== 46) return host
  let h = host.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end > 0 ? h.slice(1, end) : h
  }
  const colon = h.lastIndexOf(':')
  if (colon >= 0 && h.indexOf(':') === colon) h = h.slice(0, colon)
  return h.endsWith('.') ? h.slice(0, -1) : h
}
