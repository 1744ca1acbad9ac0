// The decision engine over a compiled bundle. Each dimension (endpoint, protocol, source, destination,
// port, SNI, Host, method, path) maps a flow's fact to the set of entries that accept it; the first entry
// in every set — the lowest bit of their AND — decides. Headers are rare and checked per candidate.
//
// Facts not known yet (say the SNI before the ClientHello) accept every entry; if the entry that would
// decide reads such a fact, the decision comes back `pending` with the facts it needs, so the data plane
// knows to peek at the ClientHello or the request (FLOWPOLICY.md: "wait with a bounded timeout").

import type { DefaultAction, RuleAction } from '../schema.ts'
import type { CheckedPolicy } from '../validate.ts'
import { type Bits, BitsBuilder, BitsPool } from './bits.ts'
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
  private readonly all: Bits
  private readonly protoAny: Bits
  private readonly byProto: (Bits | undefined)[]
  private readonly endpointAny: Bits
  private readonly byEndpoint: Map<string, Bits>
  private readonly src4: PrefixTrie
  private readonly src6: PrefixTrie
  private readonly dst4: PrefixTrie
  private readonly dst6: PrefixTrie
  private readonly ports: PortTable
  private readonly sni: HostIndex
  private readonly hosts: HostIndex
  private readonly methodAny: Bits
  private readonly byMethod: Map<string, Bits>
  private readonly paths: PathIndex
  private readonly summaryWords: number
  // Scratch for the scan, reused so a decision allocates only its result.
  private readonly dims: Bits[] = new Array(9)

  constructor(policies: readonly CheckedPolicy[], fleetDefault: DefaultAction = 'Allow') {
    const entries = buildEntries(policies)
    this.entries = entries
    this.fleetDefault = fleetDefault
    const n = entries.length
    const pool = new BitsPool()
    const anyOf = (constrained: (e: Entry) => boolean) => {
      const b = new BitsBuilder(n)
      for (const e of entries) if (!constrained(e)) b.set(e.index)
      return b.words
    }
    const allB = new BitsBuilder(n)
    for (let i = 0; i < n; i++) allB.set(i)
    this.all = pool.freeze(allB)
    this.summaryWords = this.all.summary.length

    const protoFree = anyOf((e) => !!e.protocols)
    this.protoAny = pool.freeze(protoFree)
    this.byProto = new Array(256)
    for (const e of entries) {
      for (const p of e.protocols ?? []) {
        const cur = this.byProto[p]
        this.byProto[p] = pool.freeze(new BitsBuilder(n, cur ? cur.words : protoFree).set(e.index))
      }
    }

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
  }

  decide(f: FlowFacts): Decision {
    const d = this.dims
    d[0] = this.byEndpoint.get(f.endpoint) ?? this.endpointAny
    d[1] = this.byProto[f.protocol] ?? this.protoAny
    d[2] = (f.family === 4 ? this.src4 : this.src6).lookup(f.src)
    d[3] = (f.family === 4 ? this.dst4 : this.dst6).lookup(f.dst)
    d[4] = hasPorts(f.protocol) ? this.ports.lookup(f.dstPort) : this.ports.none
    d[5] =
      f.sni === undefined
        ? this.all
        : f.sni === null
          ? this.sni.unconstrained
          : this.sni.lookup(normalizeHost(f.sni))
    d[6] =
      f.host === undefined
        ? this.all
        : f.host === null
          ? this.hosts.unconstrained
          : this.hosts.lookup(normalizeHost(f.host))
    d[7] =
      f.method === undefined
        ? this.all
        : f.method === null
          ? this.methodAny
          : (this.byMethod.get(f.method) ?? this.methodAny)
    d[8] =
      f.path === undefined ? this.all : f.path === null ? this.paths.unconstrained : this.paths.lookup(f.path)
    const unknown = needsOf(f)

    const [a, b, c, e, g, h, i, j, k] = d as [Bits, Bits, Bits, Bits, Bits, Bits, Bits, Bits, Bits]
    const entries = this.entries
    let audit: Entry | undefined
    for (let sw = 0; sw < this.summaryWords; sw++) {
      let s =
        a.summary[sw]! &
        b.summary[sw]! &
        c.summary[sw]! &
        e.summary[sw]! &
        g.summary[sw]! &
        h.summary[sw]! &
        i.summary[sw]! &
        j.summary[sw]! &
        k.summary[sw]!
      while (s !== 0) {
        const sl = s & -s
        s ^= sl
        const w = (sw << 5) | (31 - Math.clz32(sl))
        let x =
          a.words[w]! &
          b.words[w]! &
          c.words[w]! &
          e.words[w]! &
          g.words[w]! &
          h.words[w]! &
          i.words[w]! &
          j.words[w]! &
          k.words[w]!
        while (x !== 0) {
          const xl = x & -x
          x ^= xl
          const entry = entries[(w << 5) | (31 - Math.clz32(xl))]!
          if (
            entry.headers &&
            f.headers !== undefined &&
            (f.headers === null || !headersMatch(entry, f.headers))
          ) {
            continue
          }
          if (entry.mode === 'Audit') {
            audit ??= entry
            continue
          }
          return this.result(entry, audit, unknown)
        }
      }
    }
    return this.result(undefined, audit, unknown)
  }

  private result(entry: Entry | undefined, audit: Entry | undefined, unknown: number): Decision {
    const needs = ((entry?.l7mask ?? 0) | (audit?.l7mask ?? 0)) & unknown
    const out: Decision = {
      kind: needs ? 'pending' : 'final',
      action: entry ? entry.action : this.fleetDefault,
      needs,
    }
    if (entry) out.entry = entry
    if (audit) out.audit = audit
    return out
  }
}

export { Need }
