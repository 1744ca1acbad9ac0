// SNI / Host dimension: exact names in a hash map, "*.suffix" patterns in a trie over reversed labels.
// Each stored set already includes every pattern that also covers it, so a lookup returns one set.
import type { HostPattern } from '../hostnames.ts'
import { type Bits, BitsBuilder, type BitsPool } from './bits.ts'

interface LabelNode {
  children: Map<string, LabelNode>
  own: number[]
  /** union of suffix patterns ending here or above, plus the unconstrained entries */
  set?: Bits
}

export class HostIndex {
  private readonly exact = new Map<string, Bits>()
  private readonly root: LabelNode = { children: new Map(), own: [] }
  readonly unconstrained: Bits

  constructor(
    entryCount: number,
    items: readonly { entry: number; patterns: readonly HostPattern[] }[],
    unconstrained: Uint32Array,
    pool: BitsPool,
  ) {
    this.unconstrained = pool.freeze(new BitsBuilder(entryCount, unconstrained))
    const exactOwn = new Map<string, number[]>()
    for (const { entry, patterns } of items) {
      for (const p of patterns) {
        if (p.kind === 'exact') (exactOwn.get(p.name) ?? exactOwn.set(p.name, []).get(p.name)!).push(entry)
        else {
          let n = this.root
          for (const label of p.suffix.split('.').reverse()) {
            let c = n.children.get(label)
            if (!c) {
              c = { children: new Map(), own: [] }
              n.children.set(label, c)
            }
            n = c
          }
          n.own.push(entry)
        }
      }
    }
    const walk = (n: LabelNode, above: Uint32Array) => {
      let here = above
      if (n.own.length) {
        const b = new BitsBuilder(entryCount, above)
        for (const e of n.own) b.set(e)
        here = b.words
        n.set = pool.freeze(b)
      }
      for (const c of n.children.values()) walk(c, here)
    }
    walk(this.root, unconstrained)
    for (const [name, own] of exactOwn) {
      const b = new BitsBuilder(entryCount, this.suffixSet(name).words)
      for (const e of own) b.set(e)
      this.exact.set(name, pool.freeze(b))
    }
  }

  /** Deepest suffix pattern strictly above `name` (a pattern never matches the suffix itself). */
  private suffixSet(name: string): Bits {
    let best = this.unconstrained
    let n: LabelNode | undefined = this.root
    let end = name.length
    while (n && end > 0) {
      const dot = name.lastIndexOf('.', end - 1)
      n = n.children.get(name.slice(dot + 1, end))
      if (!n || dot < 0) break
      if (n.set) best = n.set
      end = dot
    }
    return best
  }

  lookup(name: string): Bits {
    return this.exact.get(name) ?? this.suffixSet(name)
  }
}
