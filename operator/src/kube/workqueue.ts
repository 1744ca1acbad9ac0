// A work queue in the manner of client-go's workqueue (controller-runtime's engine):
// - keys are de-duplicated: adding a key that is already waiting is a no-op;
// - one key is never processed twice at once: a key added while being processed waits until that
//   processing ends, then runs again (so no change is lost and no two workers race on one object);
// - a failed key is retried after a per-key exponential delay (ms → minutes), and all retries together
//   pass through a token bucket so a failing fleet cannot turn the operator into a hot loop;
// - workers run only while the queue is started (the operator starts it when it becomes leader).
import { backoffDelay } from './backoff.ts'

export interface WorkQueueOptions {
  name: string
  /** how many keys are processed at once */
  concurrency?: number
  /** first retry delay of a failing key */
  baseDelayMs?: number
  /** longest retry delay of a failing key */
  maxDelayMs?: number
  /** overall retry rate limit (token bucket): sustained retries per second and burst */
  qps?: number
  burst?: number
  random?: () => number
  /** called after each processed key, for metrics */
  onProcessed?: (key: string, seconds: number, error: unknown) => void
}

export type Handler = (key: string, signal: AbortSignal) => Promise<undefined | { requeueAfterMs: number }>

export class WorkQueue {
  readonly name: string
  readonly #o: Required<Omit<WorkQueueOptions, 'onProcessed' | 'random'>> & Pick<WorkQueueOptions, 'random'>
  readonly #onProcessed: WorkQueueOptions['onProcessed']
  #queue: string[] = []
  #dirty = new Set<string>()
  #processing = new Set<string>()
  #failures = new Map<string, number>()
  #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>()
  #tokens: number
  #tokensAt = Date.now()
  #handler: Handler | undefined
  #running = 0
  #abort: AbortController | undefined
  #wake: (() => void)[] = []
  #shutdown = false

  constructor(o: WorkQueueOptions) {
    this.name = o.name
    this.#o = {
      name: o.name,
      concurrency: o.concurrency ?? 1,
      baseDelayMs: o.baseDelayMs ?? 5,
      maxDelayMs: o.maxDelayMs ?? 300_000,
      qps: o.qps ?? 10,
      burst: o.burst ?? 100,
      random: o.random,
    }
    this.#onProcessed = o.onProcessed
    this.#tokens = this.#o.burst
  }

  /** keys waiting (not counting those being processed or waiting for a retry timer) */
  get depth(): number {
    return this.#queue.length
  }

  get started(): boolean {
    return this.#abort !== undefined
  }

  add(key: string): void {
    if (this.#shutdown || this.#dirty.has(key)) return
    this.#dirty.add(key)
    if (this.#processing.has(key)) return
    this.#queue.push(key)
    this.#wake.shift()?.()
  }

  /** Adds the key after a delay; of several pending delays for one key the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shutdown) return
    if (ms <= 0) {
      this.add(key)
      return
    }
    const at = Date.now() + ms
    const pending = this.#timers.get(key)
    if (pending && pending.at <= at) return
    if (pending) clearTimeout(pending.timer)
    const timer = setTimeout(() => {
      this.#timers.delete(key)
      this.add(key)
    }, ms)
    this.#timers.set(key, { at, timer })
  }

  /** Retry after this key's backoff, and no sooner than the overall rate limit allows. */
  addRateLimited(key: string): void {
    const n = this.#failures.get(key) ?? 0
    this.#failures.set(key, n + 1)
    const perKey = backoffDelay(n, {
      baseMs: this.#o.baseDelayMs,
      maxMs: this.#o.maxDelayMs,
      ...(this.#o.random ? { random: this.#o.random } : {}),
    })
    this.addAfter(key, Math.max(perKey, this.#reserveToken()))
  }

  /** Clears a key's failure count (after it succeeded). */
  forget(key: string): void {
    this.#failures.delete(key)
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0
  }

  #reserveToken(): number {
    const now = Date.now()
    this.#tokens = Math.min(this.#o.burst, this.#tokens + ((now - this.#tokensAt) / 1000) * this.#o.qps)
    this.#tokensAt = now
    this.#tokens -= 1
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#o.qps) * 1000)
  }

  /** Starts `concurrency` workers running `handler`. */
  start(handler: Handler): void {
    if (this.#abort || this.#shutdown) return
    this.#handler = handler
    this.#abort = new AbortController()
    const signal = this.#abort.signal
    for (let i = 0; i < this.#o.concurrency; i++) void this.#worker(signal)
  }

  /**
   * Stops the workers: the signal handed to running handlers is aborted at once (so they stop writing),
   * keys stay queued for the next start. Resolves when the running handlers have returned.
   */
  async stop(): Promise<void> {
    const abort = this.#abort
    this.#abort = undefined
    abort?.abort()
    for (const w of this.#wake.splice(0)) w()
    for (let i = 0; i < 1000 && this.#running > 0; i++) await new Promise((r) => setTimeout(r, 5))
  }

  /** Stops for good and drops every pending key and timer. */
  async shutdown(): Promise<void> {
    this.#shutdown = true
    for (const { timer } of this.#timers.values()) clearTimeout(timer)
    this.#timers.clear()
    await this.stop()
    this.#queue = []
    this.#dirty.clear()
  }

  async #worker(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const key = this.#queue.shift()
      if (key === undefined) {
        await new Promise<void>((r) => this.#wake.push(r))
        continue
      }
      this.#dirty.delete(key)
      this.#processing.add(key)
      this.#running++
      const t0 = performance.now()
      let error: unknown
      try {
        const r = await this.#handler!(key, signal)
        this.forget(key)
        if (r && r.requeueAfterMs >= 0) this.addAfter(key, r.requeueAfterMs)
      } catch (err) {
        error = err
        if (!signal.aborted) this.addRateLimited(key)
        else this.add(key)
      } finally {
        this.#running--
        this.#processing.delete(key)
        // A key added while it was being processed was held back; now it may run.
        if (this.#dirty.has(key)) {
          this.#queue.push(key)
          this.#wake.shift()?.()
        }
      }
      this.#onProcessed?.(key, (performance.now() - t0) / 1000, error)
    }
  }
}
