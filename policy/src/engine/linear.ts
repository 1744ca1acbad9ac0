// The obvious matcher: every entry in order, every condition checked directly. It is the benchmark's
// baseline and the oracle the indexed engine is tested against; keep it simple rather than fast.
import { cidrContainsAddress } from '../cidr.ts'
import { hostPatternMatches } from '../hostnames.ts'
import type { DefaultAction } from '../schema.ts'
import type { Decision } from './engine.ts'
import { headersMatch, needsInterception } from './engine.ts'
import type { Entry } from './entries.ts'
import { type FlowFacts, hasPorts, Need, needsOf, normalizeHost } from './facts.ts'

export function entryMatches(e: Entry, f: FlowFacts): boolean {
  if (e.endpoints && !e.endpoints.includes(f.endpoint)) return false
  if (e.protocols && !e.protocols.includes(f.protocol)) return false
  if (e.sources && !e.sources.some((c) => cidrContainsAddress(c, f.family, f.src))) return false
  if (e.destinations && !e.destinations.some((c) => cidrContainsAddress(c, f.family, f.dst))) return false
  if (e.ports && !(hasPorts(f.protocol) && e.ports.some(([lo, hi]) => f.dstPort >= lo && f.dstPort <= hi)))
    return false
  // Unknown L7 facts (undefined) accept, as in the indexed engine; null means known absent.
  if (e.sni && f.sni !== undefined) {
    if (f.sni === null) return false
    const name = normalizeHost(f.sni)
    if (!e.sni.some((p) => hostPatternMatches(p, name))) return false
  }
  if (e.hosts && f.host !== undefined) {
    if (f.host === null) return false
    const name = normalizeHost(f.host)
    if (!e.hosts.some((p) => hostPatternMatches(p, name))) return false
  }
  if (e.methods && f.method !== undefined && (f.method === null || !e.methods.includes(f.method)))
    return false
  if (e.paths && f.path !== undefined) {
    const path = f.path
    if (path === null) return false
    if (!e.paths.some((p) => (p.kind === 'exact' ? p.path === path : path.startsWith(p.prefix)))) return false
  }
  if (e.headers && f.headers !== undefined && (f.headers === null || !headersMatch(e, f.headers)))
    return false
  return true
}

export function decideLinear(entries: readonly Entry[], fleetDefault: DefaultAction, f: FlowFacts): Decision {
  const unknown = needsOf(f)
  let audit: Entry | undefined
  for (const e of entries) {
    if (!entryMatches(e, f)) continue
    if (e.mode === 'Audit') {
      audit ??= e
      continue
    }
    const needs = (e.l7mask | (audit?.l7mask ?? 0)) & unknown
    const out: Decision = { kind: needs ? 'pending' : 'final', action: e.action, entry: e, needs }
    if (audit) out.audit = audit
    if ((e.l7mask & unknown) !== 0 && mayInspectFrom(entries, entries.indexOf(e), f, unknown))
      out.mayInspect = true
    return out
  }
  const needs = (audit?.l7mask ?? 0) & unknown
  const out: Decision = { kind: needs ? 'pending' : 'final', action: fleetDefault, needs }
  if (audit) out.audit = audit
  return out
}

export { Need }

/** Whether an entry needing interception could decide, from `start` on, once the unknown facts are known. */
function mayInspectFrom(entries: readonly Entry[], start: number, f: FlowFacts, unknown: number): boolean {
  for (let k = start; k < entries.length; k++) {
    const e = entries[k]!
    if (e.mode === 'Audit' || !entryMatches(e, f)) continue
    if (needsInterception(e, unknown)) return true
    if ((e.l7mask & unknown) === 0) return false
  }
  return false
}
