// Event handlers of this layer run inside Node's emitters: an exception there would take the process (and
// every other flow) down. Each handler is wrapped so a bug costs one exchange, counted and logged.

import type { InterceptOptions } from './types.ts'

export function guard<A extends unknown[]>(
  o: Pick<InterceptOptions, 'stats' | 'log'>,
  fn: (...args: A) => void,
  recover: (...args: A) => void,
): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args)
    } catch (err) {
      o.stats.internalErrors++
      o.log?.warn({ err: err instanceof Error ? err.stack : String(err) }, 'HTTP layer error; exchange reset')
      try {
        recover(...args)
      } catch {
        // recovering is best effort: the streams get destroyed by the flow in the end
      }
    }
  }
}
