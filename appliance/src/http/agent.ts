// An http.Agent over exactly one connection: the flow's own upstream stream (ARCHITECTURE.md item 7: no
// upstream connection is ever shared between flows, and none is ever opened here). Requests queue for it
// one at a time (HTTP/1.1 without pipelining upstream); once it is gone, every further request fails with
// FG_ERR_HTTP_UPSTREAM_GONE instead of dialling.

import { Agent } from 'node:http'
import type { Duplex } from 'node:stream'

export class UpstreamGoneError extends Error {
  readonly code = 'FG_ERR_HTTP_UPSTREAM_GONE'
  constructor() {
    super('the flow’s upstream connection is closed; no other is opened')
    this.name = 'UpstreamGoneError'
  }
}

// The agent calls these on pooled sockets; a plain Duplex (the user-space TCP stream on cleartext flows)
// has none of them and needs none: TCP keep-alive and event-loop references are the TCP layer's business.
const SOCKET_NOOPS = ['ref', 'unref', 'setKeepAlive', 'setNoDelay', 'setTimeout'] as const

export class OneConnectionAgent extends Agent {
  #socket: Duplex | null

  constructor(socket: Duplex) {
    super({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, maxTotalSockets: 1, scheduling: 'fifo' })
    const s = socket as Duplex & Record<string, unknown>
    for (const m of SOCKET_NOOPS) if (typeof s[m] !== 'function') s[m] = () => socket
    this.#socket = socket
  }

  override createConnection(
    _options: object,
    cb: (err: Error | null, socket?: Duplex) => void,
  ): Duplex | undefined {
    const s = this.#socket
    this.#socket = null
    if (!s || s.destroyed || !s.writable) {
      cb(new UpstreamGoneError())
      return undefined
    }
    return s
  }

  // The default re-arms TCP keep-alive, unrefs the socket and applies the agent timeout; none of that is
  // ours to change on the flow's connection. Its keep-alive hint parsing is of no use with one socket.
  override keepSocketAlive(_socket: Duplex): boolean {
    return true
  }
}
