// The algorithm files on their own: sequence arithmetic, RTO, NewReno, CUBIC, reassembly, option
// negotiation, send buffer, ISN, fake clock. Loss recovery's (scoreboard, RACK-TLP, PRR) are in
// recovery.test.ts.

import test from 'ava'
import { SendBuffer } from '../../appliance/src/tcp/buffer.ts'
import { Deadline, FakeClock, SeededRandom } from '../../appliance/src/tcp/clock.ts'
import { initialWindow, NewReno } from '../../appliance/src/tcp/congestion.ts'
import * as tcp from '../../appliance/src/tcp/index.ts'
import { IsnGenerator } from '../../appliance/src/tcp/isn.ts'
import { TCP_METRIC_NAMES, TcpMetrics } from '../../appliance/src/tcp/metrics.ts'
import { gwlbMss, negotiate, pawsRejects, tsLt, windowScaleFor } from '../../appliance/src/tcp/options.ts'
import { Reassembly } from '../../appliance/src/tcp/reassembly.ts'
import { RtoEstimator } from '../../appliance/src/tcp/rto.ts'
import { Flag, formatSegment, makeSegment, segLen } from '../../appliance/src/tcp/segment.ts'
import {
  seq,
  seqAdd,
  seqGe,
  seqGt,
  seqInRange,
  seqLe,
  seqLt,
  seqMax,
  seqMin,
  seqSub,
} from '../../appliance/src/tcp/seq.ts'

const MAX = 0xffff_ffff

test('sequence arithmetic wraps modulo 2^32 (RFC 9293 §3.4)', (t) => {
  const table: [number, number, number][] = [
    // a, b, a − b
    [10, 5, 5],
    [5, 10, -5],
    [0, MAX, 1],
    [MAX, 0, -1],
    [5, 0xffff_fff0, 21],
    [0x7fff_ffff, 0, 0x7fff_ffff],
    [0x8000_0000, 0, -0x8000_0000],
  ]
  for (const [a, b, d] of table) {
    t.is(seqSub(seq(a), seq(b)), d, `${a} - ${b}`)
    t.is(seqLt(seq(a), seq(b)), d < 0)
    t.is(seqLe(seq(a), seq(b)), d <= 0)
    t.is(seqGt(seq(a), seq(b)), d > 0)
    t.is(seqGe(seq(a), seq(b)), d >= 0)
  }
  t.is(seqAdd(seq(MAX), 1), seq(0))
  t.is(seqAdd(seq(0), -1), seq(MAX))
  t.is(seq(-1), seq(MAX))
  t.is(seqMax(seq(MAX), seq(3)), seq(3))
  t.is(seqMin(seq(MAX), seq(3)), seq(MAX))
  t.true(seqInRange(seq(2), seq(MAX - 1), seq(10)))
  t.false(seqInRange(seq(10), seq(MAX - 1), seq(10)))
})

test('RTO: first sample, smoothing, floor, ceiling and backoff (RFC 6298 §2, §5)', (t) => {
  const r = new RtoEstimator({ initialRto: 1000, minRto: 200, maxRto: 60_000, granularity: 1 })
  t.is(r.rto, 1000)
  r.sample(100)
  t.is(r.srtt, 100)
  t.is(r.rttvar, 50)
  t.is(r.rto, 300)
  r.sample(200)
  t.is(r.rttvar, 0.75 * 50 + 0.25 * 100)
  t.is(r.srtt, 0.875 * 100 + 0.125 * 200)
  t.is(r.rto, r.srtt + 4 * r.rttvar)
  r.backoff()
  r.backoff()
  t.is(r.rto, 4 * (r.srtt + 4 * r.rttvar))
  for (let i = 0; i < 20; i++) r.backoff()
  t.is(r.rto, 60_000)
  r.sample(1)
  t.is(r.backoffCount, 0)
  const f = new RtoEstimator({ initialRto: 1000, minRto: 200, maxRto: 60_000, granularity: 1 })
  f.sample(1)
  t.is(f.rto, 200, 'floored')
})

test('NewReno: slow start by bytes (L = 2 SMSS), congestion avoidance, loss and RTO reductions (RFC 5681, RFC 3465)', (t) => {
  t.is(initialWindow(536), 2144)
  t.is(initialWindow(1460), 4380)
  t.is(initialWindow(8440), 16_880)
  const cc = new NewReno(1000)
  t.is(cc.cwnd, 4000)
  cc.onAck(1000)
  t.is(cc.cwnd, 5000)
  cc.onAck(3000)
  t.is(cc.cwnd, 7000, 'slow start grows by at most 2*SMSS per ACK (RFC 3465 §2.2)')
  cc.onAck(0)
  t.is(cc.cwnd, 7000, 'nothing new acknowledged: no growth')
  // A loss: ssthresh = max(FlightSize / 2, 2*SMSS); cwnd is recovery's (PRR) until it ends.
  cc.onLoss(6000)
  t.is(cc.ssthresh, 3000)
  cc.onLoss(1000)
  t.is(cc.ssthresh, 2000, 'never below 2*SMSS')
  // RTO: cwnd to one segment; slow start stops at ssthresh, then +SMSS per cwnd of ACKed bytes.
  const ca = new NewReno(1000)
  ca.onRto(8000)
  t.is(ca.cwnd, 1000)
  t.is(ca.ssthresh, 4000)
  ca.onAck(1000)
  ca.onAck(1000)
  ca.onAck(2000)
  t.is(ca.cwnd, 4000, 'slow start capped at ssthresh')
  ca.onAck(2000)
  t.is(ca.cwnd, 4000)
  ca.onAck(2000)
  t.is(ca.cwnd, 5000)
  // The MSS agreed in the handshake replaces the default in an untouched initial window.
  const m = new NewReno(8440)
  m.setMss(1448)
  t.is(m.cwnd, initialWindow(1448))
})

test('reassembly: overlaps are stored once, take() trims and drains contiguous data, the limit holds', (t) => {
  let gauge = 0
  const q = new Reassembly(100, (d) => {
    gauge += d
  })
  const b = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => from + i)
  const base = seq(MAX - 20) // across the wrap
  t.true(q.insert(seqAdd(base, 10), b(10, 10)))
  t.true(q.insert(seqAdd(base, 15), b(15, 20))) // overlaps: only 20..34 new
  t.is(q.held, 25)
  t.true(q.insert(seqAdd(base, 50), b(50, 10)))
  t.is(gauge, 35)
  t.deepEqual(q.sackBlocks(4), [
    { left: seqAdd(base, 50), right: seqAdd(base, 60) },
    { left: seqAdd(base, 10), right: seqAdd(base, 35) },
  ])
  t.deepEqual(q.take(base), [], 'nothing contiguous at base')
  const got = q.take(seqAdd(base, 12))
  t.deepEqual(Buffer.concat(got), Buffer.from(b(12, 23)))
  t.is(q.held, 10)
  t.false(q.insert(seqAdd(base, 70), b(70, 91)), 'over the limit')
  t.is(q.held, 10)
  q.clear()
  t.is(gauge, 0)
  t.true(q.empty)
})

test('the payload view is copied into the reassembly queue', (t) => {
  const q = new Reassembly(100)
  const src = Uint8Array.of(1, 2, 3)
  q.insert(seq(10), src)
  src[0] = 99
  t.deepEqual([...q.take(seq(10))[0]!], [1, 2, 3])
})

test('option negotiation: each extension only when both SYNs carry it; MSS clamped to the GWLB path', (t) => {
  t.is(gwlbMss(4), 8460)
  t.is(gwlbMss(6), 8440)
  t.is(windowScaleFor(65_535), 0)
  t.is(windowScaleFor(65_536), 1)
  t.is(windowScaleFor(1 << 30), 14)
  t.is(windowScaleFor(2 ** 40), 14, 'never above 14 (RFC 7323 §2.3)')
  const cfg = { mss: 8440, windowScaling: true, timestamps: true, sack: true, rcvBufSize: 1 << 20 }
  const all = makeSegment({
    seq: seq(1),
    flags: Flag.SYN,
    mss: 9001,
    windowScale: 3,
    sackPermitted: true,
    timestamp: { val: 1, ecr: 0 },
  })
  t.deepEqual(negotiate(cfg, all), {
    sndMss: 8428,
    sndWscale: 3,
    rcvWscale: 5,
    wsOk: true,
    tsOk: true,
    sackOk: true,
  })
  t.deepEqual(negotiate(cfg, makeSegment({ seq: seq(1), flags: Flag.SYN })), {
    sndMss: 536,
    sndWscale: 0,
    rcvWscale: 0,
    wsOk: false,
    tsOk: false,
    sackOk: false,
  })
  t.false(negotiate({ ...cfg, sack: false, timestamps: false }, all).sackOk)
})

test('PAWS compares timestamps modulo 2^32 with one tick of slack and exempts RST (RFC 7323 §5.3)', (t) => {
  t.true(tsLt(0xffff_fff0, 5))
  t.false(tsLt(5, 0xffff_fff0))
  const s = (val: number) => makeSegment({ seq: seq(0), timestamp: { val, ecr: 0 } })
  t.true(pawsRejects(s(98), 100, false))
  t.false(pawsRejects(s(99), 100, false), 'one tick of slack (PAWS_WINDOW): reordered across a tick')
  t.false(pawsRejects(s(100), 100, false))
  t.false(pawsRejects(s(98), 100, true))
  t.true(pawsRejects(s(0xffff_fff0), 5, false), 'modulo 2^32')
  t.false(pawsRejects(makeSegment({ seq: seq(0) }), 100, false))
})

test('send buffer: drops acknowledged bytes, reads ranges across chunks', (t) => {
  const b = new SendBuffer()
  b.push(Uint8Array.of(0, 1, 2))
  b.push(Uint8Array.of(3, 4))
  b.push(new Uint8Array(0))
  b.push(Uint8Array.of(5, 6, 7, 8))
  t.is(b.length, 9)
  t.deepEqual([...b.read(1, 6)], [1, 2, 3, 4, 5, 6])
  b.drop(4)
  t.deepEqual([...b.read(0, 5)], [4, 5, 6, 7, 8])
  t.deepEqual([...b.read(1, 2)], [5, 6])
  b.drop(100)
  t.is(b.length, 0)
  t.is(b.read(0, 1).length, 0)
  for (let i = 0; i < 200; i++) b.push(Uint8Array.of(i))
  b.drop(150)
  t.deepEqual([...b.read(0, 3)], [150, 151, 152])
})

test('ISN: keyed per 4-tuple, advancing with the clock (RFC 6528)', (t) => {
  const clock = new FakeClock(0)
  const g = new IsnGenerator(clock, new SeededRandom(1))
  const a = g.next('10.0.0.1', 1000, '10.0.0.2', 80)
  const b = g.next('10.0.0.1', 1001, '10.0.0.2', 80)
  t.not(a, b)
  clock.advance(1000)
  t.is(seqSub(g.next('10.0.0.1', 1000, '10.0.0.2', 80), a), 250_000, 'one tick per 4 µs')
  const other = new IsnGenerator(new FakeClock(0), new SeededRandom(2))
  t.not(other.next('10.0.0.1', 1000, '10.0.0.2', 80), a, 'another secret, another ISN')
})

test('fake clock fires timers in deadline order; Deadline re-arms lazily when moved later', (t) => {
  const c = new FakeClock(0)
  const log: string[] = []
  c.setTimer(20, () => log.push('b'))
  c.setTimer(10, () => log.push('a'))
  const h = c.setTimer(15, () => log.push('x'))
  c.setTimer(20, () => log.push('c'))
  c.clearTimer(h)
  c.advance(25)
  t.deepEqual(log, ['a', 'b', 'c'])
  t.is(c.now(), 25)
  let fired = 0
  const d = new Deadline(c, () => fired++)
  d.setIn(10)
  d.setIn(30) // later: no new clock timer, the first re-arms
  c.advance(10)
  t.is(fired, 0)
  t.true(d.armed)
  c.advance(20)
  t.is(fired, 1)
  t.false(d.armed)
  d.setIn(10)
  d.setIn(5) // earlier: re-armed now
  c.advance(5)
  t.is(fired, 2)
  d.setIn(5)
  d.clear()
  c.advance(100)
  t.is(fired, 2)
  t.false(c.step())
})

test('metrics: every counter has a Prometheus name; segment helpers', (t) => {
  const m = new TcpMetrics()
  for (const k of Object.keys(m)) t.truthy(TCP_METRIC_NAMES[k as keyof TcpMetrics], k)
  for (const v of Object.values(TCP_METRIC_NAMES)) t.regex(v, /^flowgate_tcp_[a-z_]+$/)
  const s = makeSegment({ seq: seq(1), flags: Flag.SYN | Flag.FIN, payload: new Uint8Array(3) })
  t.is(segLen(s), 5)
  t.is(
    formatSegment({
      ...s,
      flags: Flag.SYN | Flag.ACK,
      ack: seq(9),
      mss: 1460,
      sack: [{ left: seq(2), right: seq(4) }],
    }),
    '0 > 0 [S.] seq 1:4 ack 9 win 0 <mss 1460,sack 2:4> length 3',
  )
})

test('the package entry point exports the public API', (t) => {
  for (const name of [
    'TcpStack',
    'Connection',
    'TcpSocket',
    'tcpConnect',
    'tcpListen',
    'tcpAccept',
    'TcpMetrics',
    'FakeClock',
  ])
    t.is(typeof (tcp as Record<string, unknown>)[name], 'function', name)
  t.is(tcp.DEFAULT_MSS, 8440)
  t.is(tcp.stateName(tcp.State.TIME_WAIT), 'TIME-WAIT')
})

test('CUBIC: β = 0.7 reduction, fast convergence, concave then convex growth towards W_max (RFC 9438)', (t) => {
  let now = 0
  const mss = 1000
  const cc = new tcp.Cubic(
    mss,
    () => now,
    () => 100,
  )
  // Leave slow start with a loss at cwnd = 100 segments; recovery ends with cwnd = ssthresh.
  cc.cwnd = 100 * mss
  cc.onLoss(100 * mss)
  t.is(cc.ssthresh, 70 * mss, 'ssthresh = 0.7 × flight')
  t.is(cc.wMax, 100 * mss)
  cc.cwnd = cc.ssthresh
  // Grow for 20 s of ACKs, one window per 100 ms RTT; record the window each second.
  const samples: number[] = []
  for (let ms = 0; ms <= 20_000; ms += 100) {
    now = ms
    const w = cc.cwnd
    for (let a = 0; a < w / mss; a++) cc.onAck(mss)
    if (ms % 1000 === 0) samples.push(cc.cwnd / mss)
  }
  // K = cbrt(100 × 0.3 / 0.4) ≈ 4.2 s: fast, then flat near W_max, then faster again.
  const k = Math.cbrt((100 * 0.3) / 0.4)
  t.true(Math.abs(k - 4.22) < 0.01)
  const rise = (a: number, b: number) => samples[b]! - samples[a]!
  t.true(rise(0, 2) > rise(3, 5), 'concave before K')
  t.true(rise(10, 12) > rise(3, 5), 'convex after K')
  t.true(Math.abs(samples[4]! - 100) < 8, `plateau near W_max at K (got ${samples[4]})`)
  // A second loss below W_max: fast convergence lowers W_max to cwnd × (1 + β) / 2.
  cc.wMax = 80 * mss
  cc.cwnd = 90 * mss
  cc.onRto(90 * mss)
  t.is(cc.wMax, 90 * mss, 'cwnd was above the old W_max, so no fast convergence')
  cc.cwnd = 50 * mss
  cc.onRto(50 * mss)
  t.is(cc.wMax, 50 * mss * 0.85)
  t.is(cc.cwnd, mss)
})
