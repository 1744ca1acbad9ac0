// A small endpoint manager: many connections keyed by 4-tuple, passive opens for a given 4-tuple (the proxy
// answers a client *as the server* of that exact flow) or for a local address/port, active opens, and the
// bounds that keep a flood from hurting established connections (issue 4, item 3):
//   - maxConnections: connections not in TIME-WAIT;
//   - maxHalfOpen: passive connections in SYN-RECEIVED. When full, the oldest half-open connection is dropped
//     for the new SYN (a bounded SYN queue with drop-oldest, as RFC 4987 §3.2/§3.4 describes); established
//     connections are never touched;
//   - maxTimeWait: TIME-WAIT entries; the oldest is ended early when full (as Linux's tw_buckets does).
// The stack does not know about IP or Geneve: `input` takes the 4-tuple as seen by our endpoint and `output`
// gets the tuple and segment to send; the data plane wraps them in the flow's headers.

import { type Clock, cryptoRandom, type Random, systemClock } from './clock.ts'
import { Connection, type ConnectionEvents, DEFAULT_CONFIG, resetFor, type TcpConfig } from './connection.ts'
import { TcpError, TcpErrorCode } from './errors.ts'
import { IsnGenerator } from './isn.ts'
import { TcpMetrics } from './metrics.ts'
import { tsLt } from './options.ts'
import { Flag, type TcpRepr } from './segment.ts'
import { seqGt } from './seq.ts'
import { State } from './state.ts'

/** A connection's addresses as seen from our side. Addresses are opaque strings to the stack. */
export interface FourTuple {
  localAddr: string
  localPort: number
  remoteAddr: string
  remotePort: number
  /**
   * The real addresses when `localAddr`/`remoteAddr` are only names (a proxy names each flow's legs). ISNs
   * and timestamp offsets are keyed on the real 4-tuple, so that a reused one keeps increasing across
   * connections whatever they were named (RFC 6528, RFC 7323 §5.4) — a peer still holding the previous
   * connection in TIME-WAIT then accepts the new SYN (RFC 6191).
   */
  real?: { localAddr: string; remoteAddr: string }
}

/** The 4-tuple that ISNs and timestamp offsets are keyed on. */
function keyedTuple(t: FourTuple): [string, number, string, number] {
  return t.real
    ? [t.real.localAddr, t.localPort, t.real.remoteAddr, t.remotePort]
    : [t.localAddr, t.localPort, t.remoteAddr, t.remotePort]
}

/** What a listener matches: a local address and port, and optionally exactly one remote. */
export interface ListenSpec {
  localAddr: string
  localPort: number
  remoteAddr?: string
  remotePort?: number
}

export interface StackLimits {
  maxConnections: number
  maxHalfOpen: number
  maxTimeWait: number
  /** RFC 5961 §7: challenge ACKs per second across the stack (Linux tcp_challenge_ack_limit: 1000). */
  challengeAcksPerSecond: number
  /**
   * Bytes all connections together may grow their receive buffers by beyond the initial size (autotuning up
   * to rcvBufMax each); once spent, no buffer grows and send buffers stay at their initial size until
   * connections close — so 10,000 fast connections cannot each take 4 MiB both ways.
   */
  bufferGrowthBudget: number
}

export const DEFAULT_LIMITS: StackLimits = {
  maxConnections: 10_000,
  maxHalfOpen: 1024,
  maxTimeWait: 10_000,
  challengeAcksPerSecond: 1000,
  bufferGrowthBudget: 256 * 1024 * 1024,
}

export interface StackOptions {
  /** Sends a segment from tuple.local to tuple.remote. Must not call back into the stack synchronously. */
  output(tuple: FourTuple, seg: TcpRepr): void
  clock?: Clock
  random?: Random
  config?: Partial<TcpConfig>
  limits?: Partial<StackLimits>
  /**
   * Answer segments for unknown connections with RST (RFC 9293 §3.10.7.1). A proxy that must stay silent
   * where the real server would have been silent turns this off.
   */
  resetUnknown?: boolean
}

/** Called for each connection a listener creates; set `conn.events` here. */
export type AcceptHandler = (conn: Connection, tuple: FourTuple) => void

export interface Listener {
  close(): void
}

interface Entry {
  conn: Connection
  tuple: FourTuple
}

export function tupleKey(t: FourTuple): string {
  return `${t.localAddr}|${t.localPort}|${t.remoteAddr}|${t.remotePort}`
}

export class TcpStack {
  readonly metrics = new TcpMetrics()
  readonly clock: Clock
  readonly config: TcpConfig
  readonly limits: StackLimits
  /** receive-buffer growth taken by open connections (bytes), against limits.bufferGrowthBudget */
  bufferGrowth = 0
  readonly #random: Random
  readonly #isn: IsnGenerator
  readonly #output: (tuple: FourTuple, seg: TcpRepr) => void
  readonly #resetUnknown: boolean
  readonly #conns = new Map<string, Entry>()
  readonly #listeners = new Map<string, AcceptHandler>()
  /** Insertion-ordered: the first is the oldest. */
  readonly #halfOpen = new Set<Connection>()
  readonly #timeWait = new Set<Connection>()
  #active = 0
  #challengeWindow = -1
  #challengeCount = 0

  constructor(opts: StackOptions) {
    this.clock = opts.clock ?? systemClock
    this.#random = opts.random ?? cryptoRandom
    this.config = { ...DEFAULT_CONFIG, ...opts.config }
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits }
    this.#isn = new IsnGenerator(this.clock, this.#random)
    this.#output = opts.output
    this.#resetUnknown = opts.resetUnknown ?? true
  }

  /** Connections not in TIME-WAIT. */
  get activeConnections(): number {
    return this.#active
  }

  get halfOpenConnections(): number {
    return this.#halfOpen.size
  }

  get timeWaitConnections(): number {
    return this.#timeWait.size
  }

  get(tuple: FourTuple): Connection | undefined {
    return this.#conns.get(tupleKey(tuple))?.conn
  }

  /** Active open (RFC 9293 §3.10.1). Throws TcpError when the tuple is busy or the limit is reached. */
  connect(tuple: FourTuple, events: ConnectionEvents = {}, config?: Partial<TcpConfig>): Connection {
    const key = tupleKey(tuple)
    const old = this.#conns.get(key)
    if (old?.conn.state === State.TIME_WAIT) old.conn.closeTimeWait()
    else if (old) throw new TcpError(TcpErrorCode.inUse, `4-tuple in use: ${key}`)
    if (this.#active >= this.limits.maxConnections) {
      this.metrics.connectionLimitDrops++
      throw new TcpError(TcpErrorCode.limit, `connection limit ${this.limits.maxConnections} reached`)
    }
    const conn = this.#create(tuple, config)
    conn.events = events
    conn.openActive(this.#isn.next(...keyedTuple(tuple)))
    return conn
  }

  /** Passive open for segments matching `spec`; the most specific listener wins. */
  listen(spec: ListenSpec, onAccept: AcceptHandler): Listener {
    const key = listenKey(spec)
    if (this.#listeners.has(key)) throw new TcpError(TcpErrorCode.inUse, `already listening: ${key}`)
    this.#listeners.set(key, onAccept)
    return { close: () => this.#listeners.delete(key) }
  }

  /**
   * Answers a SYN the caller held back (the proxy connects upstream first, then completes the client's
   * handshake with this). Returns undefined when the SYN was refused by the limits.
   */
  accept(
    tuple: FourTuple,
    syn: TcpRepr,
    events: ConnectionEvents = {},
    config?: Partial<TcpConfig>,
  ): Connection | undefined {
    const conn = this.#passive(tuple, syn, config, (c) => {
      c.events = events
    })
    return conn
  }

  /** A segment arrived for `tuple` (local = its destination). */
  input(tuple: FourTuple, seg: TcpRepr): void {
    const key = tupleKey(tuple)
    const e = this.#conns.get(key)
    if (e) {
      // RFC 9293 §3.6.1 / RFC 6191: a new SYN may reopen a 4-tuple in TIME-WAIT when it is provably newer — a
      // larger timestamp, or (without timestamps) a sequence number beyond the old connection's.
      if (e.conn.state === State.TIME_WAIT && seg.flags & Flag.SYN && !(seg.flags & Flag.ACK)) {
        const c = e.conn
        const newer = c.tsOk && seg.timestamp ? tsLt(c.tsRecent, seg.timestamp.val) : seqGt(seg.seq, c.rcvNxt)
        if (newer) {
          c.closeTimeWait()
          this.#inputNew(tuple, seg)
          return
        }
      }
      e.conn.input(seg)
      return
    }
    this.#inputNew(tuple, seg)
  }

  #inputNew(tuple: FourTuple, seg: TcpRepr): void {
    const isSyn = (seg.flags & (Flag.SYN | Flag.ACK | Flag.RST)) === Flag.SYN
    const handler = isSyn ? this.#findListener(tuple) : undefined
    if (handler) {
      this.#passive(tuple, seg, undefined, (c) => handler(c, tuple))
      return
    }
    this.metrics.segmentsReceived++
    this.#reject(tuple, seg)
  }

  /** RFC 9293 §3.10.7.1: a segment for no connection is answered with RST (unless resetUnknown is off). */
  #reject(tuple: FourTuple, seg: TcpRepr): void {
    if (!this.#resetUnknown) return
    const rst = resetFor(seg)
    if (!rst) return
    this.metrics.resetsSent++
    this.metrics.segmentsSent++
    this.#output(tuple, rst)
  }

  #passive(
    tuple: FourTuple,
    syn: TcpRepr,
    config: Partial<TcpConfig> | undefined,
    setup: (c: Connection) => void,
  ): Connection | undefined {
    if (this.#active >= this.limits.maxConnections) {
      // Silently dropped, like a full accept queue: the client retries its SYN.
      this.metrics.connectionLimitDrops++
      return undefined
    }
    if (this.#halfOpen.size >= this.limits.maxHalfOpen) {
      const oldest = this.#halfOpen.values().next().value!
      this.metrics.synFloodDrops++
      // No RST: the SYN's source address is likely forged.
      oldest.drop()
    }
    const conn = this.#create(tuple, config)
    setup(conn)
    conn.listen(this.#isn.next(...keyedTuple(tuple)))
    conn.input(syn)
    return conn.closed ? undefined : conn
  }

  #findListener(t: FourTuple): AcceptHandler | undefined {
    return (
      this.#listeners.get(listenKey(t)) ??
      this.#listeners.get(listenKey({ localAddr: t.localAddr, localPort: t.localPort })) ??
      this.#listeners.get(listenKey({ localAddr: '*', localPort: t.localPort }))
    )
  }

  #create(tuple: FourTuple, config: Partial<TcpConfig> | undefined): Connection {
    const key = tupleKey(tuple)
    const cfg = config ? { ...this.config, ...config } : this.config
    const conn = new Connection(
      {
        clock: this.clock,
        metrics: this.metrics,
        emit: (seg) => this.#output(tuple, seg),
        challengeAckAllowed: () => this.#challengeAckAllowed(),
        growBuffers: (bytes) => this.#growBuffers(bytes),
        shrinkBuffers: (bytes) => {
          this.bufferGrowth -= bytes
        },
        underPressure: () => this.bufferGrowth >= this.limits.bufferGrowthBudget,
        onStateChange: (c, from, to) => this.#onStateChange(key, c, from, to),
      },
      cfg,
      { localPort: tuple.localPort, remotePort: tuple.remotePort },
      this.#isn.tsOffset(...keyedTuple(tuple)),
    )
    this.#conns.set(key, { conn, tuple })
    this.#active++
    this.metrics.connectionsOpened++
    return conn
  }

  #onStateChange(key: string, c: Connection, from: State, to: State): void {
    if (from === State.SYN_RECEIVED) this.#halfOpen.delete(c)
    if (to === State.SYN_RECEIVED && !c.active) this.#halfOpen.add(c)
    if (to === State.TIME_WAIT) {
      this.#active--
      this.#timeWait.add(c)
      if (this.#timeWait.size > this.limits.maxTimeWait) this.#timeWait.values().next().value!.closeTimeWait()
    }
    if (to === State.CLOSED) {
      if (from === State.TIME_WAIT) this.#timeWait.delete(c)
      else this.#active--
      if (this.#conns.get(key)?.conn === c) this.#conns.delete(key)
    }
  }

  #growBuffers(bytes: number): number {
    const granted = Math.max(0, Math.min(bytes, this.limits.bufferGrowthBudget - this.bufferGrowth))
    this.bufferGrowth += granted
    return granted
  }

  #challengeAckAllowed(): boolean {
    const second = Math.floor(this.clock.now() / 1000)
    if (second !== this.#challengeWindow) {
      this.#challengeWindow = second
      this.#challengeCount = 0
    }
    return this.#challengeCount++ < this.limits.challengeAcksPerSecond
  }
}

function listenKey(s: ListenSpec): string {
  return s.remoteAddr !== undefined
    ? `${s.localAddr}|${s.localPort}|${s.remoteAddr}|${s.remotePort ?? '*'}`
    : `${s.localAddr}|${s.localPort}`
}
