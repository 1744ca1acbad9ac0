// Loss recovery and the receive-side mechanisms that serve it (issue 4, throughput under loss): the scoreboard
// (RFC 6675), RACK-TLP (RFC 8985), PRR (RFC 6937) on their own, then through one connection driven by
// hand-built segments on a fake clock (harness.ts), the way gVisor's netstack tests do it.

import test from 'ava'
import { Prr } from '../../appliance/src/tcp/prr.ts'
import { probeTimeout, Rack, sentAfter } from '../../appliance/src/tcp/rack.ts'
import { isDsack } from '../../appliance/src/tcp/recovery.ts'
import { SackScoreboard, type SentSegment } from '../../appliance/src/tcp/sack.ts'
import type { TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { type Seq, seq, seqAdd, seqSub } from '../../appliance/src/tcp/seq.ts'
import { bytes, established, IRS, ISS, sackOpen } from './harness.ts'

const S1 = seqAdd(ISS, 1)
const R1 = seqAdd(IRS, 1)
/** Where sackOpen() leaves SND.UNA: after its first 4,000 bytes. */
const U = seqAdd(S1, 4000)
const off = (s: { seq: Seq }) => seqSub(s.seq, U)
const offs = (segs: TcpRepr[]) => segs.filter((s) => s.payload.length > 0).map(off)
const blocks = (...b: [number, number][]) => b.map(([l, r]) => ({ left: seqAdd(U, l), right: seqAdd(U, r) }))

// --- the algorithms on their own -------------------------------------------------------------------------------

test('scoreboard: pipe, SACK marks split at block edges, a FIN no block covers, cumulative ACKs into a segment (RFC 6675 §3–4)', (t) => {
  const sb = new SackScoreboard()
  const base = seq(0xffff_fc00) // the wrap is crossed
  const at = (n: number) => seqAdd(base, n)
  for (let i = 0; i < 4; i++) sb.push(at(i * 1000), at((i + 1) * 1000), false, 10)
  sb.push(at(4000), at(4501), true, 11) // 500 bytes and our FIN
  const max = at(4501)
  t.is(sb.length, 5)
  t.is(sb.pipe(4501), 4501)
  const seen: number[] = []
  const cb = (s: SentSegment) => seen.push(seqSub(s.start, base))
  // Segment 1 and half of segment 2: segment 2 is split at the block's edge.
  t.is(sb.sack([{ left: at(1000), right: at(2500) }], base, max, cb), 1500)
  t.deepEqual(seen, [1000, 2000])
  t.is(sb.length, 6)
  t.is(sb.sackedBytes, 1500)
  t.is(sb.sackedSegments, 2)
  t.is(sb.pipe(4501), 3001)
  // The last segment's data is SACKed; its FIN, which no block reports, stays outstanding on its own.
  sb.sack([{ left: at(4000), right: at(4500) }], base, max, cb)
  t.is(sb.last!.start, at(4500))
  t.true(sb.last!.fin)
  t.false(sb.last!.sacked)
  // At or below SND.UNA (a D-SACK) or past SND.MAX: ignored.
  t.is(
    sb.sack(
      [
        { left: base, right: at(500) },
        { left: at(4000), right: at(5000) },
      ],
      base,
      max,
      cb,
    ),
    0,
  )
  // Deemed lost: out of the pipe until retransmitted.
  sb.markLost(sb.at(0)!)
  t.is(sb.lostBytes, 1000)
  t.is(sb.firstLost(), 0)
  t.is(sb.pipe(4501), 4501 - 2000 - 1000)
  sb.retransmitted(sb.at(0)!, 20)
  t.is(sb.lostBytes, 0)
  t.is(sb.firstLost(), -1)
  t.is(sb.pipe(4501), 4501 - 2000)
  // A cumulative ACK into segment 0 (the receiver took a prefix), then one past the SACKed segments: only bytes
  // not SACKed before count as newly delivered.
  seen.length = 0
  t.is(sb.ackTo(at(400), cb), 400)
  t.is(sb.at(0)!.start, at(400))
  t.is(sb.ackTo(at(2500), cb), 600)
  t.deepEqual(seen, [400], 'the rest of segment 0; the SACKed ones were delivered before')
  t.is(sb.sackedBytes, 500)
  // RTO: everything not SACKed is lost; a reneging receiver's SACKs are forgotten.
  sb.markAllLost()
  t.is(sb.lostBytes, 500 + 1000 + 1)
  t.is(sb.pipe(2001), 0)
  sb.clearSacks()
  t.is(sb.sackedBytes, 0)
  t.is(sb.sackedSegments, 0)
})

test('scoreboard: RTT samples from segment timing follow Karn’s rule; transmit times strictly increase', (t) => {
  const sb = new SackScoreboard()
  const a = sb.push(seq(0), seq(100), false, 50)
  const b = sb.push(seq(100), seq(200), false, 50)
  t.true(b.xmitTs > a.xmitTs, 'two segments sent at one clock reading are still ordered')
  t.is(sb.rttSample(seq(100), 50.25), 0.25, 'sub-millisecond, exact')
  sb.retransmitted(a, 60)
  t.true(a.xmitTs > b.xmitTs, 'the retransmission is later than the new data sent before it')
  t.is(sb.rttSample(seq(200), 70), -1, 'the ACK covers a retransmitted segment: no sample')
})

test('RACK: delivery, RTT, reordering, the reordering window and loss marking by time (RFC 8985 §6.2)', (t) => {
  const seg = (start: number, end: number, xmitTs: number, retransmitted = false): SentSegment => ({
    start: seq(start),
    end: seq(end),
    fin: false,
    xmitTs,
    retransmitted,
    sacked: false,
    lost: false,
  })
  t.true(sentAfter(2, seq(0), 1, seq(10)))
  t.true(sentAfter(1, seq(20), 1, seq(10)), 'same time: the higher sequence number')
  t.false(sentAfter(1, seq(10), 1, seq(10)))
  const r = new Rack()
  r.onDelivered(seg(1000, 2000, 100), 110, false)
  t.is(r.rtt, 10)
  t.is(r.minRtt, 10)
  t.is(r.xmitTs, 100)
  // A retransmission ACKed sooner than any RTT — the ACK was for the original — or whose echo predates it.
  r.onDelivered(seg(2000, 3000, 105, true), 108, false)
  r.onDelivered(seg(3000, 4000, 104, true), 200, true)
  t.is(r.rtt, 10)
  t.is(r.xmitTs, 100)
  t.false(r.reorderingSeen, 'retransmissions below the highest delivered are not reordering')
  r.onDelivered(seg(0, 1000, 90), 120, false)
  t.true(r.reorderingSeen, 'a segment sent once, delivered below the highest: reordering')

  const w = new Rack()
  w.onDelivered(seg(0, 1000, 0), 8, false)
  t.is(w.reoWnd(false, 0, 100), 2, 'min_RTT / 4')
  t.is(w.reoWnd(false, 0, 1), 1, 'at most SRTT')
  t.is(w.reoWnd(true, 0, 100), 0, 'in recovery without reordering: none')
  t.is(w.reoWnd(false, 3, 100), 0, 'DupThresh segments SACKed without reordering: none')
  // D-SACKs widen it, once per round trip, for 16 recoveries.
  w.onAckRound(seq(0), seq(5000), true)
  t.is(w.reoWnd(false, 0, 100), 4)
  w.onAckRound(seq(1000), seq(6000), true)
  t.is(w.reoWnd(false, 0, 100), 4, 'the same round')
  w.onAckRound(seq(5000), seq(7000), true)
  t.is(w.reoWnd(false, 0, 100), 6)
  for (let i = 0; i < 15; i++) w.onRecoveryExit()
  t.is(w.reoWndMult, 3)
  w.onRecoveryExit()
  t.is(w.reoWndMult, 1)

  // Loss marking: segments sent before the latest delivered one, an RTT plus the window ago.
  const sb = new SackScoreboard()
  const segs = [0, 1, 2, 3].map((i) => sb.push(seq(i * 1000), seq((i + 1) * 1000), false, i))
  const d = new Rack()
  segs[3]!.sacked = true
  d.onDelivered(segs[3]!, 13, false)
  t.is(d.detectLoss(sb, 13, 2), 1, 'segment 2 is due in 1 ms (the reordering timer: the last one due)')
  t.deepEqual(
    segs.map((s) => s.lost),
    [true, true, false, false],
  )
  t.is(d.detectLoss(sb, 14, 2), 0)
  t.true(segs[2]!.lost)
})

test('PRR: proportional while pipe > ssthresh, slow-start reduction bound below it (RFC 6937 §3.1)', (t) => {
  const p = new Prr()
  p.start(5000, 10_000)
  t.is(p.onAck(1000, 9000, 1000), 1000, 'half of 1000, but the fast retransmission goes first')
  p.onSent(1000)
  t.is(p.onAck(1000, 8000, 1000), 0, 'CEIL(2000 × 5000 / 10000) − 1000')
  t.is(p.onAck(1000, 7000, 1000), 500)
  p.onSent(500)
  // More was lost than the reduction asked for: back towards ssthresh, by at most what was delivered + 1 MSS.
  t.is(p.onAck(1000, 2000, 1000), 3000, 'MIN(5000 − 2000, MAX(4000 − 1500, 1000) + 1000)')
  t.is(p.onAck(0, 4500, 1000), 500, 'MIN(ssthresh − pipe, …)')
})

test('tail loss probe timeout: 2 × SRTT (+ 2 ms), + WCDelAckT for a single segment, 1 s unmeasured, within the RTO (RFC 8985 §7.2)', (t) => {
  t.is(probeTimeout(10, false, 1000), 22)
  t.is(probeTimeout(10, true, 1000), 220)
  t.is(probeTimeout(undefined, false, 5000), 1000)
  t.is(probeTimeout(10, true, 150), 150)
})

test('D-SACK recognition: the first block below the cumulative ACK or inside the second (RFC 2883 §4)', (t) => {
  const b = (l: number, r: number) => ({ left: seq(l), right: seq(r) })
  t.true(isDsack([b(100, 200)], seq(300)))
  t.true(isDsack([b(500, 600), b(400, 700)], seq(300)))
  t.false(isDsack([b(500, 600), b(800, 900)], seq(300)))
  t.false(isDsack(undefined, seq(300)))
})

// --- through a connection -------------------------------------------------------------------------------------

test('RACK: one SACK starts the reordering timer; the hole is resent when it fires, not at the RTO', (t) => {
  const c = sackOpen() // RTT 10 ms
  c.conn.write(bytes(3000))
  t.is(c.take().length, 3)
  c.clock.advance(10)
  c.input({ ack: U, sack: blocks([1000, 2000]) })
  t.deepEqual(offs(c.take()), [], 'reordering window: min_RTT / 4 = 2.5 ms')
  c.clock.advance(2)
  t.deepEqual(offs(c.take()), [])
  c.clock.advance(0.5)
  t.deepEqual(offs(c.take()), [0], 'segment 0, not segment 2 (sent after the SACKed one)')
  t.is(c.metrics.fastRecoveries, 1)
  t.is(c.metrics.rtoExpiries, 0)
})

test('RACK finds a lost retransmission: resent again once data sent after it is delivered (no RTO)', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(10_000))
  t.is(c.take().length, 6)
  c.clock.advance(10)
  // Three SACKed segments: segment 0 is lost at once (DupThresh rule); PRR lets one segment go.
  c.input({ ack: U, sack: blocks([1000, 4000]) })
  t.deepEqual(offs(c.take()), [0])
  c.clock.advance(1)
  c.input({ ack: U, sack: blocks([1000, 5000]) })
  t.deepEqual(offs(c.take()), [6000], 'new data, sent after the retransmission')
  // That new segment arrives an RTT later, the retransmission of segment 0 still has not: it was lost too.
  c.clock.advance(10)
  c.input({ ack: U, sack: blocks([6000, 7000], [1000, 5000]) })
  const again = offs(c.take())
  t.true(again.includes(0), `segment 0 resent again (sent: ${again})`)
  t.true(again.includes(5000), 'and segment 5, never SACKed')
  t.is(c.metrics.rtoExpiries, 0)
})

test('TLP: a lost tail is probed after 2 × SRTT; the probe’s SACK lets RACK repair the rest (RFC 8985 §7)', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(3000))
  t.is(c.take().length, 3)
  c.clock.advance(10)
  c.input({ ack: seqAdd(U, 1000) }) // segments 1 and 2 lost
  c.clock.advance(21)
  t.deepEqual(offs(c.take()), [], 'PTO = 2 × SRTT + 2 ms after the ACK')
  c.clock.advance(1)
  t.deepEqual(offs(c.take()), [2000], 'nothing new to send: the last segment is the probe')
  t.is(c.metrics.tailLossProbes, 1)
  c.clock.advance(10)
  c.input({ ack: seqAdd(U, 1000), sack: blocks([2000, 3000]) })
  t.deepEqual(offs(c.take()), [1000])
  t.is(c.metrics.rtoExpiries, 0)
})

test('TLP sends new data when it has some; a whole lost flight is then repaired by RACK, not the RTO', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(8000))
  t.is(c.take().length, 6) // cwnd 6000; 2000 bytes wait
  c.clock.advance(22)
  t.deepEqual(offs(c.take()), [6000], 'the probe is new data, beyond cwnd')
  c.clock.advance(10)
  c.input({ ack: U, sack: blocks([6000, 7000]) })
  const rtx = offs(c.take())
  t.is(rtx[0], 0, 'everything sent before the probe is lost; recovery starts at SND.UNA')
  t.is(c.metrics.fastRecoveries, 1)
  t.is(c.metrics.rtoExpiries, 0)
})

test('a probe answered by a D-SACK was needless: no window reduction; one that repaired a loss reduces it (RFC 8985 §7.4)', (t) => {
  const probe = () => {
    const c = sackOpen()
    c.conn.write(bytes(3000))
    c.take()
    c.clock.advance(10)
    c.input({ ack: seqAdd(U, 1000) })
    c.clock.advance(22)
    t.deepEqual(offs(c.take()), [2000])
    return c
  }
  // The last segment had arrived (its ACK was late): the peer reports the probe as a duplicate.
  const a = probe()
  const cwnd = a.conn.cc.cwnd
  a.input({ ack: seqAdd(U, 3000), sack: blocks([2000, 3000]) })
  a.conn.write(bytes(1000))
  a.take()
  a.input({ ack: seqAdd(U, 4000) })
  t.is(a.metrics.tailLossProbeRecoveries, 0)
  t.true(a.conn.cc.cwnd >= cwnd)
  // No D-SACK, and then an ACK beyond the probe: the probe repaired a loss.
  const b = probe()
  b.input({ ack: seqAdd(U, 3000) })
  b.conn.write(bytes(1000))
  b.take()
  const w = b.conn.cc.cwnd
  b.input({ ack: seqAdd(U, 4000) })
  t.is(b.metrics.tailLossProbeRecoveries, 1)
  t.is(b.conn.cc.ssthresh, Math.floor(w / 2), 'as for a loss: half of max(FlightSize, cwnd)')
  t.is(b.conn.cc.cwnd, b.conn.cc.ssthresh)
})

test('RTO with SACK: everything unSACKed is resent from SND.UNA on, SACKed data never (RFC 6675 §5.1)', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(4000))
  c.take()
  c.clock.advance(10)
  c.input({ ack: U, sack: blocks([3000, 4000]) })
  c.clock.advance(2.5)
  t.deepEqual(offs(c.take()), [0], 'the reordering timer: segment 0, with PRR’s allowance')
  // Nothing comes back: the RTO.
  c.clock.advance(200)
  t.is(c.metrics.rtoExpiries, 1)
  t.deepEqual(offs(c.take()), [0], 'cwnd = 1 SMSS: the first segment')
  c.clock.advance(10)
  c.input({ ack: seqAdd(U, 1000), sack: blocks([3000, 4000]) })
  const rest = offs(c.take())
  t.deepEqual(rest, [1000, 2000], 'slow start resends the holes; the SACKed segment 3 is not resent')
  c.input({ ack: seqAdd(U, 4000) })
  t.is(c.conn.sndUna, c.conn.sndMax)
})

test('a receiver that reneged on a SACK: the RTO forgets SACKs and resends what it had reported (RFC 2018 §8)', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(3000))
  c.take()
  c.clock.advance(10)
  c.input({ ack: U, sack: blocks([1000, 2000]) })
  c.clock.advance(2.5)
  t.deepEqual(offs(c.take()), [0])
  c.clock.advance(10)
  // Segment 0 arrived, yet the ACK stops there and the SACK for segment 1 is gone: the receiver dropped it.
  c.input({ ack: seqAdd(U, 1000) })
  c.take()
  c.clock.advance(250)
  t.true(c.metrics.rtoExpiries >= 1)
  t.true(offs(c.take()).includes(1000), 'segment 1, once SACKed, is resent')
})

test('rescue retransmission: in recovery with nothing else to send, the last segment is resent once (RFC 6675 §4 rule 4)', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(5000))
  c.take()
  c.clock.advance(10)
  c.input({ ack: U, sack: blocks([1000, 4000]) })
  t.deepEqual(offs(c.take()), [0, 4000], 'the hole, then the tail in case it was lost too')
  c.input({ ack: U, sack: blocks([1000, 4000]) })
  t.deepEqual(offs(c.take()), [], 'once per recovery')
})

test('the window grows only while it limits the flight (RFC 7661): small writes do not inflate it', (t) => {
  const c = sackOpen()
  const cwnd = c.conn.cc.cwnd
  for (let i = 0; i < 20; i++) {
    c.conn.write(bytes(1000))
    c.take()
    c.clock.advance(10)
    c.input()
  }
  t.is(c.conn.cc.cwnd, cwnd)
})

// --- the receiving side -----------------------------------------------------------------------------------------

test('D-SACK: a duplicate segment is reported in the first SACK block of the ACK it draws (RFC 2883 §4)', (t) => {
  const c = established({ cfg: { sack: true }, peer: { sackPermitted: true } })
  c.input({ payload: bytes(100) })
  c.take()
  c.input({ seq: R1, payload: bytes(100) })
  const a = c.one()
  t.is(a.ack, seqAdd(R1, 100))
  t.deepEqual(a.sack, [{ left: R1, right: seqAdd(R1, 100) }])
  c.input({ seq: seqAdd(R1, 100), payload: bytes(100) })
  t.is(c.one().sack, undefined, 'reported once')
})

test('RTT from segment timing is exact where millisecond timestamps would read 0', (t) => {
  const c = established({ cfg: { timestamps: true }, peer: { timestamp: { val: 1, ecr: 0 } }, rtt: 0.3 })
  t.true(Math.abs(c.conn.rto.srtt - 0.3) < 1e-9, 'the SYN, timed')
  c.conn.write(bytes(900))
  const d = c.one()
  c.clock.advance(0.5)
  c.input({ timestamp: { val: 2, ecr: d.timestamp!.val } })
  t.true(Math.abs(c.conn.rto.srtt - (0.3 * 7 + 0.5) / 8) < 1e-9, `srtt ${c.conn.rto.srtt}`)
})

test('receive-buffer autotuning: a sender that fills the window each RTT while the application keeps up doubles it, up to rcvBufMax', (t) => {
  const run = (autoConsume: boolean) => {
    const c = established({
      cfg: { windowScaling: true, rcvBufSize: 16_384, rcvBufMax: 65_536 },
      peer: { windowScale: 0 },
    })
    c.autoConsume = autoConsume
    let at = R1
    for (let rtt = 0; rtt < 8; rtt++) {
      // One window's worth, in 1,000-byte segments, then the round trip.
      const edge = c.conn.rcvAdvEdge
      while (seqSub(edge, at) >= 1000) {
        c.input({ seq: at, payload: bytes(1000) })
        at = seqAdd(at, 1000)
      }
      c.clock.advance(10)
      c.take()
    }
    return c
  }
  const fast = run(true)
  t.is(fast.conn.rcvBuf, 65_536)
  t.true(seqSub(fast.conn.rcvAdvEdge, fast.conn.rcvNxt) > 32_768, 'and the window offered follows')
  const stopped = run(false)
  t.is(stopped.conn.rcvBuf, 16_384, 'a reader that stopped never makes it grow')
})

test('autotuning takes its growth from the stack-wide budget: it stops where the budget is spent, and gives it back on close', (t) => {
  const c = established({
    cfg: { windowScaling: true, rcvBufSize: 16_384, rcvBufMax: 65_536, sndBufSize: 8_192 },
    peer: { windowScale: 0 },
  })
  c.growthBudget = 20_000
  let at = R1
  for (let rtt = 0; rtt < 8; rtt++) {
    const edge = c.conn.rcvAdvEdge
    while (seqSub(edge, at) >= 1000) {
      c.input({ seq: at, payload: bytes(1000) })
      at = seqAdd(at, 1000)
    }
    c.clock.advance(10)
    c.take()
  }
  t.is(c.conn.rcvBuf, 16_384 + 20_000, 'grew by the budget, not to rcvBufMax')
  t.is(c.growth, 20_000)
  // Under pressure the send buffer stays at its initial size: writes beyond it are refused (backpressure).
  t.false(c.conn.write(bytes(9_000)), 'no room beyond sndBufSize while the budget is spent')
  c.conn.abort()
  t.is(c.growth, 0, 'closing gave the growth back')
})

test('PAWS lets an overtaken duplicate ACK through (as Linux does) but not overtaken data', (t) => {
  const c = established({ cfg: { timestamps: true }, peer: { timestamp: { val: 1000, ecr: 0 } } })
  c.input({ payload: bytes(10), timestamp: { val: 1010, ecr: 0 } })
  c.take()
  c.input({ timestamp: { val: 1005, ecr: 0 } })
  t.is(c.metrics.pawsRejects, 0)
  t.is(c.take().length, 0, 'not answered')
  c.input({ seq: seqAdd(R1, 10), payload: bytes(10), timestamp: { val: 1005, ecr: 0 } })
  t.is(c.metrics.pawsRejects, 1)
  t.is(c.received().length, 10)
})
