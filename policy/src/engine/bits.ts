// Fixed-size bitsets over rule entries. Bit i stands for entry i in evaluation order, so the lowest set
// bit of an AND across dimensions is the first matching entry.
//
// All frozen sets live in one Uint32Array (the arena) and are named by their offset: each is a summary
// (bit j set ⇔ word j non-zero, so an AND can skip 1,024 entries at a time) followed by its words. One
// flat array keeps a decision's reads to a few cache lines instead of chasing a typed-array object and
// its backing store per set, and leaves the garbage collector nothing to trace.

/** offset of a frozen set in the arena */
export type BitsRef = number

export class BitsBuilder {
  readonly words: Uint32Array
  constructor(size: number, from?: Uint32Array) {
    this.words = from ? from.slice() : new Uint32Array(Math.max(1, Math.ceil(size / 32)))
  }
  set(i: number): this {
    this.words[i >>> 5]! |= 1 << (i & 31)
    return this
  }
  clear(i: number): this {
    this.words[i >>> 5]! &= ~(1 << (i & 31))
    return this
  }
}

/** Freezes builders into the arena, storing identical sets once (many dimensions repeat). */
export class BitsPool {
  readonly wordCount: number
  readonly summaryCount: number
  readonly stride: number
  private readonly frozen: Uint32Array[] = []
  private readonly seen = new Map<number, number[]>()
  private arena?: Uint32Array

  constructor(size: number) {
    this.wordCount = Math.max(1, Math.ceil(size / 32))
    this.summaryCount = Math.max(1, Math.ceil(this.wordCount / 32))
    this.stride = this.summaryCount + this.wordCount
  }

  freeze(b: BitsBuilder | Uint32Array): BitsRef {
    if (this.arena) throw new Error('BitsPool already finished')
    const words = b instanceof BitsBuilder ? b.words : b
    let h = 0x811c9dc5
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193)
    const bucket = this.seen.get(h)
    if (bucket) {
      for (const idx of bucket) if (equalWords(this.frozen[idx]!, words)) return idx * this.stride
    }
    const idx = this.frozen.length
    this.frozen.push(words.slice())
    if (bucket) bucket.push(idx)
    else this.seen.set(h, [idx])
    return idx * this.stride
  }

  /** The words of a frozen set, for building other sets on top of it. */
  wordsOf(ref: BitsRef): Uint32Array {
    return this.frozen[ref / this.stride]!
  }

  /** Lays every set out in one array; call once, after the last freeze. */
  finish(): Uint32Array {
    if (this.arena) return this.arena
    const arena = new Uint32Array(this.frozen.length * this.stride)
    this.frozen.forEach((words, idx) => {
      const base = idx * this.stride
      for (let i = 0; i < words.length; i++) {
        if (words[i] !== 0) arena[base + (i >>> 5)]! |= 1 << (i & 31)
      }
      arena.set(words, base + this.summaryCount)
    })
    this.arena = arena
    this.seen.clear()
    return arena
  }

  get setCount(): number {
    return this.frozen.length
  }
}

function equalWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
