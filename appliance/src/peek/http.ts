// HTTP/1 request peek (RFC 9112 §3 request line, §5 field lines, §3.2 Host): method, target, path, Host
// and header fields from the first bytes of a TCP stream, without terminating it.
//
// Classification: a stream is HTTP/1 when it starts with a registered method and a space, or when its first
// line has the full `method SP target SP HTTP/d.d` shape. HTTP/2 with prior knowledge (the "PRI * HTTP/2.0"
// preface) and HTTP/0.9 are not peeked: notMatched. The whole header section must arrive within maxBytes.

import { Peek, type PeekStatus } from './status.ts'

export class HttpRequestInfo {
  method = ''
  target = ''
  /** request path without query (origin/absolute form), '*' (asterisk form), null (CONNECT authority form) */
  path: string | null = null
  /** Host as sent (may carry a port), or the authority of an absolute-form target; null when absent */
  host: string | null = null
  /** 'HTTP/1.1' or 'HTTP/1.0' */
  version = ''
  /** field lines by lower-case name, in order */
  headers = new Map<string, string[]>()
  /** bytes of the request head (request line through the empty line) */
  consumed = 0
  error = ''
  reset(): void {
    this.method = ''
    this.target = ''
    this.path = null
    this.host = null
    this.version = ''
    this.headers = new Map()
    this.consumed = 0
    this.error = ''
  }
}

export const HTTP_PEEK_MAX = 16_384
const MAX_METHOD = 32
const MAX_FIELDS = 128

const METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
  'REPORT',
  'SEARCH',
  'MKCALENDAR',
])

// RFC 9110 §5.6.2 tchar
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1
for (let c = 48; c <= 57; c++) TCHAR[c] = 1
for (let c = 65; c <= 90; c++) TCHAR[c] = 1
for (let c = 97; c <= 122; c++) TCHAR[c] = 1

function fail(out: HttpRequestInfo, why: string): PeekStatus {
  out.error = why
  return Peek.malformed
}

function str(b: Uint8Array, s: number, e: number): string {
  let r = ''
  for (let i = s; i < e; i++) r += String.fromCharCode(b[i]!)
  return r
}

/** Peeks at b[off, off+len). */
export function peekHttpRequest(
  b: Uint8Array,
  off: number,
  len: number,
  out: HttpRequestInfo,
  maxBytes = HTTP_PEEK_MAX,
): PeekStatus {
  out.reset()
  const end = off + Math.min(len, maxBytes)
  // method token
  let i = off
  while (i < end && TCHAR[b[i]!]) {
    if (i - off >= MAX_METHOD) return Peek.notMatched
    i++
  }
  // Only token characters so far: could still be a method (bounded by MAX_METHOD above).
  if (i === end) return len > maxBytes ? Peek.notMatched : Peek.needMore
  if (b[i] !== 0x20 || i === off) return Peek.notMatched
  const method = str(b, off, i)
  const known = METHODS.has(method)
  // request line end
  let lf = i + 1
  while (lf < end && b[lf] !== 0x0a) lf++
  if (lf === end) {
    if (len > maxBytes) return known ? fail(out, 'request line too long') : Peek.notMatched
    return Peek.needMore
  }
  const lineEnd = lf > off && b[lf - 1] === 0x0d ? lf - 1 : lf // RFC 9112 §2.2: a bare LF is accepted
  const t0 = i + 1
  let t1 = t0
  while (t1 < lineEnd && b[t1] !== 0x20) t1++
  const v0 = t1 + 1
  const isVersion =
    lineEnd - v0 === 8 &&
    b[v0] === 0x48 &&
    b[v0 + 1] === 0x54 &&
    b[v0 + 2] === 0x54 &&
    b[v0 + 3] === 0x50 &&
    b[v0 + 4] === 0x2f &&
    b[v0 + 5]! >= 0x30 &&
    b[v0 + 5]! <= 0x39 &&
    b[v0 + 6] === 0x2e &&
    b[v0 + 7]! >= 0x30 &&
    b[v0 + 7]! <= 0x39
  if (!isVersion || t1 === t0) return known ? fail(out, 'request line') : Peek.notMatched
  if (b[v0 + 5] !== 0x31) return Peek.notMatched // HTTP/2.0 preface, HTTP/0.x, …: not HTTP/1
  for (let k = t0; k < t1; k++) {
    const c = b[k]!
    if (c <= 0x20 || c >= 0x7f) return fail(out, 'request target')
  }
  out.method = method
  out.target = str(b, t0, t1)
  out.version = str(b, v0, lineEnd)
  // field lines
  let o = lf + 1
  let fields = 0
  let hostCount = 0
  for (;;) {
    let e = o
    while (e < end && b[e] !== 0x0a) e++
    if (e === end) {
      if (len > maxBytes) return fail(out, 'header section too large')
      out.headers = new Map()
      return Peek.needMore
    }
    const le = e > o && b[e - 1] === 0x0d ? e - 1 : e
    if (le === o) {
      out.consumed = e + 1 - off
      break
    }
    // RFC 9112 §5.2: obsolete line folding may be rejected; §5.1: no whitespace before the colon.
    if (b[o] === 0x20 || b[o] === 0x09) return fail(out, 'obsolete line folding')
    let c = o
    while (c < le && TCHAR[b[c]!]) c++
    if (c === o || c === le || b[c] !== 0x3a) return fail(out, 'field name')
    if (++fields > MAX_FIELDS) return fail(out, 'too many fields')
    let vs = c + 1
    let ve = le
    while (vs < ve && (b[vs] === 0x20 || b[vs] === 0x09)) vs++
    while (ve > vs && (b[ve - 1] === 0x20 || b[ve - 1] === 0x09)) ve--
    for (let k = vs; k < ve; k++) {
      const ch = b[k]!
      if ((ch < 0x20 && ch !== 0x09) || ch === 0x7f) return fail(out, 'field value')
    }
    const name = str(b, o, c).toLowerCase()
    const value = str(b, vs, ve)
    const list = out.headers.get(name)
    if (list) list.push(value)
    else out.headers.set(name, [value])
    if (name === 'host') {
      // RFC 9112 §3.2: more than one Host field line is an error.
      if (++hostCount > 1) return fail(out, 'duplicate Host')
      out.host = value === '' ? null : value
    }
    o = e + 1
  }
  // target forms (RFC 9112 §3.2.1-4)
  const t = out.target
  if (method === 'CONNECT') {
    out.path = null
    out.host = t
  } else if (t === '*') out.path = '*'
  else if (t.charCodeAt(0) === 0x2f) {
    const q = t.indexOf('?')
    out.path = q < 0 ? t : t.slice(0, q)
  } else {
    // absolute-form: the target's authority replaces Host (§3.2.2)
    const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)([^?#]*)/.exec(t)
    if (!m) return fail(out, 'request target form')
    const auth = m[1]!
    const at = auth.lastIndexOf('@')
    out.host = at >= 0 ? auth.slice(at + 1) : auth
    out.path = m[2] === '' ? '/' : m[2]!
  }
  return Peek.complete
}
