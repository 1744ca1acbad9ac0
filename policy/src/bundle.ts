// The ConfigBundle: every accepted FlowPolicy, normalized and ordered, as one versioned document that
// the operator pushes to the appliances. Deterministic: the same policies give the same bytes and the
// same version (a content hash), whatever order they were listed in.
import { createHash } from 'node:crypto'
import { formatCidr } from './cidr.ts'
import { ErrorCodes, type FieldError, FlowgateError } from './errors.ts'
import { formatRange } from './ports.ts'
import { API_VERSION, DEFAULT_ACTIONS, type DefaultAction, type FlowPolicySpecT, KIND } from './schema.ts'
import {
  type CheckedMatch,
  type CheckedPolicy,
  type CheckedWhen,
  type PolicyValidation,
  validateFlowPolicies,
  validateFlowPolicy,
} from './validate.ts'

export const BUNDLE_API_VERSION = 'flowgate.io/bundle/v1'

export interface BundlePolicy {
  name: string
  generation?: number
  spec: FlowPolicySpecT
}

export interface ConfigBundle {
  apiVersion: typeof BUNDLE_API_VERSION
  /** sha256 of the canonical JSON of fleetDefault and policies, first 16 hex digits */
  version: string
  /** what flows no policy decides get */
  fleetDefault: DefaultAction
  policies: BundlePolicy[]
}

export interface CompileOptions {
  fleetDefault?: DefaultAction
}

export interface CompileResult {
  bundle: ConfigBundle
  /** one per input document, in input order */
  results: PolicyValidation[]
  /** the validated policies in evaluation order */
  policies: CheckedPolicy[]
}

/** Canonical JSON: object keys sorted, no insignificant white space. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    const sorted: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
    return sorted
  })
}

export function bundleVersion(fleetDefault: DefaultAction, policies: BundlePolicy[]): string {
  return createHash('sha256').update(canonicalJson({ fleetDefault, policies })).digest('hex').slice(0, 16)
}

export function comparePolicies(
  a: { priority: number; name: string },
  b: { priority: number; name: string },
) {
  return a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

function renderMatch(m: CheckedMatch): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (m.endpoints) out.endpoints = [...m.endpoints].sort()
  if (m.sources) out.sources = m.sources.map(formatCidr)
  if (m.destinations) out.destinations = m.destinations.map(formatCidr)
  if (m.protocols) out.protocols = [...m.protocols]
  if (m.ports) out.ports = m.ports.map(formatRange)
  return out
}

function renderWhen(w: CheckedWhen): Record<string, unknown> {
  const out = renderMatch(w)
  const host = (p: { kind: 'exact'; name: string } | { kind: 'suffix'; suffix: string }) =>
    p.kind === 'exact' ? p.name : `*.${p.suffix}`
  if (w.sni) out.sni = w.sni.map(host)
  if (w.hosts) out.hosts = w.hosts.map(host)
  if (w.methods) out.methods = [...w.methods]
  if (w.paths) out.paths = w.paths.map((p) => (p.kind === 'exact' ? p.path : `${p.prefix}*`))
  if (w.headers) out.headers = w.headers.map((h) => ({ ...h }))
  return out
}

/** The normalized spec: defaults filled in, addresses and ports in canonical form. */
export function renderSpec(p: CheckedPolicy): FlowPolicySpecT {
  const spec: Record<string, unknown> = { priority: p.priority, mode: p.mode }
  const match = renderMatch(p.match)
  if (Object.keys(match).length) spec.match = match
  spec.rules = p.rules.map((r) => {
    const rule: Record<string, unknown> = { name: r.name, action: r.action }
    const when = renderWhen(r.when)
    if (Object.keys(when).length) rule.when = when
    if (r.http) rule.http = r.http
    if (r.packet) rule.packet = r.packet
    if (r.tcpProxy) rule.tcpProxy = true
    return rule
  })
  if (p.authorizer) spec.authorizer = p.authorizer
  if (p.har) {
    spec.har = {
      enabled: true,
      maxBodyBytes: p.har.maxBodyBytes,
      ...(p.har.redactHeaders.length ? { redactHeaders: p.har.redactHeaders } : {}),
    }
  }
  if (p.defaultAction) spec.defaultAction = p.defaultAction
  return spec as FlowPolicySpecT
}

export function bundleFromChecked(policies: CheckedPolicy[], options: CompileOptions = {}): ConfigBundle {
  const fleetDefault = options.fleetDefault ?? 'Allow'
  const ordered = [...policies].sort(comparePolicies)
  const out: BundlePolicy[] = ordered.map((p) => {
    const bp: BundlePolicy = { name: p.name, spec: renderSpec(p) }
    if (p.generation !== undefined) bp.generation = p.generation
    return bp
  })
  return {
    apiVersion: BUNDLE_API_VERSION,
    version: bundleVersion(fleetDefault, out),
    fleetDefault,
    policies: out,
  }
}

/**
 * Compiles FlowPolicy documents into a bundle. Invalid documents are left out (their errors are in
 * `results`), so one bad policy never blocks the others; callers that want all-or-nothing check
 * `results`.
 */
export function compile(docs: unknown[], options: CompileOptions = {}): CompileResult {
  const results = validateFlowPolicies(docs)
  const policies = results.flatMap((r) => (r.policy ? [r.policy] : []))
  const bundle = bundleFromChecked(policies, options)
  return { bundle, results, policies: [...policies].sort(comparePolicies) }
}

/**
 * Checks a bundle received from elsewhere (the admin API, a state file): shape, version hash, order and
 * every policy revalidated. Returns the policies ready for the engine, or throws with every problem.
 */
export function verifyBundle(value: unknown): { bundle: ConfigBundle; policies: CheckedPolicy[] } {
  const errors: FieldError[] = []
  const fail = (path: string, message: string) => errors.push({ code: ErrorCodes.bundle, path, message })
  const b = value as Partial<ConfigBundle> | null
  if (b === null || typeof b !== 'object')
    throw new FlowgateError(ErrorCodes.bundle, 'bundle must be an object')
  if (b.apiVersion !== BUNDLE_API_VERSION) fail('apiVersion', `must be ${BUNDLE_API_VERSION}`)
  if (!DEFAULT_ACTIONS.includes(b.fleetDefault as DefaultAction)) {
    fail('fleetDefault', `must be one of ${DEFAULT_ACTIONS.join(', ')}`)
  }
  if (!Array.isArray(b.policies)) fail('policies', 'must be a list')
  if (typeof b.version !== 'string') fail('version', 'must be a string')
  if (errors.length) throw new FlowgateError(ErrorCodes.bundle, 'invalid bundle', errors)
  const policies: CheckedPolicy[] = []
  b.policies!.forEach((bp, i) => {
    const doc = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: bp?.name, ...(bp?.generation !== undefined ? { generation: bp.generation } : {}) },
      spec: bp?.spec,
    }
    const r = validateFlowPolicy(doc)
    for (const e of r.errors) fail(`policies[${i}]${e.path ? `.${e.path}` : ''}`, e.message)
    if (r.policy) policies.push(r.policy)
  })
  if (!errors.length) {
    const expected = bundleVersion(b.fleetDefault!, b.policies!)
    if (expected !== b.version) fail('version', `${b.version} does not match the content (${expected})`)
    for (let i = 1; i < policies.length; i++) {
      if (comparePolicies(policies[i - 1]!, policies[i]!) >= 0) {
        fail(`policies[${i}]`, 'policies must be ordered by priority, then name, without duplicates')
      }
    }
  }
  if (errors.length) throw new FlowgateError(ErrorCodes.bundle, 'invalid bundle', errors)
  return { bundle: b as ConfigBundle, policies }
}
