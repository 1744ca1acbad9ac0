// State-machine tests driven by hand-built segments (TESTING.md layer 1, issue 4 test a). Our ISS sits just
// below 2^32 so every test also crosses the sequence-number wrap.

import test from 'ava'
import { TcpErrorCode } from '../../appliance/src/tcp/errors.ts'
import { Flag } from '../../appliance/src/tcp/segment.ts'
import { type Seq, seqAdd, seqSub } from '../../appliance/src/tcp/seq.ts'
import { State } from '../../appliance/src/tcp/state.ts'
import { accepted, bytes, Ctx, established, IRS, ISS, sackOpen } from './harness.ts'

const S1 = seqAdd(ISS, 1)
const R1 = seqAdd(IRS, 1)

// --- opening -----------------------------------------------------------------------------------------------

test('active open: SYN with our options, SYN-ACK → ESTABLISHED and ACK (RFC 9293 §3.10.7.3)', (t) => {
  const c = new Ctx({ rcvBufSize: 1 << 20 })
  c.conn.openActive(ISS)
  t.is(c.conn.state, State.SYN_SENT)
  const syn = c.one()
  t.is(syn.flags, Flag.SYN)
  t.is(syn.seq, ISS)
  t.is(syn.mss, 8440)
  // Scaled for the most the buffer may grow to (rcvBufMax, 4 MiB): 2^22 >> 6 = 65536 still overflows 16
  // bits; >> 7 fits.
  t.is(syn.windowScale, 7)
  t.true(syn.sackPermitted)
  t.truthy(syn.timestamp)
  t.is(syn.window, 65535) // RFC 7323 §2.2: never scaled in a SYN
  c.conn.input(
    c.seg({
      seq: IRS,
      ack: S1,
      flags: Flag.SYN | Flag.ACK,
      mss: 1460,
      windowScale: 2,
      sackPermitted: true,
      window: 1000,
    }),
  )
  t.is(c.conn.state, State.ESTABLISHED)
  t.true(c.established)
  const ack = c.one()
  t.is(ack.flags, Flag.ACK)
  t.is(ack.seq, S1)
  t.is(ack.ack, R1)
  t.is(c.conn.sndWnd, 1000) // the SYN-ACK's window is not scaled either
  t.is(c.conn.sndMss, 1460) // peer had no timestamps, so none are subtracted
  t.false(c.conn.tsOk)
  t.true(c.conn.sackOk)
  t.is(c.conn.sndWscale, 2)
})

test('passive open: SYN → SYN-RECEIVED with SYN-ACK carrying only what the peer offered; ACK → ESTABLISHED', (t) => {
  const c = new Ctx()
  c.conn.listen(ISS)
  c.conn.input(c.seg({ seq: IRS, flags: Flag.SYN, mss: 1400, sackPermitted: true }))
  t.is(c.conn.state, State.SYN_RECEIVED)
  const sa = c.one()
  t.is(sa.flags, Flag.SYN | Flag.ACK)
  t.is(sa.seq, ISS)
  t.is(sa.ack, R1)
  t.true(sa.sackPermitted)
  t.is(sa.windowScale, undefined)
  t.is(sa.timestamp, undefined)
  c.input({ seq: R1, ack: S1 })
  t.is(c.conn.state, State.ESTABLISHED)
  t.true(c.established)
})

test('simultaneous open: SYN in SYN-SENT → SYN-RECEIVED, then the peer SYN-ACK → ESTABLISHED (RFC 9293 §3.5 Fig. 8)', (t) => {
  const c = new Ctx({ timestamps: false })
  c.conn.openActive(ISS)
  c.take()
  c.conn.input(c.seg({ seq: IRS, flags: Flag.SYN, mss: 1000 }))
  t.is(c.conn.state, State.SYN_RECEIVED)
  const sa = c.one()
  t.is(sa.flags, Flag.SYN | Flag.ACK)
  t.is(sa.seq, ISS)
  t.is(sa.ack, R1)
  c.conn.input(c.seg({ seq: IRS, ack: S1, flags: Flag.SYN | Flag.ACK, mss: 1000 }))
  t.is(c.conn.state, State.ESTABLISHED)
  c.conn.write(bytes(10))
  const d = c.one()
  t.is(d.seq, S1)
  t.is(d.ack, R1)
})

test('SYN-SENT: RST with acceptable ACK is "connection refused"; without ACK it is ignored', (t) => {
  const c = new Ctx()
  c.conn.openActive(ISS)
  c.take()
  c.conn.input(c.seg({ seq: IRS, flags: Flag.RST }))
  t.is(c.conn.state, State.SYN_SENT)
  c.conn.input(c.seg({ seq: seqAdd(IRS, 0), ack: S1, flags: Flag.RST | Flag.ACK }))
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error?.code, TcpErrorCode.refused)
  t.is(c.error?.errno, 'ECONNREFUSED')
  t.is(c.metrics.resetsReceived, 1)
})

test('SYN-SENT: an ACK outside (ISS, SND.NXT] draws <SEQ=SEG.ACK><CTL=RST> and is dropped', (t) => {
  for (const bad of [ISS, seqAdd(ISS, 2), seqAdd(ISS, -100)]) {
    const c = new Ctx()
    c.conn.openActive(ISS)
    c.take()
    c.conn.input(c.seg({ seq: IRS, ack: bad, flags: Flag.SYN | Flag.ACK }))
    const rst = c.one()
    t.is(rst.flags, Flag.RST)
    t.is(rst.seq, bad)
    t.is(c.conn.state, State.SYN_SENT)
  }
})

test('LISTEN: an ACK draws a RST numbered from SEG.ACK; a RST is ignored (RFC 9293 §3.10.7.2)', (t) => {
  const c = new Ctx()
  c.conn.listen(ISS)
  c.conn.input(c.seg({ seq: IRS, flags: Flag.RST }))
  t.is(c.take().length, 0)
  c.conn.input(c.seg({ seq: IRS, ack: seqAdd(ISS, 77), flags: Flag.ACK }))
  const rst = c.one()
  t.is(rst.flags, Flag.RST)
  t.is(rst.seq, seqAdd(ISS, 77))
})

test('SYN-RECEIVED: a retransmitted SYN gets the SYN-ACK again; an unacceptable ACK gets a RST', (t) => {
  const c = new Ctx()
  c.conn.listen(ISS)
  c.conn.input(c.seg({ seq: IRS, flags: Flag.SYN }))
  c.take()
  c.conn.input(c.seg({ seq: IRS, flags: Flag.SYN }))
  t.is(c.one().flags, Flag.SYN | Flag.ACK)
  c.input({ seq: R1, ack: seqAdd(ISS, 5) })
  const rst = c.one()
  t.is(rst.flags, Flag.RST)
  t.is(rst.seq, seqAdd(ISS, 5))
  t.is(c.conn.state, State.SYN_RECEIVED)
})

test('SYN retransmissions back off and then time out', (t) => {
  const c = new Ctx({ synRetries: 2 })
  c.conn.openActive(ISS)
  c.take()
  c.clock.advance(999)
  t.is(c.take().length, 0)
  c.clock.advance(1)
  t.is(c.one().flags, Flag.SYN) // 1 s (RFC 6298 §2.1 initial RTO)
  c.clock.advance(1999)
  t.is(c.take().length, 0)
  c.clock.advance(1)
  t.is(c.one().flags, Flag.SYN) // backed off to 2 s
  c.clock.advance(4000)
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error?.code, TcpErrorCode.timeout)
})

// --- closing -----------------------------------------------------------------------------------------------

test('active close: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED after the TIME-WAIT period', (t) => {
  const c = established({ cfg: { timeWaitMs: 5000 } })
  c.conn.close()
  t.is(c.conn.state, State.FIN_WAIT_1)
  const fin = c.one()
  t.is(fin.flags, Flag.FIN | Flag.ACK)
  t.is(fin.seq, S1)
  c.input({ ack: seqAdd(S1, 1) })
  t.is(c.conn.state, State.FIN_WAIT_2)
  c.input({ flags: Flag.FIN | Flag.ACK })
  t.is(c.conn.state, State.TIME_WAIT)
  t.true(c.eof)
  t.is(c.one().ack, seqAdd(R1, 1))
  // RFC 9293 §3.10.7.4: a retransmitted FIN in TIME-WAIT is ACKed and restarts the timer.
  c.clock.advance(4000)
  c.input({ seq: R1, flags: Flag.FIN | Flag.ACK })
  t.is(c.one().ack, seqAdd(R1, 1))
  c.clock.advance(4000)
  t.is(c.conn.state, State.TIME_WAIT)
  c.clock.advance(1000)
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error, undefined)
})

test('passive close: CLOSE-WAIT keeps sending until close(), then LAST-ACK → CLOSED', (t) => {
  const c = established()
  c.input({ flags: Flag.FIN | Flag.ACK })
  t.is(c.conn.state, State.CLOSE_WAIT)
  t.true(c.eof)
  t.is(c.one().ack, seqAdd(R1, 1))
  c.conn.write(bytes(100))
  const d = c.one()
  t.is(d.payload.length, 100)
  c.conn.close()
  t.is(c.conn.state, State.LAST_ACK)
  const fin = c.one()
  t.is(fin.flags & Flag.FIN, Flag.FIN)
  t.is(fin.seq, seqAdd(S1, 100))
  c.input({ ack: seqAdd(S1, 101) })
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error, undefined)
})

test('simultaneous close: FIN-WAIT-1 + FIN → CLOSING; ACK of our FIN → TIME-WAIT', (t) => {
  const c = established()
  c.conn.close()
  c.take()
  c.input({ ack: S1, flags: Flag.FIN | Flag.ACK })
  t.is(c.conn.state, State.CLOSING)
  t.is(c.one().ack, seqAdd(R1, 1))
  c.input({ ack: seqAdd(S1, 1) })
  t.is(c.conn.state, State.TIME_WAIT)
})

test('FIN-WAIT-1: a FIN that also ACKs our FIN goes straight to TIME-WAIT', (t) => {
  const c = established()
  c.conn.close()
  c.take()
  c.input({ ack: seqAdd(S1, 1), flags: Flag.FIN | Flag.ACK })
  t.is(c.conn.state, State.TIME_WAIT)
})

test('half-close: after our FIN the peer data keeps flowing to the application', (t) => {
  const c = established()
  c.conn.close()
  c.take()
  c.input({ ack: seqAdd(S1, 1) })
  c.input({ payload: bytes(300) })
  c.input({ seq: seqAdd(R1, 300), payload: bytes(200, 1) })
  t.is(c.received().length, 500)
  t.is(c.conn.state, State.FIN_WAIT_2)
  t.throws(() => c.conn.write(bytes(1)))
})

test('a FIN that arrives ahead of missing data is held until the data arrives', (t) => {
  const c = established()
  c.input({ seq: seqAdd(R1, 100), payload: bytes(50), flags: Flag.FIN | Flag.ACK })
  t.false(c.eof)
  t.is(c.conn.state, State.ESTABLISHED)
  c.input({ payload: bytes(100) })
  t.true(c.eof)
  t.is(c.conn.state, State.CLOSE_WAIT)
  t.is(c.conn.rcvNxt, seqAdd(R1, 151))
})

test('abort sends <SEQ=SND.NXT><CTL=RST> and closes', (t) => {
  const c = established()
  c.conn.write(bytes(10))
  c.take()
  c.conn.abort()
  const rst = c.one()
  t.is(rst.flags, Flag.RST)
  t.is(rst.seq, seqAdd(S1, 10))
  t.is(c.conn.state, State.CLOSED)
  t.is(c.metrics.resetsSent, 1)
})

// --- RFC 5961 -----------------------------------------------------------------------------------------------

test('RST acceptability (RFC 5961 §3.2): exact → reset, in window → challenge ACK, outside → dropped', (t) => {
  const cases = [
    { name: 'exactly RCV.NXT', off: 0, state: State.CLOSED, out: 0 },
    { name: 'in window', off: 1000, state: State.ESTABLISHED, out: 1 },
    { name: 'last byte of window', off: 65534, state: State.ESTABLISHED, out: 1 },
    // Zero-length segments at the right edge are taken (Linux's tcp_sequence); one past it is not.
    { name: 'at the right edge', off: 65535, state: State.ESTABLISHED, out: 1 },
    { name: 'past the right edge', off: 65536, state: State.ESTABLISHED, out: 0 },
    { name: 'before RCV.NXT', off: -1, state: State.ESTABLISHED, out: 0 },
  ]
  for (const k of cases) {
    const c = established()
    c.input({ seq: seqAdd(R1, k.off), flags: Flag.RST })
    t.is(c.conn.state, k.state, k.name)
    const out = c.take()
    t.is(out.length, k.out, k.name)
    if (k.out) {
      t.is(out[0]!.flags, Flag.ACK, k.name)
      t.is(out[0]!.ack, R1, k.name)
      t.is(c.metrics.challengeAcksSent, 1, k.name)
    }
    if (k.state === State.CLOSED) t.is(c.error?.errno, 'ECONNRESET', k.name)
  }
})

test('SYN in a synchronized state draws a challenge ACK and changes nothing (RFC 5961 §4.2)', (t) => {
  const c = established()
  for (const off of [0, 10, -5000, 1 << 30]) {
    c.input({ seq: seqAdd(R1, off), flags: Flag.SYN })
    const a = c.one()
    t.is(a.flags, Flag.ACK)
    t.is(a.ack, R1)
    t.is(c.conn.state, State.ESTABLISHED)
  }
})

test('challenge ACKs are rate-limited (RFC 5961 §7)', (t) => {
  const c = established()
  c.challengeBudget = 1
  c.input({ seq: R1, flags: Flag.SYN })
  c.input({ seq: R1, flags: Flag.SYN })
  t.is(c.take().length, 1)
  t.is(c.metrics.challengeAcksSent, 1)
  t.is(c.metrics.challengeAcksSuppressed, 1)
})

test('blind data injection: data with an unacceptable ACK is discarded with a challenge ACK (RFC 5961 §5.2)', (t) => {
  const c = established()
  c.conn.write(bytes(100))
  c.take()
  for (const ack of [seqAdd(S1, 101), seqAdd(S1, -70_000)]) {
    c.input({ ack, payload: bytes(10) })
    t.is(c.received().length, 0)
    const a = c.one()
    t.is(a.ack, R1)
  }
  // The legitimate range is accepted, including old ACKs within MAX.SND.WND.
  c.input({ ack: seqAdd(S1, -10), payload: bytes(10) })
  t.is(c.received().length, 10)
})

test('segments outside the receive window are answered with an ACK and not delivered', (t) => {
  const c = established()
  c.input({ seq: seqAdd(R1, 70_000), payload: bytes(10) })
  t.is(c.one().ack, R1)
  c.input({ seq: seqAdd(R1, -20), payload: bytes(10) })
  t.is(c.one().ack, R1)
  t.is(c.received().length, 0)
  // Partly old, partly new: the new part is taken (trimmed at the front).
  c.input({ seq: seqAdd(R1, -5), payload: bytes(10) })
  t.is(c.received().length, 5)
  t.deepEqual([...c.received()], [...bytes(10).subarray(5)])
})

// --- timestamps, PAWS, window scaling, MSS ---------------------------------------------------------------------

test('PAWS: a segment with an older TSval is dropped and ACKed; a RST is exempt (RFC 7323 §5.3)', (t) => {
  const c = established({ cfg: { timestamps: true }, peer: { timestamp: { val: 1000, ecr: 0 } } })
  t.true(c.conn.tsOk)
  c.input({ payload: bytes(10), timestamp: { val: 1001, ecr: 0 } })
  t.is(c.received().length, 10)
  t.is(c.conn.tsRecent, 1001)
  c.clock.advance(100)
  c.take()
  c.input({ seq: seqAdd(R1, 10), payload: bytes(10), timestamp: { val: 999, ecr: 0 } })
  t.is(c.received().length, 10)
  t.is(c.metrics.pawsRejects, 1)
  const a = c.one()
  t.is(a.ack, seqAdd(R1, 10))
  t.is(a.timestamp?.ecr, 1001)
  // Wrapped comparison: 0x00000010 is newer than 0xfffffff0.
  c.conn.tsRecent = 0xffff_fff0
  c.input({ seq: seqAdd(R1, 10), payload: bytes(10), timestamp: { val: 0x10, ecr: 0 } })
  t.is(c.received().length, 20)
  c.input({ seq: seqAdd(R1, 20), flags: Flag.RST, timestamp: { val: 1, ecr: 0 } })
  t.is(c.conn.state, State.CLOSED)
})

test('window scaling: shifts apply to non-SYN windows both ways; a shift above 14 is used as 14 (RFC 7323 §2)', (t) => {
  const c = established({
    cfg: { windowScaling: true, rcvBufSize: 1 << 20, rcvBufMax: 1 << 20 },
    peer: { windowScale: 7 },
  })
  t.is(c.conn.rcvWscale, 5, '2^20 >> 4 = 65536 still overflows 16 bits; >> 5 fits')
  t.is(c.conn.sndWscale, 7)
  c.input({ window: 100 })
  t.is(c.conn.sndWnd, 12_800)
  c.input({ payload: bytes(8) })
  c.clock.advance(50)
  const a = c.one()
  // The handshake's ACK offered the whole 1 MiB; 8 bytes later the edge stays (moving it by 8 bytes is not
  // worth an update, RFC 9293 §3.8.6.2.2), so the window is 1 MiB − 8, shifted by 5 and rounded down.
  t.is(a.window, Math.floor(((1 << 20) - 8) / 32))
  const d = established({ cfg: { windowScaling: true }, peer: { windowScale: 15 } })
  t.is(d.conn.sndWscale, 14)
  const e = established({ cfg: { windowScaling: true } })
  t.is(e.conn.sndWscale, 0, 'no option from the peer: no scaling either way')
  t.is(e.conn.rcvWscale, 0)
})

test('MSS: clamped to our GWLB MSS, defaulted to 536 without the option, less 12 with timestamps', (t) => {
  t.is(established({ peer: { mss: 9000 } }).conn.sndMss, 8440)
  t.is(established({ peer: { mss: undefined } }).conn.sndMss, 536)
  t.is(
    established({ cfg: { timestamps: true }, peer: { mss: 1460, timestamp: { val: 1, ecr: 0 } } }).conn
      .sndMss,
    1448,
  )
  const c = established({ peer: { mss: 1000 } })
  c.conn.write(bytes(2500))
  t.deepEqual(
    c.take().map((s) => s.payload.length),
    [1000, 1000, 500],
  )
})

// --- receiving: delayed ACK, SACK generation, zero window -----------------------------------------------------

test('delayed ACK: after the quick-ACK start, one segment is ACKed after the delay, the second at once (RFC 9293 §3.8.6.3)', (t) => {
  const c = established()
  // Quick-ACK mode: the first 16 data segments are ACKed one by one, so that a sender in slow start is not
  // held up by our delay.
  for (let i = 0; i < 16; i++) {
    c.input({ seq: seqAdd(R1, i * 100), payload: bytes(100) })
    t.is(c.one().ack, seqAdd(R1, (i + 1) * 100), `segment ${i} ACKed at once`)
  }
  const base = seqAdd(R1, 1600)
  c.input({ seq: base, payload: bytes(100) })
  t.is(c.take().length, 0)
  c.clock.advance(40)
  t.is(c.one().ack, seqAdd(base, 100))
  c.input({ seq: seqAdd(base, 100), payload: bytes(100) })
  c.input({ seq: seqAdd(base, 200), payload: bytes(100) })
  t.is(c.one().ack, seqAdd(base, 300))
})

test('quick ACKs resume after a gap: the segments after an out-of-order arrival are ACKed at once', (t) => {
  const c = established()
  for (let i = 0; i < 16; i++) c.input({ seq: seqAdd(R1, i * 100), payload: bytes(100) })
  c.take()
  const base = seqAdd(R1, 1600)
  c.input({ seq: seqAdd(base, 100), payload: bytes(100) })
  t.is(c.one().ack, base, 'out of order: a duplicate ACK at once')
  c.input({ seq: base, payload: bytes(100) })
  t.is(c.one().ack, seqAdd(base, 200), 'the gap filled: ACK at once')
  c.input({ seq: seqAdd(base, 200), payload: bytes(100) })
  t.is(c.one().ack, seqAdd(base, 300), 'and the next in-order segment too (quick-ACK mode again)')
})

test('SACK generation: out-of-order data is ACKed at once with blocks, most recent first (RFC 2018 §4)', (t) => {
  const c = established({ cfg: { sack: true }, peer: { sackPermitted: true } })
  c.input({ seq: seqAdd(R1, 100), payload: bytes(100) })
  let a = c.one()
  t.is(a.ack, R1)
  t.deepEqual(a.sack, [{ left: seqAdd(R1, 100), right: seqAdd(R1, 200) }])
  c.input({ seq: seqAdd(R1, 300), payload: bytes(100) })
  a = c.one()
  t.deepEqual(a.sack, [
    { left: seqAdd(R1, 300), right: seqAdd(R1, 400) },
    { left: seqAdd(R1, 100), right: seqAdd(R1, 200) },
  ])
  t.is(c.metrics.outOfOrderBytes, 200)
  c.input({ seq: seqAdd(R1, 200), payload: bytes(100) })
  a = c.one()
  t.deepEqual(a.sack, [{ left: seqAdd(R1, 100), right: seqAdd(R1, 400) }])
  // Filling the first hole delivers everything in order and ACKs at once (RFC 5681 §4.2).
  c.input({ payload: bytes(100) })
  a = c.one()
  t.is(a.ack, seqAdd(R1, 400))
  t.is(a.sack, undefined)
  t.is(c.received().length, 400)
  t.is(c.metrics.outOfOrderBytes, 0)
})

test('the out-of-order queue is bounded; what does not fit is dropped, not SACKed', (t) => {
  const c = established({ cfg: { sack: true, oooLimit: 150 }, peer: { sackPermitted: true } })
  c.input({ seq: seqAdd(R1, 100), payload: bytes(100) })
  c.input({ seq: seqAdd(R1, 300), payload: bytes(100) })
  t.is(c.metrics.outOfOrderDrops, 1)
  t.is(c.conn.ooo.held, 100)
  const last = c.take().at(-1)!
  t.deepEqual(last.sack, [{ left: seqAdd(R1, 100), right: seqAdd(R1, 200) }])
})

test('receive window closes when the application does not read, and reopens with a window update', (t) => {
  const c = established({ cfg: { rcvBufSize: 4000 } })
  c.autoConsume = false
  for (let i = 0; i < 4; i++) c.input({ seq: seqAdd(R1, i * 1000), payload: bytes(1000) })
  c.clock.advance(50)
  const last = c.take().at(-1)!
  t.is(last.window, 0)
  t.is(last.ack, seqAdd(R1, 4000))
  // A zero-window probe with one byte is not accepted but answered.
  c.input({ seq: seqAdd(R1, 4000), payload: bytes(1) })
  const a = c.one()
  t.is(a.ack, seqAdd(R1, 4000))
  t.is(a.window, 0)
  t.is(c.received().length, 4000)
  // Reading a little does not reopen (receiver SWS avoidance); reading enough does, at once.
  c.conn.consumed(100)
  t.is(c.take().length, 0)
  c.conn.consumed(2000)
  const u = c.one()
  t.is(u.window, 2100)
})

// --- sending: RTO, Karn, fast retransmit, SACK use, zero-window probes ----------------------------------------

test('RTO: retransmits the first unacknowledged segment, backs off, collapses cwnd (RFC 6298 §5, RFC 5681 §3.1)', (t) => {
  const c = established({ peer: { mss: 1000 } })
  // The handshake measured an RTT of 0, so the RTO is at its 200 ms floor (rto.ts).
  const rto = c.conn.rto.rto
  t.is(rto, 200)
  c.conn.write(bytes(3000))
  t.is(c.take().length, 3)
  c.clock.advance(rto)
  let r = c.take()
  t.is(r.length, 1)
  t.is(r[0]!.seq, S1)
  t.is(r[0]!.payload.length, 1000)
  t.is(c.metrics.rtoExpiries, 1)
  t.is(c.conn.cc.cwnd, 1000)
  t.is(c.conn.cc.ssthresh, 2000)
  c.clock.advance(2 * rto - 1)
  t.is(c.take().length, 0)
  c.clock.advance(1)
  r = c.take()
  t.is(r.length, 1, 'second expiry after twice the RTO (backed off)')
  t.is(c.metrics.rtoExpiries, 2)
  // The ACK of the retransmission lets go-back-N continue with the next segment.
  c.input({ ack: seqAdd(S1, 1000) })
  r = c.take()
  t.true(r.length >= 1)
  t.is(r[0]!.seq, seqAdd(S1, 1000))
})

test("Karn's rule: no RTT sample from a retransmitted segment; one from a segment sent once (RFC 6298 §3)", (t) => {
  const d = established()
  t.is(d.conn.rto.srtt, 0, 'the handshake sampled an RTT of 0')
  d.conn.write(bytes(100))
  d.take()
  d.clock.advance(200) // RTO: retransmitted
  t.is(d.take().length, 1)
  d.clock.advance(10)
  d.input({ ack: seqAdd(S1, 100) })
  t.is(d.conn.rto.srtt, 0, 'no sample from the retransmitted segment')
  t.is(d.conn.rto.rto, 400, 'and the backed-off RTO stays')
  d.conn.write(bytes(100))
  d.take()
  d.clock.advance(32)
  d.input({ ack: seqAdd(S1, 200) })
  t.is(d.conn.rto.srtt, 4, 'SRTT <- 7/8 * 0 + 1/8 * 32')
  t.is(d.conn.rto.backoffCount, 0)
})

test('the handshake RTT is sampled when the SYN was not retransmitted', (t) => {
  const c = new Ctx({ timestamps: false })
  c.conn.openActive(ISS)
  c.clock.advance(80)
  c.conn.input(c.seg({ seq: IRS, ack: S1, flags: Flag.SYN | Flag.ACK }))
  t.is(c.conn.rto.srtt, 80)
  t.is(c.conn.rto.rto, 240) // 80 + 4 * 40
})

test('without SACK: fast retransmit after three duplicate ACKs, NewReno partial ACK, PRR, exit at ssthresh (RFC 5681 §3.2, RFC 6582, RFC 6937)', (t) => {
  const c = established({ peer: { mss: 1000 } })
  // Open cwnd: ACK a first flight.
  c.conn.write(bytes(4000))
  c.take()
  c.input({ ack: seqAdd(S1, 4000) })
  c.take()
  // Slow start: cwnd grew from 4000 by min(N, 2*SMSS) for that ACK (RFC 5681 eq. 2, RFC 3465 L = 2*SMSS).
  t.is(c.conn.cc.cwnd, 6000)
  c.conn.write(bytes(5000))
  const sent = c.take()
  t.is(sent.length, 5)
  const una = seqAdd(S1, 4000)
  c.input({ ack: una })
  c.input({ ack: una })
  t.is(c.take().length, 0, 'two duplicates: nothing yet')
  c.input({ ack: una })
  const fr = c.take()
  t.is(fr.length, 1)
  t.is(fr[0]!.seq, una)
  t.is(c.metrics.fastRetransmits, 1)
  t.is(c.metrics.fastRecoveries, 1)
  t.true(c.conn.recovery.inRecovery)
  t.is(c.conn.cc.ssthresh, 3000, 'max(FlightSize 5000, cwnd 6000) / 2 (RFC 9438 §4.6 with RFC 7661)')
  // Partial ACK: the next unacknowledged segment is lost too and goes at once (RFC 6582 §3.2 step 3).
  c.input({ ack: seqAdd(una, 2000) })
  const pr = c.take()
  t.is(pr[0]!.seq, seqAdd(una, 2000))
  t.is(pr[0]!.payload.length, 1000)
  t.true(c.conn.recovery.inRecovery)
  // Full ACK: leave recovery with cwnd = ssthresh (RFC 6937 §3.1).
  c.input({ ack: seqAdd(una, 5000) })
  t.false(c.conn.recovery.inRecovery)
  t.is(c.conn.cc.cwnd, 3000)
  t.is(c.metrics.rtoExpiries, 0)
})

test('limited transmit (RFC 3042): the first two duplicate ACKs each let one new segment out', (t) => {
  const c = established({ peer: { mss: 1000 } })
  c.conn.write(bytes(4000))
  t.is(c.take().length, 4, 'initial window')
  c.conn.write(bytes(3000))
  t.is(c.take().length, 0, 'cwnd full')
  c.input({ ack: S1 })
  let s = c.take()
  t.is(s.length, 1)
  t.is(s[0]!.seq, seqAdd(S1, 4000), 'new data on the first duplicate')
  c.input({ ack: S1 })
  s = c.take()
  t.is(s.length, 1)
  t.is(s[0]!.seq, seqAdd(S1, 5000), 'and on the second')
  t.false(c.conn.recovery.inRecovery)
})

test('SACK use: recovery retransmits the holes, never SACKed data (RFC 2018, RFC 6675, RFC 8985 DupThresh rule)', (t) => {
  const c = sackOpen()
  c.conn.write(bytes(10_000))
  t.is(c.take().length, 6) // cwnd 6000
  const u = seqAdd(S1, 4000)
  const at = (segs: { seq: Seq }[]) => segs.map((s) => seqSub(s.seq, u))
  const sack = (blocks: [number, number][]) =>
    blocks.map(([l, r]) => ({ left: seqAdd(u, l), right: seqAdd(u, r) }))
  // Segments 0 and 2 lost; 1, 3, 4 arrive one RTT (10 ms) after they left.
  c.clock.advance(10)
  c.input({ ack: u, sack: sack([[1000, 2000]]) })
  // A SACKed segment has left the network (RFC 6675 pipe): one new segment may go — limited transmit.
  t.deepEqual(at(c.take()), [6000])
  c.input({
    ack: u,
    sack: sack([
      [3000, 4000],
      [1000, 2000],
    ]),
  })
  t.deepEqual(at(c.take()), [7000], 'two SACKed segments: RACK waits out its reordering window first')
  c.input({
    ack: u,
    sack: sack([
      [3000, 5000],
      [1000, 2000],
    ]),
  })
  // Three SACKed segments and no reordering seen: the holes below them are lost now; PRR lets one go.
  t.deepEqual(at(c.take()), [0], 'the first hole')
  t.true(c.conn.recovery.inRecovery)
  t.is(c.metrics.fastRecoveries, 1)
  t.is(c.conn.cc.ssthresh, 4000, 'half the 8000-byte flight')
  // The next SACK (segment 6 arrived, an RTT after it left) lets the second hole go, skipping the SACKed
  // 1000–2000 — and segment 5, sent before segment 6 and still missing an RTT later, is lost too (RACK).
  c.clock.advance(10)
  c.input({
    ack: u,
    sack: sack([
      [6000, 7000],
      [3000, 5000],
      [1000, 2000],
    ]),
  })
  const rtx = c.take()
  t.deepEqual(at(rtx), [2000, 5000])
  t.true(rtx.every((s) => s.payload.length === 1000))
  t.is(c.metrics.fastRetransmits, 3)
  // The retransmissions arrive: everything up to the unSACKed segment 5 is acknowledged.
  c.clock.advance(10)
  c.input({ ack: seqAdd(u, 5000) })
  t.is(c.conn.scoreboard.sackedBytes, 1000)
  t.is(c.metrics.rtoExpiries, 0)
})

test('zero window: probes with one octet, backs off, resumes when the window opens (RFC 9293 §3.8.6.1)', (t) => {
  const c = established()
  c.input({ window: 0 })
  c.conn.write(bytes(500))
  t.is(c.take().length, 0)
  c.clock.advance(200)
  let p = c.one()
  t.is(p.payload.length, 1)
  t.is(p.seq, S1)
  t.is(c.metrics.zeroWindowProbes, 1)
  c.input({ ack: S1, window: 0 })
  c.clock.advance(399)
  t.is(c.take().length, 0)
  c.clock.advance(1)
  p = c.one()
  t.is(p.seq, S1, 'the probe octet again')
  t.is(c.metrics.zeroWindowProbes, 2)
  t.is(c.metrics.rtoExpiries, 0, 'probing is not loss')
  // Many unanswered-but-ACKed probes never close the connection.
  for (let i = 0; i < 30; i++) {
    c.clock.advance(120_000)
    c.input({ ack: S1, window: 0 })
  }
  t.is(c.conn.state, State.ESTABLISHED)
  c.take()
  // The window opens: the rest follows the probe octet (which is in flight).
  c.input({ ack: S1, window: 1000 })
  const rest = c.take().filter((s) => s.payload.length)
  t.is(rest[0]!.seq, seqAdd(S1, 1))
  t.is(
    rest.reduce((n, s) => n + s.payload.length, 0),
    499,
  )
})

test('keepalive: probes SND.NXT−1 after idle, drops the connection after the count (RFC 9293 §3.8.4)', (t) => {
  const c = established({ cfg: { keepalive: { idleMs: 10_000, intervalMs: 1000, count: 3 } } })
  c.clock.advance(9999)
  t.is(c.take().length, 0)
  c.clock.advance(1)
  const p = c.one()
  t.is(p.seq, seqAdd(S1, -1))
  t.is(p.payload.length, 0)
  // An answer resets the idle timer.
  c.input({})
  c.clock.advance(9999)
  t.is(c.take().length, 0)
  c.clock.advance(1 + 1000 + 1000)
  t.is(c.take().length, 3)
  t.is(c.metrics.keepaliveProbes, 4)
  c.clock.advance(1000)
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error?.code, TcpErrorCode.timeout)
  t.is(c.one().flags, Flag.RST)
})

test('data retransmissions give up after maxRetries with a timeout and a RST', (t) => {
  const c = established({ cfg: { maxRetries: 3 } })
  c.conn.write(bytes(10))
  c.take()
  c.clock.advance(200 + 400 + 800 + 1600)
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error?.code, TcpErrorCode.timeout)
  const out = c.take()
  t.is(out.length, 4) // three retransmissions and the RST
  t.is(out.at(-1)!.flags, Flag.RST)
})

test('send buffer backpressure: write() returns false at the limit and onDrain follows the ACK', (t) => {
  const c = established({ cfg: { sndBufSize: 3000 }, peer: { window: 1000 } })
  t.true(c.conn.write(bytes(2000)))
  t.false(c.conn.write(bytes(2000)))
  t.is(c.drains, 0)
  c.input({ ack: seqAdd(S1, 1000), window: 1000 })
  t.is(c.conn.sendBuffered, 3000)
  t.is(c.drains, 0)
  c.input({ ack: seqAdd(S1, 2000), window: 1000 })
  t.is(c.drains, 1)
})

test('passive and active opens agree on timestamps and SACK only when both SYNs carry them', (t) => {
  const both = accepted({
    cfg: { timestamps: true, sack: true },
    peer: { timestamp: { val: 5, ecr: 0 }, sackPermitted: true },
  })
  t.true(both.conn.tsOk)
  t.true(both.conn.sackOk)
  const neither = accepted({ cfg: { timestamps: true, sack: true } })
  t.false(neither.conn.tsOk)
  t.false(neither.conn.sackOk)
})

test('replies to bare out-of-window segments are rate-limited, so two endpoints cannot ACK each other forever', (t) => {
  const c = established()
  const oow = { seq: seqAdd(R1, 100_000) }
  c.input(oow)
  c.input(oow)
  c.input(oow)
  t.is(c.take().length, 1)
  c.clock.advance(500)
  c.input(oow)
  t.is(c.take().length, 1)
  // Data out of window is always answered: the peer needs that ACK to recover.
  c.input({ ...oow, payload: bytes(10) })
  c.input({ ...oow, payload: bytes(10) })
  t.is(c.take().length, 2)
})

test('a bare ACK is numbered no further than the peer window allows (after data beyond a shrunk window)', (t) => {
  const c = established({ peer: { mss: 1000 } })
  c.conn.write(bytes(3000))
  c.take()
  // The peer takes the first 1000 bytes and closes its window.
  c.input({ ack: seqAdd(S1, 1000), window: 0 })
  const ack = seqAdd(S1, 1000)
  c.input({ ack, window: 0, payload: bytes(1) })
  c.input({ ack, window: 0, seq: seqAdd(R1, 1), payload: bytes(1) })
  const a = c.take().at(-1)!
  t.is(a.seq, seqAdd(S1, 1000), 'SND.UNA + SND.WND, not SND.MAX')
})

test('RST at RCV.NXT in every synchronized state (RFC 9293 §3.10.7.4, second check)', (t) => {
  type Setup = (c: ReturnType<typeof established>) => void
  const fin = (c: ReturnType<typeof established>) => c.input({ flags: Flag.FIN | Flag.ACK })
  const table: [string, State, Setup, boolean][] = [
    ['ESTABLISHED', State.ESTABLISHED, () => {}, true],
    ['FIN-WAIT-1', State.FIN_WAIT_1, (c) => c.conn.close(), true],
    [
      'FIN-WAIT-2',
      State.FIN_WAIT_2,
      (c) => {
        c.conn.close()
        c.input({ ack: seqAdd(S1, 1) })
      },
      true,
    ],
    ['CLOSE-WAIT', State.CLOSE_WAIT, fin, true],
    [
      'CLOSING',
      State.CLOSING,
      (c) => {
        c.conn.close()
        c.input({ ack: S1, flags: Flag.FIN | Flag.ACK })
      },
      false,
    ],
    [
      'LAST-ACK',
      State.LAST_ACK,
      (c) => {
        fin(c)
        c.conn.close()
      },
      false,
    ],
    [
      'TIME-WAIT',
      State.TIME_WAIT,
      (c) => {
        c.conn.close()
        c.input({ ack: seqAdd(S1, 1), flags: Flag.FIN | Flag.ACK })
      },
      false,
    ],
  ]
  for (const [name, state, setup, isError] of table) {
    const c = established()
    setup(c)
    t.is(c.conn.state, state, name)
    c.take()
    c.input({ seq: c.conn.rcvNxt, flags: Flag.RST })
    t.is(c.conn.state, State.CLOSED, name)
    t.is(c.error?.errno, isError ? 'ECONNRESET' : undefined, name)
    t.is(c.take().length, 0, `${name}: nothing is sent in reply to a RST`)
  }
  // SYN-RECEIVED after a passive open: the TCB goes away without an error (the listener stays).
  const p = new Ctx()
  p.conn.listen(ISS)
  p.conn.input(p.seg({ seq: IRS, flags: Flag.SYN }))
  p.take()
  p.input({ seq: R1, flags: Flag.RST })
  t.is(p.conn.state, State.CLOSED)
  t.is(p.error, undefined)
})

test('data on the ACK that completes a passive open is delivered', (t) => {
  const c = new Ctx()
  c.conn.listen(ISS)
  c.conn.input(c.seg({ seq: IRS, flags: Flag.SYN }))
  c.take()
  c.input({ seq: R1, ack: S1, payload: bytes(42) })
  t.is(c.conn.state, State.ESTABLISHED)
  t.is(c.received().length, 42)
})

test('a fast retransmission never carries bytes beyond SND.MAX (found by simulator seed 9616)', (t) => {
  const c = established({ peer: { mss: 1000, window: 1300 } })
  c.conn.write(bytes(1300))
  t.deepEqual(
    c.take().map((s) => s.payload.length),
    [1000, 300],
  )
  // More data queued while the window is full; then three duplicate ACKs for the first segment.
  c.conn.write(bytes(5000))
  t.is(c.take().length, 0)
  for (let i = 0; i < 3; i++) c.input({ ack: S1, window: 1300 })
  const rtx = c.take()
  t.is(rtx[0]!.seq, S1)
  t.is(rtx[0]!.payload.length, 1000)
  // Now the partial ACK: the next retransmission is the 300-byte tail, not 1000 bytes reaching past SND.MAX.
  c.input({ ack: seqAdd(S1, 1000), window: 300 })
  const tail = c.take().filter((s) => s.seq === seqAdd(S1, 1000))
  t.is(tail[0]!.payload.length, 300)
  t.is(c.conn.sndMax, seqAdd(S1, 1300))
})

test('close() before the handshake completes queues the FIN after the data (like net.Socket.end())', (t) => {
  const c = new Ctx({ timestamps: false, sack: false, windowScaling: false })
  c.conn.openActive(ISS)
  c.take()
  c.conn.write(bytes(10))
  c.conn.close()
  t.is(c.conn.state, State.SYN_SENT)
  c.conn.input(c.seg({ seq: IRS, ack: S1, flags: Flag.SYN | Flag.ACK, mss: 1000 }))
  t.is(c.conn.state, State.FIN_WAIT_1)
  const out = c.take()
  const data = out.find((s) => s.payload.length === 10)!
  t.is(data.seq, S1)
  t.true(
    out.some(
      (s) => s.flags & Flag.FIN && s.seq === seqAdd(S1, 10 - (s.payload.length ? s.payload.length : 0)),
    ),
  )
  // abort() is how a not-yet-connected attempt is abandoned.
  const d = new Ctx()
  d.conn.openActive(ISS)
  d.take()
  d.conn.abort()
  t.is(d.conn.state, State.CLOSED)
  t.is(d.take().length, 0, 'no RST before anything was synchronized')
})

test('close() in SYN-RECEIVED, then the handshake ACK arrives with the peer FIN: CLOSE-WAIT → LAST-ACK (simulator seed 21522)', (t) => {
  const c = new Ctx()
  c.conn.listen(ISS)
  c.conn.input(c.seg({ seq: IRS, flags: Flag.SYN }))
  c.take()
  c.conn.close()
  t.is(c.conn.state, State.SYN_RECEIVED)
  c.input({ seq: R1, ack: S1, flags: Flag.ACK | Flag.FIN })
  t.is(c.conn.state, State.LAST_ACK)
  t.true(c.eof)
  const fin = c.take().find((s) => s.flags & Flag.FIN)!
  t.is(fin.seq, S1)
  t.is(fin.ack, seqAdd(R1, 1))
  c.input({ seq: seqAdd(R1, 1), ack: seqAdd(S1, 1) })
  t.is(c.conn.state, State.CLOSED)
  t.is(c.error, undefined)
})
