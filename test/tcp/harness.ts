// Test context in the gVisor netstack style: one Connection on a fake clock, every segment it emits captured,
// and helpers to inject hand-built segments from a scripted peer.

import { FakeClock } from '../../appliance/src/tcp/clock.ts'
import { Connection, DEFAULT_CONFIG, type TcpConfig } from '../../appliance/src/tcp/connection.ts'
import type { TcpError } from '../../appliance/src/tcp/errors.ts'
import { TcpMetrics } from '../../appliance/src/tcp/metrics.ts'
import { Flag, makeSegment, type TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { type Seq, seq, seqAdd } from '../../appliance/src/tcp/seq.ts'

export const LOCAL_PORT = 40_000
export const REMOTE_PORT = 80
/** Our ISS: close to the 2^32 wrap so that every test also crosses it. */
export const ISS = seq(0xffff_ff00)
/** The scripted peer's ISS. */
export const IRS = seq(5000)

export class Ctx {
  readonly clock = new FakeClock(10_000)
  readonly metrics = new TcpMetrics()
  readonly out: TcpRepr[] = []
  readonly conn: Connection
  readonly data: Uint8Array[] = []
  eof = false
  established = false
  closed = false
  error: TcpError | undefined
  drains = 0
  challengeBudget = Number.POSITIVE_INFINITY
  /** The stack's buffer-growth budget as a stack keeps it (TcpStack.bufferGrowth). */
  growthBudget = Number.POSITIVE_INFINITY
  growth = 0
  /** Read what arrives immediately (true) or leave it unconsumed (false). */
  autoConsume = true

  constructor(cfg: Partial<TcpConfig> = {}) {
    this.conn = new Connection(
      {
        clock: this.clock,
        metrics: this.metrics,
        emit: (s) => this.out.push(s),
        challengeAckAllowed: () => this.challengeBudget-- > 0,
        growBuffers: (bytes) => {
          const granted = Math.max(0, Math.min(bytes, this.growthBudget - this.growth))
          this.growth += granted
          return granted
        },
        shrinkBuffers: (bytes) => {
          this.growth -= bytes
        },
        underPressure: () => this.growth >= this.growthBudget,
      },
      { ...DEFAULT_CONFIG, ...cfg },
      { localPort: LOCAL_PORT, remotePort: REMOTE_PORT },
      0,
    )
    this.conn.events = {
      onEstablished: () => {
        this.established = true
      },
      onData: (b) => {
        this.data.push(Buffer.from(b))
        if (this.autoConsume) this.conn.consumed(b.length)
      },
      onEof: () => {
        this.eof = true
      },
      onDrain: () => {
        this.drains++
      },
      onClose: (e) => {
        this.closed = true
        this.error = e
      },
    }
  }

  /** Removes and returns everything emitted so far. */
  take(): TcpRepr[] {
    return this.out.splice(0)
  }

  /** Exactly one segment must have been emitted; returns it. */
  one(): TcpRepr {
    const s = this.take()
    if (s.length !== 1) throw new Error(`expected one segment, got ${s.length}`)
    return s[0]!
  }

  received(): Buffer {
    return Buffer.concat(this.data)
  }

  /** A segment from the peer, defaulting to a bare ACK of everything we sent, at the peer's next seq. */
  seg(p: Partial<TcpRepr> = {}): TcpRepr {
    return makeSegment({
      srcPort: REMOTE_PORT,
      dstPort: LOCAL_PORT,
      seq: this.conn.rcvNxt,
      ack: this.conn.sndMax,
      flags: Flag.ACK,
      window: 65535,
      ...p,
    })
  }

  input(p: Partial<TcpRepr> = {}): void {
    this.conn.input(this.seg(p))
  }
}

export interface OpenOptions {
  cfg?: Partial<TcpConfig>
  /** Options the peer puts in its SYN (or SYN-ACK). */
  peer?: Partial<TcpRepr>
  /** ms between our SYN and the peer's SYN-ACK (the handshake's RTT sample); default 0. */
  rtt?: number
}

const PLAIN_PEER: Partial<TcpRepr> = { mss: 1000 }
/** No options unless a test asks for them; NewReno, whose windows are simple to compute by hand. */
const PLAIN: Partial<TcpConfig> = {
  timestamps: false,
  sack: false,
  windowScaling: false,
  congestionControl: 'newreno',
}

/** Active open through to ESTABLISHED; the emitted segments are consumed. */
export function established(o: OpenOptions = {}): Ctx {
  const c = new Ctx({ ...PLAIN, ...o.cfg })
  c.conn.openActive(ISS)
  c.take()
  if (o.rtt) c.clock.advance(o.rtt)
  c.conn.input(
    makeSegment({
      srcPort: REMOTE_PORT,
      dstPort: LOCAL_PORT,
      seq: IRS,
      ack: seqAdd(ISS, 1),
      flags: Flag.SYN | Flag.ACK,
      window: 65535,
      ...PLAIN_PEER,
      ...o.peer,
    }),
  )
  c.take()
  return c
}

/** Passive open through to ESTABLISHED. */
export function accepted(o: OpenOptions = {}): Ctx {
  const c = new Ctx({ ...PLAIN, ...o.cfg })
  c.conn.listen(ISS)
  c.conn.input(
    makeSegment({
      srcPort: REMOTE_PORT,
      dstPort: LOCAL_PORT,
      seq: IRS,
      flags: Flag.SYN,
      window: 65535,
      ...PLAIN_PEER,
      ...o.peer,
    }),
  )
  c.take()
  c.input({ seq: seqAdd(IRS, 1), ack: seqAdd(ISS, 1) })
  c.take()
  return c
}

export function bytes(n: number, salt = 0): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + salt) & 0xff
  return b
}

export function at(base: Seq, n: number): Seq {
  return seqAdd(base, n)
}

/**
 * SACK agreed, MSS 1000, and a first 4,000-byte flight ACKed `rtt` ms after it left: cwnd is 6,000
 * (slow start) and RACK has its RTT. The emitted segments are consumed.
 */
export function sackOpen(o: OpenOptions = {}): Ctx {
  const rtt = o.rtt ?? 10
  const c = established({
    cfg: { sack: true, ...o.cfg },
    peer: { mss: 1000, sackPermitted: true, ...o.peer },
    rtt,
  })
  c.conn.write(bytes(4000))
  c.take()
  c.clock.advance(rtt)
  c.input({ ack: seqAdd(ISS, 4001) })
  c.take()
  return c
}
