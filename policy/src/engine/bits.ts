// Fixed-size bitsets over rule entries, with a one-bit-per-word summary so an AND across dimensions can
// skip empty regions 1,024 entries at a time. Bit i stands for entry i in evaluation order, so the lowest
// set bit of an AND is the first matching entry.

export interface Bits {
  readonly words: Uint32Array
  /** bit j set ⇔ words[j] ≠ 0 */
  readonly summary: Uint32Array
}

export class BitsBuilder {
  readonly words: Uint32Array
  constructor(size: number, from?: Uint32Array) {
    this.words = from ? from.slice() : new Uint32Array(Math.max(1, Math.ceil(size / 32)))
  }
  set(i: number): this {
    this.words[i >>> 5]! |= 1 << (i & 31)
    return this
  }
  or(other: Uint32Array): this {
    const w = this.words
    for (let i = 0; i < w.length; i++) w[i]! |= other[i]!
    return this
  }
}

/** Freezes builders into Bits, sharing storage between identical sets (many dimensions repeat). */
export class BitsPool {
  private readonly seen = new Map<string, Bits[]>()
  freeze(b: BitsBuilder | Uint32Array): Bits {
    const words = b instanceof BitsBuilder ? b.words : b
    let h = 0x811c9dc5
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193)
    const key = `${h >>> 0}`
    const bucket = this.seen.get(key)
    if (bucket) {
      for (const c of bucket) if (equalWords(c.words, words)) return c
    }
    const summary = new Uint32Array(Math.max(1, Math.ceil(words.length / 32)))
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) summary[i >>> 5]! |= 1 << (i & 31)
    const bits: Bits = { words: words.slice(), summary }
    if (bucket) bucket.push(bits)
    else this.seen.set(key, [bits])
    return bits
  }
}

function equalWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
