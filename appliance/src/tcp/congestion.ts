// Congestion control: how the window grows (RFC 5681 slow start and congestion avoidance) and how far it
// falls on a loss or a timeout. *When* a loss happened and how the window behaves while it is repaired is
// loss recovery's business (recovery.ts: RACK-TLP, RFC 6675 pipe, RFC 6937 PRR), so that the algorithms
// behind this interface — NewReno here, CUBIC in cubic.ts — only answer "how much".

export interface CongestionControl {
  /** Congestion window in bytes. Loss recovery sets it while a loss is repaired (PRR, RFC 6937). */
  cwnd: number
  ssthresh: number
  /** New data cumulatively acknowledged (`acked` bytes) outside fast recovery: grow the window. */
  onAck(acked: number): void
  /** A loss was detected: set ssthresh for the window to reach once it is repaired. */
  onLoss(flight: number): void
  /** The retransmission timer expired: ssthresh from the flight, cwnd to the loss window. */
  onRto(flight: number): void
  /** The effective MSS changed (after the handshake). */
  setMss(mss: number): void
}

/** RFC 5681 §3.1, eq. (1): the initial window by SMSS. */
export function initialWindow(mss: number): number {
  if (mss > 2190) return 2 * mss
  if (mss > 1095) return 3 * mss
  return 4 * mss
}

/** RFC 5681 §3.2 "DupThresh": three duplicate ACKs (also RACK's SACKed-segment threshold, RFC 8985 §6.2). */
export const DUP_THRESH = 3

/** RFC 5681 / RFC 6582 window arithmetic; the recovery side of NewReno is in recovery.ts. */
export class NewReno implements CongestionControl {
  cwnd: number
  /** RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high". */
  ssthresh = Number.MAX_SAFE_INTEGER
  protected mss: number
  #caBytes = 0

  constructor(mss: number) {
    this.mss = mss
    this.cwnd = initialWindow(mss)
  }

  setMss(mss: number): void {
    if (this.cwnd === initialWindow(this.mss)) this.cwnd = initialWindow(mss)
    this.mss = mss
  }

  onAck(acked: number): void {
    if (acked <= 0) return
    if (this.cwnd < this.ssthresh) {
      // RFC 5681 §3.1, eq. (2) with RFC 3465 §2.2 byte counting, L = 2*SMSS: a receiver that ACKs every
      // second segment (RFC 9293 §3.8.6.3) must not halve the speed of slow start.
      this.cwnd = Math.min(this.cwnd + Math.min(acked, 2 * this.mss), Math.max(this.ssthresh, this.cwnd))
    } else this.congestionAvoidance(acked)
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

  onLoss(flight: number): void {
    this.ssthresh = this.reduce(flight)
    this.#caBytes = 0
  }

  onRto(flight: number): void {
    // RFC 5681 §3.1, eq. (4) and "cwnd MUST be set to no more than the loss window, LW, which equals 1 full-sized segment".
    this.ssthresh = this.reduce(flight)
    this.cwnd = this.mss
    this.#caBytes = 0
  }
}
