// Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
// the delay is uniform in [0, min(cap, base·2^attempt)], which spreads retries of many clients apart
// instead of having them collide again on the same schedule. A floor of half the window keeps a retry
// from firing immediately, which would defeat the point of backing off a server that said "slow down".

export interface BackoffOptions {
  baseMs: number
  maxMs: number
  /** injectable for deterministic tests; defaults to Math.random */
  random?: () => number
}

export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const window = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30))
  const r = (o.random ?? Math.random)()
  return Math.round(window / 2 + (window / 2) * r)
}

/** A per-source backoff that remembers its attempt count until reset (a watch loop, a lease loop). */
export class Backoff {
  #attempt = 0
  readonly #o: BackoffOptions
  constructor(o: BackoffOptions) {
    this.#o = o
  }
  next(): number {
    return backoffDelay(this.#attempt++, this.#o)
  }
  reset(): void {
    this.#attempt = 0
  }
  get attempts(): number {
    return this.#attempt
  }
}

/** setTimeout as a promise that an AbortSignal cuts short (resolving, not rejecting: callers re-check). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Bounds a call that has no timeout of its own (the generated Kubernetes clients wait up to undici's
 * 300 s defaults): after `ms` the caller gets an error and moves on; the request itself is abandoned.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}
