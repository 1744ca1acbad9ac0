// SNI / Host dimension: exact names and "*.suffix" patterns, each in a hash map. A stored set already
// includes every pattern that also covers its name, so a lookup returns one set: the exact name's, or
// else the longest suffix's (tried longest first, so a typical name costs one or two map reads).
import type { HostPattern } from '../hostnames.ts'
import { BitsBuilder, type BitsPool, type BitsRef } from './bits.ts'

export class HostIndex {
  private readonly exact = new Map<string, BitsRef>()
  private readonly suffixes = new Map<string, BitsRef>()
  readonly unconstrained: BitsRef

  constructor(
    entryCount: number,
    items: readonly { entry: number; patterns: readonly HostPattern[] }[],
    unconstrained: Uint32Array,
    pool: BitsPool,
  ) {
    this.unconstrained = pool.freeze(new BitsBuilder(entryCount, unconstrained))
    const exactOwn = new Map<string, number[]>()
    const suffixOwn = new Map<string, number[]>()
    for (const { entry, patterns } of items) {
      for (const p of patterns) {
        const [map, key] = p.kind === 'exact' ? [exactOwn, p.name] : [suffixOwn, p.suffix]
        ;(map.get(key) ?? map.set(key, []).get(key)!).push(entry)
      }
    }
    // Shorter suffixes first, so each one starts from the set of the longest suffix above it.
    const byDepth = [...suffixOwn.keys()].sort((a, b) => a.split('.').length - b.split('.').length)
    for (const suffix of byDepth) {
      const b = new BitsBuilder(entryCount, pool.wordsOf(this.suffixSet(suffix)))
      for (const e of suffixOwn.get(suffix)!) b.set(e)
      this.suffixes.set(suffix, pool.freeze(b))
    }
    for (const [name, own] of exactOwn) {
      const b = new BitsBuilder(entryCount, pool.wordsOf(this.suffixSet(name)))
      for (const e of own) b.set(e)
      this.exact.set(name, pool.freeze(b))
    }
  }

  /** The longest pattern suffix strictly above `name` (a pattern never matches the suffix itself). */
  private suffixSet(name: string): BitsRef {
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const s = this.suffixes.get(name.slice(dot + 1))
      if (s !== undefined) return s
    }
    return this.unconstrained
  }

  lookup(name: string): BitsRef {
    return this.exact.get(name) ?? this.suffixSet(name)
  }
}
