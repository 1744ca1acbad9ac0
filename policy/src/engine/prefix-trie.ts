// Binary prefix trie over one address family for one dimension (source or destination). Each node that
// ends a prefix stores the union of the entries of every prefix on its path, so a lookup is a single
// walk down the address bits that remembers the deepest such node: O(address bits), independent of
// the number of rules.
import { bitAt, type Cidr } from '../cidr.ts'
import { BitsBuilder, type BitsPool, type BitsRef } from './bits.ts'

// The first 16 bits are resolved by a direct table (node reached and best set so far for each 16-bit
// value), so a lookup does one read there and walks at most the remaining bits: the deep part of a
// binary trie is where the cache misses are.
const TOP_BITS = 16

export class PrefixTrie {
  private readonly topNode: Int32Array
  private readonly topBest: Int32Array
  /** children[2n] / children[2n+1]: node index for bit 0 / 1, or 0 for none (node 0 is the root) */
  private readonly children: Int32Array
  /** per node: the set of the deepest prefix ending here, or -1 */
  private readonly setOf: Int32Array
  private readonly bitsLen: number

  /** `items`: for each entry constrained in this dimension, its prefixes of this family. */
  constructor(
    family: 4 | 6,
    entryCount: number,
    items: readonly { entry: number; cidrs: readonly Cidr[] }[],
    unconstrained: Uint32Array,
    pool: BitsPool,
  ) {
    this.bitsLen = family === 4 ? 32 : 128
    const kids: number[] = [0, 0]
    const own: (number[] | undefined)[] = [undefined]
    for (const { entry, cidrs } of items) {
      for (const c of cidrs) {
        if (c.family !== family) continue
        let n = 0
        for (let i = 0; i < c.prefix; i++) {
          const slot = 2 * n + bitAt(c.bytes, i)
          let next = kids[slot]!
          if (next === 0) {
            next = own.length
            own.push(undefined)
            kids.push(0, 0)
            kids[slot] = next
          }
          n = next
        }
        const list = own[n] ?? []
        list.push(entry)
        own[n] = list
      }
    }
    this.children = Int32Array.from(kids)
    this.setOf = new Int32Array(own.length).fill(-1)
    // Depth-first, carrying the union of everything above.
    const stack: { node: number; above: Uint32Array }[] = [{ node: 0, above: unconstrained }]
    while (stack.length) {
      const { node, above } = stack.pop()!
      let here = above
      const mine = own[node]
      if (mine || node === 0) {
        const b = new BitsBuilder(entryCount, above)
        for (const e of mine ?? []) b.set(e)
        here = b.words
        this.setOf[node] = pool.freeze(b)
      }
      for (const slot of [2 * node, 2 * node + 1]) {
        const child = this.children[slot]!
        if (child !== 0) stack.push({ node: child, above: here })
      }
    }
    this.topNode = new Int32Array(1 << TOP_BITS)
    this.topBest = new Int32Array(1 << TOP_BITS)
    this.fillTop(0, 0, 0, this.setOf[0]!)
  }

  private fillTop(node: number, depth: number, value: number, best: number): void {
    if (depth === TOP_BITS || (node === 0 && depth > 0)) {
      // Every 16-bit value below this point shares the outcome.
      const span = 1 << (TOP_BITS - depth)
      const start = value << (TOP_BITS - depth)
      this.topNode.fill(depth === TOP_BITS ? node : 0, start, start + span)
      this.topBest.fill(best, start, start + span)
      return
    }
    for (const bit of [0, 1]) {
      const child = this.children[2 * node + bit]!
      const childBest = child !== 0 && this.setOf[child]! >= 0 ? this.setOf[child]! : best
      this.fillTop(child, depth + 1, (value << 1) | bit, childBest)
    }
  }

  lookup(addr: Uint8Array): BitsRef {
    const children = this.children
    const setOf = this.setOf
    const top = (addr[0]! << 8) | addr[1]!
    let best = this.topBest[top]!
    let n = this.topNode[top]!
    if (n === 0) return best
    for (let i = TOP_BITS; i < this.bitsLen; i++) {
      n = children[2 * n + ((addr[i >> 3]! >> (7 - (i & 7))) & 1)]!
      if (n === 0) break
      const s = setOf[n]!
      if (s >= 0) best = s
    }
    return best
  }
}
