// The decision engine over a compiled bundle. Each dimension (endpoint, protocol, source, destination,
// port, SNI, Host, method, path) maps a flow's fact to the set of entries that accept it; the first entry
// in every set — the lowest bit of their AND — decides. Headers are rare and checked per candidate.
//
// Facts not known yet (say the SNI before the ClientHello) accept every entry; if the entry that would
// decide reads such a fact, the decision comes back `pending` with the facts it needs, so the data plane
// knows to peek at the ClientHello or the request (FLOWPOLICY.md: "wait with a bounded timeout").

import type { DefaultAction, RuleAction } from '../schema.ts'
import type { CheckedPolicy } from '../validate.ts'
import { BitsBuilder, BitsPool, type BitsRef } from './bits.ts'
import { buildEntries, type Entry } from './entries.ts'
import { type FlowFacts, hasPorts, Need, needsOf, normalizeHost } from './facts.ts'
import { HostIndex } from './host-index.ts'
import { PathIndex } from './path-index.ts'
import { PortTable } from './port-table.ts'
import { PrefixTrie } from './prefix-trie.ts'

export interface Decision {
  /** final: `action` stands; pending: the facts in `needs` (Need bits) must be learnt first */
  kind: 'final' | 'pending'
  /** the enforced action: the deciding Enforce entry's, or the fleet default */
  action: RuleAction
  /** the Enforce entry that decided; undefined when the fleet default applied */
  entry?: Entry
  /** the first Audit entry that matched before the decision: what that policy would have done */
  audit?: Entry
  needs: number
  /**
   * pending only: interception may be needed once the missing facts are known — the deciding entry, or one
   * after it before the first entry that needs no missing fact, is Inspect or reads the method, path or
   * headers (which a TLS flow shows only when intercepted). Such a flow is terminated from its SYN, so
   * that its first bytes can be read and its TLS intercepted if the decision says so (ARCHITECTURE.md
   * item 6: "terminate only flows that a rule may Inspect").
   */
  mayInspect?: boolean
}

/** Facts only an intercepted TLS flow reveals (its request); the Host is stood in for by the SNI. */
const REQUEST_FACTS = Need.method | Need.path | Need.headers

/** Whether deciding by entry e, with `unknown` facts missing, may need the flow intercepted. */
export function needsInterception(e: Entry, unknown: number): boolean {
  return e.action === 'Inspect' || (e.l7mask & REQUEST_FACTS & unknown) !== 0
}

export function headersMatch(e: Entry, headers: ReadonlyMap<string, readonly string[]>): boolean {
  for (const h of e.headers!) {
    const got = headers.get(h.name)
    if (!got) return false
    if (h.values && !got.some((v) => h.values!.includes(v))) return false
  }
  return true
}

export class PolicyEngine {
  readonly entries: readonly Entry[]
  readonly fleetDefault: DefaultAction
  /** every frozen set: [summary | words] at each BitsRef */
  private readonly arena: Uint32Array
  private readonly summaryWords: number
  private readonly all: BitsRef
  private readonly protoAny: BitsRef
  private readonly byProto: Int32Array
  private readonly endpointAny: BitsRef
  private readonly byEndpoint: Map<string, BitsRef>
  private readonly src4: PrefixTrie
  private readonly src6: PrefixTrie
  private readonly dst4: PrefixTrie
  private readonly dst6: PrefixTrie
  private readonly ports: PortTable
  private readonly sni: HostIndex
  private readonly hosts: HostIndex
  private readonly methodAny: BitsRef
  private readonly byMethod: Map<string, BitsRef>
  private readonly paths: PathIndex
  /** some Enforce entry may need interception: only then is a pending decision's look-ahead worth its cost */
  private readonly intercepts: boolean

  constructor(policies: readonly CheckedPolicy[], fleetDefault: DefaultAction = 'Allow') {
    const entries = buildEntries(policies)
    this.entries = entries
    this.fleetDefault = fleetDefault
    this.intercepts = entries.some((e) => e.mode === 'Enforce' && needsInterception(e, -1))
    const n = entries.length
    const pool = new BitsPool(n)
    const anyOf = (constrained: (e: Entry) => boolean) => {
      const b = new BitsBuilder(n)
      for (const e of entries) if (!constrained(e)) b.set(e.index)
      return b.words
    }
    const allB = new BitsBuilder(n)
    for (let i = 0; i < n; i++) allB.set(i)
    this.all = pool.freeze(allB)

    const protoFree = anyOf((e) => !!e.protocols)
    this.protoAny = pool.freeze(protoFree)
    const protoOwn = new Map<number, BitsBuilder>()
    for (const e of entries) {
      for (const p of e.protocols ?? [])
        (protoOwn.get(p) ?? protoOwn.set(p, new BitsBuilder(n, protoFree)).get(p)!).set(e.index)
    }
    this.byProto = new Int32Array(256).fill(this.protoAny)
    for (const [p, b] of protoOwn) this.byProto[p] = pool.freeze(b)

    const epFree = anyOf((e) => !!e.endpoints)
    this.endpointAny = pool.freeze(epFree)
    const epOwn = new Map<string, BitsBuilder>()
    for (const e of entries) {
      for (const id of e.endpoints ?? []) {
        ;(epOwn.get(id) ?? epOwn.set(id, new BitsBuilder(n, epFree)).get(id)!).set(e.index)
      }
    }
    this.byEndpoint = new Map([...epOwn].map(([k, b]) => [k, pool.freeze(b)]))

    const cidrItems = (key: 'sources' | 'destinations') =>
      entries.flatMap((e) => (e[key] ? [{ entry: e.index, cidrs: e[key] }] : []))
    const srcFree = anyOf((e) => !!e.sources)
    const dstFree = anyOf((e) => !!e.destinations)
    this.src4 = new PrefixTrie(4, n, cidrItems('sources'), srcFree, pool)
    this.src6 = new PrefixTrie(6, n, cidrItems('sources'), srcFree, pool)
    this.dst4 = new PrefixTrie(4, n, cidrItems('destinations'), dstFree, pool)
    this.dst6 = new PrefixTrie(6, n, cidrItems('destinations'), dstFree, pool)

    this.ports = new PortTable(
      n,
      entries.flatMap((e) => (e.ports ? [{ entry: e.index, ports: e.ports }] : [])),
      anyOf((e) => !!e.ports),
      pool,
    )
    const hostItems = (key: 'sni' | 'hosts') =>
      entries.flatMap((e) => (e[key] ? [{ entry: e.index, patterns: e[key] }] : []))
    this.sni = new HostIndex(
      n,
      hostItems('sni'),
      anyOf((e) => !!e.sni),
      pool,
    )
    this.hosts = new HostIndex(
      n,
      hostItems('hosts'),
      anyOf((e) => !!e.hosts),
      pool,
    )

    const methodFree = anyOf((e) => !!e.methods)
    this.methodAny = pool.freeze(methodFree)
    const mOwn = new Map<string, BitsBuilder>()
    for (const e of entries) {
      for (const m of e.methods ?? [])
        (mOwn.get(m) ?? mOwn.set(m, new BitsBuilder(n, methodFree)).get(m)!).set(e.index)
    }
    this.byMethod = new Map([...mOwn].map(([k, b]) => [k, pool.freeze(b)]))
    this.paths = new PathIndex(
      n,
      entries.flatMap((e) => (e.paths ? [{ entry: e.index, patterns: e.paths }] : [])),
      anyOf((e) => !!e.paths),
      pool,
    )
    this.summaryWords = pool.summaryCount
    this.arena = pool.finish()
  }

  /** Distinct sets stored and the arena's size, for metrics and the benchmark. */
  get footprint(): { sets: number; bytes: number } {
    const stride = this.summaryWords + Math.max(1, Math.ceil(this.entries.length / 32))
    return { sets: this.arena.length / stride, bytes: this.arena.byteLength }
  }

  decide(f: FlowFacts): Decision {
    const v4 = f.family === 4
    const a = this.byEndpoint.get(f.endpoint) ?? this.endpointAny
    const b = this.byProto[f.protocol & 0xff]!
    const c = (v4 ? this.src4 : this.src6).lookup(f.src)
    const e = (v4 ? this.dst4 : this.dst6).lookup(f.dst)
    const g = hasPorts(f.protocol) ? this.ports.lookup(f.dstPort) : this.ports.none
    const sni = f.sni
    const h =
      sni === undefined
        ? this.all
        : sni === null
          ? this.sni.unconstrained
          : this.sni.lookup(normalizeHost(sni))
    const host = f.host
    const i =
      host === undefined
        ? this.all
        : host === null
          ? this.hosts.unconstrained
          : this.hosts.lookup(normalizeHost(host))
    const method = f.method
    const j =
      method === undefined
        ? this.all
        : method === null
          ? this.methodAny
          : (this.byMethod.get(method) ?? this.methodAny)
    const path = f.path
    const k =
      path === undefined ? this.all : path === null ? this.paths.unconstrained : this.paths.lookup(path)
    const unknown = needsOf(f)

    const m = this.arena
    const S = this.summaryWords
    const entries = this.entries
    let audit: Entry | undefined
    let decided: Entry | undefined
    let mayInspect = false
    // Lowest set bit first: entries are numbered in evaluation order, so the first hit decides.
    scan: for (let sw = 0; sw < S; sw++) {
      let s =
        m[a + sw]! &
        m[b + sw]! &
        m[c + sw]! &
        m[e + sw]! &
        m[g + sw]! &
        m[h + sw]! &
        m[i + sw]! &
        m[j + sw]! &
        m[k + sw]!
      while (s !== 0) {
        const sl = s & -s
        s ^= sl
        const w = S + ((sw << 5) | (31 - Math.clz32(sl)))
        let x =
          m[a + w]! &
          m[b + w]! &
          m[c + w]! &
          m[e + w]! &
          m[g + w]! &
          m[h + w]! &
          m[i + w]! &
          m[j + w]! &
          m[k + w]!
        while (x !== 0) {
          const xl = x & -x
          x ^= xl
          const entry = entries[((w - S) << 5) | (31 - Math.clz32(xl))]!
          if (
            entry.headers &&
            f.headers !== undefined &&
            (f.headers === null || !headersMatch(entry, f.headers))
          ) {
            continue
          }
          if (entry.mode === 'Audit') {
            if (!decided) audit ??= entry
            continue
          }
          if (decided) {
            // Looking ahead past a pending decision: could an entry that needs interception still decide?
            if (needsInterception(entry, unknown)) {
              mayInspect = true
              break scan
            }
            if ((entry.l7mask & unknown) === 0) break scan
            continue
          }
          if ((entry.l7mask & unknown) === 0 || !this.intercepts)
            return this.result(entry, audit, unknown, false)
          if (needsInterception(entry, unknown)) return this.result(entry, audit, unknown, true)
          decided = entry
        }
      }
    }
    return this.result(decided, audit, unknown, mayInspect)
  }

  private result(
    entry: Entry | undefined,
    audit: Entry | undefined,
    unknown: number,
    mayInspect: boolean,
  ): Decision {
    const needs = ((entry?.l7mask ?? 0) | (audit?.l7mask ?? 0)) & unknown
    const out: Decision = {
      kind: needs ? 'pending' : 'final',
      action: entry ? entry.action : this.fleetDefault,
      needs,
    }
    if (entry) out.entry = entry
    if (audit) out.audit = audit
    if (mayInspect && (entry!.l7mask & unknown) !== 0) out.mayInspect = true
    return out
  }
}

export { Need }
