// Destination-port dimension: an elementary-interval table flattened into a direct 65,536-slot index,
// so a lookup is one array read. Protocols without ports see only the entries that do not constrain
// the port.
import type { PortRange } from '../ports.ts'
import { BitsBuilder, type BitsPool, type BitsRef } from './bits.ts'

export class PortTable {
  /** the set for each port */
  private readonly setOf: Int32Array
  readonly none: BitsRef

  constructor(
    entryCount: number,
    items: readonly { entry: number; ports: readonly PortRange[] }[],
    unconstrained: Uint32Array,
    pool: BitsPool,
  ) {
    this.none = pool.freeze(new BitsBuilder(entryCount, unconstrained))
    // Sweep over boundaries: starts[p] lists entries whose range begins at p, ends[p] those ending at p-1.
    const starts = new Map<number, number[]>()
    const ends = new Map<number, number[]>()
    for (const { entry, ports } of items) {
      for (const [lo, hi] of ports) {
        ;(starts.get(lo) ?? starts.set(lo, []).get(lo)!).push(entry)
        ;(ends.get(hi + 1) ?? ends.set(hi + 1, []).get(hi + 1)!).push(entry)
      }
    }
    const bounds = [...new Set([0, ...starts.keys(), ...ends.keys()])]
      .filter((p) => p <= 65535)
      .sort((a, b) => a - b)
    const count = new Int32Array(entryCount) // an entry's ranges are merged, but be robust to overlap
    const cur = new BitsBuilder(entryCount, unconstrained)
    this.setOf = new Int32Array(65536)
    for (let i = 0; i < bounds.length; i++) {
      const p = bounds[i]!
      for (const e of ends.get(p) ?? []) if (--count[e]! === 0) cur.clear(e)
      for (const e of starts.get(p) ?? []) if (count[e]!++ === 0) cur.set(e)
      const next = i + 1 < bounds.length ? bounds[i + 1]! : 65536
      this.setOf.fill(pool.freeze(cur), p, next)
    }
  }

  lookup(port: number): BitsRef {
    return this.setOf[port & 0xffff]!
  }
}
