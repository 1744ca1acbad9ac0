// One intercepted exchange being recorded for HAR: the HTTP layer's ExchangeObserver. Keeps the heads,
// the times, each body's size and its first maxBodyBytes, and on end builds the entry (har.ts) and hands
// it to the sink. Body bytes kept come out of a budget shared by every exchange being recorded, so many
// large exchanges at once cannot hold more than that: past it, bodies are cut (counted), not buffered.

import type { Fields } from '../http/headers.ts'
import type { ExchangeObserver, ExchangeStart } from '../http/index.ts'
import { type BodySeen, buildHarEntry, type HarEntry, type HarExchange, type HarOptions } from './har.ts'

/** Bytes of bodies held by exchanges being recorded, across all of them. */
export class BodyBudget {
  readonly limit: number
  used = 0
  /** bodies cut because the budget was spent (beyond their policy's limit) */
  cut = 0

  constructor(limit: number) {
    this.limit = limit
  }

  /** How many of `want` bytes may be kept now. */
  take(want: number): number {
    const n = Math.max(0, Math.min(want, this.limit - this.used))
    this.used += n
    return n
  }

  give(n: number): void {
    this.used -= n
  }
}

export interface RecorderContext {
  scheme: 'http' | 'https'
  authority: string
  serverIp?: string
  endpoint: string | null
  client: string | null
  policy: string | null
  rule: string | null
  awsAccountId: string | null
  options: HarOptions
  budget: BodyBudget
  /** ms, monotonic (performance.now) */
  now(): number
  /** ms since the epoch */
  wallNow(): number
  /** the finished entry; must not block */
  emit(entry: HarEntry): void
}

class Body {
  size = 0
  private chunks: Buffer[] = []
  private kept = 0
  private cut = false

  add(chunk: Buffer, limit: number, budget: BodyBudget): void {
    this.size += chunk.length
    const room = limit - this.kept
    if (room <= 0 || this.cut) return
    const want = Math.min(room, chunk.length)
    const got = budget.take(want)
    if (got < want && !this.cut) {
      this.cut = true
      budget.cut++
    }
    if (got === 0) return
    // Copied: the HTTP layer's chunk may be a view of a pooled buffer that is reused.
    this.chunks.push(Buffer.from(chunk.subarray(0, got)))
    this.kept += got
  }

  seen(): BodySeen {
    return { size: this.size, kept: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks) }
  }

  release(budget: BodyBudget): void {
    budget.give(this.kept)
    this.chunks = []
    this.kept = 0
  }
}

export class HarRecorder implements ExchangeObserver {
  private readonly c: RecorderContext
  private readonly x: ExchangeStart
  private readonly t0: number
  private readonly startedMs: number
  private requestEndAt: number | undefined
  private responseAt: number | undefined
  private head: { status: number; statusMessage: string; fields: Fields } | undefined
  private readonly reqBody = new Body()
  private readonly resBody = new Body()
  private ended = false

  constructor(x: ExchangeStart, c: RecorderContext) {
    this.x = x
    this.c = c
    this.t0 = c.now()
    this.startedMs = c.wallNow()
  }

  requestBody(chunk: Buffer): void {
    if (!this.ended) this.reqBody.add(chunk, this.c.options.maxBodyBytes, this.c.budget)
  }

  requestEnd(): void {
    this.requestEndAt ??= this.c.now() - this.t0
  }

  response(status: number, statusMessage: string, fields: Fields): void {
    if (this.ended || this.head) return
    this.head = { status, statusMessage, fields }
    this.responseAt = this.c.now() - this.t0
  }

  responseBody(chunk: Buffer): void {
    if (!this.ended) this.resBody.add(chunk, this.c.options.maxBodyBytes, this.c.budget)
  }

  end(complete: boolean): void {
    // Failure paths may report an end twice (a handshake answered, then its socket failing): the first counts.
    if (this.ended) return
    this.ended = true
    const c = this.c
    const x: HarExchange = {
      startedMs: this.startedMs,
      requestEndAt: this.requestEndAt,
      responseAt: this.responseAt,
      endAt: c.now() - this.t0,
      complete: complete && this.head !== undefined,
      scheme: c.scheme,
      authority: c.authority,
      method: this.x.method,
      target: this.x.target,
      httpVersion: this.x.httpVersion,
      requestFields: this.x.fields,
      requestBody: this.reqBody.seen(),
      responseBody: this.resBody.seen(),
      flowgate: {
        policy: c.policy,
        rule: c.rule,
        action: this.x.decision.action,
        endpoint: c.endpoint,
        client: c.client,
        awsAccountId: c.awsAccountId,
      },
    }
    if (this.head) x.response = this.head
    if (c.serverIp) x.serverIp = c.serverIp
    try {
      c.emit(buildHarEntry(x, c.options))
    } finally {
      this.reqBody.release(c.budget)
      this.resBody.release(c.budget)
    }
  }
}
