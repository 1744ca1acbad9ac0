// The first bytes of one direction of a TCP stream, rebuilt from held segments for the peek parsers:
// segments may arrive out of order, be retransmitted or overlap. Bounded: bytes beyond `max` from the
// stream start are ignored. Where segments overlap with different bytes, the first copy wins (a
// forwarder cannot know which copy the endpoint keeps; first-wins at least makes the reading stable).
// Sequence arithmetic is modulo 2^32 (RFC 9293 §3.4).

export class StreamPrefix {
  readonly max: number
  readonly bytes: Uint8Array
  private readonly have: Uint8Array
  /** sequence number of bytes[0], -1 until known */
  start = -1
  /** length of the contiguous prefix: bytes[0, contiguous) are all known */
  contiguous = 0

  constructor(max = 16_384) {
    this.max = max
    this.bytes = new Uint8Array(max)
    this.have = new Uint8Array(max)
  }

  /** Sets the first sequence number of the stream (the SYN's sequence number + 1). */
  setStart(seq: number): void {
    if (this.start < 0) this.start = seq >>> 0
  }

  /**
   * Adds payload b[off, off+n) at sequence number seq. Without setStart, the first segment added defines
   * the start. Returns the contiguous length afterwards.
   */
  add(seq: number, b: Uint8Array, off: number, n: number): number {
    if (n <= 0) return this.contiguous
    if (this.start < 0) this.start = seq >>> 0
    // Offset of the segment in the stream; a segment starting before `start` (an old retransmission) is
    // clipped, one too far ahead ignored.
    let rel = (seq - this.start) | 0
    let from = off
    let count = n
    if (rel < 0) {
      from -= rel
      count += rel
      rel = 0
    }
    if (count <= 0 || rel >= this.max) return this.contiguous
    const end = Math.min(this.max, rel + count)
    for (let i = rel; i < end; i++) {
      if (this.have[i] === 0) {
        this.bytes[i] = b[from + (i - rel)]!
        this.have[i] = 1
      }
    }
    let c = this.contiguous
    while (c < this.max && this.have[c] === 1) c++
    this.contiguous = c
    return c
  }

  /** Whether the bound was reached (the peek must decide with what it has). */
  get full(): boolean {
    return this.contiguous === this.max
  }

  reset(): void {
    this.start = -1
    this.contiguous = 0
    this.have.fill(0)
  }
}
