// Shared driver for the simulator test files: each file runs its own range of seeds so that ava spreads them
// over the available cores.
import test from 'ava'
import { REPRO, runSeed } from './simulator.ts'

export const SEEDS_PER_FILE = 3000
const BATCH = 500

export function simulateSeeds(from: number, count: number): void {
  for (let b = from; b < from + count; b += BATCH) {
    const end = Math.min(b + BATCH, from + count)
    test(`simulator: seeds ${b}–${end - 1} transfer byte-exact both ways and close cleanly`, (t) => {
      const failures: string[] = []
      let segments = 0
      for (let s = b; s < end; s++) {
        const r = runSeed(s)
        segments += r.segments
        if (!r.ok) failures.push(r.error!)
      }
      if (failures.length)
        t.fail(
          `${failures.length} seed(s) failed; reproduce each with ${REPRO(0).replace(' 0', ' N')}\n${failures.slice(0, 5).join('\n\n')}`,
        )
      else t.pass(`${end - b} seeds, ${segments} segments`)
    })
  }
}
