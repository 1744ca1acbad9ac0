// Rule hit counters as the fast path keeps them: real packets through the real FastPath, FlowTable and
// PolicyEngine, with the clock in the test's hands.
import test from 'ava'
import { FastPath, FastPathResult } from '../../appliance/src/fastpath/fastpath.ts'
import { FlowTable } from '../../appliance/src/flow/table.ts'
import type { RuleHits } from '../../appliance/src/visibility/rule-usage.ts'
import { compile } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'
import { datagram, type Inner, tcp4, tcp6, udp4 } from '../wire/packets.ts'

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec,
})

function engineFor(docs: unknown[]) {
  const c = compile(docs, { fleetDefault: 'Allow' })
  for (const r of c.results) if (!r.ok) throw new Error(JSON.stringify(r.errors))
  return new PolicyEngine(c.policies, 'Allow')
}

const WEB = doc('web', {
  priority: 10,
  match: { protocols: ['TCP'] },
  rules: [
    { name: 'http', when: { ports: ['80'] }, action: 'Allow' },
    { name: 'never', when: { ports: ['9'] }, action: 'Allow' },
  ],
  defaultAction: 'Deny',
})
const TLS = doc('tls', {
  priority: 5,
  match: { protocols: ['TCP'], ports: ['443'] },
  rules: [{ name: 'aws', when: { sni: ['*.amazonaws.com'] }, action: 'Allow' }],
})
const AUDIT = doc('watch', {
  priority: 1,
  mode: 'Audit',
  match: { protocols: ['UDP'] },
  rules: [{ name: 'would-deny', when: { ports: ['3000'] }, action: 'Deny' }],
})

function setup(docs: unknown[] = [WEB, TLS, AUDIT]) {
  const engine = engineFor(docs)
  const flows = new FlowTable({ capacity: 64, seed: 1, now: () => 0 })
  const fp = new FastPath({ flows, engine })
  const r = new FastPathResult()
  const send = (i: Inner, now: number) => {
    const d = datagram(i)
    fp.processDatagram(d, d.length, 0x0a000001, 60000, now, r)
    return r
  }
  const usage = (policy: string, rule: string | null): RuleHits | undefined =>
    fp.usage.snapshot().find((x) => x.policy === policy && x.rule === rule)
  return { engine, flows, fp, send, usage }
}

const T0 = 1_700_000_000_000

test('one hit per new flow, not per packet; lastHit is the flow start', (t) => {
  const { send, usage } = setup()
  for (let n = 0; n < 3; n++) {
    const c = tcp4({ sport: 40000 + n, dport: 80 })
    send({ ...c, flags: 0x02 }, T0 + n * 1000)
    send({ ...c, flags: 0x10 }, T0 + n * 1000 + 1)
    send({ ...c, flags: 0x18, payload: new Uint8Array(10) }, T0 + n * 1000 + 2)
  }
  t.deepEqual(usage('web', 'http'), { policy: 'web', rule: 'http', hits: 3, lastHit: T0 + 2000 })
  t.deepEqual(usage('web', 'never'), { policy: 'web', rule: 'never', hits: 0, lastHit: null })
})

test('defaultAction counts under rule null; the fleet default is not a rule', (t) => {
  const { send, usage, fp } = setup()
  send(tcp4({ dport: 22, flags: 0x02 }), T0)
  send(udp4({ dport: 53 }), T0) // no policy matches: fleet default
  t.is(usage('web', null)?.hits, 1)
  t.is(
    fp.usage.snapshot().reduce((n, x) => n + x.hits, 0),
    1,
    'the fleet-default flow counted nowhere',
  )
})

test('an Audit entry that matched counts beside the entry that decided', (t) => {
  const { send, usage } = setup()
  const r = send(udp4({ dport: 3000 }), T0)
  t.is(r.decision?.audit?.rule?.name, 'would-deny')
  t.is(usage('watch', 'would-deny')?.hits, 1)
  send(udp4({ dport: 3000 }), T0 + 5) // same flow
  t.is(usage('watch', 'would-deny')?.hits, 1)
})

test('a pending flow counts once, when the L7 facts make its decision final', (t) => {
  const { engine, send, usage, fp } = setup()
  const c = tcp6({ dport: 443 })
  send({ ...c, flags: 0x02 }, T0)
  const r = send({ ...c, flags: 0x18, payload: Buffer.from([22, 3, 1, 0, 1, 1]) }, T0 + 10)
  t.is(r.decision?.kind, 'pending')
  t.is(usage('tls', 'aws')?.hits, 0, 'pending decides nothing yet')
  const d = engine.decide({ ...fp.flowFacts(r.flow), sni: 's3.amazonaws.com' })
  fp.setDecision(r.flow, d)
  t.deepEqual(usage('tls', 'aws'), { policy: 'tls', rule: 'aws', hits: 1, lastHit: T0 + 10 })
  // the data plane stores the same decision again (Authorize: with the webhook's answer): no second hit
  fp.setDecision(r.flow, { ...d, kind: 'final', action: 'Deny' })
  t.is(usage('tls', 'aws')?.hits, 1)
})

test('HTTP requests of an intercepted flow: record() adds one hit per request decision', (t) => {
  const { engine, fp, usage } = setup()
  const facts = {
    endpoint: 'vpce-01234567890abcdef',
    family: 4 as const,
    src: Uint8Array.of(10, 0, 0, 1),
    dst: Uint8Array.of(203, 0, 113, 9),
    protocol: 6,
    dstPort: 443,
    sni: 'sts.amazonaws.com',
  }
  for (let i = 0; i < 4; i++) fp.usage.record(engine.decide(facts), T0 + i)
  fp.usage.record(undefined, T0)
  fp.usage.record({ kind: 'pending', action: 'Allow', needs: 1 }, T0)
  t.deepEqual(usage('tls', 'aws'), { policy: 'tls', rule: 'aws', hits: 4, lastHit: T0 + 3 })
})

test('a new bundle: surviving rules keep their counts, removed rules leave, entries of the old engine still count', (t) => {
  const { send, usage, fp } = setup()
  const oldFlow = send(tcp4({ dport: 80, flags: 0x02 }), T0)
  const oldDecision = oldFlow.decision!
  send(tcp4({ sport: 2, dport: 9, flags: 0x02 }), T0 + 1)
  t.is(usage('web', 'never')?.hits, 1)
  const next = engineFor([
    doc('web', {
      priority: 10,
      match: { protocols: ['TCP'] },
      rules: [
        { name: 'ssh', when: { ports: ['22'] }, action: 'Allow' },
        { name: 'http', when: { ports: ['80', '8080'] }, action: 'Allow' },
      ],
    }),
  ])
  fp.setEngine(next)
  t.deepEqual(
    fp.usage.snapshot().map((x) => [x.policy, x.rule, x.hits]),
    [
      ['web', 'ssh', 0],
      ['web', 'http', 1],
    ],
  )
  send(tcp4({ sport: 3, dport: 8080, flags: 0x02 }), T0 + 2)
  t.is(usage('web', 'http')?.hits, 2)
  // an HTTP request on a flow decided by the previous engine counts under the rule's name
  fp.usage.record(oldDecision, T0 + 3)
  t.deepEqual(usage('web', 'http'), { policy: 'web', rule: 'http', hits: 3, lastHit: T0 + 3 })
  t.is(usage('web', 'never'), undefined)
})
