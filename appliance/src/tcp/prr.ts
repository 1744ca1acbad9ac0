// Proportional Rate Reduction, RFC 6937: how much may be sent on each ACK during fast recovery, so that the
// window comes down to ssthresh smoothly (sending about ssthresh/RecoverFS per byte delivered) instead of
// going silent for half an RTT and then bursting, and so that it climbs back to ssthresh by slow start
// (the Slow Start Reduction Bound) when more was lost than the reduction asked for.

export class Prr {
  /** RFC 6937 prr_delivered, prr_out and RecoverFS, in bytes. */
  delivered = 0
  out = 0
  recoverFs = 1
  ssthresh = 0

  /** Recovery begins: "prr_delivered = 0, prr_out = 0, RecoverFS = snd.nxt - snd.una". */
  start(ssthresh: number, flight: number): void {
    this.ssthresh = ssthresh
    this.delivered = 0
    this.out = 0
    this.recoverFs = Math.max(flight, 1)
  }

  /**
   * RFC 6937 §3.1, on every ACK during recovery: returns `sndcnt`, the bytes that may be sent now, for
   * `deliveredData` newly delivered (cumulatively or selectively) and `pipe` bytes in flight.
   */
  onAck(deliveredData: number, pipe: number, mss: number): number {
    this.delivered += deliveredData
    let sndcnt: number
    if (pipe > this.ssthresh) {
      // "sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out"
      sndcnt = Math.ceil((this.delivered * this.ssthresh) / this.recoverFs) - this.out
    } else {
      // PRR-SSRB: "limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS; sndcnt = MIN(ssthresh - pipe, limit)"
      const limit = Math.max(this.delivered - this.out, deliveredData) + mss
      sndcnt = Math.min(this.ssthresh - pipe, limit)
    }
    // The first ACK of recovery always lets the fast retransmission go (as Linux's tcp_cwnd_reduction does).
    return Math.max(sndcnt, this.out === 0 ? mss : 0)
  }

  /** "On any data transmission or retransmission: prr_out += (data sent)". */
  onSent(bytes: number): void {
    this.out += bytes
  }
}
