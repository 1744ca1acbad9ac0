// RACK-TLP, RFC 8985: time-based loss detection. A segment is lost when one sent after it has been delivered
// and more than an RTT plus a small reordering window has passed since it was sent — which also finds lost
// retransmissions and losses in flights too short for three duplicate ACKs. The tail loss probe (TLP) turns
// a silent tail loss into an ACK that RACK can act on, instead of a retransmission timeout.
//
// This file holds RACK's state (§5.2) and the pure steps of §6.2 and §7; recovery.ts drives them.

import { DUP_THRESH } from './congestion.ts'
import type { SackScoreboard, SentSegment } from './sack.ts'
import { type Seq, seq, seqGt } from './seq.ts'

/**
 * RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time a probe of a one-segment flight waits for ("the
 * RECOMMENDED value ... is 200 ms").
 */
export const WC_DEL_ACK_T = 200

/** RFC 8985 §6.2: RACK_sent_after(t1, seq1, t2, seq2) — sent later, or at the same time and higher. */
export function sentAfter(t1: number, seq1: Seq, t2: number, seq2: Seq): boolean {
  return t1 > t2 || (t1 === t2 && seqGt(seq1, seq2))
}

export class Rack {
  /** RACK.xmit_ts / RACK.end_seq: the most recently sent segment known delivered. */
  xmitTs = Number.NEGATIVE_INFINITY
  endSeq: Seq = seq(0)
  /** RACK.rtt: the RTT of that delivery. */
  rtt = 0
  /** RACK.min_RTT (RFC 8985 §6.2 step 1; a plain minimum: a proxy's connections are short-lived). */
  minRtt = Number.POSITIVE_INFINITY
  /** RACK.fack: the highest sequence number delivered. */
  fack: Seq | undefined
  /** RACK.reordering_seen. */
  reorderingSeen = false
  /** RACK.reo_wnd_mult, RACK.reo_wnd_persist and RACK.dsack_round (RFC 8985 §6.2 step 4). */
  reoWndMult = 1
  reoWndPersist = 0
  dsackRound: Seq | undefined

  /**
   * RFC 8985 §6.2 steps 2 and 3, for one segment newly delivered (cumulatively or selectively) at `now`.
   * `echoedEarlier`: the ACK's timestamp echo predates the segment's latest transmission.
   */
  onDelivered(s: SentSegment, now: number, echoedEarlier: boolean): void {
    // Step 3: "If Segment.end_seq > RACK.fack ... Else if Segment.end_seq < RACK.fack AND Segment.retransmitted
    // is FALSE: RACK.reordering_seen = TRUE".
    if (this.fack === undefined || seqGt(s.end, this.fack)) this.fack = s.end
    else if (s.end !== this.fack && !s.retransmitted) this.reorderingSeen = true
    const rtt = now - s.xmitTs
    // Step 2: for a retransmitted segment the ACK may be for the original: skip it when the timestamp echo says
    // so, or when the "RTT" is shorter than any seen, which only the original's ACK can produce.
    if (s.retransmitted && (echoedEarlier || rtt < this.minRtt)) return
    this.rtt = rtt
    if (rtt < this.minRtt) this.minRtt = rtt
    if (sentAfter(s.xmitTs, s.end, this.xmitTs, this.endSeq)) {
      this.xmitTs = s.xmitTs
      this.endSeq = s.end
    }
  }

  /**
   * RFC 8985 §6.2 step 4, the D-SACK part of RACK_update_reo_wnd: a D-SACK says a retransmission was
   * needless, so the reordering window widens by min_RTT/4, once per round trip (until SND.UNA passes
   * `sndNxt`), and stays wide for 16 recoveries.
   */
  onAckRound(una: Seq, sndNxt: Seq, dsack: boolean): void {
    if (this.dsackRound !== undefined && !seqGt(this.dsackRound, una)) this.dsackRound = undefined
    if (this.dsackRound === undefined && dsack) {
      this.dsackRound = sndNxt
      this.reoWndMult++
      this.reoWndPersist = 16
    }
  }

  /** RFC 8985 §6.2 step 4: "if exiting loss recovery ... RACK.reo_wnd_persist -= 1; if <= 0: mult = 1". */
  onRecoveryExit(): void {
    if (--this.reoWndPersist <= 0) this.reoWndMult = 1
  }

  /**
   * RFC 8985 §6.2 step 4, RACK_update_reo_wnd: no settling time when no reordering was seen and either
   * recovery is under way or DupThresh segments are SACKed (the classic rule); otherwise
   * min_RTT / 4 × reo_wnd_mult, at most SRTT.
   */
  reoWnd(inRecovery: boolean, sackedSegments: number, srtt: number): number {
    if (!this.reorderingSeen && (inRecovery || sackedSegments >= DUP_THRESH)) return 0
    const w = (this.minRtt / 4) * this.reoWndMult
    return Number.isFinite(w) ? Math.min(w, srtt) : 0
  }

  /**
   * RFC 8985 §6.2 step 5, RACK_detect_loss: marks lost every segment still in flight that was sent before the
   * latest delivered one and has waited RACK.rtt + reoWnd. Returns the time until all the others waiting
   * would be due — the reordering timer, as Linux arms it (the latest, so that one expiry marks them
   * together and recovery starts from the whole loss) — or 0.
   */
  detectLoss(board: SackScoreboard, now: number, reoWnd: number): number {
    if (this.xmitTs === Number.NEGATIVE_INFINITY) return 0
    let timeout = 0
    for (let i = 0; i < board.length; i++) {
      const s = board.at(i)!
      if (!sentAfter(this.xmitTs, this.endSeq, s.xmitTs, s.end)) {
        // Segments are first sent in sequence order and a retransmission is later still, so past a segment
        // sent only once that RACK's segment does not follow, none follows.
        if (!s.retransmitted) break
        continue
      }
      if (s.sacked || s.lost) continue
      const remaining = s.xmitTs + this.rtt + reoWnd - now
      if (remaining <= 0) board.markLost(s)
      else if (remaining > timeout) timeout = remaining
    }
    return timeout
  }
}

/** Added to a probe timeout of a flight of several segments, as Linux does (TCP_TIMEOUT_MIN, 2 ms). */
export const PTO_SLACK = 2

/**
 * RFC 8985 §7.2, the probe timeout: "If SRTT is available: PTO = 2 * SRTT; if FlightSize is one segment,
 * PTO += WCDelAckT ... Else PTO = 1 sec", never past the retransmission timer. A flight of several segments
 * gets PTO_SLACK more: on a sub-millisecond path 2 × SRTT is shorter than a peer takes to send any ACK.
 */
export function probeTimeout(srtt: number | undefined, oneSegment: boolean, rtoRemaining: number): number {
  const pto = srtt === undefined ? 1000 : 2 * srtt + (oneSegment ? WC_DEL_ACK_T : PTO_SLACK)
  return Math.min(pto, rtoRemaining)
}
