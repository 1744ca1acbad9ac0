// Loss recovery on the sending side: which segments are lost and how much may be sent while they are
// repaired. The pieces, one RFC each:
//   - sack.ts, the scoreboard (RFC 6675 §3–4): segments in flight, SACKed, lost; `pipe`;
//   - rack.ts, RACK-TLP (RFC 8985): loss detection by time, tail loss probes;
//   - without SACK, duplicate ACKs (RFC 5681 §3.2, DupThresh) and NewReno partial ACKs (RFC 6582 §3.2) mark
//     the first unacknowledged segment lost, and each duplicate ACK counts as a segment that left the
//     network, which is limited transmit (RFC 3042) and fast recovery's window inflation in pipe terms;
//   - prr.ts, Proportional Rate Reduction (RFC 6937): the window during fast recovery;
//   - the congestion controller (congestion.ts, cubic.ts): growth outside recovery and the reductions.
// The connection transmits: lost segments first (RFC 6675 NextSeg rule 1), then new data, while pipe < cwnd.
// This class decides; it sends nothing and keeps no timers.

import { type CongestionControl, DUP_THRESH } from './congestion.ts'
import { tsLt } from './options.ts'
import { Prr } from './prr.ts'
import { probeTimeout, Rack } from './rack.ts'
import { SackScoreboard, type SentSegment, segSpace } from './sack.ts'
import type { SackBlock } from './segment.ts'
import { type Seq, seqGe, seqGt, seqLe, seqLt, seqSub } from './seq.ts'

/** Recovery phases (Linux's CA states Open, Recovery, Loss). */
export const Phase = {
  /** No loss being repaired. */
  open: 0,
  /** Fast recovery: losses detected by ACKs are repaired, the window follows PRR (RFC 6937). */
  fast: 1,
  /** After a retransmission timeout: everything unSACKed is resent from a window of one segment. */
  rto: 2,
} as const
export type Phase = (typeof Phase)[keyof typeof Phase]

/** One incoming acceptable ACK, as recovery needs it. */
export interface AckInfo {
  ack: Seq
  /** SND.UNA before this ACK, and SND.MAX. */
  una: Seq
  max: Seq
  sack: readonly SackBlock[] | undefined
  /** A duplicate ACK in RFC 5681 §2's sense (counted only without SACK). */
  dupAck: boolean
  /** The timestamp echo, when timestamps are in use. */
  ecr: number | undefined
  now: number
  srtt: number
}

/** What an ACK (or the reordering timer) led to. */
export interface RecoveryEvents {
  /** Fast recovery began (a loss was detected outside recovery). */
  enteredFast: boolean
  /** A tail loss probe was found to have repaired a loss (RFC 8985 §7.4.2): the window was reduced. */
  tlpRecovered: boolean
  /** ms until RACK's reordering timer should fire (RFC 8985 §6.3), or 0 for none. */
  reorderTimeout: number
}

export class LossRecovery {
  readonly board = new SackScoreboard()
  readonly rack = new Rack()
  readonly prr = new Prr()
  phase: Phase = Phase.open
  /** RFC 6582 "recover": SND.MAX when the current recovery began; recovery ends once SND.UNA reaches it. */
  recover: Seq
  /** Duplicate ACKs in a row (without SACK). */
  dupAcks = 0
  /** RFC 8985 §7: TLP.end_seq (SND.MAX after the probe) while a probe is unanswered, and TLP.is_retrans. */
  tlpEnd: Seq | undefined
  tlpRetrans = false
  /** RFC 6675 §4 NextSeg rule (4): the rescue retransmission of this recovery was made. */
  rescued = false
  sackOk = false
  mss: number
  readonly cc: CongestionControl
  /** Our TSval for a clock time (to compare timestamp echoes with transmit times). */
  readonly #tsOf: (ms: number) => number

  constructor(cc: CongestionControl, mss: number, iss: Seq, tsOf: (ms: number) => number) {
    this.cc = cc
    this.mss = mss
    // RFC 6582 §3.2 step 1: "recover" starts at the ISS.
    this.recover = iss
    this.#tsOf = tsOf
  }

  get inRecovery(): boolean {
    return this.phase !== Phase.open
  }

  /** RFC 6675 §4 pipe, for SND.MAX − SND.UNA = flight. Without SACK, each duplicate ACK is a segment gone. */
  pipe(flight: number): number {
    const p = this.board.pipe(flight) - (this.sackOk ? 0 : this.dupAcks * this.mss)
    return p > 0 ? p : 0
  }

  /** New data went out: [start, end) (end past the FIN if it has one). */
  onSent(start: Seq, end: Seq, fin: boolean, now: number): void {
    this.board.push(start, end, fin, now)
    if (this.phase === Phase.fast) this.prr.onSent(seqSub(end, start))
  }

  /** A segment of the scoreboard went out again. */
  onRetransmitted(s: SentSegment, now: number): void {
    this.board.retransmitted(s, now)
    if (this.phase === Phase.fast) this.prr.onSent(segSpace(s))
  }

  /** An acceptable ACK (RFC 9293 §3.10.7.4, fifth check) arrived. */
  onAck(a: AckInfo): RecoveryEvents {
    const board = this.board
    // Before this ACK: was the window what limited the flight? (Checked before anything leaves the board.)
    const pipeBefore = this.pipe(seqSub(a.max, a.una))
    const ecr = a.ecr
    const tsOf = this.#tsOf
    const delivered = (s: SentSegment) =>
      this.rack.onDelivered(s, a.now, ecr !== undefined && s.retransmitted && tsLt(ecr, tsOf(s.xmitTs)))
    const dsack = this.sackOk && isDsack(a.sack, a.ack)
    this.rack.onAckRound(a.una, a.max, dsack)
    let deliveredData = 0
    const sacked = this.sackOk && a.sack?.length ? board.sack(a.sack, a.una, a.max, delivered) : 0
    deliveredData += sacked
    const acked = seqSub(a.ack, a.una)
    const ev: RecoveryEvents = { enteredFast: false, tlpRecovered: false, reorderTimeout: 0 }
    if (acked > 0) deliveredData += board.ackTo(a.ack, delivered)
    const flight = seqSub(a.max, a.ack)

    if (this.sackOk) {
      ev.reorderTimeout = this.#rackDetect(a.now, a.srtt)
    } else if (acked > 0) {
      // NewReno (RFC 6582 §3.2 step 3): a partial ACK during fast recovery means the next hole is lost too.
      this.dupAcks = 0
      if (this.phase === Phase.fast && seqLt(a.ack, this.recover) && board.length)
        board.markLost(board.at(0)!)
    } else if (a.dupAck && flight > 0) {
      this.dupAcks++
      deliveredData += this.mss
      // RFC 5681 §3.2 step 2 at DupThresh, unless (RFC 6582 §3.2 step 2) the ACK does not cover more than
      // `recover`: duplicates of segments an RTO already resent are no news.
      if (this.phase === Phase.open && this.dupAcks === DUP_THRESH && seqGe(a.ack, this.recover))
        board.markLost(board.at(0)!)
    }

    ev.tlpRecovered = this.#tlpOnAck(a, acked, sacked, flight, dsack)
    let grow = acked
    if (this.phase === Phase.fast && seqGe(a.ack, this.recover)) {
      // RFC 6937 §3.1: "on exiting recovery: cwnd = ssthresh" (and the ACK that ends it does not grow it).
      this.phase = Phase.open
      this.cc.cwnd = this.cc.ssthresh
      this.rack.onRecoveryExit()
      grow = 0
    }
    if (this.phase === Phase.open && board.lostBytes > 0) {
      // A loss in data sent after the previous recovery began is a new congestion event.
      this.#enterFast(a.max, flight)
      ev.enteredFast = true
    }
    if (this.phase === Phase.fast) {
      const pipe = this.pipe(flight)
      this.cc.cwnd = pipe + this.prr.onAck(deliveredData, pipe, this.mss)
    } else {
      // Outside fast recovery the window grows — slow start after an RTO goes on through its recovery (RFC
      // 5681 §3.1) — but only while it is what limits the flight (RFC 7661 §4.5, as Linux's
      // tcp_is_cwnd_limited, which allows slow start up to twice the flight): a window the sender never
      // fills says nothing about the path, and would grow without bound.
      const cwnd = this.cc.cwnd
      const limited = pipeBefore + this.mss >= cwnd || (cwnd < this.cc.ssthresh && 2 * pipeBefore >= cwnd)
      if (limited) this.cc.onAck(grow)
      if (this.phase === Phase.rto && seqGe(a.ack, this.recover)) {
        this.phase = Phase.open
        this.rack.onRecoveryExit()
      }
    }
    return ev
  }

  /** RACK's reordering timer fired (RFC 8985 §6.3): detect again; may begin fast recovery. */
  onReorderTimer(now: number, srtt: number, max: Seq, flight: number): RecoveryEvents {
    const ev: RecoveryEvents = { enteredFast: false, tlpRecovered: false, reorderTimeout: 0 }
    ev.reorderTimeout = this.#rackDetect(now, srtt)
    if (this.phase === Phase.open && this.board.lostBytes > 0) {
      this.#enterFast(max, flight)
      ev.enteredFast = true
      const pipe = this.pipe(flight)
      this.cc.cwnd = pipe + this.prr.onAck(0, pipe, this.mss)
    }
    return ev
  }

  #rackDetect(now: number, srtt: number): number {
    const reoWnd = this.rack.reoWnd(this.phase !== Phase.open, this.board.sackedSegments, srtt)
    return this.rack.detectLoss(this.board, now, reoWnd)
  }

  /** RFC 6675 §5 / RFC 6937: ssthresh from the congestion controller, PRR from here on. */
  #enterFast(max: Seq, flight: number): void {
    this.phase = Phase.fast
    this.recover = max
    this.tlpEnd = undefined
    this.rescued = false
    this.cc.onLoss(this.#lossFlight(flight))
    this.prr.start(this.cc.ssthresh, flight)
  }

  /**
   * The flight a reduction is computed from: FlightSize (RFC 5681 eq. 4), or cwnd when that is larger —
   * RFC 9438 §4.6 allows cwnd where cwnd cannot grow past the flight (RFC 7661, as here), and Linux uses it.
   * FlightSize right after a cumulative ACK that filled a hole can be a fraction of the window in use, and a
   * reduction from it would cut far deeper than β.
   */
  #lossFlight(flight: number): number {
    return Math.max(flight, Math.floor(this.cc.cwnd))
  }

  /**
   * RFC 8985 §7.4.2 (as Linux's tcp_process_tlp_ack): the ACK of a probe. A probe of new data tells nothing;
   * a retransmitted probe answered by a D-SACK was a duplicate; one answered by an ACK beyond it repaired a
   * loss, which calls for the reduction fast recovery would have made; a pure duplicate ACK means the original
   * and the probe both arrived.
   */
  #tlpOnAck(a: AckInfo, acked: number, sacked: number, flight: number, dsack: boolean): boolean {
    const end = this.tlpEnd
    if (end === undefined || seqLt(a.ack, end)) return false
    if (!this.tlpRetrans || dsack) {
      this.tlpEnd = undefined
      return false
    }
    if (seqGt(a.ack, end)) {
      this.tlpEnd = undefined
      if (this.phase !== Phase.open) return false
      this.cc.onLoss(this.#lossFlight(flight + acked))
      this.cc.cwnd = Math.min(this.cc.cwnd, this.cc.ssthresh)
      return true
    }
    if (acked === 0 && sacked === 0) this.tlpEnd = undefined
    return false
  }

  /** RFC 8985 §7.2: a probe may be scheduled — SACK in use, no recovery, no probe out, nothing SACKed. */
  canProbe(flight: number): boolean {
    return (
      this.sackOk &&
      this.phase === Phase.open &&
      this.tlpEnd === undefined &&
      flight > 0 &&
      this.board.sackedBytes === 0
    )
  }

  /** The probe timeout (RFC 8985 §7.2) for this flight. */
  probeTimeout(srtt: number | undefined, flight: number, rtoRemaining: number): number {
    return probeTimeout(srtt, flight <= this.mss, rtoRemaining)
  }

  onProbeSent(max: Seq, retransmission: boolean): void {
    this.tlpEnd = max
    this.tlpRetrans = retransmission
  }

  /**
   * The retransmission timer expired (RFC 5681 §3.1, RFC 6675 §5.1, RFC 8985 §8): the window collapses,
   * everything unSACKed is lost — SACKs are forgotten first if the first segment was SACKed, which only a
   * reneging receiver causes — and "recover" moves to SND.MAX (RFC 6582 §3.2 step 4).
   */
  onRto(flight: number, max: Seq): void {
    this.cc.onRto(flight)
    const first = this.board.at(0)
    if (first?.sacked) this.board.clearSacks()
    this.board.markAllLost()
    this.phase = Phase.rto
    this.recover = max
    this.dupAcks = 0
    this.tlpEnd = undefined
  }

  setMss(mss: number): void {
    this.mss = mss
    this.cc.setMss(mss)
  }
}

/**
 * RFC 2883 §4: the first SACK block reports a duplicate (D-SACK) when it lies below the cumulative ACK or
 * within the second block.
 */
export function isDsack(sack: readonly SackBlock[] | undefined, ack: Seq): boolean {
  const first = sack?.[0]
  if (!first) return false
  if (seqLe(first.right, ack)) return true
  const second = sack[1]
  return second !== undefined && seqGe(first.left, second.left) && seqLe(first.right, second.right)
}
