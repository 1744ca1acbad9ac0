// Header handling shared by HTTP/1.1 and HTTP/2: field lists, hop-by-hop fields (RFC 9110 §7.6.1), the
// request facts the policy engine reads, and the Host/SNI comparison (FLOWPOLICY.md: a Host that disagrees
// with the SNI is domain fronting). Pure functions, no I/O.

import { normalizeHost } from '../../../policy/src/engine/facts.ts'

/** Field lines in order, names lower-case. */
export type Fields = [string, string][]

/** Node's rawHeaders / HTTP/2 raw header arrays ([name, value, name, value, …]) → field lines. */
export function fieldsFromRaw(raw: readonly string[]): Fields {
  const out: Fields = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!])
  return out
}

/** Field lines → [name, value, …] for http.request / ServerResponse.writeHead / http2 respond. */
export function rawFromFields(fields: readonly (readonly [string, string])[]): string[] {
  const out: string[] = []
  for (const [n, v] of fields) out.push(n, v)
  return out
}

export function fieldMap(fields: readonly (readonly [string, string])[]): Map<string, string[]> {
  const m = new Map<string, string[]>()
  for (const [n, v] of fields) {
    const got = m.get(n)
    if (got) got.push(v)
    else m.set(n, [v])
  }
  return m
}

export function firstField(fields: readonly (readonly [string, string])[], name: string): string | undefined {
  for (const [n, v] of fields) if (n === name) return v
  return undefined
}

export function countField(fields: readonly (readonly [string, string])[], name: string): number {
  let c = 0
  for (const [n] of fields) if (n === name) c++
  return c
}

// RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones (RFC 2068 Keep-Alive, Proxy-Connection)
// that clients still send, and HTTP2-Settings (RFC 7540 §3.2.1, only meaningful with Upgrade: h2c).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
])

export interface StripOptions {
  /** keep Connection: upgrade and Upgrade (a WebSocket handshake being forwarded) */
  keepUpgrade?: boolean
  /**
   * HTTP/1 Transfer-Encoding: 'keep' passes it on (a chunked request stays chunked: Node frames the body
   * by that header); 'codings' keeps it only when it names codings besides chunked, so a plain chunked
   * response is re-framed by Node for the client's version (chunked for 1.1, close-delimited for 1.0).
   * Default: dropped (HTTP/2 has no Transfer-Encoding).
   */
  transferEncoding?: 'keep' | 'codings'
  /** keep "TE: trailers" (HTTP/2 allows exactly that value, RFC 9113 §8.2.2) */
  keepTeTrailers?: boolean
}

/**
 * Drops hop-by-hop fields and every field the Connection header names (RFC 9110 §7.6.1): each hop frames
 * and keeps its own connection; Node adds the framing fields of the next hop itself.
 */
export function stripHopByHop(fields: readonly (readonly [string, string])[], o: StripOptions = {}): Fields {
  let named: Set<string> | undefined
  for (const [n, v] of fields) {
    if (n !== 'connection') continue
    named ??= new Set()
    for (const tok of v.split(',')) {
      const t = tok.trim().toLowerCase()
      if (t) named.add(t)
    }
  }
  const out: Fields = []
  for (const [n, v] of fields) {
    if (o.keepUpgrade && n === 'upgrade') {
      out.push([n, v])
      continue
    }
    if (
      n === 'transfer-encoding' &&
      (o.transferEncoding === 'keep' ||
        (o.transferEncoding === 'codings' && v.trim().toLowerCase() !== 'chunked'))
    ) {
      out.push([n, v])
      continue
    }
    if (o.keepTeTrailers && n === 'te' && v.trim().toLowerCase() === 'trailers') {
      out.push([n, v])
      continue
    }
    if (HOP_BY_HOP.has(n) || named?.has(n)) continue
    out.push([n, v])
  }
  if (o.keepUpgrade) out.push(['connection', 'Upgrade'])
  return out
}

/**
 * stripHopByHop over Node's flat [name, value, …] arrays, names lower-cased, without the per-field pairs:
 * the path every relayed HTTP/1.1 response head takes. Same rules, same result (test/http/headers.test.ts).
 */
export function stripHopByHopRaw(raw: readonly string[], o: StripOptions = {}): string[] {
  let named: Set<string> | undefined
  const out: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase()
    out.push(n, raw[i + 1]!)
    if (n !== 'connection') continue
    named ??= new Set()
    for (const tok of raw[i + 1]!.split(',')) {
      const t = tok.trim().toLowerCase()
      if (t) named.add(t)
    }
  }
  let w = 0
  for (let r = 0; r < out.length; r += 2) {
    const n = out[r]!
    const v = out[r + 1]!
    const keep =
      (!HOP_BY_HOP.has(n) && !named?.has(n)) ||
      (o.keepUpgrade && n === 'upgrade') ||
      (n === 'transfer-encoding' &&
        (o.transferEncoding === 'keep' ||
          (o.transferEncoding === 'codings' && v.trim().toLowerCase() !== 'chunked'))) ||
      (o.keepTeTrailers && n === 'te' && v.trim().toLowerCase() === 'trailers')
    if (!keep) continue
    out[w++] = n
    out[w++] = v
  }
  out.length = w
  if (o.keepUpgrade) out.push('connection', 'Upgrade')
  return out
}

/** Replaces (or adds) a field, keeping its position. */
export function setField(fields: Fields, name: string, value: string): void {
  let done = false
  for (let i = fields.length - 1; i >= 0; i--) {
    if (fields[i]![0] !== name) continue
    if (done) fields.splice(i, 1)
    else {
      fields[i] = [name, value]
      done = true
    }
  }
  if (!done) fields.push([name, value])
}

export function removeField(fields: Fields, name: string): void {
  for (let i = fields.length - 1; i >= 0; i--) if (fields[i]![0] === name) fields.splice(i, 1)
}

// RFC 3986 §3.2.2 host (IP-literal or reg-name) and §3.2.3 port: what Host / :authority may hold
// (RFC 9110 §7.2). Userinfo is not allowed there (RFC 9110 §4.2.4).
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/

export function isValidHost(h: string): boolean {
  return h.length > 0 && h.length <= 1024 && HOST_RE.test(h)
}

export { normalizeHost }

/** The request target's parts: path without query, and the authority of an absolute-form target. */
export interface Target {
  path: string
  /** authority from an absolute-form target (RFC 9112 §3.2.2), else null */
  authority: string | null
}

/** RFC 9112 §3.2: origin-form, absolute-form, asterisk-form; null when none of them. */
export function parseTarget(target: string): Target | null {
  if (target.length === 0) return null
  const c = target.charCodeAt(0)
  if (c === 0x2f /* / */) {
    const q = target.indexOf('?')
    return { path: q < 0 ? target : target.slice(0, q), authority: null }
  }
  if (target === '*') return { path: '*', authority: null }
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)([^?#]*)/.exec(target)
  if (!m) return null
  const authority = m[1]!
  if (authority.includes('@') || !isValidHost(authority)) return null
  return { path: m[2] || '/', authority }
}

/**
 * FLOWPOLICY.md: "SNI and Host are both checked when both exist; a Host that disagrees with the SNI is a
 * policy violation (domain-fronting), not a bypass". Exact compare after normalisation (case, port,
 * trailing dot); wildcards play no part. True when some present host differs from the SNI.
 */
export function isMisdirected(sni: string | null, hosts: readonly (string | null | undefined)[]): boolean {
  if (!sni) return false
  const want = normalizeHost(sni)
  for (const h of hosts) if (h != null && normalizeHost(h) !== want) return true
  return false
}

/** Content-Length as a number; null when absent or not a plain decimal. */
export function contentLength(fields: readonly (readonly [string, string])[]): number | null {
  const v = firstField(fields, 'content-length')?.trim()
  if (v === undefined || !/^\d{1,15}$/.test(v)) return null
  return Number(v)
}

/** Field lines → a header object (repeated names become arrays), for the APIs that take no array. */
export function objectFromFields(
  fields: readonly (readonly [string, string])[],
): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null)
  for (const [n, v] of fields) {
    const got = o[n]
    if (got === undefined) o[n] = v
    else if (Array.isArray(got)) got.push(v)
    else o[n] = [got, v]
  }
  return o
}
