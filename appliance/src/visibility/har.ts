// HAR 1.2 (W3C Web Performance WG draft "HTTP Archive (HAR) format", Jan Odvarko) entries of intercepted
// HTTP exchanges. Pure: no I/O, no clock — the recorder (har-recorder.ts) hands over what it saw.
//
// What an entry says, and what it cannot:
// - request and response heads as the HTTP layer saw them: the request as the client sent it (before any
//   onRequest script), the response as the client got it (after onResponse, or the one made here);
//   header and body sizes on the wire are not known here (headersSize -1).
// - bodies as they went: Content-Encoding is not undone (a gzip body is base64 of gzip bytes) and only
//   the first maxBodyBytes of each are kept; `content.size`/`bodySize` are the whole body's bytes, and a
//   cut body says so in `comment` and `_truncated`. Text when the kept bytes are UTF-8 without NUL,
//   else base64 (`content.encoding`; `postData._encoding`, HAR having no encoding for request bodies).
// - timings: one connection carries many exchanges, so blocked, dns, connect and ssl are -1 (not
//   applicable); send is the request's head to its body's end, wait from there to the response head,
//   receive from there to the last byte. `time` is their sum.
// - secrets: the values of the headers in ALWAYS_REDACTED (and a policy's redactHeaders), the cookies
//   they carry, and the query parameters in REDACTED_QUERY (a presigned URL is a bearer credential) are
//   replaced by [redacted]; an Authorization keeps its scheme (AWS4-HMAC-SHA256 [redacted]).
// - flowgate's own facts go in `_flowgate` (custom fields start with an underscore, HAR 1.2 §"Custom
//   Fields"): policy, rule, action, endpoint, client, the AWS account id, whether it ended normally.

export const REDACTED = '[redacted]'

/** Header names whose values never appear in a HAR entry, whatever the policy says. */
export const ALWAYS_REDACTED: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-amz-security-token',
]

/** Query parameters (compared lower-case) whose values are credentials. */
export const REDACTED_QUERY: readonly string[] = ['x-amz-signature', 'x-amz-security-token']

const AUTH_HEADERS = new Set(['authorization', 'proxy-authorization'])

export interface HarNameValue {
  name: string
  value: string
  comment?: string
}

export interface HarCookie {
  name: string
  value: string
  path?: string
  domain?: string
  expires?: string
  httpOnly?: boolean
  secure?: boolean
}

export interface HarContent {
  size: number
  mimeType: string
  text?: string
  encoding?: 'base64'
  comment?: string
  _truncated?: true
}

export interface HarPostData {
  mimeType: string
  params: HarNameValue[]
  text: string
  comment?: string
  _encoding?: 'base64'
  _truncated?: true
}

export interface HarRequest {
  method: string
  url: string
  httpVersion: string
  cookies: HarCookie[]
  headers: HarNameValue[]
  queryString: HarNameValue[]
  postData?: HarPostData
  headersSize: -1
  bodySize: number
}

export interface HarResponse {
  status: number
  statusText: string
  httpVersion: string
  cookies: HarCookie[]
  headers: HarNameValue[]
  content: HarContent
  redirectURL: string
  headersSize: -1
  bodySize: number
  comment?: string
}

export interface HarTimings {
  blocked: -1
  dns: -1
  connect: -1
  ssl: -1
  send: number
  wait: number
  receive: number
}

export interface HarEntry {
  startedDateTime: string
  time: number
  request: HarRequest
  response: HarResponse
  cache: Record<string, never>
  timings: HarTimings
  serverIPAddress?: string
  connection?: string
  _flowgate: HarFlowgate
}

export interface HarFlowgate {
  policy: string | null
  rule: string | null
  action: string
  endpoint: string | null
  /** the client's address and port */
  client: string | null
  awsAccountId: string | null
  /** false when the exchange was cut short (reset, truncated, never answered) */
  complete: boolean
}

/** A body as recorded: its whole size and the bytes kept (at most the limit). */
export interface BodySeen {
  size: number
  kept: Buffer
}

/** One exchange as the recorder saw it. Times in ms; offsets from the request's arrival. */
export interface HarExchange {
  /** ms since the epoch when the request head arrived */
  startedMs: number
  /** when the request body had all gone upstream (undefined: never, or not observed) */
  requestEndAt?: number | undefined
  /** when the response head went to the client */
  responseAt?: number | undefined
  /** when the exchange was over */
  endAt: number
  complete: boolean
  scheme: 'http' | 'https'
  /** the flow's authority (SNI or server address), for the URL when the request has no Host */
  authority: string
  method: string
  target: string
  /** '1.1', '1.0', '2.0' */
  httpVersion: string
  requestFields: readonly (readonly [string, string])[]
  requestBody: BodySeen
  response?: { status: number; statusMessage: string; fields: readonly (readonly [string, string])[] }
  responseBody: BodySeen
  serverIp?: string
  flowgate: Omit<HarFlowgate, 'complete'>
}

export interface HarOptions {
  /** the policy's limit on each body (bytes kept) */
  maxBodyBytes: number
  /** lower-case header names redacted beyond ALWAYS_REDACTED */
  redactHeaders?: readonly string[]
}

export interface HarCreator {
  name: string
  version: string
}

/** The document around entries: `{"log":{…,"entries":[` + entries joined by `,` + HAR_TAIL. */
export function harHead(creator: HarCreator, comment?: string): string {
  const head = JSON.stringify({
    log: { version: '1.2', creator, ...(comment ? { comment } : {}), entries: [] },
  })
  // Everything but the closing `]}}` of the empty entries list.
  return head.slice(0, -HAR_TAIL.length)
}
export const HAR_TAIL = ']}}'

const round = (ms: number) => Math.round(ms * 1000) / 1000

export function buildHarEntry(x: HarExchange, o: HarOptions): HarEntry {
  const redact = redactor(o.redactHeaders)
  const end = x.endAt
  const responded = x.response ? Math.min(x.responseAt ?? end, end) : end
  const sent = Math.min(x.requestEndAt ?? responded, responded)
  const timings: HarTimings = {
    blocked: -1,
    dns: -1,
    connect: -1,
    ssl: -1,
    send: round(Math.max(0, sent)),
    wait: round(Math.max(0, responded - sent)),
    receive: round(Math.max(0, end - responded)),
  }
  const version = `HTTP/${x.httpVersion}`
  const request: HarRequest = {
    method: x.method,
    url: urlOf(x),
    httpVersion: version,
    cookies: requestCookies(x.requestFields),
    headers: headers(x.requestFields, redact),
    queryString: queryOf(x.target),
    headersSize: -1,
    bodySize: x.requestBody.size,
  }
  if (x.requestBody.size > 0) {
    const b = body(x.requestBody, o.maxBodyBytes)
    const post: HarPostData = {
      mimeType: field(x.requestFields, 'content-type') ?? '',
      params: [],
      text: b.text ?? '',
    }
    if (b.encoding) post._encoding = b.encoding
    if (b.comment) post.comment = b.comment
    if (b.truncated) post._truncated = true
    request.postData = post
  }
  const response = x.response ? responseOf(x, version, redact, o) : noResponse()
  const entry: HarEntry = {
    startedDateTime: new Date(x.startedMs).toISOString(),
    time: round(timings.send + timings.wait + timings.receive),
    request,
    response,
    cache: {},
    timings,
    _flowgate: { ...x.flowgate, complete: x.complete },
  }
  if (x.serverIp) entry.serverIPAddress = x.serverIp
  if (x.flowgate.client) entry.connection = x.flowgate.client
  return entry
}

function responseOf(
  x: HarExchange,
  version: string,
  redact: (name: string, value: string) => string,
  o: HarOptions,
): HarResponse {
  const r = x.response!
  const b = body(x.responseBody, o.maxBodyBytes)
  const content: HarContent = {
    size: x.responseBody.size,
    mimeType: field(r.fields, 'content-type') ?? 'x-unknown',
  }
  if (b.text !== undefined) content.text = b.text
  if (b.encoding) content.encoding = b.encoding
  const notes = [b.comment, codingNote(r.fields)].filter(Boolean)
  if (notes.length) content.comment = notes.join('; ')
  if (b.truncated) content._truncated = true
  const out: HarResponse = {
    status: r.status,
    statusText: r.statusMessage,
    httpVersion: version,
    cookies: responseCookies(r.fields),
    headers: headers(r.fields, redact),
    content,
    redirectURL: field(r.fields, 'location') ?? '',
    headersSize: -1,
    bodySize: x.responseBody.size,
  }
  if (!x.complete) out.comment = 'cut short: the exchange ended before the whole response was sent'
  return out
}

/** HAR has no place for "never answered": status 0, as browsers export failed requests. */
function noResponse(): HarResponse {
  return {
    status: 0,
    statusText: '',
    httpVersion: '',
    cookies: [],
    headers: [],
    content: { size: 0, mimeType: 'x-unknown' },
    redirectURL: '',
    headersSize: -1,
    bodySize: -1,
    comment: 'no response: the exchange ended before one was sent',
  }
}

function codingNote(fields: readonly (readonly [string, string])[]): string | undefined {
  const coding = field(fields, 'content-encoding')
  return coding && coding !== 'identity' ? `as sent: ${coding}-encoded` : undefined
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The kept bytes as text or base64, and whether and how they were cut. */
export function body(
  b: BodySeen,
  limit: number,
): { text?: string; encoding?: 'base64'; truncated: boolean; comment?: string } {
  const truncated = b.kept.length < b.size
  const comment = truncated
    ? `truncated: ${b.kept.length} of ${b.size} bytes kept${limit > b.kept.length ? ' (memory bound)' : ''}`
    : undefined
  if (b.kept.length === 0) return { ...(truncated ? { text: '', comment } : {}), truncated }
  const text = asText(b.kept, truncated)
  if (text !== undefined) return { text, truncated, ...(comment ? { comment } : {}) }
  return { text: b.kept.toString('base64'), encoding: 'base64', truncated, ...(comment ? { comment } : {}) }
}

/** UTF-8 without NUL; a cut body may end inside a character, which is dropped. */
function asText(bytes: Buffer, cut: boolean): string | undefined {
  let end = bytes.length
  if (cut) {
    // Back over at most 3 continuation bytes to the start of the last character, and drop it if incomplete.
    let i = end - 1
    while (i > 0 && end - i < 4 && (bytes[i]! & 0xc0) === 0x80) i--
    const lead = bytes[i]!
    const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
    if (end - i < need) end = i
  }
  const view = bytes.subarray(0, end)
  if (view.includes(0)) return undefined
  try {
    return utf8.decode(view)
  } catch {
    return undefined
  }
}

function field(fields: readonly (readonly [string, string])[], name: string): string | undefined {
  for (const [n, v] of fields) if (n === name) return v
  return undefined
}

function redactor(extra: readonly string[] | undefined): (name: string, value: string) => string {
  const names = new Set([...ALWAYS_REDACTED, ...(extra ?? [])])
  return (name, value) => {
    if (!names.has(name)) return value
    if (AUTH_HEADERS.has(name)) {
      const scheme = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s/.exec(value)
      if (scheme) return `${scheme[1]} ${REDACTED}`
    }
    return REDACTED
  }
}

function headers(
  fields: readonly (readonly [string, string])[],
  redact: (name: string, value: string) => string,
): HarNameValue[] {
  return fields.map(([name, value]) => ({ name, value: redact(name, value) }))
}

/** Cookie names from Cookie fields; values are always redacted (cookie is in ALWAYS_REDACTED). */
function requestCookies(fields: readonly (readonly [string, string])[]): HarCookie[] {
  const out: HarCookie[] = []
  for (const [n, v] of fields) {
    if (n !== 'cookie') continue
    for (const pair of v.split(';')) {
      const eq = pair.indexOf('=')
      const name = (eq < 0 ? pair : pair.slice(0, eq)).trim()
      if (name) out.push({ name, value: REDACTED })
    }
  }
  return out
}

/** Set-Cookie: the name and the attributes; the value is redacted. */
function responseCookies(fields: readonly (readonly [string, string])[]): HarCookie[] {
  const out: HarCookie[] = []
  for (const [n, v] of fields) {
    if (n !== 'set-cookie') continue
    const [first, ...attrs] = v.split(';')
    const eq = first!.indexOf('=')
    const name = (eq < 0 ? '' : first!.slice(0, eq)).trim()
    if (!name) continue
    const c: HarCookie = { name, value: REDACTED }
    for (const a of attrs) {
      const i = a.indexOf('=')
      const key = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase()
      const val = i < 0 ? '' : a.slice(i + 1).trim()
      if (key === 'path') c.path = val
      else if (key === 'domain') c.domain = val
      else if (key === 'expires') {
        const d = new Date(val)
        if (!Number.isNaN(d.getTime())) c.expires = d.toISOString()
      } else if (key === 'httponly') c.httpOnly = true
      else if (key === 'secure') c.secure = true
    }
    out.push(c)
  }
  return out
}

const REDACTED_QUERY_SET = new Set(REDACTED_QUERY)
const ENCODED_REDACTED = encodeURIComponent(REDACTED)

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '))
  } catch {
    return s
  }
}

/** Query parameters, decoded, credentials redacted. */
function queryOf(target: string): HarNameValue[] {
  const q = target.indexOf('?')
  if (q < 0) return []
  const out: HarNameValue[] = []
  for (const part of target.slice(q + 1).split('&')) {
    if (!part) continue
    const eq = part.indexOf('=')
    const name = decode(eq < 0 ? part : part.slice(0, eq))
    const value = eq < 0 ? '' : decode(part.slice(eq + 1))
    out.push({ name, value: REDACTED_QUERY_SET.has(name.toLowerCase()) ? REDACTED : value })
  }
  return out
}

/** The target with credential parameters' values replaced. */
function redactTarget(target: string): string {
  const q = target.indexOf('?')
  if (q < 0) return target
  const parts = target
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=')
      if (eq < 0) return part
      return REDACTED_QUERY_SET.has(decode(part.slice(0, eq)).toLowerCase())
        ? `${part.slice(0, eq)}=${ENCODED_REDACTED}`
        : part
    })
  return `${target.slice(0, q)}?${parts.join('&')}`
}

function urlOf(x: HarExchange): string {
  const target = redactTarget(x.target)
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return target // absolute-form
  const host = field(x.requestFields, 'host') ?? x.authority
  return `${x.scheme}://${host}${target === '*' ? '' : target}`
}
