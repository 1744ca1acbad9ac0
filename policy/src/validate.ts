// Validation of FlowPolicy documents: the JSON Schema (from schema.ts) first, then the semantic checks
// JSON Schema cannot express. Used by the operator, the standalone appliance and the CLI, so a policy is
// judged the same way everywhere. Every error names the field it is about.
import { Ajv, type ErrorObject } from 'ajv'
import addFormats from 'ajv-formats'
import { type Cidr, formatCidr, intersectCidrs, parseCidr } from './cidr.ts'
import { ErrorCodes, type FieldError, pointerToPath } from './errors.ts'
import { type HostPattern, parseHostPattern } from './hostnames.ts'
import { formatRange, intersectRanges, normalizeRanges, type PortRange, parsePort } from './ports.ts'
import {
  API_VERSION,
  type AuthorizerT,
  type DefaultAction,
  FlowPolicy,
  type FlowPolicyT,
  KIND,
  type MatchT,
  type Mode,
  type PacketRulesT,
  type Protocol,
  type RuleAction,
  type WhenT,
} from './schema.ts'
import { checkHookScript } from './scripts.ts'

export interface CheckedMatch {
  endpoints?: string[]
  sources?: Cidr[]
  destinations?: Cidr[]
  protocols?: Protocol[]
  ports?: PortRange[]
}

export type PathPattern = { kind: 'exact'; path: string } | { kind: 'prefix'; prefix: string }
export interface CheckedHeader {
  name: string
  values?: string[]
}

export interface CheckedWhen extends CheckedMatch {
  sni?: HostPattern[]
  hosts?: HostPattern[]
  methods?: string[]
  paths?: PathPattern[]
  headers?: CheckedHeader[]
}

export interface CheckedRule {
  name: string
  action: RuleAction
  when: CheckedWhen
  http?: { onRequest?: string; onResponse?: string }
  packet?: PacketRulesT
  /** relay the flow through the appliance's own TCP stack */
  tcpProxy?: boolean
}

export interface CheckedPolicy {
  name: string
  generation?: number
  priority: number
  mode: Mode
  match: CheckedMatch
  rules: CheckedRule[]
  authorizer?: Required<AuthorizerT>
  /** set when spec.har.enabled: HAR entries of the exchanges this policy decides */
  har?: CheckedHar
  defaultAction?: DefaultAction
}

export interface CheckedHar {
  maxBodyBytes: number
  /** lower-case header names redacted beyond the appliance's fixed list */
  redactHeaders: string[]
}

export interface PolicyValidation {
  ok: boolean
  errors: FieldError[]
  warnings: FieldError[]
  /** the policy with defaults applied and values parsed; present when ok */
  policy?: CheckedPolicy
}

const ajv = new Ajv({ allErrors: true, strict: false })
addFormats.default(ajv)
const schemaCheck = ajv.compile(FlowPolicy)

const L7_KEYS = ['sni', 'hosts', 'methods', 'paths', 'headers'] as const
const PORTED: readonly Protocol[] = ['TCP', 'UDP']
const PACKET_PROTOCOLS: readonly Protocol[] = ['UDP', 'ICMP', 'ICMPv6']
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
// 8-byte Geneve option printed as 17 hex digits, so the first one is always 0.
const ENDPOINT_ID = /^vpce-0[0-9a-f]{16}$/
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const STANDARD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']

const quote = (v: unknown) => JSON.stringify(v)

export function validateFlowPolicy(doc: unknown): PolicyValidation {
  const errors: FieldError[] = []
  const warnings: FieldError[] = []
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    errors.push({ code: ErrorCodes.schema, path: '', message: 'a FlowPolicy must be an object' })
    return { ok: false, errors, warnings }
  }
  if (!schemaCheck(doc)) {
    errors.push(...translateSchemaErrors(schemaCheck.errors ?? [], doc))
    // Still report the semantic problems elsewhere in the document, so one run shows every error. The
    // checks assume the schema's types, so anything under a field the schema rejected is skipped, and a
    // check tripping over an unexpected shape is simply not reported.
    const semantic: FieldError[] = []
    try {
      checkSemantics(doc as FlowPolicyT, semantic, [])
    } catch {
      // the schema errors already explain the shape
    }
    const under = (p: string, q: string) =>
      q === '' || p === q || p.startsWith(`${q}.`) || p.startsWith(`${q}[`)
    const rejected = errors.map((s) => s.path)
    errors.push(...semantic.filter((e) => !rejected.some((p) => under(e.path, p))))
    return { ok: false, errors, warnings }
  }
  const policy = checkSemantics(doc as FlowPolicyT, errors, warnings)
  return errors.length ? { ok: false, errors, warnings } : { ok: true, errors, warnings, policy }
}

/** Validates a set of policies that will be compiled together: each alone, then names across them. */
export function validateFlowPolicies(docs: unknown[]): PolicyValidation[] {
  const results = docs.map(validateFlowPolicy)
  const firstByName = new Map<string, number>()
  docs.forEach((doc, i) => {
    const name = (doc as { metadata?: { name?: unknown } } | null)?.metadata?.name
    if (typeof name !== 'string') return
    const first = firstByName.get(name)
    if (first === undefined) {
      firstByName.set(name, i)
      return
    }
    const r = results[i]!
    r.ok = false
    delete r.policy
    r.errors.push({
      code: ErrorCodes.duplicate,
      path: 'metadata.name',
      message: `${quote(name)} is also the name of policy #${first + 1}; FlowPolicy names are unique`,
    })
  })
  return results
}

// ---- schema errors → messages a person understands ------------------------------------------------

function schemaAt(pointer: string): Record<string, unknown> | undefined {
  let node: unknown = FlowPolicy
  for (const raw of pointer.replace(/^#\//, '').split('/')) {
    if (!raw) continue
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[raw.replaceAll('~1', '/').replaceAll('~0', '~')]
  }
  return node as Record<string, unknown> | undefined
}

function valueAt(doc: unknown, pointer: string): unknown {
  let node = doc
  for (const raw of pointer.split('/').slice(1)) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[raw]
  }
  return node
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!
    d[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return d[b.length]!
}

function suggest(word: string, candidates: string[]): string {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase())
    if (dist < bestD) {
      best = c
      bestD = dist
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3))
    ? `; did you mean ${quote(best)}?`
    : ''
}

function literalChoices(schema: Record<string, unknown> | undefined): string[] | undefined {
  const anyOf = schema?.anyOf as Record<string, unknown>[] | undefined
  if (!anyOf?.every((s) => 'const' in s)) return undefined
  return anyOf.map((s) => String(s.const))
}

const typeNames: Record<string, string> = {
  integer: 'a whole number',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
}

function translateSchemaErrors(raw: ErrorObject[], doc: unknown): FieldError[] {
  const out: FieldError[] = []
  const anyOfPaths = new Set(raw.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath))
  for (const e of raw) {
    // Errors from inside a failed anyOf are summarised by the anyOf error itself.
    if ([...anyOfPaths].some((p) => e.schemaPath.startsWith(`${p}/`))) continue
    const path = pointerToPath(e.instancePath)
    const value = valueAt(doc, e.instancePath)
    const schemaPath = e.schemaPath.replace(/\/[^/]+$/, '')
    const at = (p: string, message: string) => out.push({ code: ErrorCodes.schema, path: p, message })
    switch (e.keyword) {
      case 'additionalProperties': {
        const prop = String((e.params as { additionalProperty: string }).additionalProperty)
        const props = Object.keys((schemaAt(schemaPath)?.properties as object | undefined) ?? {})
        at(path ? `${path}.${prop}` : prop, `unknown field ${quote(prop)}${suggest(prop, props)}`)
        break
      }
      case 'required': {
        const prop = String((e.params as { missingProperty: string }).missingProperty)
        at(path ? `${path}.${prop}` : prop, 'is required')
        break
      }
      case 'anyOf': {
        const choices = literalChoices(schemaAt(e.schemaPath.replace(/\/anyOf$/, '')))
        if (choices) {
          const s = typeof value === 'string' ? suggest(value, choices) : ''
          at(path, `${quote(value)} is not one of ${choices.join(', ')}${s}`)
        } else if (schemaAt(e.schemaPath.replace(/\/anyOf$/, ''))?.['x-flowgate-int-or-string']) {
          at(path, `${quote(value)} is not a port: write 443 or "8000-8100"`)
        } else {
          at(path, `${quote(value)} has the wrong shape`)
        }
        break
      }
      case 'enum': {
        const choices = (e.params as { allowedValues: unknown[] }).allowedValues.map(String)
        const s = typeof value === 'string' ? suggest(value, choices) : ''
        at(path, `${quote(value)} is not one of ${choices.join(', ')}${s}`)
        break
      }
      case 'const':
        at(
          path,
          `must be ${quote((e.params as { allowedValue: unknown }).allowedValue)}, not ${quote(value)}`,
        )
        break
      case 'type': {
        const t = String((e.params as { type: string }).type)
        at(path, `must be ${typeNames[t] ?? t}, not ${quote(value)}`)
        break
      }
      case 'maxItems':
        at(path, `has more than ${(e.params as { limit: number }).limit} items`)
        break
      case 'maxLength':
        at(path, `is longer than ${(e.params as { limit: number }).limit} characters`)
        break
      case 'minLength':
        at(path, 'must not be empty')
        break
      case 'minimum':
      case 'maximum': {
        const p = e.params as { comparison: string; limit: number }
        at(path, `${quote(value)} must be ${p.comparison} ${p.limit}`)
        break
      }
      default:
        at(path, e.message ?? 'is invalid')
    }
  }
  return out
}

// ---- semantic checks ------------------------------------------------------------------------------

type Report = (path: string, message: string, code?: FieldError['code']) => void

function checkList<T, R>(
  list: T[] | undefined,
  path: string,
  report: Report,
  parse: (item: T, path: string) => R | undefined,
): R[] | undefined {
  if (list === undefined) return undefined
  if (list.length === 0) {
    report(path, 'an empty list matches nothing; omit the field to match everything')
    return []
  }
  const out: R[] = []
  const seen = new Set<string>()
  list.forEach((item, i) => {
    const key = JSON.stringify(item)
    if (seen.has(key)) report(`${path}[${i}]`, `${key} is listed twice`)
    seen.add(key)
    const r = parse(item, `${path}[${i}]`)
    if (r !== undefined) out.push(r)
  })
  return out
}

function checkMatchFields(m: MatchT | WhenT, base: string, report: Report): CheckedMatch {
  const out: CheckedMatch = {}
  if ('endpoints' in m) {
    out.endpoints = checkList(m.endpoints, `${base}.endpoints`, report, (id, p) => {
      if (ENDPOINT_ID.test(id)) return id
      report(
        p,
        `${quote(id)} is not a GWLB endpoint id (vpce- followed by 17 lower-case hex digits, starting 0)`,
      )
      return undefined
    })
  }
  const cidrs = (list: string[] | undefined, p: string) =>
    checkList(list, p, report, (text, ip) => {
      const r = parseCidr(text)
      if (r.ok) return r.cidr
      report(ip, r.message)
      return undefined
    })
  out.sources = cidrs(m.sources, `${base}.sources`)
  out.destinations = cidrs(m.destinations, `${base}.destinations`)
  out.protocols = checkList(m.protocols, `${base}.protocols`, report, (p) => p)
  out.ports = checkList(m.ports, `${base}.ports`, report, (v, p) => {
    const r = parsePort(v)
    if (r.ok) return r.range
    report(p, r.message)
    return undefined
  })
  if (out.ports) out.ports = normalizeRanges(out.ports)
  if (out.ports && out.protocols && !out.protocols.some((p) => PORTED.includes(p))) {
    report(`${base}.ports`, `ports apply to TCP and UDP only, but protocols are ${out.protocols.join(', ')}`)
  }
  for (const k of Object.keys(out) as (keyof CheckedMatch)[]) if (out[k] === undefined) delete out[k]
  return out
}

/** Protocols a rule can see: the policy's and the rule's lists intersected (undefined = all). */
function effectiveProtocols(a?: Protocol[], b?: Protocol[]): Protocol[] | undefined {
  if (!a) return b
  if (!b) return a
  return a.filter((p) => b.includes(p))
}

function checkPathPattern(text: string, p: string, report: Report): PathPattern | undefined {
  if (!text.startsWith('/')) {
    report(p, `${quote(text)} must start with "/"`)
    return undefined
  }
  if (text.includes('?')) {
    report(p, `${quote(text)}: paths are matched without the query string; remove "?…"`)
    return undefined
  }
  const star = text.indexOf('*')
  if (star >= 0 && star !== text.length - 1) {
    report(p, `${quote(text)}: "*" may only end a path pattern (a prefix match)`)
    return undefined
  }
  return star >= 0 ? { kind: 'prefix', prefix: text.slice(0, -1) } : { kind: 'exact', path: text }
}

function checkWhen(
  when: WhenT,
  base: string,
  report: Report,
  policyMatch: CheckedMatch,
): { when: CheckedWhen; protocols?: Protocol[] } {
  const w: CheckedWhen = checkMatchFields(when, base, report)
  const hostList = (key: 'sni' | 'hosts', allowIp: boolean) =>
    checkList(when[key], `${base}.${key}`, report, (text, p) => {
      const r = parseHostPattern(text, allowIp)
      if (r.ok) return r.pattern
      report(p, r.message)
      return undefined
    })
  const sni = hostList('sni', false)
  const hosts = hostList('hosts', true)
  if (sni) w.sni = sni
  if (hosts) w.hosts = hosts
  const methods = checkList(when.methods, `${base}.methods`, report, (m, p) => {
    if (!HTTP_TOKEN.test(m)) {
      report(p, `${quote(m)} is not an HTTP method token`)
      return undefined
    }
    const upper = m.toUpperCase()
    if (m !== upper && STANDARD_METHODS.includes(upper)) {
      report(p, `${quote(m)}: methods are case-sensitive (RFC 9110 §9.1); did you mean ${quote(upper)}?`)
      return undefined
    }
    return m
  })
  if (methods) w.methods = methods
  const paths = checkList(when.paths, `${base}.paths`, report, (t, p) => checkPathPattern(t, p, report))
  if (paths) w.paths = paths
  const headers = checkList(when.headers, `${base}.headers`, report, (h, p) => {
    if (!HTTP_TOKEN.test(h.name)) {
      report(`${p}.name`, `${quote(h.name)} is not a valid header name`)
      return undefined
    }
    if (h.values?.length === 0)
      report(`${p}.values`, 'an empty list matches nothing; omit it to require presence only')
    const out: CheckedHeader = { name: h.name.toLowerCase() }
    if (h.values) out.values = h.values
    return out
  })
  if (headers) w.headers = headers

  const protocols = effectiveProtocols(policyMatch.protocols, w.protocols)
  if (protocols?.length === 0) {
    report(
      `${base}.protocols`,
      'no protocol is in both this list and spec.match.protocols; the rule can never match',
    )
  }
  const l7 = L7_KEYS.filter((k) => when[k] !== undefined)
  if (l7.length && protocols?.some((p) => p !== 'TCP')) {
    const where = w.protocols ? `${base}.protocols` : 'spec.match.protocols'
    const verb = l7.length === 1 ? 'needs' : 'need'
    report(
      `${base}.${l7[0]}`,
      `${l7.join(', ')} ${verb} TCP flows, but ${where} allows ${protocols.join(', ')}`,
    )
  }
  if (w.ports && policyMatch.ports && intersectRanges(policyMatch.ports, w.ports)?.length === 0) {
    const shown = policyMatch.ports.map(formatRange).join(', ')
    report(`${base}.ports`, `none of these ports is in spec.match.ports (${shown}); the rule can never match`)
  }
  for (const key of ['sources', 'destinations'] as const) {
    if (w[key] && policyMatch[key] && intersectCidrs(policyMatch[key], w[key])?.length === 0) {
      const shown = policyMatch[key].map(formatCidr).join(', ')
      report(
        `${base}.${key}`,
        `no address here is inside spec.match.${key} (${shown}); the rule can never match`,
      )
    }
  }
  const result: { when: CheckedWhen; protocols?: Protocol[] } = { when: w }
  if (protocols) result.protocols = protocols
  return result
}

function checkSemantics(doc: FlowPolicyT, errors: FieldError[], warnings: FieldError[]): CheckedPolicy {
  const report: Report = (path, message, code = ErrorCodes.semantic) => errors.push({ code, path, message })
  const warn = (path: string, message: string) => warnings.push({ code: ErrorCodes.semantic, path, message })
  if (doc.apiVersion !== API_VERSION || doc.kind !== KIND) report('', `expected ${API_VERSION} ${KIND}`)
  const name = doc.metadata.name
  if (!DNS_SUBDOMAIN.test(name)) {
    report('metadata.name', `${quote(name)} must be a lower-case DNS subdomain (a-z, 0-9, "-", ".")`)
  }
  const spec = doc.spec
  const match = spec.match ? checkMatchFields(spec.match, 'spec.match', report) : {}
  const rules: CheckedRule[] = []
  const ruleNames = new Map<string, number>()
  let usesAuthorizer = false
  ;(spec.rules ?? []).forEach((rule, i) => {
    const base = `spec.rules[${i}]`
    const rp = (p: string, m: string, code?: FieldError['code']) => report(`${base}.${p}`, m, code)
    if (!DNS_LABEL.test(rule.name)) rp('name', `${quote(rule.name)} must be a DNS label (a-z, 0-9, "-")`)
    const dup = ruleNames.get(rule.name)
    if (dup !== undefined) {
      rp(
        'name',
        `${quote(rule.name)} is also the name of spec.rules[${dup}]; rule names are unique`,
        ErrorCodes.duplicate,
      )
    } else ruleNames.set(rule.name, i)
    const { when, protocols } = rule.when
      ? checkWhen(rule.when, `${base}.when`, report, match)
      : { when: {}, protocols: match.protocols }
    const checked: CheckedRule = { name: rule.name, action: rule.action, when }
    const l7 = rule.when && L7_KEYS.some((k) => rule.when?.[k] !== undefined)

    if (rule.action === 'Authorize') {
      usesAuthorizer = true
      if (!spec.authorizer) rp('action', 'Authorize needs spec.authorizer (the webhook to ask)')
    }
    if (rule.action === 'Inspect' && protocols?.some((p) => p !== 'TCP')) {
      rp(
        'action',
        `Inspect terminates TCP, but the rule also matches ${protocols.filter((p) => p !== 'TCP').join(', ')}`,
      )
    }
    if (rule.http) {
      if (rule.action !== 'Inspect')
        rp('http', `HTTP hooks run only on intercepted flows: use action Inspect, not ${rule.action}`)
      for (const hook of ['onRequest', 'onResponse'] as const) {
        const src = rule.http[hook]
        if (src === undefined) continue
        const r = checkHookScript(src, hook)
        if (!r.ok) rp(`http.${hook}`, r.message, ErrorCodes.script)
      }
      if (rule.http.onRequest === undefined && rule.http.onResponse === undefined) {
        rp('http', 'set onRequest, onResponse or both')
      }
      checked.http = { ...rule.http }
    }
    if (rule.tcpProxy) {
      if (rule.action !== 'Allow')
        rp('tcpProxy', `tcpProxy relays allowed flows: use action Allow, not ${rule.action}`)
      if (protocols?.some((p) => p !== 'TCP')) {
        rp(
          'tcpProxy',
          `tcpProxy terminates TCP, but the rule also matches ${protocols.filter((p) => p !== 'TCP').join(', ')}`,
        )
      }
      checked.tcpProxy = true
    }
    if (rule.packet) {
      const pk = rule.packet
      if (rule.action !== 'Allow')
        rp('packet', `packet rules apply to flows that are allowed: use action Allow, not ${rule.action}`)
      if (!protocols || protocols.some((p) => !PACKET_PROTOCOLS.includes(p))) {
        rp(
          'packet',
          'packet rules need when.protocols (or spec.match.protocols) limited to UDP, ICMP and ICMPv6: rewriting TCP payloads would corrupt streams',
        )
      }
      if (l7) rp('packet', 'packet rules cannot be combined with L7 conditions')
      if (!pk.dropIfContains && !pk.replace && pk.dropEveryNth === undefined) {
        rp('packet', 'set dropIfContains, replace or dropEveryNth')
      }
      pk.replace?.forEach((r, j) => {
        if (r.from === r.to) rp(`packet.replace[${j}]`, `replacing ${quote(r.from)} with itself does nothing`)
      })
      checked.packet = pk
    }
    rules.push(checked)
  })
  if (spec.authorizer) {
    const a = spec.authorizer
    let url: URL | undefined
    try {
      url = new URL(a.url)
    } catch {
      report('spec.authorizer.url', `${quote(a.url)} is not a URL`)
    }
    if (url && url.protocol !== 'https:') {
      report('spec.authorizer.url', `${quote(a.url)} must use https: flow facts are not sent in clear text`)
    }
    if (url && (url.username || url.password)) {
      report('spec.authorizer.url', 'credentials do not belong in the URL')
    }
    if (!usesAuthorizer)
      warn('spec.authorizer', 'no rule has action Authorize, so the authorizer is never called')
  }
  if (spec.har?.enabled) {
    // HAR sees only what the HTTP layer serves: requests of flows the appliance terminates and reads.
    const readsRequests = rules.some(
      (r) => r.action === 'Inspect' || r.when.methods || r.when.paths || r.when.headers,
    )
    if (!readsRequests) {
      warn(
        'spec.har',
        'no rule has action Inspect or reads methods, paths or headers: HAR records only exchanges of flows the appliance intercepts',
      )
    }
    spec.har.redactHeaders?.forEach((h, i) => {
      if (!HTTP_TOKEN.test(h)) report(`spec.har.redactHeaders[${i}]`, `${quote(h)} is not a header name`)
    })
  }
  if (!spec.rules?.length && spec.defaultAction === undefined) {
    warn('spec', 'no rules and no defaultAction: this policy never decides anything')
  }

  const policy: CheckedPolicy = {
    name,
    priority: spec.priority ?? 1000,
    mode: spec.mode ?? 'Enforce',
    match,
    rules,
  }
  if (doc.metadata.generation !== undefined) policy.generation = doc.metadata.generation
  if (spec.authorizer) {
    policy.authorizer = {
      url: spec.authorizer.url,
      timeoutMs: spec.authorizer.timeoutMs ?? 200,
      onError: spec.authorizer.onError ?? 'Deny',
      cacheSeconds: spec.authorizer.cacheSeconds ?? 30,
    }
  }
  if (spec.har?.enabled) {
    policy.har = {
      maxBodyBytes: spec.har.maxBodyBytes ?? 65_536,
      redactHeaders: [...new Set((spec.har.redactHeaders ?? []).map((h) => h.toLowerCase()))],
    }
  }
  if (spec.defaultAction) policy.defaultAction = spec.defaultAction
  return policy
}
