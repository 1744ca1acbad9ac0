// What happens to one request and its response, whatever the HTTP version: the Host/SNI check, the
// policy decision, and the Inspect hooks (CloudFront Functions event model). Synchronous and free of I/O:
// the HTTP/1 and HTTP/2 shells call planRequest when a request head arrives and planResponse when the
// response head (and, when offered, body) is in.

import { randomUUID } from 'node:crypto'
import {
  countField,
  type Fields,
  fieldMap,
  firstField,
  isMisdirected,
  isValidHost,
  normalizeHost,
  parseTarget,
  type StripOptions,
  stripHopByHop,
} from './headers.ts'
import { type LocalResponse, localResponse, type ResponseHead } from './local.ts'
import {
  type CfEvent,
  type CfRequest,
  fromCfRequest,
  fromCfResponse,
  type ScriptFailure,
  toCfRequest,
  toCfResponse,
} from './script/index.ts'
import type { HttpActionLabel, ScriptFailureLabel, ScriptHookLabel } from './stats.ts'
import type { ExchangeObserver, HttpRequestFacts, InterceptOptions, RequestDecision } from './types.ts'

export interface RequestHead {
  method: string
  /** origin-form path and query (HTTP/1 may also carry absolute-form or '*') */
  target: string
  /** field lines, names lower-case; `host` carries the authority (HTTP/2's :authority is mapped to it) */
  fields: Fields
}

/** Set for Inspect exchanges whose response goes through onResponse. */
export interface ResponseHook {
  source: string
  /** the event of the request as forwarded, for the viewer-response event */
  request: CfRequest
  context: CfEvent['context']
  /** how the script's response fields are cleaned (the version's framing) */
  framing: StripOptions
}

export type RequestPlan = (
  | { kind: 'respond'; response: LocalResponse }
  | {
      kind: 'forward'
      request: RequestHead
      /** Upgrade and Connection: upgrade are kept (a WebSocket handshake) */
      upgrade: boolean
      onResponse: ResponseHook | null
    }
) & {
  /** set when InterceptOptions.onExchange wants to hear the rest of this (decided) exchange */
  watch?: ExchangeObserver
}

export type ResponsePlan =
  | {
      ok: true
      head: ResponseHead /** set when the script gave a body: it replaces the origin's */
      body?: Buffer
    }
  | { ok: false; response: LocalResponse }

const ACTION_LABEL: Record<string, HttpActionLabel> = {
  Allow: 'allow',
  Deny: 'deny',
  Reject: 'reject',
  Inspect: 'inspect',
  Authorize: 'authorize',
}

export interface PlanInput extends RequestHead {
  /** HTTP/1 Upgrade: websocket handshake */
  upgrade?: boolean
  /** '1.1', '1.0', '2.0' (for observers; default '1.1') */
  httpVersion?: string
}

/** How each version forwards framing fields (headers.ts StripOptions). */
export interface Framing {
  request: StripOptions
  response: StripOptions
}

export const HTTP1_FRAMING: Framing = {
  request: { transferEncoding: 'keep' },
  response: { transferEncoding: 'codings' },
}
export const HTTP2_FRAMING: Framing = { request: { keepTeTrailers: true }, response: {} }

export function planRequest(input: PlanInput, o: InterceptOptions, framing: Framing): RequestPlan {
  const { stats } = o
  const bad = () => {
    stats.malformed.client++
    return respond(o, localResponse(400, 'bad_request', true))
  }
  const target = parseTarget(input.target)
  if (!target) return bad()
  // RFC 9112 §3.2: more than one Host, or an invalid one, is a 400.
  if (countField(input.fields, 'host') > 1) return bad()
  const hostField = firstField(input.fields, 'host')
  if (hostField !== undefined && !isValidHost(hostField)) return bad()
  // Absolute-form: the target's authority is the one that counts (RFC 9112 §3.2.2); both must agree with SNI.
  const authority = target.authority ?? hostField ?? null
  if (isMisdirected(o.sni, [target.authority, hostField]))
    return respond(o, localResponse(421, 'misdirected', false))

  const facts: HttpRequestFacts = {
    host: authority === null ? null : normalizeHost(authority),
    method: input.method,
    path: target.path,
    headers: fieldMap(input.fields),
  }
  const d = o.decide(facts)
  stats.requests[ACTION_LABEL[d.action] ?? 'deny']++
  const plan = planDecided(input, o, framing, d)
  if (o.onExchange) {
    const watch = o.onExchange({
      method: input.method,
      target: input.target,
      fields: input.fields,
      httpVersion: input.httpVersion ?? '1.1',
      decision: d,
    })
    if (watch) plan.watch = watch
  }
  return plan
}

function planDecided(
  input: PlanInput,
  o: InterceptOptions,
  framing: Framing,
  d: RequestDecision,
): RequestPlan {
  const keep: StripOptions = { ...framing.request, keepUpgrade: !!input.upgrade }
  switch (d.action) {
    case 'Deny':
      return respond(o, localResponse(403, 'deny', false))
    case 'Reject':
      return respond(o, localResponse(403, 'reject', true))
    case 'Allow':
    case 'Authorize':
      return forward(input, keep, null)
    case 'Inspect':
      break
    default:
      // A decision this layer does not know must not let traffic through.
      return respond(o, localResponse(403, 'deny', false))
  }

  const hooks = d.hooks
  // No hook to run: forwarded as an Allow is (the CloudFront event is built only for a script to see).
  if (!hooks?.onRequest && !hooks?.onResponse) return forward(input, keep, null)
  const context: CfEvent['context'] = { eventType: 'viewer-request', requestId: randomUUID() }
  if (o.event.endpointId) context.endpointId = o.event.endpointId
  if (d.policy) context.policy = d.policy
  if (d.rule) context.rule = d.rule
  let request = toCfRequest(input.method, input.target, input.fields)
  let head: PlanInput = input
  if (hooks.onRequest) {
    if (!o.scripts) return scriptFailed(o, 'on_request', context, noEngine())
    o.stats.scriptRuns.on_request++
    const r = o.scripts.runOnRequest(hooks.onRequest, event(o, context, request))
    if (!r.ok) return scriptFailed(o, 'on_request', context, r)
    if ('response' in r) {
      const res = fromCfResponse(r.response)
      const bad = invalidResponse(res.statusCode, res.headers)
      if (bad) return scriptFailed(o, 'on_request', context, invalidResult(bad))
      const body = res.body ?? Buffer.alloc(0)
      const fields = stripHopByHop(res.headers.map(lower), framing.response)
      setLength(fields, body.length)
      return respond(o, {
        status: res.statusCode,
        statusMessage: res.statusMessage,
        fields,
        body,
        close: false,
        reason: 'script_response',
      })
    }
    const req = fromCfRequest(r.request)
    const bad = invalidRequest(req.method, req.url, req.headers)
    if (bad) return scriptFailed(o, 'on_request', context, invalidResult(bad))
    request = r.request
    head = { method: req.method, target: req.url, fields: req.headers.map(lower), upgrade: !!input.upgrade }
  }
  const onResponse = hooks.onResponse
    ? {
        source: hooks.onResponse,
        request,
        context: { ...context, eventType: 'viewer-response' as const },
        framing: framing.response,
      }
    : null
  return forward(head, keep, onResponse)
}

function forward(input: PlanInput, keep: StripOptions, onResponse: ResponseHook | null): RequestPlan {
  return {
    kind: 'forward',
    request: { method: input.method, target: input.target, fields: stripHopByHop(input.fields, keep) },
    upgrade: !!keep.keepUpgrade,
    onResponse,
  }
}

/**
 * Runs onResponse over the response head and, when it was offered (declared length within the limit),
 * its body. A failed script turns the exchange into a 502.
 */
export function planResponse(
  hook: ResponseHook,
  head: ResponseHead,
  body: Buffer | undefined,
  o: InterceptOptions,
): ResponsePlan {
  const { stats } = o
  if (!o.scripts) return { ok: false, response: failure(o, 'on_response', hook.context, noEngine()) }
  stats.scriptRuns.on_response++
  const response = toCfResponse(head.status, head.statusMessage, head.fields, body)
  const r = o.scripts.runOnResponse(hook.source, { ...event(o, hook.context, hook.request), response })
  if (!r.ok) return { ok: false, response: failure(o, 'on_response', hook.context, r) }
  const res = fromCfResponse(r.response)
  const bad = invalidResponse(res.statusCode, res.headers)
  if (bad) return { ok: false, response: failure(o, 'on_response', hook.context, invalidResult(bad)) }
  const fields = stripHopByHop(res.headers.map(lower), hook.framing)
  const out: ResponsePlan = {
    ok: true,
    head: { status: res.statusCode, statusMessage: res.statusMessage, fields },
  }
  // A body the script set (or kept, when one was offered) is sent as a whole: its length is known.
  if (res.body && (body === undefined || !res.body.equals(body))) {
    out.body = res.body
    setLength(fields, res.body.length)
    stats.responseBodies.rewritten++
  }
  return out
}

function event(o: InterceptOptions, context: CfEvent['context'], request: CfRequest): CfEvent {
  return { version: '1.0', context, viewer: { ip: o.event.viewerIp }, request }
}

function respond(o: InterceptOptions, response: LocalResponse): RequestPlan {
  o.stats.localResponses[response.reason]++
  return { kind: 'respond', response }
}

function scriptFailed(
  o: InterceptOptions,
  hook: ScriptHookLabel,
  context: CfEvent['context'],
  f: ScriptFailure,
): RequestPlan {
  return { kind: 'respond', response: failure(o, hook, context, f) }
}

/** FLOWPOLICY.md: a script that throws or times out fails closed — 502, counted and logged. */
function failure(
  o: InterceptOptions,
  hook: ScriptHookLabel,
  context: CfEvent['context'],
  f: ScriptFailure,
): LocalResponse {
  o.stats.scriptFailures[f.reason.replace('-', '_') as ScriptFailureLabel]++
  o.stats.localResponses.script_failure++
  o.log?.warn(
    {
      hook,
      reason: f.reason,
      error: f.message,
      policy: context.policy,
      rule: context.rule,
      requestId: context.requestId,
    },
    'HTTP hook script failed; the request got a 502',
  )
  return localResponse(502, 'script_failure', false)
}

const noEngine = (): ScriptFailure => ({
  ok: false,
  reason: 'compile',
  message: 'an Inspect rule has scripts but no script engine was given',
})
const invalidResult = (message: string): ScriptFailure => ({ ok: false, reason: 'invalid-result', message })

const lower = ([n, v]: [string, string]): [string, string] => [n.toLowerCase(), v]

function setLength(fields: Fields, n: number): void {
  for (let i = fields.length - 1; i >= 0; i--) {
    const name = fields[i]![0]
    if (name === 'content-length' || name === 'transfer-encoding') fields.splice(i, 1)
  }
  fields.push(['content-length', String(n)])
}

// RFC 9110 §5.1 field-name = token, §5.5 field-value: visible characters, SP and HTAB, no CR/LF/NUL.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const TARGET = /^[\x21-\x7e\x80-\xff]+$/

function invalidFields(fields: readonly [string, string][]): string | null {
  for (const [n, v] of fields) {
    if (!TOKEN.test(n)) return `invalid header name ${JSON.stringify(n)}`
    if (!FIELD_VALUE.test(v)) return `invalid value for header ${n}`
  }
  return null
}

function invalidResponse(status: number, fields: [string, string][]): string | null {
  // 1xx cannot be a final response; 101 would switch protocols under us.
  if (!Number.isInteger(status) || status < 200 || status > 599) return `status ${status} is not 200-599`
  return invalidFields(fields)
}

function invalidRequest(method: string, url: string, fields: [string, string][]): string | null {
  if (!TOKEN.test(method)) return `invalid method ${JSON.stringify(method)}`
  if (!TARGET.test(url) || (url[0] !== '/' && url !== '*')) return `invalid uri ${JSON.stringify(url)}`
  return invalidFields(fields)
}
