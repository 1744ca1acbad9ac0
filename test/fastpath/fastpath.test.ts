import test from 'ava'
import { DROP_REASONS, Drop, OUTCOMES, Outcome } from '../../appliance/src/fastpath/counters.ts'
import { FastPath, FastPathResult } from '../../appliance/src/fastpath/fastpath.ts'
import { FlowTable } from '../../appliance/src/flow/table.ts'
import { l4ChecksumOk, ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { compile } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'
import { datagram, type Inner, ipPacket, refChecksum, tcp4, tcp6, udp4, udp6 } from '../wire/packets.ts'

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

function setup(docs: unknown[], fleetDefault: 'Allow' | 'Deny' | 'Reject' = 'Allow') {
  const flows = new FlowTable({ capacity: 64, seed: 3, now: () => 0 })
  const fp = new FastPath({ flows, engine: engineFor(docs, fleetDefault) })
  const r = new FastPathResult()
  const send = (i: Inner, g: Parameters<typeof datagram>[1] = {}) => {
    const d = datagram(i, g)
    fp.processDatagram(d, d.length, 0x0a000001, 60000, 0, r)
    return { d, r, name: OUTCOMES[r.outcome], reason: DROP_REASONS[r.reason] }
  }
  return { fp, flows, send }
}
const rev = (i: Inner): Inner => ({ ...i, src: i.dst, dst: i.src, sport: i.dport, dport: i.sport })
function reparse(r: FastPathResult) {
  const q = new ParsedPacket()
  const b = Buffer.from(r.out.subarray(0, r.outLen))
  const code = parsePacket(b, b.length, q)
  if (code !== 0) throw new Error(`output does not parse: ${code}`)
  return q
}

const udpCensor = doc('censor', {
  priority: 10,
  rules: [
    {
      name: 'udp-censor',
      when: { protocols: ['UDP'], ports: ['3000'] },
      action: 'Allow',
      packet: { dropIfContains: ['drop me'], replace: [{ from: 'weakly typed', to: 'strongly typed' }] },
    },
    { name: 'icmp-sample', when: { protocols: ['ICMP'] }, action: 'Allow', packet: { dropEveryNth: 5 } },
  ],
})

test('pass: the datagram goes back unchanged, Geneve header and all', (t) => {
  const { send, flows } = setup([])
  const { d, r, name } = send(tcp4({ flags: 0x02 }))
  t.is(name, 'pass')
  t.deepEqual(Buffer.from(r.out.subarray(0, r.outLen)), d)
  t.true(r.newFlow)
  t.is(flows.size, 1)
  const back = send(rev(tcp4({ flags: 0x12 })))
  t.false(back.r.newFlow)
  t.is(back.r.dir, 1)
  t.is(flows.outerPort[back.r.flow], 60000)
})

test('deny drops every packet of the flow; reject answers TCP with a RST toward the client', (t) => {
  const deny = setup([
    doc('d', { priority: 1, rules: [{ name: 'ssh', when: { ports: ['22'] }, action: 'Deny' }] }),
  ])
  const denied = deny.send(tcp4({ dport: 22, flags: 0x02, seq: 41 }))
  t.is(denied.reason, 'policy_deny')
  t.is(denied.name, 'drop')
  const rst = reparse(denied.r)
  t.is(rst.tcpFlags, 0x14, 'the drop carries a RST|ACK toward the client')
  t.is(rst.tcpAck, 42)
  t.true(l4ChecksumOk(rst))
  t.is(deny.send(rev(tcp4({ dport: 22, flags: 0x12 }))).reason, 'policy_deny')
  t.is(deny.fp.drops[Drop.policy_deny], 2)
  const udp = deny.send(udp4({ dport: 22 }))
  t.is(udp.r.outLen, 0, 'a denied UDP packet is dropped silently (answering is Reject)')

  const rej = setup([
    doc('r', { priority: 1, rules: [{ name: 'web', when: { ports: ['80'] }, action: 'Reject' }] }),
  ])
  const { d, r, name } = rej.send(tcp4({ flags: 0x02, seq: 41 }))
  t.is(name, 'reject')
  t.deepEqual(r.out.subarray(0, 40), d.subarray(0, 40))
  const q = reparse(r)
  t.is(q.tcpFlags, 0x14)
  t.is(q.tcpAck, 42)
  t.is(q.dstPort, 40000)
  t.true(l4ChecksumOk(q))
  t.is(rej.send(tcp4({ flags: 0x04 })).reason, 'policy_reject_silent', 'no RST for a RST')
})

test('reject of UDP: ICMP port unreachable; of ICMP: admin prohibited; IPv6 too', (t) => {
  const { send } = setup([], 'Reject')
  const u = reparse(send(udp4()).r)
  t.is(u.icmpType, 3)
  t.is(u.icmpCode, 3)
  const i = reparse(send({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8 }).r)
  t.is(i.icmpCode, 13)
  const u6 = reparse(send(udp6()).r)
  t.is(u6.icmpType, 1)
  t.is(u6.icmpCode, 4)
})

test('udp-censor: dropIfContains drops, replace rewrites with new lengths and valid checksums (IPv4 and IPv6)', (t) => {
  const { send } = setup([udpCensor])
  t.is(send(udp4({ payload: Buffer.from('please drop me now') })).reason, 'drop_if_contains')
  t.is(send(udp4({ payload: Buffer.from('nothing to see') })).name, 'pass')
  for (const mk of [udp4, udp6]) {
    const { r, name, d } = send(
      mk({ sport: 5555, payload: Buffer.from('JS is weakly typed; weakly typed!') }),
    )
    t.is(name, 'rewrite')
    const q = reparse(r)
    t.is(
      r.out.toString('latin1', q.payloadOff, q.payloadOff + q.payloadLen),
      'JS is strongly typed; strongly typed!',
    )
    t.is(r.outLen, d.length + 4)
    t.true(l4ChecksumOk(q), 'UDP checksum valid after rewrite')
    t.deepEqual(r.out.subarray(0, 40), d.subarray(0, 40), 'Geneve header unchanged')
    if (q.family === 4) t.is(refChecksum(r.out.subarray(40, 60)), 0, 'IPv4 header checksum valid')
    t.is(q.innerLen, d.length - 40 + 4)
  }
})

test('replace that shrinks, several rules in order, and a corrupt checksum stays corrupt', (t) => {
  const { send } = setup([
    doc('p', {
      priority: 1,
      rules: [
        {
          name: 'r',
          when: { protocols: ['UDP'] },
          action: 'Allow',
          packet: {
            replace: [
              { from: 'aaaa', to: 'b' },
              { from: 'bb', to: 'c' },
            ],
          },
        },
      ],
    }),
  ])
  const { r } = send(udp4({ payload: Buffer.from('xaaaaaaaay') }))
  const q = reparse(r)
  t.is(r.out.toString('latin1', q.payloadOff, q.payloadOff + q.payloadLen), 'xcy')
  t.true(l4ChecksumOk(q))
  const d = datagram(udp4({ payload: Buffer.from('aaaa') }))
  d[40 + 26]! ^= 0xff // corrupt the UDP checksum
  const res = new FastPathResult()
  const fp2 = setup([
    doc('p', {
      priority: 1,
      rules: [
        {
          name: 'r',
          action: 'Allow',
          when: { protocols: ['UDP'] },
          packet: { replace: [{ from: 'aaaa', to: 'b' }] },
        },
      ],
    }),
  ]).fp
  fp2.processDatagram(d, d.length, 0, 0, 0, res)
  t.is(res.outcome, Outcome.rewrite)
  t.false(l4ChecksumOk(reparse(res)))
})

test('replace that would exceed the inner size bound drops', (t) => {
  const big = 'x'.repeat(1024)
  const { send } = setup([
    doc('p', {
      priority: 1,
      rules: [
        {
          name: 'r',
          action: 'Allow',
          when: { protocols: ['UDP'] },
          packet: { replace: [{ from: 'a', to: big }] },
        },
      ],
    }),
  ])
  t.is(send(udp4({ payload: Buffer.alloc(20, 'a') })).reason, 'rewrite_too_large')
})

test('UDP over IPv4 without checksum keeps 0 after a rewrite', (t) => {
  const { send } = setup([udpCensor])
  const { r } = send(udp4({ noUdpChecksum: true, payload: Buffer.from('weakly typed') }))
  const q = reparse(r)
  t.is(r.out.readUInt16BE(q.l4Off + 6), 0)
})

test('icmp-sample: every 5th ICMP packet of a flow is dropped, counting both directions', (t) => {
  const { send } = setup([udpCensor])
  const ping: Inner = { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpId: 7 }
  const pong: Inner = { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0, icmpId: 7 }
  const got: string[] = []
  for (let k = 0; k < 10; k++) got.push(send(k % 2 ? pong : ping).name!)
  t.deepEqual(got, ['pass', 'pass', 'pass', 'pass', 'drop', 'pass', 'pass', 'pass', 'pass', 'drop'])
  // another ping id is another flow with its own count
  t.is(send({ ...ping, icmpId: 8 }).name, 'pass')
})

test('Audit mode: passes, and reports what it would have done', (t) => {
  const { send } = setup([
    doc('audit', {
      priority: 1,
      mode: 'Audit',
      rules: [{ name: 'no-ssh', when: { ports: ['22'] }, action: 'Deny' }],
    }),
    doc('audit2', {
      priority: 2,
      mode: 'Audit',
      rules: [
        { name: 'c', when: { protocols: ['UDP'] }, action: 'Allow', packet: { dropIfContains: ['bad'] } },
      ],
    }),
  ])
  const a = send(tcp4({ dport: 22 }))
  t.is(a.name, 'pass')
  t.is(OUTCOMES[a.r.auditOutcome], 'drop')
  t.is(a.r.decision?.audit?.policy.name, 'audit')
  const b = send(udp4({ payload: Buffer.from('bad') }))
  t.is(b.name, 'pass')
  t.is(OUTCOMES[b.r.auditOutcome], 'drop')
  t.is(send(udp4({ sport: 2, payload: Buffer.from('ok') })).r.auditOutcome, Outcome.pass)
  t.is(send(udp4({ sport: 3, dport: 9 })).r.auditOutcome, Outcome.pass)
})

test('L7 conditions hold the flow (pending); Inspect diverts; setDecision finalises', (t) => {
  const engine = engineFor([
    doc('sni', {
      priority: 1,
      rules: [
        { name: 'aws', when: { sni: ['*.amazonaws.com'] }, action: 'Allow' },
        { name: 'rest', when: { ports: ['443'] }, action: 'Deny' },
      ],
    }),
    doc('insp', { priority: 0, rules: [{ name: 'i', when: { ports: ['8080'] }, action: 'Inspect' }] }),
  ])
  const flows = new FlowTable({ capacity: 8, seed: 1, now: () => 0 })
  const fp = new FastPath({ flows, engine })
  const r = new FastPathResult()
  const syn = datagram(tcp6({ flags: 0x02 }))
  fp.processDatagram(syn, syn.length, 0, 0, 0, r)
  t.is(OUTCOMES[r.outcome], 'pass', 'the handshake passes while the decision waits')
  const d = datagram(tcp6({ flags: 0x18, payload: Buffer.from([22, 3, 1, 0, 1, 1]) }))
  fp.processDatagram(d, d.length, 0, 0, 0, r)
  t.is(OUTCOMES[r.outcome], 'hold')
  t.is(r.decision?.kind, 'pending')
  const p = fp.lastPacket
  fp.setDecision(
    r.flow,
    engine.decide({
      endpoint: p.endpointId(),
      family: 6,
      src: p.src(),
      dst: p.dst(),
      protocol: 6,
      dstPort: 443,
      sni: 'evil.example',
    }),
  )
  fp.processDatagram(d, d.length, 0, 0, 0, r)
  t.is(DROP_REASONS[r.reason], 'policy_deny')
  const d2 = datagram(tcp4({ dport: 8080 }))
  fp.processDatagram(d2, d2.length, 0, 0, 0, r)
  t.is(OUTCOMES[r.outcome], 'divert')
})

test('a SYN-ACK seen first is decided as the flow its SYN opened', (t) => {
  const { send, flows } = setup([
    doc('d', { priority: 1, rules: [{ name: 'web', when: { ports: ['80'] }, action: 'Deny' }] }),
  ])
  const sa = send(rev(tcp4({ flags: 0x12 })))
  t.is(sa.reason, 'policy_deny')
  t.is(sa.r.dir, 1)
  t.is(flows.size, 1)
})

test('fragments: first fragment decides, later fragments follow, unknown ones are dropped', (t) => {
  const { send } = setup([
    udpCensor,
    doc('deny', { priority: 20, rules: [{ name: 'd', when: { ports: ['9'] }, action: 'Deny' }] }),
  ])
  t.is(send(udp4({ fragOffset: 64, payload: Buffer.alloc(8), ipId: 1 })).reason, 'fragment_unknown_flow')
  t.is(
    send(udp4({ mf: true, ipId: 2, payload: Buffer.from('weakly typed but a fragment') })).name,
    'pass',
    'no rewrite of fragments',
  )
  t.is(send(udp4({ fragOffset: 64, payload: Buffer.alloc(8), ipId: 2 })).name, 'pass')
  t.is(send(udp4({ fragOffset: 64, payload: Buffer.from('drop me'), ipId: 2 })).reason, 'drop_if_contains')
  t.is(send(udp4({ dport: 9, mf: true, ipId: 3, payload: Buffer.alloc(16) })).reason, 'policy_deny')
  t.is(send(udp4({ dport: 9, fragOffset: 64, payload: Buffer.alloc(8), ipId: 3 })).reason, 'policy_deny')
  t.is(
    send(
      udp6({ ext: [{ type: 44, body: Buffer.from([0, 0, 0, 1, 0, 0, 0, 5]) }], payload: Buffer.alloc(16) }),
    ).name,
    'pass',
  )
  const later6 = udp6({
    ext: [{ type: 44, body: Buffer.from([0, 0, 0, 64, 0, 0, 0, 5]) }],
    fragOffset: 64,
    payload: Buffer.alloc(8),
  })
  t.is(send(later6).name, 'pass')
})

test('malformed datagrams are counted by reason and dropped', (t) => {
  const { fp } = setup([])
  const r = new FastPathResult()
  const d = datagram(udp4())
  d[40 + 10]! ^= 1
  fp.processDatagram(d, d.length, 0, 0, 0, r)
  t.is(DROP_REASONS[r.reason], 'malformed')
  t.is(fp.malformed.get('ipv4_checksum'), 1)
  t.deepEqual([...fp.malformed.entries()], [['ipv4_checksum', 1]])
})

test('a full table refuses new flows and counts them', (t) => {
  const flows = new FlowTable({ capacity: 1, seed: 1, now: () => 0, protectActiveMs: 1e9 })
  const fp = new FastPath({ flows, engine: engineFor([]) })
  const r = new FastPathResult()
  for (const i of [tcp4(), rev(tcp4()), tcp4({ sport: 2 })]) {
    const d = datagram(i)
    fp.processDatagram(d, d.length, 0, 0, 0, r)
  }
  t.is(DROP_REASONS[r.reason], 'flow_table_full')
})

test('ICMP errors are rate-limited (RFC 4443 §2.4(f)); RSTs are not', (t) => {
  const flows = new FlowTable({ capacity: 64, seed: 3, now: () => 0 })
  const fp = new FastPath({ flows, engine: engineFor([], 'Reject'), icmpErrorsPerSecond: 3 })
  const r = new FastPathResult()
  const send = (i: Inner, now: number) => {
    const d = datagram(i)
    fp.processDatagram(d, d.length, 0, 0, now, r)
    return OUTCOMES[r.outcome] + (r.reason ? `:${DROP_REASONS[r.reason]}` : '')
  }
  const got = [0, 1, 2, 3, 4].map((k) => send(udp4({ sport: 100 + k }), 0))
  t.deepEqual(got, ['reject', 'reject', 'reject', 'drop:reject_rate_limited', 'drop:reject_rate_limited'])
  t.is(send(udp4(), 400), 'reject', 'refilled after 1/3 s')
  t.is(send(tcp4({ flags: 0x02 }), 400), 'reject')
  t.is(send(tcp4({ flags: 0x02, sport: 2 }), 400), 'reject')
})

test('flowFacts/redecide rebuild a flow’s facts from its key after a policy swap', (t) => {
  const { fp, send } = setup([])
  const { r } = send(rev(tcp4({ flags: 0x12 })))
  const f = fp.flowFacts(r.flow)
  t.is(f.endpoint, 'vpce-01234567890abcdef')
  t.deepEqual([...f.src], [10, 0, 0, 1])
  t.deepEqual([...f.dst], [203, 0, 113, 9])
  t.is(f.dstPort, 80)
  t.is(f.protocol, 6)
  fp.setEngine(
    engineFor([doc('d', { priority: 1, rules: [{ name: 'web', when: { ports: ['80'] }, action: 'Deny' }] })]),
  )
  t.is(send(tcp4()).name, 'pass', 'existing flows keep their decision')
  t.is(fp.redecide(r.flow).action, 'Deny')
  t.is(send(tcp4()).reason, 'policy_deny')
  const six = send(tcp6({ flags: 0x02 }))
  t.deepEqual(Buffer.from(fp.flowFacts(six.r.flow).dst), Buffer.from(six.d.subarray(40 + 24, 40 + 40)))
})

test('pending flows: handshake and pure ACKs pass, data is held', (t) => {
  const { send } = setup(
    [doc('sni', { priority: 1, rules: [{ name: 'a', when: { sni: ['a.example'] }, action: 'Allow' }] })],
    'Deny',
  )
  t.is(send(tcp4({ dport: 443, flags: 0x02 })).name, 'pass')
  t.is(send(rev(tcp4({ dport: 443, flags: 0x12 }))).name, 'pass')
  t.is(send(tcp4({ dport: 443, flags: 0x10 })).name, 'pass')
  t.is(send(tcp4({ dport: 443, flags: 0x18, payload: Buffer.from([22, 3, 1]) })).name, 'hold')
})

test('ICMP errors about a known flow follow that flow’s verdict (RELATED), not the ICMP policy', (t) => {
  const { send, flows } = setup([
    doc('p', {
      priority: 1,
      rules: [
        { name: 'no-icmp', when: { protocols: ['ICMP', 'ICMPv6'] }, action: 'Deny' },
        { name: 'no-telnet', when: { ports: ['23'] }, action: 'Deny' },
      ],
    }),
  ])
  const out = udp4({ payload: Buffer.from('query') })
  t.is(send(out).name, 'pass')
  const quote = (i: Inner) => ipPacket(i).subarray(0, 28)
  // port unreachable from the server about the client's datagram
  const err = { src: '203.0.113.9', dst: '10.0.0.1', proto: 1, icmpType: 3, icmpCode: 3, payload: quote(out) }
  const r1 = send(err)
  t.is(r1.name, 'pass')
  t.is(r1.r.dir, 1)
  t.is(flows.size, 1, 'no flow of its own')
  // a router on the path (another source) sends time exceeded: still related (quoted src = error dst)
  t.is(send({ ...err, src: '192.0.2.1', icmpType: 11, icmpCode: 0 }).name, 'pass')
  // an error whose quote was not sent by the error's destination is just ICMP: denied
  t.is(send({ ...err, dst: '10.0.0.99' }).reason, 'policy_deny')
  // errors about a denied flow are dropped
  const telnet = tcp4({ dport: 23, flags: 0x02 })
  t.is(send(telnet).reason, 'policy_deny')
  t.is(send({ ...err, payload: quote(telnet) }).reason, 'policy_deny')
  // ICMPv6 Packet Too Big about an allowed TCP flow
  const t6 = tcp6({ flags: 0x18, payload: Buffer.alloc(100) })
  t.is(send(t6).name, 'pass')
  const ptb = {
    src: '2001:db8::1',
    dst: 'fd00::1',
    proto: 58,
    icmpType: 2,
    icmpCode: 0,
    payload: ipPacket(t6).subarray(0, 48),
  }
  t.is(send(ptb).name, 'pass')
  // an echo request is not an error: ICMP policy applies
  t.is(send({ src: '10.0.0.1', dst: '203.0.113.9', proto: 1, icmpType: 8 }).reason, 'policy_deny')
})

test('a SYN on a reset or closed flow starts a new flow with a new decision', (t) => {
  const { fp, send, flows } = setup(
    [doc('sni', { priority: 1, rules: [{ name: 'a', when: { sni: ['a.example'] }, action: 'Allow' }] })],
    'Deny',
  )
  const syn = tcp4({ dport: 443, flags: 0x02 })
  const first = send(syn)
  const p = fp.lastPacket
  fp.setDecision(first.r.flow, fp.redecide(first.r.flow, { sni: 'a.example' }))
  t.is(send(tcp4({ dport: 443, flags: 0x18, payload: Buffer.from('x') })).name, 'pass')
  t.is(send(syn).r.newFlow, false, 'a retransmitted SYN on a live flow is the same flow')
  send(tcp4({ dport: 443, flags: 0x14 }))
  const again = send(syn)
  t.true(again.r.newFlow)
  t.is(again.r.decision?.kind, 'pending')
  t.is(send(tcp4({ dport: 443, flags: 0x18, payload: Buffer.from('x') })).name, 'hold')
  t.is(flows.size, 1)
  t.truthy(p)
})

test('replace in ICMP and ICMPv6 echo payloads keeps their checksums valid', (t) => {
  const { send } = setup([
    doc('p', {
      priority: 1,
      rules: [
        {
          name: 'r',
          when: { protocols: ['ICMP', 'ICMPv6'] },
          action: 'Allow',
          packet: { replace: [{ from: 'ping', to: 'PONG!' }] },
        },
      ],
    }),
  ])
  for (const i of [
    { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, payload: Buffer.from('ping ping ping') },
    { src: 'fd00::1', dst: 'fd00::2', proto: 58, icmpType: 128, payload: Buffer.from('ping ping ping') },
  ]) {
    const { r, name } = send(i)
    t.is(name, 'rewrite')
    const q = reparse(r)
    t.is(r.out.toString('latin1', q.payloadOff, q.payloadOff + q.payloadLen), 'PONG! PONG! PONG!')
    t.true(l4ChecksumOk(q))
  }
})
