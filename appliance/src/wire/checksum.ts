// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// `sum16` returns an unfolded sum of big-endian 16-bit words so callers can chain a pseudo-header, a header
// and a payload; `fold` reduces it to 16 bits. The checksum field holds `~fold(sum) & 0xffff`, and a
// received header is valid when the sum over it, checksum included, folds to 0xffff.

/** Unfolded ones'-complement sum of 16-bit words from b[off, off+len); an odd tail byte is padded (RFC 1071 §4.1). */
export function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc
  let i = off
  const end = off + len
  // 8 bytes per step: the sum of 4 words adds < 2^18, far below 2^53, so one fold at the end suffices
  // for any packet size (and stays in small-integer range for packets up to ~64 KB).
  const end8 = end - 7
  for (; i < end8; i += 8) {
    s +=
      ((b[i]! << 8) | b[i + 1]!) +
      ((b[i + 2]! << 8) | b[i + 3]!) +
      ((b[i + 4]! << 8) | b[i + 5]!) +
      ((b[i + 6]! << 8) | b[i + 7]!)
  }
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!
  if (i < end) s += b[i]! << 8
  return s
}

/** End-around-carry fold to 16 bits (RFC 1071 §4.1). */
export function fold(sum: number): number {
  let s = sum
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000)
  return s
}

/** The value for a checksum field: ones' complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff
}

/** Checksum over b[off, off+len) starting from an unfolded sum (e.g. a pseudo-header). */
export function checksum(b: Uint8Array, off: number, len: number, acc = 0): number {
  return finish(sum16(b, off, len, acc))
}

/** IPv4 pseudo-header sum (RFC 793 §3.1 / RFC 768): src, dst, zero, protocol, L4 length. */
export function pseudoSum4(
  b: Uint8Array,
  srcOff: number,
  dstOff: number,
  protocol: number,
  l4len: number,
): number {
  return sum16(b, srcOff, 4, sum16(b, dstOff, 4, protocol + l4len))
}

/** IPv6 pseudo-header sum (RFC 8200 §8.1): src, dst, 32-bit upper-layer length, next header. */
export function pseudoSum6(
  b: Uint8Array,
  srcOff: number,
  dstOff: number,
  protocol: number,
  l4len: number,
): number {
  return sum16(b, srcOff, 16, sum16(b, dstOff, 16, protocol + (l4len >>> 16) + (l4len & 0xffff)))
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), where m and m' are the old and new (folded) sums of whatever
 * changed. Unlike recomputing, it carries over an error already present in HC, so a rewrite never turns a
 * corrupted packet into one that verifies.
 */
export function adjust(hc: number, oldSum: number, newSum: number): number {
  return ~fold((~hc & 0xffff) + (~fold(oldSum) & 0xffff) + fold(newSum)) & 0xffff
}

/** RFC 1624 update for one 16-bit field changing from `m` to `m2`. */
export function update16(hc: number, m: number, m2: number): number {
  return ~fold((~hc & 0xffff) + (~m & 0xffff) + (m2 & 0xffff)) & 0xffff
}

/** RFC 1624 update for one 32-bit field (two words). */
export function update32(hc: number, m: number, m2: number): number {
  return adjust(hc, ((m >>> 16) & 0xffff) + (m & 0xffff), ((m2 >>> 16) & 0xffff) + (m2 & 0xffff))
}
