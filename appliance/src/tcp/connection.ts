// One TCP connection: the RFC 9293 state machine (§3.10, "Event Processing") with RFC 6298 retransmission
// timing, loss recovery (recovery.ts: RACK-TLP, RFC 6675 pipe, PRR; NewReno without SACK) under RFC 5681 /
// RFC 9438 congestion control, RFC 7323 window scaling and timestamps, RFC 2018 SACK and RFC 2883 D-SACK,
// RFC 5961 challenge ACKs, delayed ACKs with a quick-ACK mode, zero-window probing and keepalive.
//
// Read RFC 9293 §3.10.7 first: `#inputSynchronized` follows its eight checks in order, and each step quotes
// the text it implements. The connection is a pure core: segments come in through `input()`, go out through
// the context's `emit()`, time comes from the injected Clock, and the application side is a set of plain
// callbacks (stream.ts adapts them to a Node.js Duplex).

import { SendBuffer } from './buffer.ts'
import { type Clock, Deadline } from './clock.ts'
import { type CongestionControl, NewReno } from './congestion.ts'
import { Cubic } from './cubic.ts'
import { TcpError, TcpErrorCode } from './errors.ts'
import type { TcpMetrics } from './metrics.ts'
import {
  DEFAULT_MSS,
  DEFAULT_PEER_MSS,
  maxSackBlocks,
  negotiate,
  pawsRejects,
  tsLt,
  windowScaleFor,
} from './options.ts'
import { Reassembly } from './reassembly.ts'
import { LossRecovery, Phase } from './recovery.ts'
import { DEFAULT_RTO, type RtoConfig, RtoEstimator } from './rto.ts'
import { type SackScoreboard, segData } from './sack.ts'
import { Flag, type SackBlock, type TcpRepr } from './segment.ts'
import { type Seq, seq, seqAdd, seqGe, seqGt, seqLe, seqLt, seqSub } from './seq.ts'
import { canReceive, isSynchronized, State, stateName } from './state.ts'

export interface KeepaliveConfig {
  /** Idle time before the first probe. RFC 9293 §3.8.4: "MUST default to no less than two hours" — callers set it. */
  idleMs: number
  intervalMs: number
  /** Unanswered probes before the connection is dropped. */
  count: number
}

export interface TcpConfig {
  /** MSS we advertise, and clamp the peer's to (options.ts: the GWLB MTU minus headers). */
  mss: number
  /**
   * Send buffer limit in bytes: writes beyond it are back-pressured. It grows with the flight, up to
   * sndBufMax: twice the window that can be in flight, as Linux's tcp_sndbuf_expand.
   */
  sndBufSize: number
  sndBufMax: number
  /**
   * Receive buffer in bytes: the most we advertise, and the most we hold unread. It starts at rcvBufSize
   * and grows, up to rcvBufMax (and never past oooLimit), to twice what the application consumed in one
   * receiver RTT when that is more than ever before (autotuning, as Linux's tcp_rcv_space_adjust): a path
   * whose RTT grows under load needs more window, and a reader that stops never makes it grow.
   */
  rcvBufSize: number
  rcvBufMax: number
  /** Bytes the out-of-order queue may hold (it never holds more than the window we advertised). */
  oooLimit: number
  rto: RtoConfig
  /** SYN (or SYN-ACK) retransmissions before giving up (Linux tcp_syn_retries: 6, about 127 s). */
  synRetries: number
  /** Data retransmissions before giving up (RFC 9293 §3.8.3 R2: at least 100 s; Linux tcp_retries2: 15). */
  maxRetries: number
  /** RFC 9293 §3.8.6.3: the ACK delay "MUST be less than 0.5 seconds". */
  delayedAckMs: number
  /** TIME-WAIT duration (2 MSL, RFC 9293 §3.3.2); a proxy wants it short — see stack.ts for reuse. */
  timeWaitMs: number
  /**
   * How long an orphaned connection (see orphan()) waits for the peer's FIN before giving up with RST
   * (Linux tcp_fin_timeout: 60 s).
   */
  finTimeoutMs: number
  keepalive: KeepaliveConfig | null
  /** NewReno (RFC 5681/6582) or CUBIC (RFC 9438, Linux's default). */
  congestionControl: 'newreno' | 'cubic'
  windowScaling: boolean
  timestamps: boolean
  sack: boolean
}

export const DEFAULT_CONFIG: TcpConfig = {
  mss: DEFAULT_MSS,
  sndBufSize: 256 * 1024,
  sndBufMax: 4 * 1024 * 1024,
  rcvBufSize: 256 * 1024,
  rcvBufMax: 4 * 1024 * 1024,
  oooLimit: 4 * 1024 * 1024,
  rto: DEFAULT_RTO,
  synRetries: 6,
  maxRetries: 15,
  delayedAckMs: 40,
  timeWaitMs: 60_000,
  finTimeoutMs: 60_000,
  keepalive: null,
  congestionControl: 'cubic',
  windowScaling: true,
  timestamps: true,
  sack: true,
}

/** What the connection needs from its surroundings (the stack, or a test). */
export interface ConnectionContext {
  clock: Clock
  metrics: TcpMetrics
  emit(seg: TcpRepr): void
  /** RFC 5961 §7: a global budget for challenge ACKs. */
  challengeAckAllowed(): boolean
  /**
   * The stack's budget for buffers grown beyond their initial sizes (autotuning), shared by all connections
   * as Linux's tcp_mem is: asks for up to `bytes` more, returns what may be taken (0 under pressure).
   * Omitted: no budget.
   */
  growBuffers?(bytes: number): number
  /** gives back growth taken with growBuffers */
  shrinkBuffers?(bytes: number): void
  /** the budget is spent: send buffers stay at their initial size */
  underPressure?(): boolean
  onStateChange?(conn: Connection, from: State, to: State): void
}

/** The application side, called synchronously from inside the connection. */
export interface ConnectionEvents {
  /** The three-way handshake completed. */
  onEstablished?(): void
  /**
   * In-order data, valid only during this call: it may be a view into a received datagram whose buffer is
   * reused next (copy what you keep). Call consumed() once it is read.
   */
  onData?(bytes: Uint8Array): void
  /** The peer's FIN: no more data will arrive. */
  onEof?(): void
  /** The send buffer has room again after write() returned false. */
  onDrain?(): void
  /** The connection reached CLOSED; `err` unless it closed in an orderly way. Called once. */
  onClose?(err: TcpError | undefined): void
}

export interface Endpoints {
  localPort: number
  remotePort: number
}

export class Connection {
  state: State = State.CLOSED
  readonly localPort: number
  readonly remotePort: number
  readonly cfg: TcpConfig
  events: ConnectionEvents = {}
  /** Opened by us (SYN-SENT) rather than for a peer's SYN. */
  active = false
  error: TcpError | undefined

  // Send sequence variables (RFC 9293 §3.3.1, Figure 4), plus SND.MAX: the highest sequence number ever sent,
  // which SND.NXT drops below when the RTO rewinds it to retransmit (go-back-N).
  iss: Seq = seq(0)
  sndUna: Seq = seq(0)
  sndNxt: Seq = seq(0)
  sndMax: Seq = seq(0)
  /** Send window in bytes (already scaled). */
  sndWnd = 0
  sndWl1: Seq = seq(0)
  sndWl2: Seq = seq(0)
  /** RFC 5961 §5.2 MAX.SND.WND: the largest window the peer has advertised. */
  maxSndWnd = 0

  // Receive sequence variables (RFC 9293 §3.3.1, Figure 5). RCV.WND is kept as the right edge we advertised,
  // because RFC 9293 §3.8.6.2.2 forbids moving that edge left ("shrinking the window").
  irs: Seq = seq(0)
  rcvNxt: Seq = seq(0)
  rcvAdvEdge: Seq = seq(0)
  /** Bytes delivered to the application and not yet consumed. */
  rcvUnread = 0
  /** The receive buffer now (see TcpConfig.rcvBufSize). */
  rcvBuf: number

  // Negotiated options.
  sndMss: number
  sndWscale = 0
  rcvWscale = 0
  wsOk = false
  tsOk = false
  sackOk = false
  /** RFC 7323 §4.3: TS.Recent and Last.ACK.sent. */
  tsRecent = 0
  lastAckSent: Seq = seq(0)
  readonly #tsOffset: number

  readonly #ctx: ConnectionContext
  readonly #sndBuf = new SendBuffer()
  /** Sequence number of the first byte in #sndBuf. */
  #sndBufSeq: Seq = seq(0)
  #finQueued = false
  #finSeq: Seq = seq(0)
  #closeRequested = false
  /** The peer's FIN arrived ahead of data still missing; processed when RCV.NXT reaches it. */
  #peerFinSeq: Seq | undefined
  #peerFinDone = false

  readonly rto: RtoEstimator
  cc: CongestionControl
  /** The sender's scoreboard, RACK-TLP and fast recovery (recovery.ts). */
  recovery: LossRecovery
  readonly ooo: Reassembly

  readonly #rtx: Deadline
  /** RFC 8985 §7: the tail loss probe timer; §6.3: RACK's reordering timer. */
  readonly #pto: Deadline
  readonly #reo: Deadline
  /** New data went out or SND.UNA advanced: the probe timer is (re)started once the event is processed. */
  #ptoRestart = false
  readonly #delack: Deadline
  readonly #keepalive: Deadline
  readonly #timeWait: Deadline
  /** Set by orphan(): no reader any more; data that still arrives is answered with RST. */
  #orphaned = false
  #dataWhileOrphaned = false
  #finTimeout: Deadline | undefined
  /** Consecutive RTO expiries without progress (RFC 9293 §3.8.3 R1/R2). */
  #retries = 0
  /** Consecutive zero-window probes without any ACK (RFC 9293 §3.8.6.1). */
  #probes = 0
  #kaProbes = 0
  /** RTT timing of one segment when timestamps are off: its end sequence number and send time. */
  #rttSeq: Seq | undefined
  #rttStart = 0
  /** Timestamp echoes older than this predate our last retransmission (see #karn). */
  #tsFloor: number | undefined
  #lastOowAck = Number.NEGATIVE_INFINITY
  /** Delayed-ACK bookkeeping (RFC 9293 §3.8.6.3). */
  #segsUnacked = 0
  #ackNow = false
  /**
   * Data segments still to be ACKed at once (a quick-ACK mode, as Linux's): at the start and after a gap, a
   * sender's window is small and every delayed ACK would stall it.
   */
  #quickAcks = QUICK_ACKS
  /** RFC 2883 §4: a duplicate segment to report in the first SACK block of the next ACK. */
  #dsack: SackBlock | undefined
  /** The largest segment the peer has sent (its effective MSS as we see it), for receiver SWS avoidance. */
  #rcvMss = DEFAULT_PEER_MSS
  /** Receive-buffer autotuning (#measureRcvRtt, #autotune). */
  #rcvRtt = 0
  #rcvRttSeq: Seq | undefined
  #rcvRttAt = 0
  #copied = 0
  #spaceAt = 0
  /** The most consumed in one receiver RTT so far (starting from the initial buffer's half). */
  #space: number
  #inInput = false
  #writeBlocked = false

  constructor(ctx: ConnectionContext, cfg: TcpConfig, ends: Endpoints, tsOffset = 0) {
    this.#ctx = ctx
    this.cfg = cfg
    this.localPort = ends.localPort
    this.remotePort = ends.remotePort
    this.#tsOffset = tsOffset
    this.sndMss = cfg.mss
    this.rcvBuf = cfg.rcvBufSize
    this.#space = cfg.rcvBufSize / 2
    this.rto = new RtoEstimator(cfg.rto)
    this.cc = new NewReno(cfg.mss)
    this.recovery = new LossRecovery(this.cc, cfg.mss, seq(0), (ms) => this.#tsAt(ms))
    this.ooo = new Reassembly(cfg.oooLimit, (d) => {
      ctx.metrics.outOfOrderBytes += d
    })
    this.#rtx = new Deadline(ctx.clock, () => this.#onRtxTimer())
    this.#pto = new Deadline(ctx.clock, () => this.#onProbeTimer())
    this.#reo = new Deadline(ctx.clock, () => this.#onReorderTimer())
    this.#delack = new Deadline(ctx.clock, () => this.#sendAck())
    this.#keepalive = new Deadline(ctx.clock, () => this.#onKeepalive())
    this.#timeWait = new Deadline(ctx.clock, () => this.#finish(undefined))
  }

  /** The sender's scoreboard (sack.ts). */
  get scoreboard(): SackScoreboard {
    return this.recovery.board
  }

  /** A getter, so that TypeScript does not narrow `state` across calls that change it. */
  get closed(): boolean {
    return this.state === State.CLOSED
  }

  // ---------------------------------------------------------------------------------------------------------
  // User calls (RFC 9293 §3.10.1–§3.10.6)

  /** OPEN, active (RFC 9293 §3.10.1): "Select an ISS. Send a SYN segment ... Set SND.UNA to ISS, SND.NXT to ISS+1, enter SYN-SENT". */
  openActive(iss: Seq): void {
    this.active = true
    this.#initSend(iss)
    this.#setState(State.SYN_SENT)
    this.#sendSyn()
    this.sndNxt = seqAdd(iss, 1)
    this.sndMax = this.sndNxt
    this.#rtx.setIn(this.rto.rto)
  }

  /** OPEN, passive: the next input() is expected to be the peer's SYN. */
  listen(iss: Seq): void {
    this.#initSend(iss)
    this.#setState(State.LISTEN)
  }

  #initSend(iss: Seq): void {
    this.iss = iss
    this.sndUna = iss
    this.sndNxt = iss
    this.sndMax = iss
    this.#sndBufSeq = seqAdd(iss, 1)
    this.cc =
      this.cfg.congestionControl === 'cubic'
        ? new Cubic(
            this.sndMss,
            () => this.#ctx.clock.now(),
            () => this.rto.srtt,
          )
        : new NewReno(this.sndMss)
    this.recovery = new LossRecovery(this.cc, this.sndMss, iss, (ms) => this.#tsAt(ms))
  }

  /**
   * SEND (RFC 9293 §3.10.2). Queues the bytes (no copy: the caller must not modify them afterwards). Returns
   * false when the send buffer is at or over its limit; onDrain follows when it has room again.
   */
  write(bytes: Uint8Array): boolean {
    if (this.#finQueued || this.#closeRequested || this.state === State.CLOSED || this.state === State.LISTEN)
      throw new TcpError(TcpErrorCode.aborted, `write after close (${stateName(this.state)})`)
    this.#sndBuf.push(bytes)
    if (!this.#inInput) {
      this.#output()
      this.#afterSend()
    }
    const ok = this.#sndBuf.length < this.#sndLimit()
    if (!ok) this.#writeBlocked = true
    return ok
  }

  /** Bytes queued and not yet acknowledged. */
  get sendBuffered(): number {
    return this.#sndBuf.length
  }

  /** The send buffer limit now: room for twice what may be in flight, within [sndBufSize, sndBufMax]. */
  #sndLimit(): number {
    if (this.#ctx.underPressure?.()) return this.cfg.sndBufSize
    const inFlight = Math.min(this.cc.cwnd, this.maxSndWnd)
    return Math.min(
      Math.max(this.cfg.sndBufSize, 2 * inFlight),
      Math.max(this.cfg.sndBufMax, this.cfg.sndBufSize),
    )
  }

  /**
   * CLOSE (RFC 9293 §3.10.4): half-close our direction. Queued data is still sent, then a FIN; data from the
   * peer keeps arriving until its FIN.
   */
  close(): void {
    switch (this.state) {
      case State.LISTEN:
        this.#finish(undefined)
        return
      case State.SYN_SENT:
      case State.SYN_RECEIVED:
        // SYN-RECEIVED: "If no SENDs have been issued ... enter FIN-WAIT-1 state; otherwise, queue for processing
        // after entering ESTABLISHED state." We always queue, and in SYN-SENT too (where RFC 9293 deletes the
        // TCB): like net.Socket, end() before the connection is up means "send this, then FIN", not "abandon";
        // abort() abandons.
        this.#closeRequested = true
        return
      case State.ESTABLISHED:
        this.#queueFin()
        this.#setState(State.FIN_WAIT_1)
        break
      case State.CLOSE_WAIT:
        this.#queueFin()
        this.#setState(State.LAST_ACK)
        break
      default:
        return
    }
    if (!this.#inInput) {
      this.#output()
      this.#afterSend()
    }
  }

  #queueFin(): void {
    this.#finQueued = true
    this.#finSeq = seqAdd(this.#sndBufSeq, this.#sndBuf.length)
  }

  /** ABORT (RFC 9293 §3.10.5): "send a reset segment: <SEQ=SND.NXT><CTL=RST>" in synchronized states. */
  abort(err?: TcpError): void {
    if (this.state === State.CLOSED) return
    if (this.state === State.SYN_RECEIVED || (isSynchronized(this.state) && this.state !== State.TIME_WAIT))
      this.#sendRst(this.sndMax)
    this.#finish(err)
  }

  /** Our FIN is queued (close() was called, possibly still waiting for the handshake to finish). */
  get closing(): boolean {
    return this.#finQueued || this.#closeRequested
  }

  /**
   * The application is gone after close(), before the peer's FIN (Linux's close() with nothing unread): the
   * connection finishes the FIN exchange on its own instead of resetting a peer that closes in order right
   * behind us. Data that still arrives has no reader and is answered with RST, as Linux does
   * (TCPAbortOnData); a peer that never sends its FIN is reset after cfg.finTimeoutMs.
   */
  orphan(): void {
    if (this.state === State.CLOSED) return
    if (!this.closing) {
      this.abort()
      return
    }
    this.#orphaned = true
    this.events = {}
    this.#finTimeout ??= new Deadline(this.#ctx.clock, () => {
      if (this.state !== State.TIME_WAIT)
        this.abort(new TcpError(TcpErrorCode.timeout, 'no FIN from the peer'))
    })
    this.#finTimeout.setIn(this.cfg.finTimeoutMs)
  }

  /** Forgets the connection without sending anything (a half-open entry evicted under a SYN flood). */
  drop(): void {
    this.#finish(undefined)
  }

  /** The application has read n of the bytes delivered through onData; may open the receive window. */
  consumed(n: number): void {
    this.rcvUnread = Math.max(0, this.rcvUnread - n)
    if (this.state === State.CLOSED || !isSynchronized(this.state) || this.#peerFinDone) return
    this.#autotune(n)
    // Send a window update once the right edge can move by a worthwhile amount (RFC 9293 §3.8.6.2.2, receiver
    // SWS avoidance: "the window is ... increased only when it can be increased by at least min(Fr * RCV.BUFF, Eff.snd.MSS)").
    const free = this.rcvBuf - this.rcvUnread
    const cur = Math.max(0, seqSub(this.rcvAdvEdge, this.rcvNxt))
    if (free - cur >= this.#swsThreshold() && !this.#inInput) this.#sendAck()
  }

  /**
   * RFC 9293 §3.8.6.2.2: min(Fr × RCV.BUFF, Eff.snd.MSS) with Fr = 1/2, the sender's MSS being the largest
   * segment it has sent us (as Linux's rcv_mss), not the larger one we allowed it.
   */
  #swsThreshold(): number {
    return Math.min(Math.floor(this.rcvBuf / 2), this.#rcvMss)
  }

  /**
   * The receiver's RTT estimate (Linux's tcp_rcv_rtt_measure): how long the sender takes to reach the right
   * edge we advertised when it last did — one RTT for a sender limited by our window, more otherwise. A
   * smoothed minimum; 0 until measured.
   */
  #measureRcvRtt(now: number): void {
    if (this.#rcvRttSeq === undefined || seqGe(this.rcvNxt, this.#rcvRttSeq)) {
      if (this.#rcvRttSeq !== undefined) {
        const sample = now - this.#rcvRttAt
        this.#rcvRtt =
          this.#rcvRtt === 0 || sample < this.#rcvRtt ? sample : this.#rcvRtt + (sample - this.#rcvRtt) / 8
      }
      this.#rcvRttSeq = this.rcvAdvEdge
      this.#rcvRttAt = now
    }
  }

  /**
   * Receive-buffer autotuning (dynamic right-sizing, as Linux's tcp_rcv_space_adjust): once per receiver RTT,
   * if the application consumed more than in any RTT before, the buffer grows to twice that (up to
   * rcvBufMax), so that a sender that could go faster is not held back by our window — a path whose RTT grows
   * under load needs more. A reader that stops consumes nothing, and nothing grows.
   */
  /** receive-buffer growth taken from the stack's budget, given back when the connection closes */
  #grown = 0

  #autotune(consumed: number): void {
    // Never a window the reassembly queue could not hold: what it dropped would all be sent again.
    const max = Math.max(Math.min(this.cfg.rcvBufMax, this.cfg.oooLimit), this.cfg.rcvBufSize)
    if (this.rcvBuf >= max || this.#rcvRtt === 0) return
    this.#copied += consumed
    const now = this.#ctx.clock.now()
    if (now - this.#spaceAt < this.#rcvRtt) return
    if (this.#copied > this.#space) {
      this.#space = this.#copied
      const target = Math.min(2 * this.#copied, max)
      if (target > this.rcvBuf) {
        const want = target - this.rcvBuf
        const granted = this.#ctx.growBuffers ? this.#ctx.growBuffers(want) : want
        this.rcvBuf += granted
        this.#grown += granted
      }
    }
    this.#copied = 0
    this.#spaceAt = now
  }

  // ---------------------------------------------------------------------------------------------------------
  // SEGMENT ARRIVES (RFC 9293 §3.10.7)

  input(seg: TcpRepr): void {
    this.#ctx.metrics.segmentsReceived++
    if (this.state === State.CLOSED) return
    this.#inInput = true
    try {
      switch (this.state) {
        case State.LISTEN:
          this.#inputListen(seg)
          break
        case State.SYN_SENT:
          this.#inputSynSent(seg)
          break
        default:
          this.#inputSynchronized(seg)
      }
    } finally {
      this.#inInput = false
    }
    if (this.#dataWhileOrphaned) {
      this.abort(new TcpError(TcpErrorCode.reset, 'data after close'))
      return
    }
    this.#afterInput()
  }

  #afterInput(): void {
    if (this.state === State.CLOSED) return
    // A close() queued during the handshake: the connection may be ESTABLISHED or, if the peer's FIN came
    // with the handshake-completing ACK, already CLOSE-WAIT.
    if (this.#closeRequested && isSynchronized(this.state)) {
      this.#closeRequested = false
      this.close()
    }
    this.#output()
    this.#afterSend()
    if (this.#ackNow) this.#sendAck()
    else if (this.#segsUnacked > 0 && !this.#delack.armed) this.#delack.setIn(this.cfg.delayedAckMs)
    if (this.#writeBlocked && this.#sndBuf.length < this.#sndLimit() && !this.closed) {
      this.#writeBlocked = false
      this.events.onDrain?.()
    }
  }

  /** RFC 9293 §3.10.7.2, LISTEN. */
  #inputListen(seg: TcpRepr): void {
    // "First, check for a RST: An incoming RST segment could not be valid ... it should be ignored."
    if (seg.flags & Flag.RST) return
    // "Second, check for an ACK: ... an acceptable reset segment should be formed for any arriving ACK-bearing
    // segment. The RST should be formatted as follows: <SEQ=SEG.ACK><CTL=RST>"
    if (seg.flags & Flag.ACK) {
      this.#sendRst(seg.ack)
      this.#finish(undefined)
      return
    }
    // "Third, check for a SYN: ... Set RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ ... ISS should be selected
    // and a SYN segment sent of the form: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>. SND.NXT is set to ISS+1 and
    // SND.UNA to ISS. The connection state should be changed to SYN-RECEIVED." Data in the SYN is not
    // queued: the peer retransmits it after the handshake.
    if (!(seg.flags & Flag.SYN)) return
    this.#acceptSyn(seg)
    this.#setState(State.SYN_RECEIVED)
    this.#sendSyn()
    this.sndNxt = seqAdd(this.iss, 1)
    this.sndMax = this.sndNxt
    this.#rtx.setIn(this.rto.rto)
  }

  /** Records the peer's SYN: IRS, RCV.NXT, negotiated options (RFC 7323 §2.2, §3.2; RFC 2018 §2). */
  #acceptSyn(seg: TcpRepr): void {
    this.irs = seg.seq
    this.rcvNxt = seqAdd(seg.seq, 1)
    const n = negotiate(this.cfg, seg, true)
    this.sndMss = n.sndMss
    this.sndWscale = n.sndWscale
    this.rcvWscale = n.rcvWscale
    this.wsOk = n.wsOk
    this.tsOk = n.tsOk
    this.sackOk = n.sackOk
    if (n.tsOk) this.tsRecent = seg.timestamp!.val
    this.#rcvMss = Math.min(this.cfg.mss, this.sndMss)
    this.recovery.setMss(this.sndMss)
    this.recovery.sackOk = n.sackOk
    // RFC 7323 §2.2: "The window field in a segment where the SYN bit is set ... MUST NOT be scaled."
    this.sndWnd = seg.window
    this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd)
    this.sndWl1 = seg.seq
    this.sndWl2 = seg.ack
  }

  /** RFC 9293 §3.10.7.3, SYN-SENT. */
  #inputSynSent(seg: TcpRepr): void {
    let ackOk = false
    if (seg.flags & Flag.ACK) {
      // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set, if so drop the segment
      // and return) <SEQ=SEG.ACK><CTL=RST>"
      if (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndNxt)) {
        if (!(seg.flags & Flag.RST)) this.#sendRst(seg.ack)
        return
      }
      ackOk = true
    }
    if (seg.flags & Flag.RST) {
      // "If the ACK was acceptable, then signal to the user "error: connection reset", drop the segment, enter
      // CLOSED state ... Otherwise (no ACK), drop the segment and return." (RFC 5961 §3.2 keeps this rule.)
      if (ackOk) {
        this.#ctx.metrics.resetsReceived++
        this.#finish(new TcpError(TcpErrorCode.refused, 'connection refused'))
      }
      return
    }
    if (!(seg.flags & Flag.SYN)) return
    this.#acceptSyn(seg)
    if (ackOk) {
      // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to ESTABLISHED, form an ACK
      // segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
      this.#sampleRtt(seg)
      this.sndUna = seg.ack
      this.sndWl2 = seg.ack
      this.#retries = 0
      this.#rtx.clear()
      this.#establish()
      this.#ackNow = true
    } else {
      // Simultaneous open: "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
      // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it."
      this.#setState(State.SYN_RECEIVED)
      this.#sendSyn()
    }
    // The window we put in our SYN was unscaled; from here on RCV.WND is the edge computed by #advertise.
    this.rcvAdvEdge = seqAdd(this.rcvNxt, Math.min(this.cfg.rcvBufSize, 0xffff))
  }

  #establish(): void {
    this.#setState(State.ESTABLISHED)
    this.#keepaliveReset()
    this.events.onEstablished?.()
  }

  /** RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state. */
  #inputSynchronized(seg: TcpRepr): void {
    const rst = (seg.flags & Flag.RST) !== 0
    const syn = (seg.flags & Flag.SYN) !== 0
    const m = this.#ctx.metrics

    // A retransmitted SYN while we are in SYN-RECEIVED: our SYN-ACK was lost; send it again.
    if (this.state === State.SYN_RECEIVED && syn && !(seg.flags & Flag.ACK) && seg.seq === this.irs) {
      this.#sendSyn()
      return
    }

    // Simultaneous open (RFC 9293 §3.5, Figure 8): in SYN-RECEIVED the peer's SYN,ACK repeats its SYN (SEG.SEQ =
    // IRS) and acknowledges ours. By the acceptability table it would be an old duplicate; like Linux
    // (tcp_validate_incoming) we take it as the ACK that completes the handshake.
    if (
      this.state === State.SYN_RECEIVED &&
      syn &&
      seg.flags & Flag.ACK &&
      seg.seq === this.irs &&
      seg.ack === this.sndNxt
    ) {
      this.#sampleRtt(seg)
      this.sndUna = seg.ack
      // RFC 7323 §2.2: the window of a SYN segment is not scaled.
      this.sndWnd = seg.window
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd)
      this.sndWl1 = seg.seq
      this.sndWl2 = seg.ack
      this.#retries = 0
      this.#rtx.clear()
      this.#establish()
      return
    }

    // RFC 7323 §5.3 R1 (PAWS), before the sequence check: "If there is a Timestamps option in the arriving
    // segment, SEG.TSval < TS.Recent ... and the RST bit is not set, then treat the arriving segment as not
    // acceptable: Send an acknowledgment in reply as specified in RFC 9293 ... and drop the segment."
    if (this.tsOk && pawsRejects(seg, this.tsRecent, rst) && !this.#disorderedAck(seg)) {
      m.pawsRejects++
      this.#ackNow = true
      return
    }

    // First, check sequence number (RFC 9293 §3.10.7.4, the four-case acceptability table).
    if (!this.#acceptable(seg)) {
      // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply (unless the RST bit
      // is set, if so drop the segment and return)". Replies to bare out-of-window ACKs are rate-limited, as
      // Linux does (tcp_oow_rate_limited): two endpoints that each find the other's ACKs out of window must
      // not answer each other without end.
      if (!rst && (seg.payload.length > 0 || syn || seg.flags & Flag.FIN || this.#oowAckAllowed()))
        this.#ackNow = true
      // RFC 2883 §4: a segment we already have is reported as a D-SACK.
      const end = seqAdd(seg.seq, seg.payload.length)
      if (this.sackOk && seg.payload.length > 0 && !rst && seqLe(end, this.rcvNxt))
        this.#dsack = { left: seg.seq, right: end }
      // TIME-WAIT: a retransmitted FIN (our ACK was lost) restarts the 2 MSL timeout (RFC 9293 §3.10.7.4, eighth check).
      if (this.state === State.TIME_WAIT && seg.flags & Flag.FIN) this.#timeWait.setIn(this.cfg.timeWaitMs)
      return
    }

    // RFC 7323 §4.3 (3): "If SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent then SEG.TSval is copied to TS.Recent".
    if (
      this.tsOk &&
      seg.timestamp &&
      !tsLt(seg.timestamp.val, this.tsRecent) &&
      seqLe(seg.seq, this.lastAckSent)
    )
      this.tsRecent = seg.timestamp.val

    this.#keepaliveReset()

    // Second, check the RST bit, as RFC 5961 §3.2 amends it: "1) If the RST bit is set and the sequence number
    // exactly matches the next expected sequence number (RCV.NXT), then TCP MUST reset the connection. 2) If
    // the RST bit is set and the sequence number does not exactly match ... but is within the current receive
    // window, TCP MUST send an acknowledgment (challenge ACK)".
    if (rst) {
      if (seg.seq !== this.rcvNxt) {
        this.#challengeAck()
        return
      }
      m.resetsReceived++
      switch (this.state) {
        case State.SYN_RECEIVED:
          // "If this connection was initiated with a passive OPEN ... return this connection to LISTEN state"
          // — here the listener is the stack; this TCB goes away. Active (simultaneous open): refused.
          this.#finish(this.active ? new TcpError(TcpErrorCode.refused, 'connection refused') : undefined)
          return
        case State.ESTABLISHED:
        case State.FIN_WAIT_1:
        case State.FIN_WAIT_2:
        case State.CLOSE_WAIT:
          // "any outstanding RECEIVEs and SEND should receive "reset" responses ... Enter the CLOSED state".
          this.#finish(new TcpError(TcpErrorCode.reset, 'connection reset by peer'))
          return
        default:
          // CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state, delete the TCB, and return."
          this.#finish(undefined)
          return
      }
    }

    // Fourth, check the SYN bit. RFC 5961 §4.2 (adopted by RFC 9293 §3.10.7.4): "If the SYN bit is set,
    // irrespective of the sequence number, TCP MUST send an ACK (also referred to as challenge ACK) to the
    // remote peer". A genuine new connection on this 4-tuple is let in by the stack (TIME-WAIT reuse).
    if (syn) {
      this.#challengeAck()
      return
    }

    // Fifth, check the ACK field: "if the ACK bit is off, drop the segment and return".
    if (!(seg.flags & Flag.ACK)) return

    if (this.state === State.SYN_RECEIVED) {
      // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state and continue processing with the
      // variables below set to: SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK.
      // If the segment acknowledgment is not acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>".
      if (!(seqLt(this.sndUna, seg.ack) && seqLe(seg.ack, this.sndNxt))) {
        this.#sendRst(seg.ack)
        return
      }
      this.#sampleRtt(seg)
      this.sndUna = seg.ack
      this.sndWnd = seg.window << this.sndWscale
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd)
      this.sndWl1 = seg.seq
      this.sndWl2 = seg.ack
      this.#retries = 0
      this.#rtx.clear()
      this.#establish()
      if (this.closed) return
    }

    // RFC 5961 §5.2: "the ACK value is considered acceptable only if it is in the range of ((SND.UNA -
    // MAX.SND.WND) =< SEG.ACK =< SND.NXT). All incoming segments whose ACK value doesn't satisfy the above
    // condition MUST be discarded and an ACK sent back." (SND.MAX here: after an RTO rewinds SND.NXT, ACKs
    // up to the highest byte ever sent are legitimate.)
    const lowest = seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1))
    if (seqLt(seg.ack, lowest) || seqGt(seg.ack, this.sndMax)) {
      this.#challengeAck()
      return
    }

    this.#processAck(seg)
    if (this.state === State.CLOSED) return

    if (this.state === State.TIME_WAIT) {
      // "The only thing that can arrive in this state is a retransmission of the remote FIN. Acknowledge it,
      // and restart the 2 MSL timeout."
      if (seg.flags & Flag.FIN) {
        this.#ackNow = true
        this.#timeWait.setIn(this.cfg.timeWaitMs)
      }
      return
    }

    // Sixth, the URG bit: urgent data is delivered in line (RFC 6093 §4), so nothing to do.

    // Seventh, process the segment text (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2).
    let finInWindow = (seg.flags & Flag.FIN) !== 0
    if (seg.payload.length && canReceive(this.state)) finInWindow = this.#processData(seg) && finInWindow
    else if (seg.payload.length) this.#ackNow = true

    // Eighth, check the FIN bit. The FIN sits after the data; it is processed once RCV.NXT reaches it.
    if (finInWindow && !this.#peerFinDone) {
      const finSeq = seqAdd(seg.seq, seg.payload.length)
      if (finSeq === this.rcvNxt) this.#onPeerFin()
      else if (seqGt(finSeq, this.rcvNxt)) {
        this.#peerFinSeq = finSeq
        this.#ackNow = true
      }
    }
  }

  /**
   * A duplicate ACK that was overtaken on the way (Linux's tcp_disordered_ack): a pure ACK at RCV.NXT, for
   * SND.UNA, not changing the window, and older than TS.Recent by less than an RTO. PAWS would drop it and
   * answer it; it is harmless, and it may carry SACK blocks loss recovery wants.
   */
  #disorderedAck(seg: TcpRepr): boolean {
    return (
      seg.flags === Flag.ACK &&
      seg.payload.length === 0 &&
      seg.seq === this.rcvNxt &&
      seg.ack === this.sndUna &&
      seg.window << this.sndWscale === this.sndWnd &&
      ((this.tsRecent - seg.timestamp!.val) | 0) <= this.rto.rto
    )
  }

  #oowAckAllowed(): boolean {
    const now = this.#ctx.clock.now()
    if (now - this.#lastOowAck < OOW_ACK_INTERVAL_MS) return false
    this.#lastOowAck = now
    return true
  }

  /** RFC 9293 §3.10.7.4, the acceptability table. */
  #acceptable(seg: TcpRepr): boolean {
    const wnd = Math.max(0, seqSub(this.rcvAdvEdge, this.rcvNxt))
    const len = seg.payload.length + (seg.flags & Flag.SYN ? 1 : 0) + (seg.flags & Flag.FIN ? 1 : 0)
    if (len === 0 || (wnd === 0 && seg.payload.length === 0)) {
      // "0 / 0: SEG.SEQ = RCV.NXT"; "0 / >0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND". A bare FIN exactly at
      // RCV.NXT is taken even into a zero window, as Linux does: it costs no buffer and avoids a probe cycle.
      if (wnd === 0) return seg.seq === this.rcvNxt
      // A bare segment exactly at the right edge is taken too (Linux's tcp_sequence: SEG.SEQ =< RCV.NXT+RCV.WND):
      // a peer that filled our window numbers its ACKs there.
      return seqLe(this.rcvNxt, seg.seq) && seqLe(seg.seq, this.rcvAdvEdge)
    }
    // ">0 / 0: not acceptable"; ">0 / >0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND or
    // RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND".
    if (wnd === 0) return false
    const last = seqAdd(seg.seq, len - 1)
    return (
      (seqLe(this.rcvNxt, seg.seq) && seqLt(seg.seq, this.rcvAdvEdge)) ||
      (seqLe(this.rcvNxt, last) && seqLt(last, this.rcvAdvEdge))
    )
  }

  /** RFC 9293 §3.10.7.4 fifth check, ESTABLISHED and later. */
  #processAck(seg: TcpRepr): void {
    const ack = seg.ack
    const wnd = seg.window << this.sndWscale
    const una = this.sndUna
    const now = this.#ctx.clock.now()
    // RFC 5681 §2, DUPLICATE ACKNOWLEDGMENT: "(a) the receiver of the ACK has outstanding data, (b) the
    // incoming acknowledgment carries no data, (c) the SYN and FIN bits are both off, (d) the acknowledgment
    // number is equal to the greatest acknowledgment received ... and (e) the advertised window in the
    // incoming acknowledgment equals the advertised window in the last incoming acknowledgment." (Used
    // without SACK only; with SACK, RACK reads the SACK blocks instead.)
    const dupAck =
      ack === una &&
      this.sndMax !== una &&
      seg.payload.length === 0 &&
      wnd > 0 && // a zero window means probes are being answered, not that anything was lost
      !(seg.flags & (Flag.SYN | Flag.FIN)) &&
      wnd === this.sndWnd

    if (seqGt(ack, una)) {
      // "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK. Any segments on the retransmission
      // queue that are thereby entirely acknowledged are removed."
      const dataAcked = Math.min(Math.max(0, seqSub(ack, this.#sndBufSeq)), this.#sndBuf.length)
      if (dataAcked > 0) {
        this.#sndBuf.drop(dataAcked)
        this.#sndBufSeq = seqAdd(this.#sndBufSeq, dataAcked)
      }
      this.#sampleRtt(seg, this.recovery.board.rttSample(ack, now))
      this.sndUna = ack
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack
      this.#retries = 0
      this.#probes = 0
      this.#ptoRestart = true
    } else if (ack === una) this.#probes = 0

    const ev = this.recovery.onAck({
      ack,
      una,
      max: this.sndMax,
      sack: this.sackOk ? seg.sack : undefined,
      dupAck,
      ecr: this.tsOk && seg.timestamp?.ecr ? seg.timestamp.ecr : undefined,
      now,
      srtt: this.rto.srtt,
    })
    if (ev.enteredFast) this.#ctx.metrics.fastRecoveries++
    if (ev.tlpRecovered) this.#ctx.metrics.tailLossProbeRecoveries++
    if (ev.reorderTimeout > 0) this.#reo.setIn(ev.reorderTimeout)
    else this.#reo.clear()

    if (seqGt(ack, una)) {
      // RFC 6298 §5.2: "When all outstanding data has been acknowledged, turn off the retransmission timer."
      // §5.3: "When an ACK is received that acknowledges new data, restart the retransmission timer".
      if (this.sndUna === this.sndMax) this.#rtx.clear()
      else this.#rtx.setIn(this.rto.rto)
      if (this.#finQueued && seqGt(ack, this.#finSeq)) this.#onOurFinAcked()
    }
    // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated. If (SND.WL1 < SEG.SEQ or (SND.WL1 =
    // SEG.SEQ and SND.WL2 =< SEG.ACK)), set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <- SEG.ACK."
    if (seqGe(ack, this.sndUna)) {
      if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
        if (this.sndWnd === 0 && wnd > 0) this.#probes = 0
        this.sndWnd = wnd
        this.maxSndWnd = Math.max(this.maxSndWnd, wnd)
        this.sndWl1 = seg.seq
        this.sndWl2 = ack
      }
    }
  }

  #onOurFinAcked(): void {
    switch (this.state) {
      case State.FIN_WAIT_1:
        // "In addition to the processing for the ESTABLISHED state, if the FIN segment is now acknowledged,
        // then enter FIN-WAIT-2 and continue processing in that state."
        this.#setState(State.FIN_WAIT_2)
        break
      case State.CLOSING:
        // "if the ACK acknowledges our FIN, then enter the TIME-WAIT state; otherwise, ignore the segment."
        this.#enterTimeWait()
        break
      case State.LAST_ACK:
        // "The only thing that can arrive in this state is an acknowledgment of our FIN. If our FIN is now
        // acknowledged, delete the TCB, enter the CLOSED state, and return."
        this.#finish(undefined)
        break
    }
  }

  /** Seventh check: returns false when the tail (and so any FIN) lay beyond the window. */
  #processData(seg: TcpRepr): boolean {
    let start = seg.seq
    let data = seg.payload
    let whole = true
    // Trim what we already have ("segments with higher beginning sequence numbers may be held", and the part
    // before RCV.NXT is a duplicate).
    const dupBytes = seqSub(this.rcvNxt, start)
    if (dupBytes > 0) {
      // RFC 2883 §4: report the duplicate in the next ACK (a D-SACK), so that the sender can tell a needless
      // retransmission (e.g. a tail loss probe) from a repaired loss.
      if (this.sackOk) this.#dsack = { left: start, right: seqAdd(start, Math.min(dupBytes, data.length)) }
      data = data.subarray(dupBytes)
      start = this.rcvNxt
    }
    // Trim what lies beyond the window we advertised: "carry over ... only the portion within the window".
    const room = seqSub(this.rcvAdvEdge, start)
    if (data.length > room) {
      data = data.subarray(0, Math.max(0, room))
      whole = false
    }
    if (data.length === 0) {
      this.#ackNow = true
      return whole
    }
    if (data.length > this.#rcvMss) this.#rcvMss = data.length
    if (start === this.rcvNxt) {
      this.#deliver(data)
      this.#measureRcvRtt(this.#ctx.clock.now())
      let filled = false
      if (!this.ooo.empty) {
        for (const chunk of this.ooo.take(this.rcvNxt)) {
          this.#deliver(chunk)
          filled = true
        }
      }
      if (this.#peerFinSeq !== undefined && this.#peerFinSeq === this.rcvNxt && !this.#peerFinDone)
        this.#onPeerFin()
      this.#segsUnacked++
      // RFC 9293 §3.8.6.3: "an ACK SHOULD be generated for at least every second full-sized segment"; RFC 5681
      // §4.2: "A TCP receiver SHOULD send an immediate ACK when the incoming segment fills in all or part of a gap".
      if (filled) this.#quickAcks = QUICK_ACKS
      if (this.#segsUnacked >= 2 || filled || !this.ooo.empty || this.#quickAcks > 0) this.#ackNow = true
      if (this.#quickAcks > 0) this.#quickAcks--
    } else {
      // RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an out-of-order segment
      // arrives" — it carries the SACK blocks the sender uses. The sender is repairing a loss with a reduced
      // window from here on: ACK the next segments at once too.
      if (!this.ooo.insert(start, data)) this.#ctx.metrics.outOfOrderDrops++
      this.#ackNow = true
      this.#quickAcks = QUICK_ACKS
    }
    return whole
  }

  #deliver(chunk: Uint8Array): void {
    if (this.#orphaned) {
      this.#dataWhileOrphaned = true
      return
    }
    this.rcvNxt = seqAdd(this.rcvNxt, chunk.length)
    this.rcvUnread += chunk.length
    this.events.onData?.(chunk)
  }

  #onPeerFin(): void {
    // "If the FIN bit is set, signal the user "connection closing" ..., advance RCV.NXT over the FIN, and send
    // an acknowledgment for the FIN."
    this.#peerFinDone = true
    this.#peerFinSeq = undefined
    this.rcvNxt = seqAdd(this.rcvNxt, 1)
    this.#ackNow = true
    switch (this.state) {
      case State.SYN_RECEIVED:
      case State.ESTABLISHED:
        this.#setState(State.CLOSE_WAIT)
        break
      case State.FIN_WAIT_1:
        // "If our FIN has been ACKed ..., then enter TIME-WAIT ...; otherwise, enter the CLOSING state."
        // (#processAck already moved us to FIN-WAIT-2 if it was.) This is simultaneous close.
        this.#setState(State.CLOSING)
        break
      case State.FIN_WAIT_2:
        this.#enterTimeWait()
        break
    }
    this.events.onEof?.()
  }

  #enterTimeWait(): void {
    // "Enter the TIME-WAIT state. Start the time-wait timer, turn off the other timers."
    this.#setState(State.TIME_WAIT)
    this.#rtx.clear()
    this.#pto.clear()
    this.#reo.clear()
    this.#keepalive.clear()
    this.#timeWait.setIn(this.cfg.timeWaitMs)
  }

  // ---------------------------------------------------------------------------------------------------------
  // Sending

  /**
   * Sends whatever the windows allow (RFC 9293 §3.8.6.2.1; RFC 6675 §5 with pipe for the flight): segments
   * deemed lost first (NextSeg rule 1), then new data, while pipe < cwnd — as Linux counts, a whole segment
   * may go while any of the window is left — and new data within the peer's window.
   */
  #output(): void {
    if (!sending(this.state)) return
    const rec = this.recovery
    for (;;) {
      const flight = seqSub(this.sndMax, this.sndUna)
      const cwndOpen = rec.pipe(flight) < this.cc.cwnd
      if (cwndOpen && rec.board.lostBytes > 0) {
        const i = rec.board.firstLost()
        if (i >= 0 && this.#retransmitLost(i)) continue
      }
      const off = seqSub(this.sndNxt, this.#sndBufSeq)
      const unsent = this.#sndBuf.length - off
      if (unsent > 0) {
        if (!cwndOpen) break
        const avail = this.sndWnd - flight
        let len = Math.min(unsent, this.sndMss)
        if (len > avail) {
          // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a short segment only when it is at least half the
          // largest window the peer ever offered, or nothing is in flight to clock more ACKs out.
          if (avail <= 0 || !(avail >= this.maxSndWnd / 2 || flight === 0)) break
          len = avail
        }
        const fin = this.#finQueued && len === unsent
        this.#sendData(this.sndNxt, len, fin)
        continue
      }
      if (this.#finQueued && this.sndNxt === this.#finSeq) {
        this.#sendData(this.sndNxt, 0, true)
        continue
      }
      // RFC 6675 §4 NextSeg rule (4), the rescue retransmission: nothing lost to resend, nothing new, room in
      // the window — resend the last segment once per recovery, in case the tail of the flight was lost too
      // (no later segment can reveal that, and a tail loss probe is not sent during recovery).
      if (cwndOpen && rec.sackOk && rec.phase === Phase.fast && !rec.rescued) {
        const last = rec.board.last
        rec.rescued = true
        if (
          last &&
          !last.sacked &&
          !last.lost &&
          !last.retransmitted &&
          seqLt(last.start, seqAdd(this.sndUna, this.sndWnd))
        ) {
          this.#resend(last.start, segData(last), last.fin)
          rec.onRetransmitted(last, this.#ctx.clock.now())
          this.#ctx.metrics.fastRetransmits++
        }
      }
      break
    }
    this.#armPersist()
  }

  /** New data (and/or our FIN) at SND.NXT: advances SND.NXT/SND.MAX, enters the scoreboard, starts the timer. */
  #sendData(at: Seq, len: number, fin: boolean): void {
    const payload = len ? this.#sndBuf.read(seqSub(at, this.#sndBufSeq), len) : EMPTY
    const end = seqAdd(at, len + (fin ? 1 : 0))
    this.#send(Flag.ACK | (fin ? Flag.FIN : 0) | (len ? Flag.PSH : 0), at, payload)
    this.recovery.onSent(at, end, fin, this.#ctx.clock.now())
    this.sndNxt = end
    this.sndMax = end
    this.#ptoRestart = true
    // RFC 6298 §5.1: "Every time a packet containing data is sent (including a retransmission), if the timer
    // is not running, start it running so that it will expire after RTO seconds".
    if (!this.#rtx.armed) this.#rtx.setIn(this.rto.rto)
  }

  /**
   * Resends the i-th scoreboard segment, deemed lost. Not beyond the peer's window (a segment reaching past
   * it is split and its first part sent); false when nothing of it fits.
   */
  #retransmitLost(i: number): boolean {
    const board = this.recovery.board
    let seg = board.at(i)!
    const wndEnd = seqAdd(this.sndUna, this.sndWnd)
    if (segData(seg) > 0) {
      if (!seqLt(seg.start, wndEnd)) return false
      if (seqGt(seqAdd(seg.start, segData(seg)), wndEnd)) {
        board.splitAt(i, wndEnd)
        seg = board.at(i)!
      }
    }
    if (this.recovery.phase === Phase.fast) this.#ctx.metrics.fastRetransmits++
    this.#resend(seg.start, segData(seg), seg.fin)
    this.recovery.onRetransmitted(seg, this.#ctx.clock.now())
    return true
  }

  /** Sends [at, at + len) again (and our FIN after it), without moving SND.NXT. */
  #resend(at: Seq, len: number, fin: boolean): void {
    const payload = len ? this.#sndBuf.read(seqSub(at, this.#sndBufSeq), len) : EMPTY
    this.#ctx.metrics.retransmits++
    // Karn's rule (RFC 6298 §3): no RTT sample from a segment that was retransmitted.
    this.#karn()
    this.#send(Flag.ACK | (fin ? Flag.FIN : 0) | (len ? Flag.PSH : 0), at, payload)
    if (!this.#rtx.armed) this.#rtx.setIn(this.rto.rto)
  }

  #sendSyn(): void {
    const flags = this.state === State.SYN_SENT ? Flag.SYN : Flag.SYN | Flag.ACK
    this.#send(flags, this.iss, EMPTY)
    if (this.#rttSeq === undefined && this.#retries === 0) {
      this.#rttSeq = seqAdd(this.iss, 1)
      this.#rttStart = this.#ctx.clock.now()
    }
  }

  #sendAck(): void {
    if (this.state === State.CLOSED || this.state === State.LISTEN || this.state === State.SYN_SENT) return
    if (this.state === State.SYN_RECEIVED) {
      this.#sendSyn()
      return
    }
    // SND.MAX, not SND.NXT: after an RTO rewinds SND.NXT, a bare ACK numbered below what the peer already
    // received would fail its acceptability test and the ACK it carries would be lost. But never beyond the
    // peer's window (Linux's tcp_acceptable_seq): data sent past a window that then shrank or was truncated
    // would put the ACK out of the peer's window, draw its ACK, and the two would answer each other forever.
    // Less than one scaling unit beyond is fine (Linux's rule too): a peer that scales its window rounds it
    // down, so its right edge may retract by up to a unit below data we already sent (RFC 7323 §2.4,
    // Appendix F) — and numbering our ACKs below its RCV.NXT would make them unacceptable to it.
    const wndEnd = seqAdd(this.sndUna, this.sndWnd)
    const beyond = seqSub(this.sndMax, wndEnd)
    this.#send(Flag.ACK, beyond > 0 && beyond >= 2 ** this.sndWscale ? wndEnd : this.sndMax, EMPTY)
  }

  /** RFC 5961 §7: challenge ACKs are rate-limited so that they cannot be used as an amplifier. */
  #challengeAck(): void {
    const m = this.#ctx.metrics
    if (this.#ctx.challengeAckAllowed()) {
      m.challengeAcksSent++
      this.#sendAck()
    } else m.challengeAcksSuppressed++
  }

  #sendRst(at: Seq): void {
    this.#ctx.metrics.resetsSent++
    this.#ctx.metrics.segmentsSent++
    this.#ctx.emit({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: at,
      ack: seq(0),
      flags: Flag.RST,
      window: 0,
      payload: EMPTY,
    })
  }

  /** Builds and emits one segment with the current ACK, window and options. */
  #send(flags: number, at: Seq, payload: Uint8Array): void {
    const syn = (flags & Flag.SYN) !== 0
    const seg: TcpRepr = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: at,
      ack: flags & Flag.ACK ? this.rcvNxt : seq(0),
      flags,
      window: this.#advertise(syn),
      payload,
    }
    if (syn) {
      // We offer every enabled option on our SYN; a SYN-ACK carries only what was agreed, i.e. what the peer
      // offered (RFC 7323 §2.2: "only if ... received a Window Scale option in the <SYN>"; §3.2; RFC 2018 §2).
      const offer = this.state === State.SYN_SENT
      seg.mss = this.cfg.mss
      if (offer ? this.cfg.windowScaling : this.wsOk)
        seg.windowScale = windowScaleFor(Math.max(this.cfg.rcvBufSize, this.cfg.rcvBufMax))
      if (offer ? this.cfg.sack : this.sackOk) seg.sackPermitted = true
      if (offer ? this.cfg.timestamps : this.tsOk) seg.timestamp = { val: this.#tsNow(), ecr: this.tsRecent }
    } else if (this.tsOk) {
      seg.timestamp = { val: this.#tsNow(), ecr: this.tsRecent }
    }
    if (this.sackOk && !syn && (this.#dsack || !this.ooo.empty)) seg.sack = this.#sackBlocks()
    if (flags & Flag.ACK) {
      this.lastAckSent = this.rcvNxt
      this.#segsUnacked = 0
      this.#ackNow = false
      this.#delack.clear()
    }
    this.#ctx.metrics.segmentsSent++
    this.#ctx.emit(seg)
  }

  /** RFC 2018 §4 blocks from the out-of-order queue, after a pending D-SACK (RFC 2883 §4: first). */
  #sackBlocks(): SackBlock[] {
    const max = maxSackBlocks(this.tsOk)
    const d = this.#dsack
    this.#dsack = undefined
    if (this.ooo.empty) return d ? [d] : []
    const blocks = this.ooo.sackBlocks(d ? max - 1 : max)
    if (d) blocks.unshift(d)
    return blocks
  }

  #tsNow(): number {
    return this.#tsAt(this.#ctx.clock.now())
  }

  /** Our TSval at clock time `ms`. */
  #tsAt(ms: number): number {
    return (Math.floor(ms) + this.#tsOffset) >>> 0
  }

  /**
   * The window field to send, and RCV.WND's right edge. RFC 9293 §3.8.6.2.2: the edge never moves left, and
   * moves right only by at least min(RCV.BUFF/2, MSS) (receiver SWS avoidance).
   */
  #advertise(syn: boolean): number {
    if (syn) {
      // RFC 7323 §2.2: the window in a SYN is never scaled.
      const w = Math.min(this.cfg.rcvBufSize, 0xffff)
      if (this.state !== State.SYN_SENT) this.rcvAdvEdge = seqAdd(this.rcvNxt, w)
      return w
    }
    const free = Math.max(0, this.rcvBuf - this.rcvUnread)
    const cur = Math.max(0, seqSub(this.rcvAdvEdge, this.rcvNxt))
    const wnd = free > cur && free - cur >= this.#swsThreshold() ? free : cur
    // Scaling rounds the window down: rounding up would promise bytes the buffer does not have, again on
    // every ACK while the window closes. The right edge the peer computes may then retract by less than
    // the scaling unit (RFC 7323 §2.4, Appendix F); we keep accepting up to the largest edge we advertised.
    const unit = 2 ** this.rcvWscale
    const field = Math.min(0xffff, Math.floor(wnd / unit))
    const edge = seqAdd(this.rcvNxt, field * unit)
    if (seqGt(edge, this.rcvAdvEdge)) this.rcvAdvEdge = edge
    return field
  }

  // ---------------------------------------------------------------------------------------------------------
  // Timers

  #onRtxTimer(): void {
    const m = this.#ctx.metrics
    if (this.state === State.CLOSED || this.state === State.TIME_WAIT) return
    if (this.state === State.SYN_SENT || this.state === State.SYN_RECEIVED) {
      if (++this.#retries > this.cfg.synRetries) {
        m.connectionTimeouts++
        this.#finish(new TcpError(TcpErrorCode.timeout, 'connection timed out (no answer to SYN)'))
        return
      }
      m.rtoExpiries++
      m.retransmits++
      this.rto.backoff()
      this.#karn()
      this.#sendSyn()
      this.#rtx.setIn(this.rto.rto)
      return
    }
    const unsentOrFin = this.#sndBuf.length - seqSub(this.sndNxt, this.#sndBufSeq) > 0 || this.#finPending()
    if (this.sndWnd === 0 && (unsentOrFin || this.sndMax !== this.sndUna)) {
      this.#zeroWindowProbe()
      return
    }
    if (this.sndMax === this.sndUna) return
    // RFC 9293 §3.8.3: "R2 ... the connection is closed" after enough retransmissions.
    if (++this.#retries > this.cfg.maxRetries) {
      m.connectionTimeouts++
      this.abort(new TcpError(TcpErrorCode.timeout, 'connection timed out (retransmissions exhausted)'))
      return
    }
    m.rtoExpiries++
    // RFC 5681 §3.1: ssthresh = max(FlightSize / 2, 2*SMSS), cwnd = 1 SMSS; every segment not SACKed is
    // presumed lost (recovery.ts). RFC 6298 §5.5: "back off the timer"; §5.4: "Retransmit the earliest segment
    // that has not been acknowledged" — #output does, and the rest as the window opens again; §5.6: "Start
    // the retransmission timer".
    this.recovery.onRto(seqSub(this.sndMax, this.sndUna), this.sndMax)
    this.rto.backoff()
    this.#karn()
    this.#pto.clear()
    this.#reo.clear()
    this.#rtx.setIn(this.rto.rto)
    const before = m.retransmits
    this.#output()
    if (m.retransmits === before) this.#resendFirst(this.sndMss)
  }

  /** Resends up to `limit` bytes at SND.UNA (and our FIN if they reach it): the RTO's and the probes' fallback. */
  #resendFirst(limit: number): void {
    const off = seqSub(this.sndUna, this.#sndBufSeq)
    const finSent = this.#finQueued && seqGt(this.sndMax, this.#finSeq)
    const sentLeft = seqSub(this.sndMax, this.sndUna) - (finSent ? 1 : 0)
    const len = Math.max(0, Math.min(limit, this.#sndBuf.length - off, sentLeft))
    const fin = finSent && off + len === this.#sndBuf.length
    if (len > 0 || fin) this.#resend(this.sndUna, len, fin)
  }

  #finPending(): boolean {
    return this.#finQueued && seqLe(this.sndNxt, this.#finSeq)
  }

  /**
   * RFC 9293 §3.8.6.1: "The sending TCP peer must regularly transmit at least one octet of new data (if
   * available), or retransmit to the receiving TCP peer even if the send window is zero" and "MUST NOT close
   * a connection merely because it seems to be stuck" while the peer keeps ACKing the probes.
   */
  #zeroWindowProbe(): void {
    const m = this.#ctx.metrics
    if (++this.#probes > this.cfg.maxRetries) {
      m.connectionTimeouts++
      this.abort(new TcpError(TcpErrorCode.timeout, 'connection timed out (zero-window probes unanswered)'))
      return
    }
    m.zeroWindowProbes++
    if (this.sndMax !== this.sndUna) {
      // Something is already beyond the window: resend its first octet as the probe.
      this.#resendFirst(1)
    } else {
      const off = seqSub(this.sndNxt, this.#sndBufSeq)
      if (this.#sndBuf.length - off > 0) {
        this.#sendData(this.sndNxt, 1, this.#finQueued && this.#sndBuf.length - off === 1)
      } else if (this.#finPending()) this.#sendData(this.sndNxt, 0, true)
    }
    this.rto.backoff()
    this.#rtx.setIn(this.rto.rto)
  }

  /**
   * RFC 8985 §7.3, the probe timeout fired: send one segment of new data if there is some and the peer's
   * window takes it, else resend the last segment sent — either way the peer's ACK (with SACK) shows RACK
   * what was lost. Then the retransmission timer is restarted.
   */
  #onProbeTimer(): void {
    const rec = this.recovery
    const flight = seqSub(this.sndMax, this.sndUna)
    if (!sending(this.state) || !rec.canProbe(flight) || this.sndWnd === 0) return
    this.#ctx.metrics.tailLossProbes++
    const off = seqSub(this.sndNxt, this.#sndBufSeq)
    const unsent = this.#sndBuf.length - off
    const len = Math.min(unsent, this.sndMss)
    if (unsent > 0 && len <= this.sndWnd - flight) {
      this.#sendData(this.sndNxt, len, this.#finQueued && len === unsent)
      rec.onProbeSent(this.sndMax, false)
    } else {
      const last = rec.board.last
      if (!last) return
      this.#resend(last.start, segData(last), last.fin)
      rec.onRetransmitted(last, this.#ctx.clock.now())
      rec.onProbeSent(this.sndMax, true)
    }
    this.#ptoRestart = false
    this.#rtx.setIn(this.rto.rto)
  }

  /** RFC 8985 §6.3: RACK's reordering timer — look for losses again, and repair what it finds. */
  #onReorderTimer(): void {
    if (this.closed || !isSynchronized(this.state) || this.state === State.TIME_WAIT) return
    const ev = this.recovery.onReorderTimer(
      this.#ctx.clock.now(),
      this.rto.srtt,
      this.sndMax,
      seqSub(this.sndMax, this.sndUna),
    )
    if (ev.enteredFast) this.#ctx.metrics.fastRecoveries++
    if (ev.reorderTimeout > 0) this.#reo.setIn(ev.reorderTimeout)
    this.#output()
    this.#afterSend()
  }

  /** Starts the probe timer when new data went out or SND.UNA advanced, and a probe may be scheduled. */
  #afterSend(): void {
    if (!this.#ptoRestart) return
    this.#ptoRestart = false
    const flight = seqSub(this.sndMax, this.sndUna)
    const rec = this.recovery
    if (!rec.canProbe(flight) || this.state === State.TIME_WAIT) {
      this.#pto.clear()
      return
    }
    const now = this.#ctx.clock.now()
    const rtoLeft = this.#rtx.armed ? this.#rtx.at - now : this.rto.rto
    this.#pto.set(now + rec.probeTimeout(this.rto.hasSample ? this.rto.srtt : undefined, flight, rtoLeft))
  }

  /** The persist timer is the retransmission timer while the peer's window is zero and nothing is in flight. */
  #armPersist(): void {
    if (this.sndWnd !== 0 || this.#rtx.armed) return
    const unsent = this.#sndBuf.length - seqSub(this.sndNxt, this.#sndBufSeq)
    if (unsent > 0 || this.#finPending()) this.#rtx.setIn(this.rto.rto)
  }

  #keepaliveReset(): void {
    const ka = this.cfg.keepalive
    if (!ka) return
    this.#kaProbes = 0
    this.#keepalive.setIn(ka.idleMs)
  }

  /**
   * RFC 9293 §3.8.4: keep-alive "SHOULD be sent only when no data or acknowledgment packets have been received
   * for the connection within an interval"; the probe is "a segment with sequence number SEG.SEQ = SND.NXT-1",
   * which the peer must answer with an ACK.
   */
  #onKeepalive(): void {
    const ka = this.cfg.keepalive
    const s = this.state
    if (!ka || !(s === State.ESTABLISHED || s === State.CLOSE_WAIT || s === State.FIN_WAIT_2)) return
    if (this.sndMax !== this.sndUna) {
      // Data in flight: the retransmission timer already watches the peer.
      this.#keepalive.setIn(ka.intervalMs)
      return
    }
    if (this.#kaProbes >= ka.count) {
      this.#ctx.metrics.connectionTimeouts++
      this.abort(new TcpError(TcpErrorCode.timeout, 'connection timed out (keepalive)'))
      return
    }
    this.#kaProbes++
    this.#ctx.metrics.keepaliveProbes++
    this.#send(Flag.ACK, seqAdd(this.sndNxt, -1), EMPTY)
    this.#keepalive.setIn(ka.intervalMs)
  }

  /**
   * Karn's rule (RFC 6298 §3): a retransmission makes the timed segment ambiguous. With timestamps, the echo
   * is only trusted from this moment on: the peer's TS.Recent can still hold the TSval of an earlier send
   * (RFC 7323 §4.3 updates it only from in-window segments, not from the duplicate our retransmission
   * becomes), and an RTT measured across the retransmission interval would inflate the RTO without bound.
   */
  #karn(): void {
    this.#rttSeq = undefined
    this.#tsFloor = this.#tsNow()
  }

  /**
   * One RTT sample per ACK that advances SND.UNA (RFC 7323 §4.2), by preference from exact timing — the
   * scoreboard's transmit time of a segment sent once (`segRtt`, ≥ 0), or the timed SYN — else from the
   * timestamp echo (RFC 7323 §4.1), whose millisecond ticks are coarse on a sub-millisecond path.
   */
  #sampleRtt(seg: TcpRepr, segRtt = -1): void {
    if (segRtt >= 0) {
      this.rto.sample(segRtt)
      return
    }
    if (this.#rttSeq !== undefined && seqGe(seg.ack, this.#rttSeq)) {
      this.rto.sample(this.#ctx.clock.now() - this.#rttStart)
      this.#rttSeq = undefined
      return
    }
    if (this.tsOk && seg.timestamp && seg.timestamp.ecr !== 0) {
      // The echo identifies when the acknowledged data was sent, but not across our last retransmission (#karn).
      if (this.#tsFloor !== undefined && tsLt(seg.timestamp.ecr, this.#tsFloor)) return
      const r = (this.#tsNow() - seg.timestamp.ecr) | 0
      if (r >= 0) this.rto.sample(r)
    }
  }

  // ---------------------------------------------------------------------------------------------------------

  #setState(to: State): void {
    const from = this.state
    if (from === to) return
    this.state = to
    // CLOSED is not counted: a closed connection is gone from the stack.
    const c = this.#ctx.metrics.connectionsByState
    if (from !== State.CLOSED) c[from]!--
    if (to !== State.CLOSED) c[to]!++
    this.#ctx.onStateChange?.(this, from, to)
  }

  #finish(err: TcpError | undefined): void {
    if (this.state === State.CLOSED) return
    this.error = err
    if (this.#grown > 0) {
      this.#ctx.shrinkBuffers?.(this.#grown)
      this.#grown = 0
    }
    this.#rtx.cancel()
    this.#pto.cancel()
    this.#reo.cancel()
    this.#delack.cancel()
    this.#keepalive.cancel()
    this.#timeWait.cancel()
    this.#finTimeout?.cancel()
    this.ooo.clear()
    this.#setState(State.CLOSED)
    this.events.onClose?.(err)
  }

  /** Ends TIME-WAIT early (the stack reuses the 4-tuple for a new connection, RFC 6191). */
  closeTimeWait(): void {
    if (this.state === State.TIME_WAIT) this.#finish(undefined)
  }

  toString(): string {
    return `tcp ${this.localPort}>${this.remotePort} ${stateName(this.state)} una ${this.sndUna} nxt ${this.sndNxt} max ${this.sndMax} wnd ${this.sndWnd} rcv ${this.rcvNxt}`
  }
}

const EMPTY = new Uint8Array(0)

/** States in which we send data (or our FIN, or retransmit them). */
function sending(s: State): boolean {
  return (
    s === State.ESTABLISHED ||
    s === State.CLOSE_WAIT ||
    s === State.FIN_WAIT_1 ||
    s === State.CLOSING ||
    s === State.LAST_ACK
  )
}

/** Linux's TCP_MAX_QUICKACKS: data segments ACKed at once in quick-ACK mode. */
const QUICK_ACKS = 16

/** Linux's tcp_invalid_ratelimit default. */
const OOW_ACK_INTERVAL_MS = 500

/**
 * The reset RFC 9293 §3.10.7.1 sends for a segment that reaches no connection: "If the incoming segment has
 * the ACK bit set, the reset takes its sequence number from the ACK field of the segment, otherwise the
 * reset has sequence number zero and the ACK field is set to the sum of the sequence number and segment
 * length of the incoming segment." Undefined for an incoming RST ("An incoming segment containing a RST is
 * discarded").
 */
export function resetFor(seg: TcpRepr): TcpRepr | undefined {
  if (seg.flags & Flag.RST) return undefined
  const base = { srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, payload: EMPTY }
  if (seg.flags & Flag.ACK) return { ...base, seq: seg.ack, ack: seq(0), flags: Flag.RST }
  const len = seg.payload.length + (seg.flags & Flag.SYN ? 1 : 0) + (seg.flags & Flag.FIN ? 1 : 0)
  return { ...base, seq: seq(0), ack: seqAdd(seg.seq, len), flags: Flag.RST | Flag.ACK }
}
