// Where HAR entries go: live sessions (GET /v1/har on the admin API, each a HAR document streamed for a
// while) and the rotating files of --har-dir. The data path asks `active` before recording anything, so
// with neither there is no recorder, no copy of a body, nothing.
//
// Bounded: each sink has a queue bound in bytes; an entry that does not fit is dropped for that sink and
// counted (the exchange itself never waits for a slow reader). Body bytes held by exchanges still being
// recorded share one budget (BodyBudget). At most maxSessions sessions at once.

import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { type HarCreator, type HarEntry, harHead } from './har.ts'
import { BodyBudget } from './har-recorder.ts'

/** counts[] indexes */
export const HAR_COUNTS = {
  /** entries built */
  recorded: 0,
  /** entry copies a sink took */
  written: 1,
  /** entry copies a sink had no room for */
  dropped: 2,
} as const

export interface HarSink {
  /** false: no room, the entry was dropped for this sink */
  push(json: string): boolean
  /** writes what it holds and lets go (HarHub.close) */
  close?(): Promise<void>
}

export const HAR_CREATOR: HarCreator = {
  name: 'flowgate',
  version: (() => {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'))
      return String(pkg.version ?? '0')
    } catch {
      return '0'
    }
  })(),
}

export interface HarSessionOptions {
  seconds: number
  maxEntries: number
  /** bytes the reader may fall behind by before entries are dropped (default 8 MiB) */
  maxQueueBytes?: number
  /** called once when the session takes no more entries */
  onFinish?: () => void
}

/**
 * One live export: a HAR document on `stream` — its head at once, entries as they are recorded, and its
 * tail (with `_flowgate: { dropped, ended }`) when the time or the entry count is reached. A reader that
 * goes away destroys the stream, which ends the session.
 */
export class HarSession implements HarSink {
  readonly stream: Readable
  readonly started = Date.now()
  entries = 0
  dropped = 0
  ended: 'seconds' | 'entries' | 'closed' | null = null
  private readonly maxEntries: number
  private readonly maxQueueBytes: number
  private readonly timer: NodeJS.Timeout
  private readonly onFinish: (() => void) | undefined

  constructor(o: HarSessionOptions) {
    this.onFinish = o.onFinish
    this.maxEntries = o.maxEntries
    this.maxQueueBytes = o.maxQueueBytes ?? 8 * 1024 * 1024
    this.stream = new Readable({ read() {} })
    this.stream.push(
      harHead(HAR_CREATOR, `flowgate live HAR export started ${new Date(this.started).toISOString()}`),
    )
    this.timer = setTimeout(() => this.finish('seconds'), o.seconds * 1000)
    this.timer.unref()
    this.stream.once('close', () => {
      clearTimeout(this.timer)
      if (this.ended) return
      this.ended = 'closed'
      this.onFinish?.()
    })
  }

  push(json: string): boolean {
    if (this.ended) return false
    if (this.stream.readableLength > this.maxQueueBytes) {
      this.dropped++
      return false
    }
    this.stream.push(this.entries === 0 ? json : `,${json}`)
    this.entries++
    if (this.entries >= this.maxEntries) this.finish('entries')
    return true
  }

  finish(why: 'seconds' | 'entries' | 'closed'): void {
    if (this.ended) return
    this.ended = why
    clearTimeout(this.timer)
    this.onFinish?.()
    const tail = `],"_flowgate":${JSON.stringify({ dropped: this.dropped, ended: why })}}}`
    this.stream.push(tail)
    this.stream.push(null)
  }
}

export interface HarHubOptions {
  maxSessions?: number
  /** body bytes held by exchanges being recorded, all together (default 32 MiB) */
  bodyBudgetBytes?: number
}

export class HarHub {
  readonly counts = new Float64Array(3)
  readonly budget: BodyBudget
  readonly maxSessions: number
  private readonly sessions = new Set<HarSession>()
  private readonly sinks = new Set<HarSink>()

  constructor(o: HarHubOptions = {}) {
    this.maxSessions = o.maxSessions ?? 4
    this.budget = new BodyBudget(o.bodyBudgetBytes ?? 32 * 1024 * 1024)
  }

  /** Whether anything would take an entry now: the data path records nothing otherwise. */
  get active(): boolean {
    return this.sinks.size > 0
  }

  /** Live sessions running. */
  get size(): number {
    return this.sessions.size
  }

  /** A new live session, or undefined when maxSessions already run. */
  open(o: HarSessionOptions): HarSession | undefined {
    if (this.sessions.size >= this.maxSessions) return undefined
    const s: HarSession = new HarSession({
      ...o,
      onFinish: () => {
        this.sessions.delete(s)
        this.sinks.delete(s)
      },
    })
    this.sessions.add(s)
    this.sinks.add(s)
    return s
  }

  /** A sink that takes every entry from now on (the --har-dir files). */
  addSink(sink: HarSink): void {
    this.sinks.add(sink)
  }

  emit(entry: HarEntry): void {
    this.counts[HAR_COUNTS.recorded]!++
    const json = JSON.stringify(entry)
    for (const s of this.sinks) {
      if (s.push(json)) this.counts[HAR_COUNTS.written]!++
      else this.counts[HAR_COUNTS.dropped]!++
    }
  }

  /** Ends every live session (their documents get their tails) and closes the other sinks. */
  async close(): Promise<void> {
    for (const s of this.sessions) s.finish('closed')
    const others = [...this.sinks]
    this.sinks.clear()
    await Promise.all(others.map((s) => s.close?.()))
  }
}
