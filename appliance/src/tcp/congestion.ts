// Congestion control: RFC 5681 slow start / congestion avoidance with fast retransmit and fast recovery as
// modified by NewReno (RFC 6582). Kept behind an interface so CUBIC (RFC 9438) can be slotted in later.

import { type Seq, seqGe } from './seq.ts'

export interface CongestionControl {
  readonly cwnd: number
  readonly ssthresh: number
  readonly inRecovery: boolean
  /** Duplicate ACKs seen in a row. */
  readonly dupAcks: number
  /**
   * New data acknowledged: `acked` bytes, `ack` the new SND.UNA, `flight` the bytes still outstanding.
   * Returns true when the caller must retransmit the first unacknowledged segment (a NewReno partial ACK).
   */
  onAck(ack: Seq, acked: number, flight: number): boolean
  /** A duplicate ACK (RFC 5681 §2). Returns true when the caller must fast-retransmit now. */
  onDupAck(ack: Seq, flight: number, sndMax: Seq): boolean
  /** The retransmission timer expired. */
  onRto(flight: number, sndMax: Seq): void
  /** The effective MSS changed (after the handshake). */
  setMss(mss: number): void
}

/** RFC 5681 §3.1, eq. (1): the initial window by SMSS. */
export function initialWindow(mss: number): number {
  if (mss > 2190) return 2 * mss
  if (mss > 1095) return 3 * mss
  return 4 * mss
}

/** RFC 5681 §3.1 / §3.2: "DupThresh" is three duplicate ACKs. */
export const DUP_THRESH = 3

export class NewReno implements CongestionControl {
  cwnd: number
  /** RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high". */
  ssthresh = Number.MAX_SAFE_INTEGER
  inRecovery = false
  dupAcks = 0
  protected mss: number
  /** RFC 6582 §3.2 "recover": the highest sequence number sent when recovery began (exclusive end here). */
  #recover: Seq
  #caBytes = 0

  constructor(mss: number, iss: Seq) {
    this.mss = mss
    this.cwnd = initialWindow(mss)
    // RFC 6582 §3.2 step 1: "recover ... initialized to the initial send sequence number".
    this.#recover = iss
  }

  setMss(mss: number): void {
    if (this.cwnd === initialWindow(this.mss)) this.cwnd = initialWindow(mss)
    this.mss = mss
  }

  onAck(ack: Seq, acked: number, flight: number): boolean {
    const mss = this.mss
    this.dupAcks = 0
    if (this.inRecovery) {
      if (seqGe(ack, this.#recover)) {
        // RFC 6582 §3.2 step 3, full acknowledgment: "Set cwnd to min (ssthresh, max(FlightSize, SMSS) + SMSS)"
        // and exit fast recovery.
        this.cwnd = Math.min(this.ssthresh, Math.max(flight, mss) + mss)
        this.inRecovery = false
        return false
      }
      // RFC 6582 §3.2 step 3, partial acknowledgment: "retransmit the first unacknowledged segment ...
      // deflate the congestion window by the amount of new data acknowledged ... If the partial ACK
      // acknowledges at least one SMSS of new data, then add back SMSS bytes to the congestion window."
      this.cwnd = Math.max(mss, this.cwnd - acked + (acked >= mss ? mss : 0))
      return true
    }
    if (this.cwnd < this.ssthresh) {
      // RFC 5681 §3.1, eq. (2): slow start, "cwnd += min (N, SMSS)".
      this.cwnd += Math.min(acked, mss)
    } else this.congestionAvoidance(acked)
    return false
  }

  /** RFC 5681 §3.1, eq. (3) by byte counting (RFC 3465): one SMSS per cwnd of data acknowledged. */
  protected congestionAvoidance(acked: number): void {
    this.#caBytes += acked
    if (this.#caBytes >= this.cwnd) {
      this.#caBytes -= this.cwnd
      this.cwnd += this.mss
    }
  }

  /** The new ssthresh after a loss: RFC 5681 §3.1 eq. (4), "ssthresh = max (FlightSize / 2, 2*SMSS)". */
  protected reduce(flight: number): number {
    return Math.max(Math.floor(flight / 2), 2 * this.mss)
  }

  onDupAck(ack: Seq, flight: number, sndMax: Seq): boolean {
    const mss = this.mss
    this.dupAcks++
    if (this.inRecovery) {
      // RFC 5681 §3.2 step 4: "For each additional duplicate ACK received ... cwnd is incremented by SMSS".
      this.cwnd += mss
      return false
    }
    if (this.dupAcks !== DUP_THRESH) return false
    // RFC 6582 §3.2 step 2: "If the Cumulative Acknowledgment field didn't cover more than recover, do not
    // enter the fast retransmit and fast recovery procedure." `recover` is kept exclusive here (one past the
    // highest sequence number sent), so "covers more than recover" reads ack ≥ recover.
    if (!seqGe(ack, this.#recover)) return false
    this.#enterRecovery(flight, sndMax)
    return true
  }

  #enterRecovery(flight: number, sndMax: Seq): void {
    const mss = this.mss
    this.#recover = sndMax
    // RFC 5681 §3.2 step 2, eq. (4).
    this.ssthresh = this.reduce(flight)
    // RFC 5681 §3.2 step 3: "cwnd = ssthresh + 3*SMSS" (the segments that left the network).
    this.cwnd = this.ssthresh + DUP_THRESH * mss
    this.inRecovery = true
  }

  onRto(flight: number, sndMax: Seq): void {
    const mss = this.mss
    // RFC 5681 §3.1, eq. (4) and "cwnd MUST be set to no more than the loss window, LW, which equals 1 full-sized segment".
    this.ssthresh = this.reduce(flight)
    this.cwnd = mss
    this.#caBytes = 0
    this.inRecovery = false
    this.dupAcks = 0
    // RFC 6582 §3.2 step 4: "After a retransmit timeout, record the highest sequence number transmitted in the
    // variable recover".
    this.#recover = sndMax
  }
}
