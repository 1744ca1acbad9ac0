// Destination-port dimension: an elementary-interval table flattened into a direct 65,536-slot index,
// so a lookup is one array read. Protocols without ports see only the entries that do not constrain
// the port.
import type { PortRange } from '../ports.ts'
import { type Bits, BitsBuilder, type BitsPool } from './bits.ts'

export class PortTable {
  private readonly slotOf: Uint32Array
  private readonly sets: Bits[]
  readonly none: Bits

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
    this.slotOf = new Uint32Array(65536)
    this.sets = []
    for (let i = 0; i < bounds.length; i++) {
      const p = bounds[i]!
      for (const e of ends.get(p) ?? []) if (--count[e]! === 0) cur.words[e >>> 5]! &= ~(1 << (e & 31))
      for (const e of starts.get(p) ?? []) if (count[e]!++ === 0) cur.set(e)
      const next = i + 1 < bounds.length ? bounds[i + 1]! : 65536
      this.slotOf.fill(this.sets.length, p, next)
      this.sets.push(pool.freeze(cur))
    }
  }

  lookup(port: number): Bits {
    return this.sets[this.slotOf[port & 0xffff]!]!
  }
}
