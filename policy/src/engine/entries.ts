// Flattens ordered policies into the ordered list of entries the matchers index: each rule of each
// policy, then the policy's defaultAction if it has one. The first entry whose conditions hold decides,
// which is exactly "first policy that decides, first rule that matches" (FLOWPOLICY.md).
import { type Cidr, intersectCidrs } from '../cidr.ts'
import type { HostPattern } from '../hostnames.ts'
import { intersectRanges, type PortRange } from '../ports.ts'
import type { AuthorizerT, Mode, PacketRulesT, Protocol, RuleAction } from '../schema.ts'
import type { CheckedHar, CheckedHeader, CheckedPolicy, CheckedRule, PathPattern } from '../validate.ts'
import { Need, PROTOCOL_NUMBERS } from './facts.ts'

export interface PolicyRef {
  index: number
  name: string
  priority: number
  mode: Mode
  generation?: number
  authorizer?: Required<AuthorizerT>
  /** HAR export of the exchanges this policy decides (spec.har) */
  har?: CheckedHar
}

export interface Entry {
  index: number
  policy: PolicyRef
  /** undefined: the policy's defaultAction */
  rule?: CheckedRule
  action: RuleAction
  mode: Mode
  // effective conditions (policy match ∩ rule when); undefined = unconstrained
  endpoints?: string[]
  sources?: Cidr[]
  destinations?: Cidr[]
  /** IP protocol numbers */
  protocols?: number[]
  ports?: PortRange[]
  sni?: HostPattern[]
  hosts?: HostPattern[]
  methods?: string[]
  paths?: PathPattern[]
  headers?: CheckedHeader[]
  /** which L7 facts this entry's conditions read (Need bits) */
  l7mask: number
  packet?: PacketRulesT
  http?: { onRequest?: string; onResponse?: string }
  /** relay through the appliance's TCP stack (Allow only) */
  tcpProxy?: boolean
}

function intersect<T>(a: T[] | undefined, b: T[] | undefined): T[] | undefined {
  if (!a) return b
  if (!b) return a
  return a.filter((x) => b.includes(x))
}

const protoNumbers = (p: Protocol[] | undefined) => p?.map((x) => PROTOCOL_NUMBERS[x])

export function buildEntries(policies: readonly CheckedPolicy[]): Entry[] {
  const entries: Entry[] = []
  policies.forEach((p, pi) => {
    const ref: PolicyRef = { index: pi, name: p.name, priority: p.priority, mode: p.mode }
    if (p.generation !== undefined) ref.generation = p.generation
    if (p.authorizer) ref.authorizer = p.authorizer
    if (p.har) ref.har = p.har
    const add = (rule: CheckedRule | undefined, action: RuleAction) => {
      const w = rule?.when ?? {}
      const e: Entry = { index: entries.length, policy: ref, action, mode: p.mode, l7mask: 0 }
      if (rule) e.rule = rule
      const endpoints = intersect(p.match.endpoints, w.endpoints)
      const sources = intersectCidrs(p.match.sources, w.sources)
      const destinations = intersectCidrs(p.match.destinations, w.destinations)
      let protocols = intersect(p.match.protocols, w.protocols)
      const ports = intersectRanges(p.match.ports, w.ports)
      if (w.sni) {
        e.sni = w.sni
        e.l7mask |= Need.sni
      }
      if (w.hosts) {
        e.hosts = w.hosts
        e.l7mask |= Need.host
      }
      if (w.methods) {
        e.methods = w.methods
        e.l7mask |= Need.method
      }
      if (w.paths) {
        e.paths = w.paths
        e.l7mask |= Need.path
      }
      if (w.headers) {
        e.headers = w.headers
        e.l7mask |= Need.headers
      }
      // L7 conditions exist only on TCP; ports only on TCP and UDP.
      if (e.l7mask) protocols = intersect(protocols, ['TCP'])
      if (ports) protocols = intersect(protocols, ['TCP', 'UDP'])
      // A TCP relay applies to TCP flows only.
      if (rule?.tcpProxy) {
        e.tcpProxy = true
        protocols = intersect(protocols, ['TCP'])
      }
      const empty = [endpoints, sources, destinations, protocols, ports].some((x) => x?.length === 0)
      if (empty) return // can never match; the validator reports these
      if (endpoints) e.endpoints = endpoints
      if (sources) e.sources = sources
      if (destinations) e.destinations = destinations
      const pn = protoNumbers(protocols)
      if (pn) e.protocols = pn
      if (ports) e.ports = ports
      if (rule?.packet) e.packet = rule.packet
      if (rule?.http) e.http = rule.http
      entries.push(e)
    }
    for (const r of p.rules) add(r, r.action)
    if (p.defaultAction) add(undefined, p.defaultAction)
  })
  return entries
}
