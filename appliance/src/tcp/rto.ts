// Retransmission timeout estimation, RFC 6298. Karn's rule (§3: never sample a retransmitted segment) is
// enforced by the caller, which only offers samples from segments sent once or from timestamp echoes
// (RFC 7323 §4.1 makes those unambiguous).

export interface RtoConfig {
  /** RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been made ... set RTO <- 1 second". */
  initialRto: number
  /**
   * RFC 6298 §2.4 says SHOULD round up to 1 s; we follow Linux's 200 ms (TCP_RTO_MIN), since the peers we are
   * held to (TESTING.md layer 3) are Linux stacks and a proxy in the path should not be slower than they are.
   */
  minRto: number
  /** RFC 6298 §2.5: "A maximum value MAY be placed on RTO provided it is at least 60 seconds." */
  maxRto: number
  /** Clock granularity G in ms (RFC 6298 §2.2, §2.3). */
  granularity: number
}

export const DEFAULT_RTO: RtoConfig = { initialRto: 1000, minRto: 200, maxRto: 120_000, granularity: 1 }

/** RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4. */
const ALPHA = 1 / 8
const BETA = 1 / 4
const K = 4

export class RtoEstimator {
  srtt = 0
  rttvar = 0
  hasSample = false
  #base: number
  #backoff = 0
  readonly cfg: RtoConfig

  constructor(cfg: RtoConfig = DEFAULT_RTO) {
    this.cfg = cfg
    this.#base = cfg.initialRto
  }

  /** The current RTO in ms, with exponential backoff applied. */
  get rto(): number {
    return Math.min(this.cfg.maxRto, this.#base * 2 ** this.#backoff)
  }

  get backoffCount(): number {
    return this.#backoff
  }

  sample(r: number): void {
    const rtt = Math.max(r, 0)
    if (!this.hasSample) {
      // RFC 6298 §2.2: "SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max (G, K*RTTVAR)"
      this.srtt = rtt
      this.rttvar = rtt / 2
      this.hasSample = true
    } else {
      // RFC 6298 §2.3: "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|" then
      // "SRTT <- (1 - alpha) * SRTT + alpha * R'" (RTTVAR first: it uses the old SRTT).
      this.rttvar = (1 - BETA) * this.rttvar + BETA * Math.abs(this.srtt - rtt)
      this.srtt = (1 - ALPHA) * this.srtt + ALPHA * rtt
    }
    const rto = this.srtt + Math.max(this.cfg.granularity, K * this.rttvar)
    // RFC 6298 §2.4 (minimum) and §2.5 (maximum).
    this.#base = Math.min(this.cfg.maxRto, Math.max(this.cfg.minRto, rto))
    // RFC 6298 §5, note after (5.7): a new sample after backoff collapses the backed-off timer.
    this.#backoff = 0
  }

  /** RFC 6298 §5.5: "The host MUST set RTO <- RTO * 2 ("back off the timer")", bounded by maxRto. */
  backoff(): void {
    if (this.rto < this.cfg.maxRto) this.#backoff++
  }
}
