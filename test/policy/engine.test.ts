import test from 'ava'
import { compile } from '../../policy/src/bundle.ts'
import type { Decision } from '../../policy/src/engine/index.ts'
import { decideLinear, type FlowFacts, Need, PolicyEngine } from '../../policy/src/engine/index.ts'
import { randomFlow, randomPolicies, rng } from '../support/random-policies.ts'

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec,
})

function engineFor(docs: unknown[], fleetDefault: 'Allow' | 'Deny' | 'Reject' = 'Allow') {
  const c = compile(docs, { fleetDefault })
  for (const r of c.results) if (!r.ok) throw new Error(JSON.stringify(r.errors))
  return new PolicyEngine(c.policies, fleetDefault)
}

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number))
const flow = (over: Partial<FlowFacts> = {}): FlowFacts => ({
  endpoint: 'vpce-01234567890abcdef',
  family: 4,
  src: v4('10.1.2.3'),
  dst: v4('203.0.113.9'),
  protocol: 6,
  dstPort: 443,
  ...over,
})
const who = (d: Decision) => (d.entry ? `${d.entry.policy.name}/${d.entry.rule?.name ?? 'default'}` : 'fleet')

test('policies run in priority order, then by name; first matching rule wins', (t) => {
  const e = engineFor([
    doc('b-second', { priority: 10, rules: [{ name: 'x', action: 'Deny' }] }),
    doc('a-first', {
      priority: 10,
      rules: [
        { name: 'x', when: { ports: ['443'] }, action: 'Allow' },
        { name: 'y', action: 'Reject' },
      ],
    }),
    doc('z-early', { priority: 5, match: { protocols: ['UDP'] }, rules: [{ name: 'x', action: 'Reject' }] }),
  ])
  t.is(who(e.decide(flow())), 'a-first/x')
  t.is(who(e.decide(flow({ dstPort: 80 }))), 'a-first/y')
  t.is(who(e.decide(flow({ protocol: 17, dstPort: 53 }))), 'z-early/x')
})

test('a policy with no matching rule and no defaultAction lets later policies decide', (t) => {
  const e = engineFor(
    [
      doc('first', { priority: 1, rules: [{ name: 'only-22', when: { ports: ['22'] }, action: 'Deny' }] }),
      doc('second', { priority: 2, match: { ports: ['443'] }, rules: [], defaultAction: 'Reject' }),
    ],
    'Deny',
  )
  t.is(who(e.decide(flow())), 'second/default')
  t.is(e.decide(flow()).action, 'Reject')
  const none = e.decide(flow({ dstPort: 8080 }))
  t.is(who(none), 'fleet')
  t.is(none.action, 'Deny')
})

test('Audit policies are recorded but never decide', (t) => {
  const e = engineFor([
    doc('audit', { priority: 1, mode: 'Audit', rules: [{ name: 'would-deny', action: 'Deny' }] }),
    doc('enforce', { priority: 2, rules: [{ name: 'allow', action: 'Allow' }] }),
  ])
  const d = e.decide(flow())
  t.is(d.action, 'Allow')
  t.is(who(d), 'enforce/allow')
  t.is(d.audit?.rule?.name, 'would-deny')
  t.is(d.audit?.action, 'Deny')
  // An Audit policy after the deciding one is not consulted: it would not have decided either.
  const later = engineFor([
    doc('enforce', { priority: 1, rules: [{ name: 'allow', action: 'Allow' }] }),
    doc('audit', { priority: 2, mode: 'Audit', rules: [{ name: 'would-deny', action: 'Deny' }] }),
  ])
  t.is(later.decide(flow()).audit, undefined)
})

test('SNI rules make a new flow pending until the ClientHello is seen', (t) => {
  const e = engineFor([
    doc('egress', {
      match: { protocols: ['TCP'], ports: ['443'] },
      rules: [{ name: 'aws', when: { sni: ['*.amazonaws.com'] }, action: 'Allow' }],
      defaultAction: 'Reject',
    }),
  ])
  const first = e.decide(flow())
  t.is(first.kind, 'pending')
  t.is(first.needs, Need.sni)
  const ok = e.decide(flow({ sni: 's3.us-east-1.amazonaws.com' }))
  t.is(ok.kind, 'final')
  t.is(ok.action, 'Allow')
  t.is(e.decide(flow({ sni: 'amazonaws.com' })).action, 'Reject', 'a wildcard never matches the bare suffix')
  t.is(e.decide(flow({ sni: 'evilamazonaws.com' })).action, 'Reject')
  t.is(e.decide(flow({ sni: null })).action, 'Reject', 'a ClientHello without SNI')
  t.is(e.decide(flow({ dstPort: 80 })).kind, 'final', 'other ports never wait')
})

test('hosts match case-insensitively without port, exact beats nothing, wildcards nest', (t) => {
  const e = engineFor([
    doc('web', {
      rules: [
        { name: 'exact', when: { hosts: ['www.example.com'] }, action: 'Deny' },
        { name: 'deep', when: { hosts: ['*.a.example.com'] }, action: 'Reject' },
        { name: 'wide', when: { hosts: ['*.example.com'] }, action: 'Allow' },
      ],
      defaultAction: 'Deny',
    }),
  ])
  t.is(who(e.decide(flow({ host: 'WWW.Example.com:8443' }))), 'web/exact')
  t.is(who(e.decide(flow({ host: 'x.a.example.com' }))), 'web/deep')
  t.is(who(e.decide(flow({ host: 'a.example.com' }))), 'web/wide')
  t.is(who(e.decide(flow({ host: 'example.com' }))), 'web/default')
})

test('HTTP method, path prefix and header conditions', (t) => {
  const e = engineFor([
    doc('api', {
      rules: [
        { name: 'admin', when: { paths: ['/admin/*'] }, action: 'Deny' },
        {
          name: 'writes',
          when: { methods: ['POST'], headers: [{ name: 'X-Token', values: ['s3cret'] }] },
          action: 'Allow',
        },
        { name: 'reads', when: { methods: ['GET'], paths: ['/', '/api/*'] }, action: 'Allow' },
      ],
      defaultAction: 'Reject',
    }),
  ])
  const http = (method: string, path: string, headers: [string, string][] = []) =>
    e.decide(
      flow({ sni: null, host: 'h', method, path, headers: new Map(headers.map(([k, v]) => [k, [v]])) }),
    )
  t.is(who(http('GET', '/admin/users')), 'api/admin')
  t.is(who(http('GET', '/admin')), 'api/default', '"/admin/*" does not cover "/admin"')
  t.is(who(http('GET', '/api/v1')), 'api/reads')
  t.is(who(http('GET', '/')), 'api/reads')
  t.is(who(http('GET', '/other')), 'api/default')
  t.is(who(http('POST', '/x', [['x-token', 's3cret']])), 'api/writes')
  t.is(who(http('POST', '/x', [['x-token', 'wrong']])), 'api/default')
  t.is(who(http('POST', '/x')), 'api/default')
  const unknown = e.decide(flow({ sni: 'h' }))
  t.is(unknown.kind, 'pending')
  t.true((unknown.needs & Need.path) !== 0)
})

test('ports apply to TCP and UDP only; ICMP sees only port-free rules', (t) => {
  const e = engineFor([
    doc('p', {
      rules: [
        { name: 'web', when: { ports: ['80', '8000-8100'] }, action: 'Allow' },
        { name: 'icmp', when: { protocols: ['ICMP'] }, action: 'Deny' },
      ],
      defaultAction: 'Reject',
    }),
  ])
  t.is(who(e.decide(flow({ dstPort: 8050 }))), 'p/web')
  t.is(who(e.decide(flow({ protocol: 17, dstPort: 8100 }))), 'p/web')
  t.is(who(e.decide(flow({ dstPort: 8101 }))), 'p/default')
  t.is(who(e.decide(flow({ protocol: 1, dstPort: 80 }))), 'p/icmp')
})

test('IPv6 and IPv4 prefixes never match the other family; endpoints narrow', (t) => {
  const e = engineFor([
    doc('p', {
      match: { endpoints: ['vpce-0aaaaaaaaaaaaaaaa'] },
      rules: [
        { name: 'v6', when: { sources: ['2001:db8::/32'] }, action: 'Deny' },
        { name: 'v4', when: { sources: ['0.0.0.0/0'] }, action: 'Reject' },
      ],
    }),
  ])
  const ep = 'vpce-0aaaaaaaaaaaaaaaa'
  const v6src = new Uint8Array(16)
  v6src.set([0x20, 0x01, 0x0d, 0xb8], 0)
  t.is(who(e.decide(flow({ endpoint: ep, family: 6, src: v6src, dst: new Uint8Array(16) }))), 'p/v6')
  t.is(who(e.decide(flow({ endpoint: ep }))), 'p/v4')
  t.is(
    who(e.decide(flow({ endpoint: ep, family: 6, src: new Uint8Array(16), dst: new Uint8Array(16) }))),
    'fleet',
  )
  t.is(who(e.decide(flow())), 'fleet', 'another endpoint')
})

test('packet rules and hooks travel with the deciding entry', (t) => {
  const e = engineFor([
    doc('udp', {
      rules: [
        {
          name: 'c',
          when: { protocols: ['UDP'], ports: ['3000'] },
          action: 'Allow',
          packet: { dropIfContains: ['drop me'] },
        },
      ],
    }),
  ])
  t.deepEqual(e.decide(flow({ protocol: 17, dstPort: 3000 })).entry?.packet, { dropIfContains: ['drop me'] })
})

test('a pending decision says whether an Inspect rule could still decide once the facts are known', (t) => {
  const e = engineFor([
    doc('a', {
      priority: 10,
      rules: [
        { name: 'allowed', when: { sni: ['ok.example'] }, action: 'Allow' },
        { name: 'watched', when: { sni: ['*.watched.example'] }, action: 'Inspect' },
        { name: 'web', when: { ports: ['80'] }, action: 'Allow' },
      ],
    }),
  ])
  const d443 = e.decide(flow({ dstPort: 443 }))
  t.is(d443.kind, 'pending')
  t.is(d443.entry?.rule?.name, 'allowed')
  t.true(d443.mayInspect, 'the Inspect rule after the pending Allow may decide')
  t.is(e.decide(flow({ dstPort: 443, sni: 'a.watched.example' })).action, 'Inspect')
  t.is(e.decide(flow({ dstPort: 443, sni: 'a.watched.example' })).mayInspect, undefined, 'final')
  // Port 80: the L7-free rule 'web' would decide before anything after it, and nothing before it inspects…
  const only = engineFor([
    doc('b', {
      rules: [
        { name: 'h', when: { hosts: ['x.example'] }, action: 'Deny' },
        { name: 'web', action: 'Allow' },
        { name: 'never', when: { sni: ['y.example'] }, action: 'Inspect' },
      ],
    }),
  ])
  const d = only.decide(flow())
  t.is(d.kind, 'pending')
  t.falsy(d.mayInspect, 'an L7-free rule decides before the Inspect rule is reached')
})

test('empty bundle: everything gets the fleet default', (t) => {
  const e = new PolicyEngine([], 'Reject')
  const d = e.decide(flow())
  t.is(d.action, 'Reject')
  t.is(d.kind, 'final')
})

// The indexed engine must agree with the obvious linear scan on every flow. Seeds make failures
// reproducible: rerun with the printed seed.
const SEEDS = 300
test(`indexed engine equals the linear oracle over ${SEEDS} random policy sets`, (t) => {
  let decisions = 0
  const seen = { fleet: 0, entry: 0, pending: 0, audit: 0, headers: 0, mayInspect: 0 }
  for (let seed = 1; seed <= SEEDS; seed++) {
    const rand = rng(seed)
    const docs = randomPolicies(rand, 1 + Math.floor(rand() * 12), 1 + Math.floor(rand() * 10))
    const c = compile(docs)
    const engine = new PolicyEngine(c.policies, 'Deny')
    for (let i = 0; i < 60; i++) {
      const f = randomFlow(rand)
      const a = engine.decide(f)
      const b = decideLinear(engine.entries, 'Deny', f)
      decisions++
      if (a.entry) seen.entry++
      else seen.fleet++
      if (a.kind === 'pending') seen.pending++
      if (a.audit) seen.audit++
      if (a.entry?.headers && a.kind === 'final') seen.headers++
      if (a.mayInspect) seen.mayInspect++
      if (
        a.mayInspect !== b.mayInspect ||
        a.entry !== b.entry ||
        a.audit !== b.audit ||
        a.kind !== b.kind ||
        a.needs !== b.needs ||
        a.action !== b.action
      ) {
        t.fail(
          `seed ${seed}, flow ${i}: indexed ${who(a)}/${a.kind}/${a.needs}/${a.mayInspect} vs linear ${who(b)}/${b.kind}/${b.needs}/${b.mayInspect}`,
        )
        return
      }
    }
  }
  t.log(`${decisions} decisions compared`, seen)
  // The comparison means something only if the random flows reach every kind of outcome.
  for (const [k, n] of Object.entries(seen)) t.true(n > 20, `only ${n} decisions of kind ${k}`)
})
