// Time and randomness are injected so that the state machine runs identically under a fake clock in tests
// and the simulator (TESTING.md layer 2) and under the real clock in the appliance.

import { randomBytes } from 'node:crypto'

export type TimerHandle = unknown

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number
  setTimer(delayMs: number, cb: () => void): TimerHandle
  clearTimer(h: TimerHandle): void
}

export interface Random {
  /** A uniformly random unsigned 32-bit integer. */
  u32(): number
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (ms, cb) => {
    const t = setTimeout(cb, ms)
    t.unref()
    return t
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
}

export const cryptoRandom: Random = {
  u32: () => randomBytes(4).readUInt32BE(0),
}

/**
 * One re-armable deadline over a Clock. TCP moves its retransmission deadline on nearly every ACK and clears
 * and sets its delayed-ACK and probe deadlines on nearly every segment; instead of cancelling and re-creating
 * a clock timer each time, a later deadline just records itself, a cleared one leaves the pending timer to
 * fire into nothing, and the pending timer re-arms for the remainder when it fires. cancel() really cancels
 * (a connection that is gone must not be held by its timers).
 */
export class Deadline {
  #at = -1
  #armedFor = -1
  #handle: TimerHandle = undefined
  readonly #clock: Clock
  readonly #fire: () => void

  constructor(clock: Clock, fire: () => void) {
    this.#clock = clock
    this.#fire = fire
  }

  get armed(): boolean {
    return this.#at >= 0
  }

  /** When it fires, or −1. */
  get at(): number {
    return this.#at
  }

  setIn(delayMs: number): void {
    this.set(this.#clock.now() + delayMs)
  }

  set(at: number): void {
    this.#at = at
    if (this.#armedFor >= 0 && this.#armedFor <= at) return // the pending timer re-arms when it fires
    if (this.#armedFor >= 0) this.#clock.clearTimer(this.#handle)
    this.#arm(at)
  }

  /** Disarms; the clock timer, if any, stays pending (a set() before it fires reuses it). */
  clear(): void {
    this.#at = -1
  }

  /** Disarms and cancels the clock timer. */
  cancel(): void {
    this.#at = -1
    if (this.#armedFor >= 0) {
      this.#clock.clearTimer(this.#handle)
      this.#armedFor = -1
    }
  }

  #arm(at: number): void {
    this.#armedFor = at
    this.#handle = this.#clock.setTimer(Math.max(0, at - this.#clock.now()), () => this.#onTimer())
  }

  #onTimer(): void {
    this.#armedFor = -1
    if (this.#at < 0) return
    if (this.#at > this.#clock.now()) {
      this.#arm(this.#at)
      return
    }
    this.#at = -1
    this.#fire()
  }
}

interface FakeTimer {
  at: number
  id: number
  cb: (() => void) | null
}

/** A clock that only moves when told to; timers fire in (deadline, creation) order. */
export class FakeClock implements Clock {
  #now: number
  #id = 0
  readonly #heap: FakeTimer[] = []

  constructor(start = 0) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimer(delayMs: number, cb: () => void): TimerHandle {
    const t: FakeTimer = { at: this.#now + Math.max(0, delayMs), id: this.#id++, cb }
    this.#push(t)
    return t
  }

  clearTimer(h: TimerHandle): void {
    if (h) (h as FakeTimer).cb = null
  }

  /** Deadline of the next live timer, or undefined. */
  nextAt(): number | undefined {
    while (this.#heap.length && this.#heap[0]!.cb === null) this.#pop()
    return this.#heap[0]?.at
  }

  /** Fires the next timer (moving time to it); false when none is left. */
  step(): boolean {
    const at = this.nextAt()
    if (at === undefined) return false
    const t = this.#pop()!
    if (t.at > this.#now) this.#now = t.at
    const cb = t.cb!
    t.cb = null
    cb()
    return true
  }

  /** Moves time forward by ms, firing every timer due on the way. */
  advance(ms: number): void {
    const end = this.#now + ms
    for (;;) {
      const at = this.nextAt()
      if (at === undefined || at > end) break
      this.step()
    }
    this.#now = end
  }

  #less(a: FakeTimer, b: FakeTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id)
  }

  #push(t: FakeTimer): void {
    const h = this.#heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  #pop(): FakeTimer | undefined {
    const h = this.#heap
    const top = h[0]
    const last = h.pop()
    if (h.length && last) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}

/** Deterministic PRNG (mulberry32) for tests and the simulator: same seed, same run. */
export class SeededRandom implements Random {
  #s: number
  constructor(seed: number) {
    this.#s = seed >>> 0
  }
  u32(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0
    let t = this.#s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }
}
