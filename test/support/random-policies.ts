// Seeded random FlowPolicies and flows, shared by the engine's differential test and the benchmarks.
// Values are drawn from small pools so that random flows actually hit random rules.

import { SeededRandom } from '../../appliance/src/tcp/clock.ts'
import type { FlowFacts } from '../../policy/src/engine/index.ts'

export type Rand = () => number

/** Uniform in [0, 1) from the project's seeded PRNG: same seed, same sequence. */
export function rng(seed: number): Rand {
  const r = new SeededRandom(seed)
  return () => r.float()
}

const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
const some = <T>(r: Rand, xs: readonly T[], max = 3): T[] => {
  const n = 1 + Math.floor(r() * max)
  return [...new Set(Array.from({ length: n }, () => pick(r, xs)))]
}

export const ENDPOINTS = ['vpce-00000000000000001', 'vpce-00000000000000002', 'vpce-0abcdef0123456789']
const V4_CIDRS = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '10.1.2.0/24',
  '10.1.2.3/32',
  '192.168.0.0/16',
  '0.0.0.0/0',
  '203.0.113.0/24',
]
const V6_CIDRS = ['2001:db8::/32', '2001:db8:1::/48', '::/0', 'fd00::/8']
const PORTS = ['22', '53', '80', '443', '8000-8100', '1-1024', '3000']
const HOSTS = ['example.com', '*.example.com', 'a.example.com', '*.a.example.com', 'other.org', '*.org']
const HOST_FACTS = ['example.com', 'a.example.com', 'b.a.example.com', 'other.org', 'x.org', 'nomatch.net']
const PATHS = ['/', '/api/*', '/api/v1', '/admin/*', '/a*']
const PATH_FACTS = ['/', '/api/v1', '/api/v2', '/admin/x', '/about', '/zzz']
const METHODS = ['GET', 'POST', 'PUT']

export function randomPolicies(r: Rand, count: number, maxRules: number): unknown[] {
  const docs: unknown[] = []
  for (let i = 0; i < count; i++) {
    const match: Record<string, unknown> = {}
    if (r() < 0.3) match.endpoints = some(r, ENDPOINTS, 2)
    if (r() < 0.3) match.sources = some(r, r() < 0.7 ? V4_CIDRS : V6_CIDRS)
    if (r() < 0.2) match.protocols = some(r, ['TCP', 'UDP', 'ICMP'] as const, 2)
    const tcpOnly = Array.isArray(match.protocols) && match.protocols.every((p) => p === 'TCP')
    const rules = []
    const n = Math.floor(r() * maxRules)
    for (let j = 0; j < n; j++) {
      const when: Record<string, unknown> = {}
      if (r() < 0.3) when.destinations = some(r, r() < 0.7 ? V4_CIDRS : V6_CIDRS)
      if (r() < 0.4) when.ports = some(r, PORTS)
      const l7 = !match.protocols || tcpOnly
      if (l7 && r() < 0.25) when.sni = some(r, HOSTS)
      if (l7 && r() < 0.25) when.hosts = some(r, HOSTS)
      if (l7 && r() < 0.15) when.methods = some(r, METHODS)
      if (l7 && r() < 0.15) when.paths = some(r, PATHS)
      if (l7 && r() < 0.1) when.headers = [{ name: 'x-t', ...(r() < 0.5 ? { values: ['1'] } : {}) }]
      const actions = l7
        ? (['Allow', 'Deny', 'Reject', 'Inspect'] as const)
        : (['Allow', 'Deny', 'Reject'] as const)
      rules.push({ name: `r${j}`, when, action: pick(r, actions) })
    }
    const spec: Record<string, unknown> = { priority: Math.floor(r() * 5), match, rules }
    if (r() < 0.3) spec.mode = 'Audit'
    if (r() < 0.4) spec.defaultAction = pick(r, ['Allow', 'Deny', 'Reject'] as const)
    docs.push({ apiVersion: 'flowgate.io/v1alpha1', kind: 'FlowPolicy', metadata: { name: `p${i}` }, spec })
  }
  return docs
}

function v4(r: Rand): Uint8Array {
  return pick(r, [
    Uint8Array.of(10, 1, 2, 3),
    Uint8Array.of(10, 1, 2, 4),
    Uint8Array.of(10, 1, 9, 9),
    Uint8Array.of(10, 9, 9, 9),
    Uint8Array.of(192, 168, 1, 1),
    Uint8Array.of(203, 0, 113, 7),
    Uint8Array.of(8, 8, 8, 8),
  ])
}
function v6(r: Rand): Uint8Array {
  const a = new Uint8Array(16)
  const kind = Math.floor(r() * 4)
  if (kind === 0) a.set([0x20, 0x01, 0x0d, 0xb8, 0, 1])
  else if (kind === 1) a.set([0x20, 0x01, 0x0d, 0xb8, 0, 2])
  else if (kind === 2) a.set([0xfd, 0x12])
  else a.set([0x26, 0x00])
  a[15] = Math.floor(r() * 256)
  return a
}

/** A random flow; each L7 fact is unknown, absent or a value, as the data plane would see them. */
export function randomFlow(r: Rand): FlowFacts {
  const family = r() < 0.75 ? 4 : 6
  const protocol = pick(r, [6, 6, 6, 17, 1, 58])
  const fact = <T>(values: readonly T[]): T | null | undefined => {
    const x = r()
    return x < 0.3 ? undefined : x < 0.4 ? null : pick(r, values)
  }
  const f: FlowFacts = {
    endpoint: pick(r, [...ENDPOINTS, 'vpce-0ffffffffffffffff']),
    family,
    src: family === 4 ? v4(r) : v6(r),
    dst: family === 4 ? v4(r) : v6(r),
    protocol,
    dstPort: pick(r, [22, 53, 80, 443, 8050, 3000, 9999, 1024, 1025]),
  }
  if (protocol === 6) {
    f.sni = fact(HOST_FACTS)
    f.host = fact(HOST_FACTS)
    f.method = fact(METHODS)
    f.path = fact(PATH_FACTS)
    const h = r()
    f.headers = h < 0.3 ? undefined : h < 0.5 ? null : new Map([['x-t', [pick(r, ['1', '2'])]]])
  } else {
    f.sni = f.host = f.method = f.path = null
    f.headers = null
  }
  return f
}
