// One intercepted flow's two streams and how they end: an idle timer fed by the HTTP shells (a TLS socket
// consumed by Node's HTTP parser emits no 'data' we could watch), graceful close of one side when the other
// has gone, and a promise that settles once both streams have closed.

import type { Duplex } from 'node:stream'

/** After one side is gone, the other gets this long to finish closing in order before it is destroyed. */
const CLOSE_GRACE_MS = 5_000

export class FlowLifetime {
  readonly client: Duplex
  readonly upstream: Duplex
  readonly done: Promise<void>
  #idleMs: number
  /** the idle timer's period: a quarter of idleMs, so a flow goes at most that long after idleMs */
  #step: number
  /** how long nothing has happened, in whole steps' time */
  #quiet = 0
  #touched = false
  #timer: NodeJS.Timeout | undefined
  #graceTimers: NodeJS.Timeout[] = []
  #finished = false

  constructor(client: Duplex, upstream: Duplex, idleMs: number) {
    this.client = client
    this.upstream = upstream
    this.#idleMs = idleMs
    this.#step = Math.max(1, Math.ceil(idleMs / 4))
    // A stream error is its close's business; these keep an 'error' with no other listener from throwing.
    client.on('error', noop)
    upstream.on('error', noop)
    this.done = Promise.all([closed(client), closed(upstream)]).then(() => {
      this.#finished = true
      clearTimeout(this.#timer)
      for (const t of this.#graceTimers) clearTimeout(t)
    })
    this.#arm()
    // Handed over already gone: nothing to proxy.
    if (client.destroyed || upstream.destroyed) this.destroy()
  }

  /** Something happened on the flow: a request, a response, body bytes. Called per chunk: a flag, no clock. */
  touch(): void {
    this.#touched = true
  }

  #arm(): void {
    if (this.#finished) return
    this.#timer = setTimeout(() => {
      if (this.#touched) {
        this.#touched = false
        this.#quiet = 0
      } else this.#quiet += this.#step
      if (this.#quiet >= this.#idleMs) this.destroy()
      else this.#arm()
    }, this.#step)
  }

  /**
   * Ends `side` in order (FIN, TLS close_notify), destroying it if it has not closed within the grace.
   * What it still sends is read and dropped: a stream nobody reads never gets to 'end', so never closes.
   */
  endGracefully(side: Duplex): void {
    if (side.destroyed) return
    if (!side.writableEnded) side.end()
    side.resume()
    const t = setTimeout(() => side.destroy(), CLOSE_GRACE_MS)
    this.#graceTimers.push(t)
  }

  destroy(err?: Error): void {
    clearTimeout(this.#timer)
    this.client.destroy(err)
    this.upstream.destroy(err)
  }
}

function noop(): void {}

function closed(s: Duplex): Promise<void> {
  if (s.closed) return Promise.resolve()
  return new Promise((resolve) => s.once('close', () => resolve()))
}
