// HTTP path dimension: exact paths in a hash map, prefixes ("/api/*") looked up longest-first by the
// distinct prefix lengths present. Each stored set includes the shorter prefixes that also match.
import type { PathPattern } from '../validate.ts'
import { BitsBuilder, type BitsPool, type BitsRef } from './bits.ts'

export class PathIndex {
  private readonly exact = new Map<string, BitsRef>()
  private readonly prefixes = new Map<string, BitsRef>()
  private readonly lengths: number[]
  readonly unconstrained: BitsRef

  constructor(
    entryCount: number,
    items: readonly { entry: number; patterns: readonly PathPattern[] }[],
    unconstrained: Uint32Array,
    pool: BitsPool,
  ) {
    this.unconstrained = pool.freeze(new BitsBuilder(entryCount, unconstrained))
    const exactOwn = new Map<string, number[]>()
    const prefixOwn = new Map<string, number[]>()
    for (const { entry, patterns } of items) {
      for (const p of patterns) {
        const [map, key] = p.kind === 'exact' ? [exactOwn, p.path] : [prefixOwn, p.prefix]
        ;(map.get(key) ?? map.set(key, []).get(key)!).push(entry)
      }
    }
    this.lengths = [...new Set([...prefixOwn.keys()].map((k) => k.length))].sort((a, b) => b - a)
    // Shortest first, so each prefix can start from the set of the longest shorter prefix covering it.
    for (const key of [...prefixOwn.keys()].sort((a, b) => a.length - b.length)) {
      const b = new BitsBuilder(entryCount, pool.wordsOf(this.prefixSet(key)))
      for (const e of prefixOwn.get(key)!) b.set(e)
      this.prefixes.set(key, pool.freeze(b))
    }
    for (const [key, own] of exactOwn) {
      const b = new BitsBuilder(entryCount, pool.wordsOf(this.prefixSet(key)))
      for (const e of own) b.set(e)
      this.exact.set(key, pool.freeze(b))
    }
  }

  private prefixSet(path: string): BitsRef {
    for (const len of this.lengths) {
      if (len > path.length) continue
      const s = this.prefixes.get(path.slice(0, len))
      if (s !== undefined) return s
    }
    return this.unconstrained
  }

  lookup(path: string): BitsRef {
    return this.exact.get(path) ?? this.prefixSet(path)
  }
}
