// TCP sequence numbers (RFC 9293 §3.4): unsigned 32-bit values compared modulo 2^32. Every comparison of
// sequence numbers in the TCP code goes through this module; a raw `<` on two Seq values is a bug as soon
// as the connection crosses the 2^32 wrap.

/** A sequence number. The brand keeps plain byte counts and sequence numbers from being mixed up. */
export type Seq = number & { readonly __tcpSeq: unique symbol }

/** Wraps any integer into sequence space. */
export function seq(n: number): Seq {
  return (n >>> 0) as Seq
}

/** a + n (n may be negative), modulo 2^32. */
export function seqAdd(a: Seq, n: number): Seq {
  return ((a + n) >>> 0) as Seq
}

/**
 * Signed distance a − b, in [−2^31, 2^31). Meaningful while the two numbers are less than 2^31 apart,
 * which RFC 9293 §3.4 guarantees for any two numbers within one window.
 */
export function seqSub(a: Seq, b: Seq): number {
  return (a - b) | 0
}

export function seqLt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0
}
export function seqLe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0
}
export function seqGt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0
}
export function seqGe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0
}
export function seqMax(a: Seq, b: Seq): Seq {
  return seqGe(a, b) ? a : b
}
export function seqMin(a: Seq, b: Seq): Seq {
  return seqLe(a, b) ? a : b
}
/** lo ≤ x < hi in sequence space (the half-open interval RFC 9293 §3.10.7.4 uses for acceptability). */
export function seqInRange(x: Seq, lo: Seq, hi: Seq): boolean {
  return seqLe(lo, x) && seqLt(x, hi)
}
