// HTTP messages ⇄ the CloudFront Functions event model (AWS CloudFront Developer Guide, "CloudFront
// Functions event structure"). Pure: no sandbox, no I/O.
//
// What CloudFront does and we do too: header names lower-case; duplicates of a query parameter, header or
// cookie collapse into one field with a `multiValue` list; Cookie headers become `request.cookies` and
// Set-Cookie headers `response.cookies` (attributes kept); query names and values are kept exactly as
// received, percent-encoding included (CloudFront does not decode them).

import { isUtf8 } from 'node:buffer'
import { STATUS_CODES } from 'node:http'
import type { CfBody, CfMap, CfRequest, CfResponse, CfValue } from './types.ts'

/** Field lines as received: Node's rawHeaders paired. */
export type FieldLines = readonly (readonly [string, string])[]

export function toCfRequest(method: string, rawUrl: string, headers: FieldLines): CfRequest {
  const { path, query } = splitTarget(rawUrl)
  const out: CfRequest = { method, uri: path, querystring: parseQuery(query), headers: {}, cookies: {} }
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase()
    if (name === 'cookie') for (const [n, v] of parseCookieHeader(value)) add(out.cookies, n, { value: v })
    else add(out.headers, name, { value })
  }
  return out
}

export function fromCfRequest(r: CfRequest): { method: string; url: string; headers: [string, string][] } {
  const headers = expand(r.headers)
  const cookies: string[] = []
  for (const [name, v] of Object.entries(r.cookies)) {
    for (const one of values(v)) cookies.push(name === '' ? one.value : `${name}=${one.value}`)
  }
  if (cookies.length) headers.push(['cookie', cookies.join('; ')])
  const query = formatQuery(r.querystring)
  return { method: r.method, url: query === '' ? r.uri : `${r.uri}?${query}`, headers }
}

export function toCfResponse(
  statusCode: number,
  statusMessage: string,
  headers: FieldLines,
  body?: Buffer,
): CfResponse {
  const out: CfResponse = { statusCode, headers: {}, cookies: {} }
  if (statusMessage) out.statusDescription = statusMessage
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase()
    if (name === 'set-cookie') {
      const { name: cookieName, ...one } = parseSetCookie(value)
      add(out.cookies!, cookieName, one)
    } else add(out.headers, name, { value })
  }
  if (body) out.body = bodyOf(body)
  return out
}

export function fromCfResponse(r: CfResponse): {
  statusCode: number
  statusMessage: string
  headers: [string, string][]
  body?: Buffer
} {
  const headers = expand(r.headers)
  for (const [name, v] of Object.entries(r.cookies ?? {})) {
    for (const one of values(v)) {
      const pair = name === '' ? one.value : `${name}=${one.value}`
      headers.push(['set-cookie', one.attributes ? `${pair}; ${one.attributes}` : pair])
    }
  }
  const out: ReturnType<typeof fromCfResponse> = {
    statusCode: r.statusCode,
    statusMessage: r.statusDescription ?? STATUS_CODES[r.statusCode] ?? '',
    headers,
  }
  if (r.body) out.body = decodeBody(r.body)
  return out
}

/** A body as the event carries it: text when it is valid UTF-8 (so it round-trips byte for byte), else base64. */
export function bodyOf(body: Buffer): CfBody {
  return isUtf8(body)
    ? { encoding: 'text', data: body.toString('utf8') }
    : { encoding: 'base64', data: body.toString('base64') }
}

export function decodeBody(b: CfBody): Buffer {
  return Buffer.from(b.data, b.encoding === 'base64' ? 'base64' : 'utf8')
}

/** Decoded size of a body without decoding it (base64 already checked by the caller when it matters). */
export function bodySize(b: CfBody): number {
  if (b.encoding === 'text') return Buffer.byteLength(b.data, 'utf8')
  const pad = b.data.endsWith('==') ? 2 : b.data.endsWith('=') ? 1 : 0
  return Math.floor((b.data.length * 3) / 4) - pad
}

/**
 * Origin-form "/p?q" as received; an absolute-form target (RFC 9112 §3.2.2) contributes its path and
 * query; "*" (OPTIONS) stays as it is.
 */
function splitTarget(target: string): { path: string; query: string } {
  let t = target
  if (t[0] !== '/' && t !== '*') {
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t)
    if (m) t = t.slice(m[0].length) || '/'
    if (t[0] === '?') t = `/${t}`
  }
  const q = t.indexOf('?')
  return q < 0 ? { path: t, query: '' } : { path: t.slice(0, q), query: t.slice(q + 1) }
}

/** "a=1&a=2&b" → names and values as written (no decoding); empty segments ("a=1&&b=2") carry nothing. */
export function parseQuery(query: string): CfMap {
  const out: CfMap = {}
  if (query === '') return out
  for (const seg of query.split('&')) {
    if (seg === '') continue
    const eq = seg.indexOf('=')
    add(out, eq < 0 ? seg : seg.slice(0, eq), { value: eq < 0 ? '' : seg.slice(eq + 1) })
  }
  return out
}

/**
 * Values go out as they came in; only what would change the request line's meaning is percent-encoded:
 * controls, space, "#" and non-ASCII (as UTF-8), "&" anywhere and "=" in names (they would split a
 * parameter). A query a script did not touch is re-emitted byte for byte, grouped by name.
 */
export function formatQuery(q: CfMap): string {
  const parts: string[] = []
  for (const [name, v] of Object.entries(q)) {
    const n = encodeQueryPart(name, true)
    for (const one of values(v))
      parts.push(one.value === '' ? n : `${n}=${encodeQueryPart(one.value, false)}`)
  }
  return parts.join('&')
}

function encodeQueryPart(s: string, isName: boolean): string {
  let out = ''
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (c <= 0x20 || c === 0x7f || c >= 0x80 || ch === '#' || ch === '&' || (isName && ch === '=')) {
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
    } else out += ch
  }
  return out
}

/**
 * RFC 6265 §5.4 cookie-string: pairs separated by ";" and optional whitespace. A pair without "=" is a
 * cookie with an empty name (RFC 6265bis §5.7), which is how browsers send one.
 */
function parseCookieHeader(value: string): [string, string][] {
  const out: [string, string][] = []
  for (const raw of value.split(';')) {
    const seg = raw.trim()
    if (seg === '') continue
    const eq = seg.indexOf('=')
    out.push(eq < 0 ? ['', seg] : [seg.slice(0, eq).trim(), seg.slice(eq + 1).trim()])
  }
  return out
}

/** RFC 6265 §5.2: name=value, then attributes after the first ";" (kept as one string, as CloudFront does). */
function parseSetCookie(line: string): { name: string; value: string; attributes?: string } {
  const semi = line.indexOf(';')
  const pair = (semi < 0 ? line : line.slice(0, semi)).trim()
  const attributes = semi < 0 ? undefined : line.slice(semi + 1).trim()
  const eq = pair.indexOf('=')
  const name = eq < 0 ? '' : pair.slice(0, eq).trim()
  const value = eq < 0 ? pair : pair.slice(eq + 1).trim()
  return attributes ? { name, value, attributes } : { name, value }
}

/** Adds one occurrence; a repeat turns the field into value + multiValue (the first value kept in `value`). */
export function add(map: CfMap, name: string, one: { value: string; attributes?: string }): void {
  const got = Object.hasOwn(map, name) ? map[name] : undefined
  if (!got) {
    put(map, name, { ...one })
    return
  }
  got.multiValue ??= [{ ...pick(got) }]
  got.multiValue.push({ ...one })
}

/**
 * Own property even for "__proto__" (a plain assignment would set the prototype instead): a client can
 * send a header, cookie or query parameter by that name.
 */
export function put(map: CfMap, name: string, v: CfValue): void {
  Object.defineProperty(map, name, { value: v, writable: true, enumerable: true, configurable: true })
}

/** Every occurrence of a field: the multiValue list when there is one, else the single value. */
export function values(v: CfValue): { value: string; attributes?: string }[] {
  return v.multiValue && v.multiValue.length > 0 ? v.multiValue : [pick(v)]
}

function pick(v: { value: string; attributes?: string }): { value: string; attributes?: string } {
  return v.attributes === undefined ? { value: v.value } : { value: v.value, attributes: v.attributes }
}

function expand(map: CfMap): [string, string][] {
  const out: [string, string][] = []
  for (const [name, v] of Object.entries(map)) for (const one of values(v)) out.push([name, one.value])
  return out
}
