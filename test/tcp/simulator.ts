// Deterministic simulation (TESTING.md layer 2): two of our TCP stacks over a simulated link that drops,
// duplicates, reorders (by jitter), delays and truncates segments, all drawn from one seed, on a fake clock.
// Everything — link faults, configurations, transfer sizes, application read pacing, close order — derives
// from the seed, so `node scripts/tcp-sim.ts --seed N` replays a failure exactly.

import { FakeClock, SeededRandom } from '../../appliance/src/tcp/clock.ts'
import type { Connection, TcpConfig } from '../../appliance/src/tcp/connection.ts'
import type { TcpMetrics } from '../../appliance/src/tcp/metrics.ts'
import { Flag, formatSegment, type TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { type FourTuple, TcpStack } from '../../appliance/src/tcp/stack.ts'
import { State, stateName } from '../../appliance/src/tcp/state.ts'

export interface LinkFaults {
  loss: number
  duplicate: number
  truncate: number
  /** One-way delay in ms: base plus uniform jitter (jitter is what reorders). */
  delay: number
  jitter: number
}

export interface Scenario {
  seed: number
  faults: LinkFaults
  /** Bytes each side sends. */
  aToB: number
  bToA: number
  configA: Partial<TcpConfig>
  configB: Partial<TcpConfig>
  /** B answers only after A's FIN (request/response with half-close), else both send at once. */
  halfCloseFirst: boolean
  simultaneousOpen: boolean
  /** Applications read slowly: a chunk every readEveryMs, so receive windows fill and close. */
  slowReaderA: boolean
  slowReaderB: boolean
  /** A writes everything and closes right after connect(), before the handshake completes. */
  earlyWrite: boolean
}

export interface SimResult {
  seed: number
  ok: boolean
  error?: string
  simulatedMs: number
  /** Simulated ms from the first SYN until both sides had every byte and the peer's FIN. */
  transferMs: number
  segments: number
  /** Each stack's counters at the end (retransmits, RTO expiries, ...). */
  metrics: { a: TcpMetrics; b: TcpMetrics }
  scenario: Scenario
  trace: string[]
}

export const REPRO = (seed: number) => `node scripts/tcp-sim.ts --seed ${seed}`

/** Everything random about a run, from the seed. */
export function scenarioFor(seed: number, profile: 'ci' | 'harsh' = 'ci'): Scenario {
  const r = new SeededRandom(seed)
  const harsh = profile === 'harsh'
  const clean = !harsh && r.float() < 0.15
  const faults: LinkFaults = clean
    ? { loss: 0, duplicate: 0, truncate: 0, delay: r.int(0, 20), jitter: 0 }
    : {
        // Mostly realistic loss, sometimes harsh; beyond ~15% a small-window flow spends hours in RTO backoff.
        loss: harsh ? r.float() * 0.3 : r.float() < 0.7 ? r.float() * 0.05 : r.float() * 0.15,
        duplicate: r.float() * 0.08,
        truncate: r.float() * 0.05,
        delay: r.int(0, 60),
        jitter: r.float() < 0.5 ? 0 : r.int(1, 40),
      }
  const size = () => {
    const k = r.float()
    if (k < 0.1) return 0
    if (k < 0.4) return r.int(1, 2000)
    if (k < 0.95) return r.int(2000, 60_000)
    return r.int(60_000, 300_000)
  }
  const cfg = (): Partial<TcpConfig> => {
    const buf = [2048, 4096, 16_384, 65_535, 262_144][r.int(0, 4)]!
    return {
      mss: [88, 536, 1460, 8440, r.int(64, 3000)][r.int(0, 4)]!,
      rcvBufSize: buf,
      sndBufSize: [4096, 65_536, 262_144][r.int(0, 2)]!,
      oooLimit: r.float() < 0.3 ? r.int(1000, 8000) : buf,
      windowScaling: r.float() < 0.85,
      timestamps: r.float() < 0.8,
      sack: r.float() < 0.8,
      timeWaitMs: r.int(1000, 60_000),
      congestionControl: r.float() < 0.5 ? 'cubic' : 'newreno',
    }
  }
  const configA = cfg()
  const configB = cfg()
  // Buffer autotuning on or off (a separate stream of draws, so that adding it kept every other choice).
  const r2 = new SeededRandom(seed ^ 0x9e3779b9)
  for (const c of [configA, configB]) {
    if (r2.float() < 0.5) c.rcvBufMax = c.rcvBufSize
    if (r2.float() < 0.5) c.sndBufMax = c.sndBufSize
  }
  // Keep lossy runs to a few hundred segments so that thousands of seeds fit in the test budget.
  const cap = (n: number, c: Partial<TcpConfig>) => (clean || harsh ? n : Math.min(n, (c.mss ?? 1460) * 200))
  return {
    seed,
    faults,
    aToB: cap(size(), configA),
    bToA: cap(size(), configB),
    configA,
    configB,
    halfCloseFirst: r.float() < 0.5,
    simultaneousOpen: r.float() < 0.08,
    slowReaderA: r.float() < 0.25,
    slowReaderB: r.float() < 0.25,
    earlyWrite: r.float() < 0.15,
  }
}

/**
 * A path like the GWLB stand-in's: sub-millisecond one-way delay with a little jitter (which reorders), `loss`
 * each way, MSS 1460, default buffers, one bulk transfer from A to B. For measuring loss recovery, not for
 * hunting bugs.
 */
export function labScenario(
  seed: number,
  o: { bytes?: number; loss?: number; jitter?: number; cc?: 'cubic' | 'newreno' } = {},
): Scenario {
  const cfg: Partial<TcpConfig> = { mss: 1460, timeWaitMs: 1000, congestionControl: o.cc ?? 'cubic' }
  return {
    seed,
    faults: { loss: o.loss ?? 0.02, duplicate: 0, truncate: 0, delay: 0.1, jitter: o.jitter ?? 0.05 },
    aToB: o.bytes ?? 5_000_000,
    bToA: 0,
    configA: cfg,
    configB: cfg,
    halfCloseFirst: false,
    simultaneousOpen: false,
    slowReaderA: false,
    slowReaderB: false,
    earlyWrite: false,
  }
}

function payloadFor(seed: number, n: number): Uint8Array {
  const r = new SeededRandom(seed ^ 0x5bd1e995)
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i += 4) {
    const v = r.u32()
    b[i] = v
    if (i + 1 < n) b[i + 1] = v >>> 8
    if (i + 2 < n) b[i + 2] = v >>> 16
    if (i + 3 < n) b[i + 3] = v >>> 24
  }
  return b
}

interface Side {
  name: 'A' | 'B'
  stack: TcpStack
  conn?: Connection
  tuple: FourTuple
  toSend: Uint8Array
  sent: number
  received: Uint8Array[]
  receivedBytes: number
  unconsumed: number
  eof: boolean
  /** Simulated time the peer's FIN arrived. */
  eofAt: number
  closedErr: string | undefined
  closed: boolean
  ended: boolean
  slow: boolean
}

const SIM_LIMIT_MS = 4 * 60 * 60 * 1000

/** Runs one seeded scenario to completion and checks it. */
export function runSeed(
  seed: number,
  opts: {
    trace?: boolean
    scenario?: Scenario
    profile?: 'ci' | 'harsh'
    /** Rewrites segments on the link behind TCP's back (to prove the checks catch corruption). */
    tamper?: (seg: TcpRepr) => TcpRepr
  } = {},
): SimResult {
  const sc = opts.scenario ?? scenarioFor(seed, opts.profile)
  const clock = new FakeClock(1_000_000)
  const rnd = new SeededRandom(seed * 2654435761)
  const trace: string[] = []
  let segments = 0
  const f = sc.faults

  const deliver = (to: Side, from: FourTuple, seg: TcpRepr, label: string) => {
    const delay = f.delay + (f.jitter ? rnd.float() * f.jitter : 0)
    clock.setTimer(delay, () => {
      if (opts.trace) trace.push(`${clock.now().toFixed(1)} ${label} ${formatSegment(seg)}`)
      to.stack.input(
        {
          localAddr: from.remoteAddr,
          localPort: from.remotePort,
          remoteAddr: from.localAddr,
          remotePort: from.localPort,
        },
        seg,
      )
    })
  }
  const link = (to: () => Side, dir: string) => (tuple: FourTuple, seg: TcpRepr) => {
    segments++
    if (rnd.float() < f.loss) {
      if (opts.trace) trace.push(`${clock.now().toFixed(1)} ${dir} DROP ${formatSegment(seg)}`)
      return
    }
    let s = seg
    if (s.payload.length > 1 && rnd.float() < f.truncate) {
      // A shorter but valid segment: a prefix of the payload; the FIN, which follows the last byte, goes.
      const keep = rnd.int(0, s.payload.length - 1)
      s = { ...s, payload: s.payload.subarray(0, keep), flags: s.flags & ~Flag.FIN }
      if (opts.trace) trace.push(`${clock.now().toFixed(1)} ${dir} TRUNC to ${keep}`)
    }
    if (opts.tamper) s = opts.tamper(s)
    deliver(to(), tuple, s, dir)
    if (rnd.float() < f.duplicate) deliver(to(), tuple, s, `${dir} DUP`)
  }

  const mkSide = (name: 'A' | 'B', bytes: number, slow: boolean, config: Partial<TcpConfig>): Side => {
    const self = name === 'A' ? 'a' : 'b'
    const peer = name === 'A' ? 'b' : 'a'
    const side: Side = {
      name,
      stack: undefined as unknown as TcpStack,
      tuple: {
        localAddr: self,
        localPort: name === 'A' ? 40_000 : 80,
        remoteAddr: peer,
        remotePort: name === 'A' ? 80 : 40_000,
      },
      toSend: payloadFor(seed * 2 + (name === 'A' ? 0 : 1), bytes),
      sent: 0,
      received: [],
      receivedBytes: 0,
      unconsumed: 0,
      eof: false,
      eofAt: 0,
      closedErr: undefined,
      closed: false,
      ended: false,
      slow,
    }
    side.stack = new TcpStack({
      clock,
      random: new SeededRandom(seed + (name === 'A' ? 17 : 29)),
      output: link(() => (name === 'A' ? b : a), name === 'A' ? 'A>B' : 'B>A'),
      config: { keepalive: null, ...config },
    })
    return side
  }
  const a = mkSide('A', sc.aToB, sc.slowReaderA, sc.configA)
  const b = mkSide('B', sc.bToA, sc.slowReaderB, sc.configB)

  const pump = (s: Side, early = false) => {
    const c = s.conn
    if (!c || c.closed) return
    const st = c.state
    if (!early && st !== State.ESTABLISHED && st !== State.CLOSE_WAIT) return
    while (s.sent < s.toSend.length) {
      const n = Math.min(rnd.int(1, 20_000), s.toSend.length - s.sent)
      const chunk = s.toSend.subarray(s.sent, s.sent + n)
      s.sent += n
      if (!c.write(chunk)) return
    }
    const mayEnd = s.name === 'A' || !sc.halfCloseFirst || s.eof
    if (!s.ended && mayEnd) {
      s.ended = true
      c.close()
    }
  }
  const readLater = (s: Side) => {
    clock.setTimer(rnd.int(1, 200), () => {
      const c = s.conn
      if (!c || c.closed || s.unconsumed === 0) return
      const n = Math.min(s.unconsumed, rnd.int(1, 8000))
      s.unconsumed -= n
      c.consumed(n)
      if (s.unconsumed > 0) readLater(s)
    })
  }
  const events = (s: Side) => ({
    onEstablished: () => pump(s),
    onData: (bytes: Uint8Array) => {
      s.received.push(Buffer.from(bytes))
      s.receivedBytes += bytes.length
      if (s.slow) {
        const wasIdle = s.unconsumed === 0
        s.unconsumed += bytes.length
        if (wasIdle) readLater(s)
      } else s.conn?.consumed(bytes.length)
    },
    onEof: () => {
      s.eof = true
      s.eofAt = clock.now()
      clock.setTimer(0, () => pump(s))
    },
    onDrain: () => pump(s),
    onClose: (err: Error | undefined) => {
      s.closed = true
      if (err) s.closedErr = `${err.message}`
    },
  })

  const fail = (msg: string): SimResult => ({
    seed,
    ok: false,
    error: `seed ${seed}: ${msg}\n  A: ${a.conn}\n  B: ${b.conn}\n  scenario: ${JSON.stringify(sc)}\n  repro: ${REPRO(seed)}${opts.profile === 'harsh' ? ' --harsh' : ''}`,
    simulatedMs: clock.now() - 1_000_000,
    transferMs: Math.max(a.eofAt, b.eofAt) - 1_000_000,
    segments,
    metrics: { a: a.stack.metrics, b: b.stack.metrics },
    scenario: sc,
    trace,
  })

  try {
    if (sc.simultaneousOpen) {
      a.conn = a.stack.connect(a.tuple, events(a))
      b.conn = b.stack.connect(b.tuple, events(b))
    } else {
      b.stack.listen({ localAddr: 'b', localPort: 80 }, (conn) => {
        if (b.conn && !b.conn.closed) throw new Error('second accept for one flow')
        b.conn = conn
        conn.events = events(b)
      })
      a.conn = a.stack.connect(a.tuple, events(a))
    }
    if (sc.earlyWrite) pump(a, true)
    for (let steps = 0; ; steps++) {
      if (clock.now() - 1_000_000 > SIM_LIMIT_MS) return fail('did not finish within 4 simulated hours')
      // Events without time passing: an ACK war or a timer re-arming itself at zero delay.
      if (steps > 3_000_000)
        return fail(`livelock: 3,000,000 events by ${(clock.now() - 1_000_000).toFixed(0)} ms`)
      if (!clock.step()) break
      if (a.closedErr || b.closedErr) return fail(`connection error: A=${a.closedErr} B=${b.closedErr}`)
    }
  } catch (e) {
    return fail(`threw: ${(e as Error).stack}`)
  }
  for (const [s, peer] of [
    [a, b],
    [b, a],
  ] as const) {
    if (s.receivedBytes !== peer.toSend.length)
      return fail(`${s.name} received ${s.receivedBytes} of ${peer.toSend.length} bytes`)
    const got = Buffer.concat(s.received)
    if (!got.equals(peer.toSend)) {
      let i = 0
      while (got[i] === peer.toSend[i]) i++
      return fail(`${s.name} received different bytes from offset ${i}`)
    }
    if (!s.eof) return fail(`${s.name} saw no EOF`)
    if (!s.conn || s.conn.state !== State.CLOSED)
      return fail(`${s.name} ended in ${stateName(s.conn?.state ?? State.CLOSED)}`)
    if (s.stack.activeConnections !== 0 || s.stack.timeWaitConnections !== 0)
      return fail(`${s.name} stack still holds connections`)
    if (s.stack.metrics.outOfOrderBytes !== 0) return fail(`${s.name} out-of-order bytes gauge not back at 0`)
  }
  return {
    seed,
    ok: true,
    simulatedMs: clock.now() - 1_000_000,
    transferMs: Math.max(a.eofAt, b.eofAt) - 1_000_000,
    segments,
    metrics: { a: a.stack.metrics, b: b.stack.metrics },
    scenario: sc,
    trace,
  }
}
