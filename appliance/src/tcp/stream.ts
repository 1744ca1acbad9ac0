// Each connection as a Node.js Duplex (ARCHITECTURE.md item 7), so TLS, HTTP and the relay above it are
// ordinary Node streams:
//   - write backpressure: a write's callback waits while the connection's send buffer is at its limit;
//   - read backpressure: the receive window is the receive buffer minus what sits unread in the readable
//     side, so a consumer that stops reading closes the peer's window instead of growing our memory;
//   - end() half-closes (FIN) while the readable side keeps flowing until the peer's FIN ('end');
//   - destroy() aborts with RST, except after end() with nothing left unread: then, as Linux's close(), the
//     connection finishes its FIN exchange on its own (Connection.orphan) — a peer closing in order right
//     behind us (TLS close_notify, then FIN) must not be reset.

import { Duplex } from 'node:stream'
import type { Connection, ConnectionEvents, TcpConfig } from './connection.ts'
import type { TcpError } from './errors.ts'
import type { TcpRepr } from './segment.ts'
import type { FourTuple, Listener, ListenSpec, TcpStack } from './stack.ts'
import { State } from './state.ts'

export class TcpSocket extends Duplex {
  readonly connection: Connection
  readonly tuple: FourTuple
  /** Bytes pushed into the readable side that the connection still counts as unread. */
  #unread = 0
  #pendingWrite: ((err?: Error | null) => void) | undefined
  #connected = false
  /** The peer's FIN has been delivered (pushed as the readable side's end). */
  #eof = false

  constructor(conn: Connection, tuple: FourTuple) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: conn.cfg.rcvBufSize,
      writableHighWaterMark: Math.min(conn.cfg.sndBufSize, 64 * 1024),
    })
    this.connection = conn
    this.tuple = tuple
    const events: ConnectionEvents = {
      onEstablished: () => {
        this.#connected = true
        this.emit('connect')
      },
      onData: (bytes) => {
        this.#unread += bytes.length
        this.push(Buffer.from(bytes)) // the connection's view is only valid during this call
        this.#syncConsumed()
      },
      onEof: () => {
        this.#eof = true
        this.push(null)
      },
      onDrain: () => this.#flushPending(),
      onClose: (err) => this.#onClose(err),
    }
    conn.events = events
    if (conn.state === State.ESTABLISHED) this.#connected = true
  }

  get connected(): boolean {
    return this.#connected
  }

  get remoteAddress(): string {
    return this.tuple.remoteAddr
  }
  get remotePort(): number {
    return this.tuple.remotePort
  }
  get localAddress(): string {
    return this.tuple.localAddr
  }
  get localPort(): number {
    return this.tuple.localPort
  }

  /** Tells the connection how much of what it delivered has left the readable buffer. */
  #syncConsumed(): void {
    const len = this.readableLength
    if (len < this.#unread) {
      this.connection.consumed(this.#unread - len)
      this.#unread = len
    }
  }

  // Bytes leave the readable buffer only through read() (flowing mode, pipe and resume call it too) or straight
  // from push() to 'data' (onData accounts for those): account after every read().
  override read(size?: number): unknown {
    const out = super.read(size)
    if (this.readableLength < this.#unread) this.#syncConsumed()
    return out
  }

  override _read(): void {
    // Data is pushed as it arrives; read() above reopens the window once bytes have left the buffer.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const c = this.connection
    if (c.closed) {
      cb(c.error ?? new Error('connection closed'))
      return
    }
    try {
      if (c.write(chunk)) cb()
      else this.#pendingWrite = cb
    } catch (e) {
      cb(e as Error)
    }
  }

  #flushPending(): void {
    const cb = this.#pendingWrite
    if (!cb) return
    this.#pendingWrite = undefined
    cb()
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.connection.close()
    cb()
  }

  #onClose(err: TcpError | undefined): void {
    const cb = this.#pendingWrite
    this.#pendingWrite = undefined
    if (err) {
      cb?.(err)
      this.destroy(err)
      return
    }
    cb?.(new Error('connection closed'))
    // An orderly close from the peer's side while we never read its FIN (e.g. RST in LAST-ACK) ends us too.
    if (!this.readableEnded) this.push(null)
  }

  /**
   * Gives the connection's events to a lower-level consumer (stream-handle.ts: TLS straight on the
   * connection) and returns what had been delivered and not read yet (still unconsumed: the consumer
   * consumes it), and whether the peer's FIN came with it. This socket stays the connection's owner:
   * destroy() still chooses between FIN and RST, and 'close' still tells the proxy the flow is done.
   */
  handOver(events: ConnectionEvents): { unread: Uint8Array[]; eof: boolean } {
    const unread: Uint8Array[] = []
    // Readable's own read(): ours would count these bytes as consumed, and the new consumer does that.
    for (let c = super.read() as Buffer | null; c !== null; c = super.read() as Buffer | null) unread.push(c)
    this.#unread = 0
    this.#pendingWrite = undefined
    this.connection.events = events
    return { unread, eof: this.#eof }
  }

  /** RST now and destroy, whatever was queued or half-closed (as net.Socket's resetAndDestroy). */
  resetAndDestroy(): this {
    this.connection.abort()
    return this.destroy()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const c = this.connection
    if (!c.closed) {
      // _final has run (our FIN is queued) and nothing delivered is left unread: close, don't reset.
      if (!err && c.closing && c.rcvUnread === 0) c.orphan()
      else c.abort()
    }
    cb(err)
  }
}

/** Opens a connection (active open) and wraps it. */
export function tcpConnect(stack: TcpStack, tuple: FourTuple, config?: Partial<TcpConfig>): TcpSocket {
  const conn = stack.connect(tuple, {}, config)
  return new TcpSocket(conn, tuple)
}

/** Listens; each accepted connection is handed over as a TcpSocket once its handshake completes. */
export function tcpListen(stack: TcpStack, spec: ListenSpec, onSocket: (s: TcpSocket) => void): Listener {
  return stack.listen(spec, (conn, tuple) => {
    const s = new TcpSocket(conn, tuple)
    s.once('connect', () => onSocket(s))
  })
}

/** Answers a held SYN (proxy: after the upstream accepted) and wraps the connection. */
export function tcpAccept(
  stack: TcpStack,
  tuple: FourTuple,
  syn: TcpRepr,
  config?: Partial<TcpConfig>,
): TcpSocket | undefined {
  const conn = stack.accept(tuple, syn, {}, config)
  return conn ? new TcpSocket(conn, tuple) : undefined
}
