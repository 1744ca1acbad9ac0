// What a hook returned, checked field by field and normalised (AWS CloudFront Developer Guide, "CloudFront
// Functions event structure"). Pure: the engine hands in the value a script returned (already a JSON copy)
// and the event it was given. Every rejection names the field, e.g. "response.headers.location.value: not
// a string". Beyond CloudFront we refuse what would let a script split or reframe the message on the wire:
// CR/LF/NUL in names and values, ";" inside a cookie value, and changes to Content-Length /
// Transfer-Encoding of a message whose body is forwarded as received.

import { add, bodySize, decodeBody, parseQuery, values } from './convert.ts'
import type { CfBody, CfMap, CfRequest, CfResponse, CfValue } from './types.ts'

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string }
export type RequestOutcome =
  | { kind: 'request'; request: CfRequest }
  | { kind: 'response'; response: CfResponse }

export interface ResultLimits {
  maxBodyBytes: number
}

/** Names, values and attributes of all fields of one message together. */
export const MAX_FIELD_BYTES = 64 * 1024
const MAX_URI = 8 * 1024
const MAX_STATUS_DESCRIPTION = 512

type Kind = 'query' | 'header' | 'request-cookie' | 'response-cookie'

class Invalid extends Error {}
const fail = (message: string): never => {
  throw new Invalid(message)
}

/** onRequest: the request (changed or not), or a response that answers without contacting the server. */
export function checkRequestResult(
  v: unknown,
  original: CfRequest,
  limits: ResultLimits,
): Checked<RequestOutcome> {
  return guard(() => {
    if (!isObject(v)) fail(`onRequest returned ${describe(v)}; return the request or a response object`)
    const o = v as Record<string, unknown>
    if (Object.hasOwn(o, 'statusCode')) {
      return { kind: 'response', response: response(o, 'response', undefined, limits) }
    }
    return { kind: 'request', request: request(o, original) }
  })
}

/** onResponse: the response, changed or not. */
export function checkResponseResult(
  v: unknown,
  original: CfResponse,
  limits: ResultLimits,
): Checked<CfResponse> {
  return guard(() => {
    if (!isObject(v)) fail(`onResponse returned ${describe(v)}; return the response object`)
    return response(v as Record<string, unknown>, 'response', original, limits)
  })
}

function guard<T>(f: () => T): Checked<T> {
  try {
    return { ok: true, value: f() }
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, message: e.message }
    throw e
  }
}

function request(o: Record<string, unknown>, original: CfRequest): CfRequest {
  if (Object.hasOwn(o, 'method') && o.method !== original.method) {
    fail(`request.method: read-only (was ${JSON.stringify(original.method)}, got ${describe(o.method)})`)
  }
  const uri = o.uri
  if (typeof uri !== 'string') fail(`request.uri: ${uri === undefined ? 'missing' : 'not a string'}`)
  if (uri !== original.uri) checkUri(uri as string)
  let querystring: CfMap
  if (typeof o.querystring === 'string') {
    // CloudFront Functions 2.0 lets a script set the whole query as a string; "?" in front is tolerated.
    const q = o.querystring.startsWith('?') ? o.querystring.slice(1) : o.querystring
    querystring = normalizeMap(parseQuery(q), original.querystring, 'request.querystring', 'query')
  } else querystring = normalizeMap(o.querystring, original.querystring, 'request.querystring', 'query')
  const headers = normalizeMap(o.headers, original.headers, 'request.headers', 'header')
  if (Object.hasOwn(headers, 'cookie')) fail('request.headers.cookie: cookies go in request.cookies')
  // The proxy streams the request body as it came; a different length or coding would desynchronise the
  // upstream connection (request smuggling), so these two stay as received.
  for (const name of ['content-length', 'transfer-encoding']) {
    if (joined(headers, name) !== joined(original.headers, name)) {
      fail(`request.headers.${name}: read-only (the request body is forwarded as received)`)
    }
  }
  const cookies = normalizeMap(o.cookies, original.cookies, 'request.cookies', 'request-cookie')
  checkFieldBytes('request', [querystring, headers, cookies])
  return { method: original.method, uri: uri as string, querystring, headers, cookies }
}

function checkUri(uri: string): void {
  if (uri[0] !== '/') fail('request.uri: must start with "/"')
  if (uri.length > MAX_URI) fail(`request.uri: longer than ${MAX_URI} characters`)
  for (let i = 0; i < uri.length; i++) {
    const c = uri.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) fail(`request.uri: contains ${charName(c)} at ${i}`)
    if (c >= 0x80) fail(`request.uri: contains a non-ASCII character at ${i}; percent-encode it`)
    if (c === 0x3f) fail('request.uri: contains "?"; put the query in request.querystring')
    if (c === 0x23) fail('request.uri: contains "#"')
  }
}

/**
 * A response a script made (original undefined: onRequest's short circuit) or changed (onResponse).
 * `body` absent means the origin's body goes through; a body given replaces it.
 */
function response(
  o: Record<string, unknown>,
  path: string,
  original: CfResponse | undefined,
  limits: ResultLimits,
): CfResponse {
  const status = o.statusCode
  // 1xx are interim responses: a final one needs 200-599 (101 would switch protocols under the proxy).
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    fail(`${path}.statusCode: ${describe(status)} is not an integer 200-599`)
  }
  const out: CfResponse = { statusCode: status as number, headers: {}, cookies: {} }
  if (o.statusDescription !== undefined) {
    const d = o.statusDescription
    if (typeof d !== 'string') fail(`${path}.statusDescription: not a string`)
    if ((d as string).length > MAX_STATUS_DESCRIPTION) {
      fail(`${path}.statusDescription: longer than ${MAX_STATUS_DESCRIPTION} characters`)
    }
    checkChars(d as string, `${path}.statusDescription`, 'header')
    out.statusDescription = d as string
  }
  if (o.headers !== undefined)
    out.headers = normalizeMap(o.headers, original?.headers, `${path}.headers`, 'header')
  if (Object.hasOwn(out.headers, 'set-cookie'))
    fail(`${path}.headers.set-cookie: cookies go in ${path}.cookies`)
  if (o.cookies !== undefined) {
    out.cookies = normalizeMap(o.cookies, original?.cookies, `${path}.cookies`, 'response-cookie')
  }
  if (o.body !== undefined) out.body = body(o.body, `${path}.body`, out.statusCode, limits)
  // Framing: a replaced body (and every response a script makes) is sent with a length the proxy
  // computes; an origin body that goes through unchanged keeps the origin's framing.
  if (joined(out.headers, 'transfer-encoding') !== joined(original?.headers, 'transfer-encoding')) {
    fail(`${path}.headers.transfer-encoding: read-only (the proxy frames the body)`)
  }
  const replaced = out.body !== undefined && !(original?.body && sameBody(out.body, original.body))
  if (
    original &&
    !replaced &&
    joined(out.headers, 'content-length') !== joined(original.headers, 'content-length')
  ) {
    fail(
      `${path}.headers.content-length: read-only unless the body is replaced (the origin's body goes through)`,
    )
  }
  checkFieldBytes(path, [out.headers, out.cookies!])
  return out
}

function body(v: unknown, path: string, status: number, limits: ResultLimits): CfBody {
  let b: CfBody
  if (typeof v === 'string') b = { encoding: 'text', data: v }
  else {
    if (!isObject(v)) fail(`${path}: not a string or an object`)
    const o = v as Record<string, unknown>
    if (o.encoding !== 'text' && o.encoding !== 'base64') fail(`${path}.encoding: must be "text" or "base64"`)
    if (typeof o.data !== 'string') fail(`${path}.data: not a string`)
    b = { encoding: o.encoding as CfBody['encoding'], data: o.data as string }
    // RFC 4648 §4 alphabet with padding; CloudFront answers an error for invalid base64 as well.
    if (b.encoding === 'base64' && (b.data.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b.data))) {
      fail(`${path}.data: not valid base64`)
    }
  }
  const size = bodySize(b)
  if (size > limits.maxBodyBytes)
    fail(`${path}.data: ${size} bytes exceed the ${limits.maxBodyBytes}-byte limit`)
  // RFC 9110 §15.3.5, §15.4.5: 204 and 304 never carry content.
  if (size > 0 && (status === 204 || status === 304)) fail(`${path}: a ${status} response has no body`)
  return b
}

/**
 * One query/header/cookie object, with CloudFront's rules for duplicates: a changed `multiValue` list
 * replaces every value (its first element becomes `value`); otherwise a changed `value` (and, for
 * response cookies, `attributes`) replaces the first occurrence and later ones stay.
 */
function normalizeMap(v: unknown, original: CfMap | undefined, path: string, kind: Kind): CfMap {
  if (!isObject(v)) fail(`${path}: ${v === undefined ? 'missing' : 'not an object'}`)
  const out: CfMap = {}
  for (const name of Object.keys(v as object)) {
    const p = `${path}${member(name)}`
    checkName(name, p, kind)
    const field = (v as Record<string, unknown>)[name]
    if (!isObject(field)) fail(`${p}: not an object with a value`)
    const f = field as Record<string, unknown>
    const first = occurrence(f, p, kind)
    const before = original && Object.hasOwn(original, name) ? original[name] : undefined
    let list: { value: string; attributes?: string }[]
    if (f.multiValue !== undefined) {
      if (!Array.isArray(f.multiValue)) fail(`${p}.multiValue: not an array`)
      const mv = f.multiValue as unknown[]
      if (mv.length === 0) fail(`${p}.multiValue: empty (delete the field to remove it)`)
      list = mv.map((e, i) => {
        if (!isObject(e)) fail(`${p}.multiValue[${i}]: not an object with a value`)
        return occurrence(e as Record<string, unknown>, `${p}.multiValue[${i}]`, kind)
      })
      if (before?.multiValue && sameList(list, before.multiValue)) list = [first, ...list.slice(1)]
    } else if (before?.multiValue && before.multiValue.length > 1)
      list = [first, ...before.multiValue.slice(1)]
    else list = [first]
    for (const one of list) add(out, name, one)
  }
  return out
}

function occurrence(
  f: Record<string, unknown>,
  p: string,
  kind: Kind,
): { value: string; attributes?: string } {
  if (typeof f.value !== 'string') fail(`${p}.value: ${f.value === undefined ? 'missing' : 'not a string'}`)
  const value = f.value as string
  checkChars(value, `${p}.value`, kind)
  if (kind !== 'response-cookie' || f.attributes === undefined || f.attributes === '') return { value }
  if (typeof f.attributes !== 'string') fail(`${p}.attributes: not a string`)
  checkChars(f.attributes as string, `${p}.attributes`, 'header')
  return { value, attributes: f.attributes as string }
}

// RFC 9110 §5.1 field-name = token; CloudFront requires lower case where a script adds a header.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/

function checkName(name: string, p: string, kind: Kind): void {
  if (kind === 'header') {
    if (HEADER_NAME.test(name)) return
    if (HEADER_NAME.test(name.toLowerCase())) fail(`${p}: header names must be lower case`)
    fail(`${p}: not a valid header name (RFC 9110 token)`)
  }
  if (kind === 'query') return // percent-encoded where needed on the way out
  // RFC 6265 §4.1.1 cookie-name is a token; received names may be looser, so refuse only what breaks
  // the Cookie / Set-Cookie syntax.
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f || c > 0xff || c === 0x3b || c === 0x3d) {
      fail(`${p}: cookie names cannot contain ${charName(c)}`)
    }
  }
}

function checkChars(s: string, p: string, kind: Kind): void {
  if (kind === 'query') return
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x0d || c === 0x0a || c === 0) fail(`${p}: contains CR, LF or NUL (header injection)`)
    // RFC 9110 §5.5 field-value: HTAB, SP, VCHAR, obs-text; Node writes obs-text as Latin-1.
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) fail(`${p}: contains ${charName(c)}`)
    if (c > 0xff) fail(`${p}: contains a character above U+00FF at ${i}`)
    if (c === 0x3b && (kind === 'request-cookie' || kind === 'response-cookie')) {
      fail(`${p}: contains ";" (it would start another cookie)`)
    }
  }
}

function checkFieldBytes(path: string, maps: CfMap[]): void {
  let n = 0
  for (const m of maps) {
    for (const [name, v] of Object.entries(m)) {
      for (const one of values(v)) n += name.length + one.value.length + (one.attributes?.length ?? 0) + 4
    }
  }
  if (n > MAX_FIELD_BYTES) fail(`${path}: ${n} bytes of fields exceed the ${MAX_FIELD_BYTES}-byte limit`)
}

function joined(m: CfMap | undefined, name: string): string | undefined {
  const v = m && Object.hasOwn(m, name) ? m[name] : undefined
  return v === undefined
    ? undefined
    : values(v as CfValue)
        .map((o) => o.value)
        .join('\n')
}

/** A body handed back unchanged is not a replacement: the origin's body and framing go through. */
function sameBody(a: CfBody, b: CfBody): boolean {
  return a.encoding === b.encoding ? a.data === b.data : decodeBody(a).equals(decodeBody(b))
}

function sameList(
  a: readonly { value: string; attributes?: string }[],
  b: readonly { value: string; attributes?: string }[],
) {
  return (
    a.length === b.length &&
    a.every((x, i) => x.value === b[i]!.value && (x.attributes ?? '') === (b[i]!.attributes ?? ''))
  )
}

function member(name: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return typeof v
}

function charName(c: number): string {
  if (c === 0x20) return 'a space'
  if (c === 0x3b) return '";"'
  if (c === 0x3d) return '"="'
  if (c > 0xff) return 'a character above U+00FF'
  return `control character 0x${c.toString(16).padStart(2, '0')}`
}
