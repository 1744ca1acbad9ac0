// Flow records from the real fast path and flow table, with the clock in the test's hands: which records
// are written when, with which fields and counts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import test from 'ava'
import { FastPath, FastPathResult } from '../../appliance/src/fastpath/fastpath.ts'
import { FlowTable } from '../../appliance/src/flow/table.ts'
import { FlowLog, FlowLogWriter, type FlowRecord } from '../../appliance/src/flowlog/index.ts'
import { compile } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'
import { datagram, EP, type Inner, tcp4, udp4, udp6 } from '../wire/packets.ts'

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec,
})

const POLICIES = [
  doc('web', {
    priority: 10,
    match: { protocols: ['TCP'] },
    rules: [{ name: 'http', when: { ports: ['80'] }, action: 'Allow' }],
    defaultAction: 'Deny',
  }),
  doc('watch-udp', {
    priority: 5,
    mode: 'Audit',
    match: { protocols: ['UDP'], ports: ['3000'] },
    rules: [{ name: 'would-deny', action: 'Deny' }],
  }),
]

function setup(capacity = 64, intervalMs?: number) {
  const c = compile(POLICIES, { fleetDefault: 'Allow' })
  for (const r of c.results) if (!r.ok) throw new Error(JSON.stringify(r.errors))
  const records: FlowRecord[] = []
  let fp: FastPath | undefined
  const log = new FlowLog({
    sink: (r) => records.push(r),
    decisionOf: (i) => fp!.decisionOf(i),
    ...(intervalMs ? { intervalMs } : {}),
  })
  const flows = new FlowTable({ capacity, seed: 1, now: () => 0, onRemove: (i, r) => log.onRemove(i, r) })
  log.attach(flows)
  fp = new FastPath({ flows, engine: new PolicyEngine(c.policies, 'Allow') })
  const r = new FastPathResult()
  // times are ms since the epoch, as the dataplane passes Date.now()
  const send = (i: Inner, now: number) => {
    const d = datagram(i)
    fp!.processDatagram(d, d.length, 0x0a000001, 60000, now, r)
  }
  return { flows, log, records, send, fp }
}
const rev = (i: Inner): Inner => ({ ...i, src: i.dst, dst: i.src, sport: i.dport, dport: i.sport })
const T0 = 1_700_000_000_000

const KEYS = [
  'version',
  'type',
  'srcaddr',
  'dstaddr',
  'srcport',
  'dstport',
  'protocol',
  'packets',
  'bytes',
  'start',
  'end',
  'action',
  'log-status',
  'tcp-flags',
  'endpoint-id',
  'orig-packets',
  'orig-bytes',
  'reply-packets',
  'reply-bytes',
  'policy',
  'rule',
  'mode',
  'verdict',
  'audit-policy',
  'audit-rule',
  'audit-action',
  'sni',
  'host',
  'tls-version',
  'intercepted',
  'aws-account-id',
  'aws-account-ids',
  'record-reason',
].sort()

test('a closed TCP flow: one record after the quiet second, VPC fields, counts per direction, flags OR-ed', (t) => {
  const { log, records, send, flows } = setup()
  const c = (o: Partial<Inner>) => tcp4({ dport: 80, ...o })
  const payload = new Uint8Array(100)
  send(c({ flags: 0x02 }), T0) // SYN
  send(rev(c({ flags: 0x12 })), T0 + 1) // SYN-ACK
  send(c({ flags: 0x10 }), T0 + 2)
  send(c({ flags: 0x18, payload }), T0 + 3)
  send(rev(c({ flags: 0x18, payload: new Uint8Array(300) })), T0 + 4)
  send(c({ flags: 0x11 }), T0 + 5) // FIN
  send(rev(c({ flags: 0x11 })), T0 + 6)
  send(c({ flags: 0x10 }), T0 + 2500)
  log.tick(T0 + 3000)
  t.is(records.length, 0, 'not before a quiet second')
  log.tick(T0 + 4000)
  t.is(records.length, 1)
  const r = records[0]!
  t.deepEqual(Object.keys(r).sort(), KEYS)
  t.like(r, {
    version: 5,
    type: 'IPv4',
    srcaddr: '10.0.0.1',
    dstaddr: '203.0.113.9',
    srcport: 40000,
    dstport: 80,
    protocol: 6,
    'orig-packets': 5,
    'reply-packets': 3,
    packets: 8,
    start: Math.floor(T0 / 1000),
    end: Math.floor((T0 + 2500) / 1000),
    action: 'ACCEPT',
    'log-status': 'OK',
    // FIN 1 | SYN 2 | SYN-ACK 18, as VPC encodes them
    'tcp-flags': 19,
    'endpoint-id': EP,
    policy: 'web',
    rule: 'http',
    mode: 'Enforce',
    verdict: 'Allow',
    'audit-policy': null,
    intercepted: false,
    'record-reason': 'closed',
  })
  // 20 IP + 20 TCP per segment, plus the payloads
  t.is(r['orig-bytes'], 5 * 40 + 100)
  t.is(r['reply-bytes'], 3 * 40 + 300)
  t.is(r.bytes, r['orig-bytes'] + r['reply-bytes'])

  // A late retransmission: reported (alone) when the flow leaves the table.
  send(rev(c({ flags: 0x11 })), T0 + 4000)
  log.tick(T0 + 10_000)
  t.is(records.length, 1, 'the final record is written once')
  t.is(flows.sweep(T0 + 4000 + flows.tcpClosingIdleMs), 1)
  t.is(records.length, 2)
  t.like(records[1], { packets: 1, 'reply-packets': 1, 'tcp-flags': 1, 'record-reason': 'expired' })

  // Nothing new: an expired flow without new packets since its final record writes nothing more.
  t.is(flows.size, 0)
})

test('AWS accounts noted on a flow: first seen first, distinct, at most 8, kept across noteL7, none for a reused entry', (t) => {
  const { log, records, send, flows } = setup()
  const c = (o: Partial<Inner>) => tcp4({ dport: 80, ...o })
  send(c({ flags: 0x02 }), T0)
  const flow = flows.live().next().value as number
  const gen = flows.gen[flow]!
  log.noteAwsAccount(flow, gen, '609629065308')
  log.noteL7(flow, {
    sni: 'sts.us-east-1.amazonaws.com',
    host: 'sts.us-east-1.amazonaws.com',
    intercepted: true,
  })
  log.noteAwsAccount(flow, gen, '171436882533')
  log.noteAwsAccount(flow, gen, '609629065308')
  for (let i = 0; i < 10; i++) log.noteAwsAccount(flow, gen, String(100000000000 + i))
  log.noteAwsAccount(flow, gen + 1, '999999999999') // another flow's, once the entry is reused
  send(c({ flags: 0x04 }), T0 + 10) // RST
  log.tick(T0 + 2000)
  t.is(records.length, 1)
  const r = records[0]!
  t.is(r['aws-account-id'], '609629065308')
  t.deepEqual(r['aws-account-ids'], [
    '609629065308',
    '171436882533',
    '100000000000',
    '100000000001',
    '100000000002',
    '100000000003',
    '100000000004',
    '100000000005',
  ])
  t.is(r.sni, 'sts.us-east-1.amazonaws.com')
  t.true(r.intercepted)
})

test('denied: REJECT with the policy and its default action (rule null); no record while packets keep coming', (t) => {
  const { log, records, send } = setup()
  const syn = tcp4({ dport: 8081, flags: 0x02 })
  send(syn, T0)
  send(syn, T0 + 900)
  log.tick(T0 + 1500)
  t.is(records.length, 0, 'quiet for only 600 ms')
  log.tick(T0 + 2500)
  t.is(records.length, 1)
  t.like(records[0], {
    action: 'REJECT',
    verdict: 'Deny',
    policy: 'web',
    rule: null,
    mode: 'Enforce',
    packets: 2,
    'reply-packets': 0,
    'tcp-flags': 2,
    dstport: 8081,
    'record-reason': 'closed',
  })
})

test('an Audit entry is named; UDP flows get periodic records of the counts since the previous one', (t) => {
  const { log, records, send, flows } = setup(64, 10_000)
  const u = udp6({ payload: new Uint8Array(10) })
  // a packet each way every second for 25 s
  for (let s = 0; s < 25; s++) {
    send(u, T0 + s * 1000)
    send(rev(u), T0 + s * 1000 + 1)
    log.tick(T0 + s * 1000 + 500)
  }
  t.is(records.length, 2, 'one record per 10 s interval')
  for (const r of records) {
    t.like(r, {
      type: 'IPv6',
      srcaddr: 'fd00::1',
      dstaddr: '2001:db8::9',
      protocol: 17,
      action: 'ACCEPT',
      verdict: 'Allow',
      policy: null,
      rule: null,
      'audit-policy': 'watch-udp',
      'audit-rule': 'would-deny',
      'audit-action': 'Deny',
      'tcp-flags': 0,
      'record-reason': 'active',
    })
  }
  // the first window runs from the flow's creation to the tick at 10.5 s: seconds 0 to 10
  t.is(records[0]!['orig-packets'], 11)
  t.is(records[0]!['reply-packets'], 11)
  t.is(records[1]!.packets, 20)
  t.is(records[1]!.start, Math.floor((T0 + 10_500) / 1000), 'the window starts at the previous record')
  log.tick(T0 + 30_500)
  t.is(records.length, 3)
  t.is(records[2]!.packets, 8, 'seconds 21 to 24')
  // a silent interval writes nothing
  log.tick(T0 + 41_000)
  t.is(records.length, 3)
  // Expiry writes the final record, which marks the end even when the last periodic one had every packet.
  flows.sweep(T0 + 24_001 + flows.otherIdleMs)
  t.is(records.length, 4)
  t.like(records[3], { packets: 0, 'record-reason': 'expired' })
  t.is(
    records.reduce((n, r) => n + r.packets, 0),
    50,
    'the records add up to the flow',
  )
})

test('an evicted flow is reported with reason evicted, before its entry is reused', (t) => {
  const { records, send, flows } = setup(1)
  send(udp4({ sport: 1 }), T0)
  t.is(records.length, 0)
  send(udp4({ sport: 2 }), T0 + 1) // table full: the unreplied first flow is evicted
  t.is(flows.stats.evicted, 1)
  t.is(records.length, 1)
  t.like(records[0], { srcport: 1, packets: 1, 'record-reason': 'evicted' })
})

test('the writer: JSON lines to a file; past its bound it drops and counts instead of waiting', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowlog-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'flows.jsonl')
  const w = FlowLogWriter.open(file)
  w.push({ a: 1 })
  w.push({ a: 2 })
  await w.close()
  t.deepEqual(
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    [{ a: 1 }, { a: 2 }],
  )
  t.is(w.written, 2)

  // A stream that never finishes a write: the first batch is handed over, then the queue fills and drops.
  const stuck = new Writable({ highWaterMark: 1, write() {} })
  const s = new FlowLogWriter(stuck, 10)
  for (let i = 0; i < 5; i++) s.push({ i })
  await new Promise((r) => setImmediate(r))
  t.is(s.written, 5)
  for (let i = 0; i < 25; i++) s.push({ i })
  await new Promise((r) => setImmediate(r))
  t.is(s.written, 5, 'nothing more while the stream has not drained')
  t.is(s.dropped, 15, 'the queue holds 10; the rest are counted')
})

test('a flow idle past its timeout is reported by the scan, not only when the sweep gets to it', (t) => {
  const { log, records, send, flows } = setup(64, 3_600_000) // no periodic record in the way
  send(udp4(), T0)
  send(rev(udp4()), T0 + 5)
  log.tick(T0 + 5 + flows.otherIdleMs - 1000)
  t.is(records.length, 0, 'not idle long enough')
  log.tick(T0 + 5 + flows.otherIdleMs)
  t.is(records.length, 1)
  t.like(records[0], { packets: 2, 'record-reason': 'expired', action: 'ACCEPT', policy: null })
  t.is(flows.size, 1, 'still in the table')
  flows.sweep(T0 + 5 + flows.otherIdleMs)
  t.is(flows.size, 0)
  t.is(records.length, 1, 'its removal adds nothing: no packets since')
})

test('a scan writes at most its budget of records; the next scans, at the next tick, write the rest', (t) => {
  const c = compile(POLICIES, { fleetDefault: 'Allow' })
  const records: FlowRecord[] = []
  let fp: FastPath | undefined
  const log = new FlowLog({
    sink: (r) => records.push(r),
    decisionOf: (i) => fp!.decisionOf(i),
    intervalMs: 10_000,
    maxRecordsPerScan: 4,
  })
  const flows = new FlowTable({ capacity: 64, seed: 1, now: () => 0, onRemove: (i, r) => log.onRemove(i, r) })
  log.attach(flows)
  fp = new FastPath({ flows, engine: new PolicyEngine(c.policies, 'Allow') })
  const r = new FastPathResult()
  for (let port = 1; port <= 10; port++) {
    const d = datagram(udp4({ sport: port }))
    fp.processDatagram(d, d.length, 0x0a000001, 60000, T0, r)
  }
  log.tick(T0 + 10_000)
  t.is(records.length, 4)
  log.tick(T0 + 10_250) // not a second later: the scan stopped at its budget
  t.is(records.length, 8)
  log.tick(T0 + 10_500)
  t.is(records.length, 10)
  t.deepEqual(
    records.map((x) => x.srcport).sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    'each once',
  )
  log.tick(T0 + 10_750)
  t.is(records.length, 10, 'nothing due until a second later')
})

test('the writer resumes when a slow stream drains, and nothing is lost within its bound', async (t) => {
  const chunks: string[] = []
  const pending: (() => void)[] = []
  // Completes each write only when the test says so: a disk that stalls, then catches up.
  const slow = new Writable({
    highWaterMark: 1,
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString())
      pending.push(cb)
    },
  })
  const w = new FlowLogWriter(slow, 100)
  w.push({ n: 0 })
  await new Promise((r) => setImmediate(r))
  for (let n = 1; n <= 50; n++) w.push({ n })
  await new Promise((r) => setImmediate(r))
  t.is(chunks.length, 1, 'waiting for drain')
  for (let k = 0; k < 10 && pending.length > 0; k++) {
    pending.shift()!()
    await new Promise((r) => setImmediate(r))
  }
  const lines = chunks.join('').trim().split('\n')
  t.deepEqual(
    lines.map((l) => (JSON.parse(l) as { n: number }).n),
    Array.from({ length: 51 }, (_, n) => n),
  )
  t.is(w.written, 51)
  t.is(w.dropped, 0)
})
