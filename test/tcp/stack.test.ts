// The endpoint manager: demultiplexing by 4-tuple, listeners, RST for unknown segments, and the bounds of
// issue 4 item 3 (connection limit, bounded half-open table under a SYN flood, TIME-WAIT bound and reuse).

import test from 'ava'
import { FakeClock, SeededRandom } from '../../appliance/src/tcp/clock.ts'
import type { Connection } from '../../appliance/src/tcp/connection.ts'
import { TcpErrorCode } from '../../appliance/src/tcp/errors.ts'
import { Flag, makeSegment, type TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { seq, seqAdd } from '../../appliance/src/tcp/seq.ts'
import { type FourTuple, type StackLimits, TcpStack } from '../../appliance/src/tcp/stack.ts'
import { State } from '../../appliance/src/tcp/state.ts'
import { flip } from './link.ts'

/** Two stacks joined by an in-order queue that the test pumps; the server stack can also be spoken to raw. */
class Net {
  readonly clock = new FakeClock(0)
  readonly queue: { to: TcpStack; tuple: FourTuple; seg: TcpRepr }[] = []
  readonly serverOut: { tuple: FourTuple; seg: TcpRepr }[] = []
  readonly client: TcpStack
  readonly server: TcpStack
  constructor(limits: Partial<StackLimits> = {}, resetUnknown = true) {
    this.client = new TcpStack({
      clock: this.clock,
      random: new SeededRandom(1),
      output: (tuple, seg) => this.queue.push({ to: this.server, tuple: flip(tuple), seg }),
    })
    this.server = new TcpStack({
      clock: this.clock,
      random: new SeededRandom(2),
      limits,
      resetUnknown,
      config: { timeWaitMs: 1000 },
      output: (tuple, seg) => {
        this.serverOut.push({ tuple, seg })
        if (tuple.remoteAddr === 'client') this.queue.push({ to: this.client, tuple: flip(tuple), seg })
      },
    })
  }
  pump(): void {
    for (let i = 0; this.queue.length && i < 100_000; i++) {
      const d = this.queue.shift()!
      d.to.input(d.tuple, d.seg)
    }
  }
  /** Pumps and fires timers until nothing is left or `ms` have passed. */
  run(ms: number): void {
    const end = this.clock.now() + ms
    for (;;) {
      this.pump()
      const at = this.clock.nextAt()
      if (at === undefined || at > end) break
      this.clock.step()
    }
  }
}

const T = (port: number, remote = 'client'): FourTuple => ({
  localAddr: remote,
  localPort: port,
  remoteAddr: 'server',
  remotePort: 443,
})

test('unknown segments get the RFC 9293 §3.10.7.1 reset; RSTs get nothing; resetUnknown=false is silent', (t) => {
  const n = new Net()
  const tuple = { localAddr: 'server', localPort: 443, remoteAddr: 'x', remotePort: 1 }
  n.server.input(
    tuple,
    makeSegment({ seq: seq(100), ack: seq(777), flags: Flag.ACK, payload: new Uint8Array(5) }),
  )
  let r = n.serverOut.pop()!.seg
  t.is(r.flags, Flag.RST)
  t.is(r.seq, seq(777))
  n.server.input(tuple, makeSegment({ seq: seq(100), flags: Flag.SYN }))
  r = n.serverOut.pop()!.seg
  t.is(r.flags, Flag.RST | Flag.ACK)
  t.is(r.seq, seq(0))
  t.is(r.ack, seq(101))
  n.server.input(tuple, makeSegment({ seq: seq(100), flags: Flag.RST }))
  t.is(n.serverOut.length, 0)
  t.is(n.server.metrics.resetsSent, 2)
  const quiet = new Net({}, false)
  quiet.server.input(tuple, makeSegment({ seq: seq(100), flags: Flag.SYN }))
  t.is(quiet.serverOut.length, 0)
})

test('connect + listen: a connection per 4-tuple, the most specific listener wins, data both ways', (t) => {
  const n = new Net()
  const got: string[] = []
  const accepted: Connection[] = []
  n.server.listen({ localAddr: 'server', localPort: 443 }, (c) => {
    got.push('port')
    accepted.push(c)
  })
  n.server.listen({ localAddr: 'server', localPort: 443, remoteAddr: 'client', remotePort: 2000 }, (c) => {
    got.push('exact')
    accepted.push(c)
  })
  t.throws(() => n.server.listen({ localAddr: 'server', localPort: 443 }, () => {}), {
    code: TcpErrorCode.inUse,
  })
  const a = n.client.connect(T(1000))
  const b = n.client.connect(T(2000))
  t.throws(() => n.client.connect(T(1000)), { code: TcpErrorCode.inUse })
  n.pump()
  t.deepEqual(got, ['port', 'exact'])
  t.is(a.state, State.ESTABLISHED)
  t.is(b.state, State.ESTABLISHED)
  const received: number[] = []
  accepted[1]!.events.onData = (d) => received.push(d.length)
  b.write(new Uint8Array(5000))
  n.run(100)
  t.is(
    received.reduce((x, y) => x + y, 0),
    5000,
  )
  t.is(n.server.metrics.connectionsByState[State.ESTABLISHED], 2)
  t.is(n.server.activeConnections, 2)
  t.is(n.server.get(flip(T(2000))), accepted[1])
})

test('accept(): a held SYN is answered later (the proxy connects upstream first)', (t) => {
  const n = new Net()
  // No listener: the data plane holds the client's SYN.
  const c = n.client.connect(T(1000))
  const held = n.queue.shift()!
  t.is(held.seg.flags, Flag.SYN)
  n.clock.advance(50)
  const s = n.server.accept(held.tuple, held.seg)!
  t.is(s.state, State.SYN_RECEIVED)
  n.pump()
  t.is(c.state, State.ESTABLISHED)
  t.is(s.state, State.ESTABLISHED)
})

test('maxConnections: connect() throws, SYNs are dropped and counted', (t) => {
  const n = new Net({ maxConnections: 2 })
  n.server.listen({ localAddr: 'server', localPort: 443 }, () => {})
  n.client.connect(T(1))
  n.client.connect(T(2))
  n.client.connect(T(3))
  n.pump()
  t.is(n.server.activeConnections, 2)
  t.is(n.server.metrics.connectionLimitDrops, 1)
  const srv = new TcpStack({ output: () => {}, clock: n.clock, limits: { maxConnections: 0 } })
  t.throws(() => srv.connect(T(9)), { code: TcpErrorCode.limit })
})

test('SYN flood: the half-open table stays bounded and established connections are unaffected', (t) => {
  const n = new Net({ maxHalfOpen: 16 })
  const server: Connection[] = []
  n.server.listen({ localAddr: 'server', localPort: 443 }, (c) => {
    server.push(c)
  })
  const legit = n.client.connect(T(1000))
  n.pump()
  t.is(legit.state, State.ESTABLISHED)
  let received = 0
  server[0]!.events.onData = (d) => {
    received += d.length
    server[0]!.consumed(d.length)
  }
  // 5,000 spoofed SYNs, interleaved with the legitimate transfer.
  const r = new SeededRandom(7)
  for (let i = 0; i < 5000; i++) {
    const spoof = {
      localAddr: 'server',
      localPort: 443,
      remoteAddr: `10.${i >> 8}.${i & 255}.9`,
      remotePort: 1024 + i,
    }
    n.server.input(spoof, makeSegment({ seq: seq(r.u32()), flags: Flag.SYN, window: 1000 }))
    if (i % 100 === 0) {
      legit.write(new Uint8Array(1000))
      n.run(50)
    }
    t.true(n.server.halfOpenConnections <= 16)
  }
  n.run(1000)
  t.is(received, 50 * 1000)
  t.is(legit.state, State.ESTABLISHED)
  t.is(server[0]!.state, State.ESTABLISHED)
  t.is(n.server.metrics.synFloodDrops, 5000 - 16)
  t.is(n.server.halfOpenConnections, 16)
  t.is(n.server.metrics.connectionsByState[State.SYN_RECEIVED], 16)
  // No RST went to the spoofed sources for the evicted entries.
  t.is(n.server.metrics.resetsSent, 0)
})

test('TIME-WAIT: bounded, ended early when full, and a newer SYN reuses the 4-tuple (RFC 6191)', (t) => {
  const n = new Net({ maxTimeWait: 2 })
  const srv: Connection[] = []
  n.server.listen({ localAddr: 'server', localPort: 443 }, (c) => {
    srv.push(c)
    c.events.onEof = () => c.close()
  })
  // The server closes second (LAST-ACK); so make the server close first to put it in TIME-WAIT.
  const clients = [1, 2, 3].map((p) => n.client.connect(T(p)))
  n.pump()
  for (const s of srv) s.close()
  n.pump()
  for (const c of clients) c.close()
  n.pump()
  t.is(n.server.timeWaitConnections, 2, 'the oldest of three was ended early')
  t.is(n.server.metrics.connectionsByState[State.TIME_WAIT], 2)
  // A new SYN from port 3 (still in TIME-WAIT on the server), a little later: its timestamp (the clock plus
  // the tuple's fixed offset) and sequence number are higher, so it opens anew.
  n.clock.advance(5)
  const again = n.client.connect(T(3))
  n.pump()
  t.is(again.state, State.ESTABLISHED)
  t.is(n.server.get(flip(T(3)))?.state, State.ESTABLISHED)
  t.is(n.server.timeWaitConnections, 1)
  n.run(2000)
  t.is(n.server.timeWaitConnections, 0)
})

test('a SYN to a TIME-WAIT tuple that is not provably newer gets an ACK, not a new connection', (t) => {
  const n = new Net()
  const srv: Connection[] = []
  n.server.listen({ localAddr: 'server', localPort: 443 }, (c) => {
    srv.push(c)
  })
  const c = n.client.connect(T(5))
  n.pump()
  srv[0]!.close()
  n.pump()
  c.close()
  n.pump()
  const tw = srv[0]!
  t.is(tw.state, State.TIME_WAIT)
  n.serverOut.length = 0
  n.server.input(flip(T(5)), makeSegment({ seq: seqAdd(tw.rcvNxt, -10), flags: Flag.SYN }))
  t.is(tw.state, State.TIME_WAIT)
  t.is(n.serverOut.length, 1)
  t.is(n.serverOut[0]!.seg.flags, Flag.ACK)
  t.is(n.serverOut[0]!.seg.ack, tw.rcvNxt)
  t.is(n.server.activeConnections, 0)
})

test('challenge ACKs are limited per second across the stack (RFC 5961 §7)', (t) => {
  const n = new Net({ challengeAcksPerSecond: 3 })
  const srv: Connection[] = []
  n.server.listen({ localAddr: 'server', localPort: 443 }, (c) => {
    srv.push(c)
  })
  n.client.connect(T(5))
  n.pump()
  n.serverOut.length = 0
  for (let i = 0; i < 10; i++)
    n.server.input(flip(T(5)), makeSegment({ seq: srv[0]!.rcvNxt, flags: Flag.SYN }))
  t.is(n.serverOut.length, 3)
  t.is(n.server.metrics.challengeAcksSuppressed, 7)
  n.clock.advance(1000)
  n.server.input(flip(T(5)), makeSegment({ seq: srv[0]!.rcvNxt, flags: Flag.SYN }))
  t.is(n.serverOut.length, 4)
})

test('named legs: ISN and timestamp offset are keyed on the real 4-tuple, so a reused tuple keeps increasing', (t) => {
  // A proxy names each flow's legs afresh (c1.0, c1.1, …). The origin may still hold the previous connection
  // of the same real 4-tuple in TIME-WAIT: it accepts the new SYN only if its TSval is newer (RFC 6191).
  const clock = new FakeClock(0)
  const syns: TcpRepr[] = []
  const stack = new TcpStack({
    clock,
    random: new SeededRandom(3),
    output: (_tuple, seg) => {
      if (seg.flags & Flag.SYN) syns.push(seg)
    },
  })
  const leg = (name: string, localPort = 40000): FourTuple => ({
    localAddr: name,
    localPort,
    remoteAddr: `s-${name}`,
    remotePort: 443,
    real: { localAddr: '10.0.1.2', remoteAddr: '10.0.2.2' },
  })
  stack.connect(leg('c1.0')).abort()
  clock.advance(5)
  stack.connect(leg('c7.3')).abort()
  clock.advance(5)
  stack.connect(leg('c9.1', 40001)).abort()
  const [first, reused, other] = syns
  t.is(syns.length, 3)
  t.is(reused!.timestamp!.val - first!.timestamp!.val, 5, 'same offset: TSval moved with the clock only')
  t.is((reused!.seq - first!.seq) >>> 0, 5 * 250, 'same keyed ISN: moved with the 4 µs clock only')
  t.not((other!.timestamp!.val - first!.timestamp!.val) >>> 0, 10, 'another port, another offset')
})
