// CUBIC congestion control, RFC 9438, as the default of the Linux peers we sit between. Loss detection and
// recovery are the connection's (recovery.ts); CUBIC changes two things: the multiplicative decrease
// (β = 0.7) and window growth in congestion avoidance (a cubic function of the time since the last
// congestion event, never slower than Reno's).

import { NewReno } from './congestion.ts'

/** RFC 9438 §4.1: "C SHOULD be set to 0.4" and "β_cubic SHOULD be set to 0.7". */
const C = 0.4
const BETA = 0.7
/** RFC 9438 §4.3: α_cubic = 3 * (1 - β_cubic) / (1 + β_cubic). */
const ALPHA = (3 * (1 - BETA)) / (1 + BETA)

export class Cubic extends NewReno {
  /** W_max in bytes: the window just before the last reduction. */
  wMax = 0
  #epochStart = -1
  #k = 0
  #wEst = 0
  readonly #now: () => number
  readonly #rtt: () => number

  /** `now` in ms; `rtt` the smoothed RTT in ms. */
  constructor(mss: number, now: () => number, rtt: () => number) {
    super(mss)
    this.#now = now
    this.#rtt = rtt
  }

  protected override reduce(flight: number): number {
    // RFC 9438 §4.7, fast convergence: "if cwnd < W_max ... W_max = cwnd * (1 + β_cubic) / 2".
    this.wMax = this.cwnd < this.wMax ? (this.cwnd * (1 + BETA)) / 2 : this.cwnd
    this.#epochStart = -1
    // RFC 9438 §4.6: "ssthresh = flight_size * β_cubic", and no less than 2 SMSS (RFC 5681 eq. 4).
    return Math.max(Math.floor(flight * BETA), 2 * this.mss)
  }

  protected override congestionAvoidance(acked: number): void {
    const mss = this.mss
    const now = this.#now()
    if (this.#epochStart < 0) {
      // RFC 9438 §4.2: a new epoch starts at the first ACK in congestion avoidance; eq. (2):
      // K = cubic_root((W_max - cwnd_epoch) / C), in segments and seconds.
      this.#epochStart = now
      if (this.cwnd < this.wMax) this.#k = Math.cbrt((this.wMax - this.cwnd) / mss / C)
      else {
        this.#k = 0
        this.wMax = this.cwnd
      }
      this.#wEst = this.cwnd
    }
    // RFC 9438 §4.2 eq. (1), W_cubic(t) = C * (t - K)^3 + W_max, taken one RTT ahead (§4.4: "target").
    const t = (now - this.#epochStart + this.#rtt()) / 1000
    const wCubic = (C * (t - this.#k) ** 3 + this.wMax / mss) * mss
    // §4.4: "the target ... is bounded: cwnd ≤ target ≤ 1.5 * cwnd".
    const target = Math.min(Math.max(wCubic, this.cwnd), 1.5 * this.cwnd)
    // §4.3, Reno-friendly region: W_est grows by α_cubic SMSS per window of ACKed data.
    this.#wEst += (ALPHA * mss * acked) / this.cwnd
    if (this.#wEst > target) this.cwnd = this.#wEst
    else this.cwnd += ((target - this.cwnd) * acked) / this.cwnd
  }
}
