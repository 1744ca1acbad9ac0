// A user-space connection as a native stream handle, for TLS. Node runs TLS over a JavaScript stream by
// wrapping it in JSStreamSocket: a net.Socket whose handle (the `JSStream` binding) calls back into JS for
// every read and write. Over a TcpSocket that means each TLS record also crosses a Readable (push, flowing
// state, a maybeReadMore tick), a Writable (cork, buffer, an after-write tick) and JSStreamSocket's
// setImmediate per write — about a tenth of the appliance's time per keep-alive request (bench/README.md).
// ConnectionStreamSocket is the same kind of net.Socket, with the same handle contract as JSStreamSocket
// (isClosing, onreadstart/stop, onshutdown, onwrite; readBuffer, emitEOF, finishWrite, finishShutdown), wired
// to the Connection directly: TLSSocket treats it exactly as it treats a JSStreamSocket.
//
// The binding is undocumented (`process.binding('js_stream')`, what JSStreamSocket itself uses); its shape is
// checked when this module loads, so a Node that changed it fails every interception test at once. Node is
// pinned (package.json).

import { Socket } from 'node:net'
import type { ConnectionEvents } from './connection.ts'
import type { TcpError } from './errors.ts'
import type { TcpSocket } from './stream.ts'

interface WriteReq {
  readonly __brand?: 'WriteReq'
}

/** The C++ side: a StreamBase whose I/O is done by the callbacks we install. */
interface JSStreamHandle {
  close: (cb: () => void) => void
  isClosing: () => boolean
  onreadstart: () => number
  onreadstop: () => number
  onshutdown: (req: WriteReq) => number
  onwrite: (req: WriteReq, bufs: Buffer[]) => number
  readBuffer(chunk: Uint8Array): void
  emitEOF(): void
  finishWrite(req: WriteReq, status: number): void
  finishShutdown(req: WriteReq, status: number): void
}

const { JSStream } = (process as unknown as { binding(name: string): unknown }).binding('js_stream') as {
  JSStream: new () => JSStreamHandle
}
if (
  typeof JSStream !== 'function' ||
  !['readBuffer', 'emitEOF', 'finishWrite', 'finishShutdown'].every(
    (m) => typeof (JSStream.prototype as unknown as Record<string, unknown>)[m] === 'function',
  )
)
  throw new Error(
    `this Node (${process.version}) has no usable js_stream binding; flowgate pins the Node it runs on`,
  )

// libuv's error numbers on Linux (uv.h): the status a write or shutdown completes with.
const UV_EPIPE = -32
const UV_ECANCELED = -125

/**
 * Takes over `sock`'s connection for a TLS socket: `tls.connect({ socket })` or `new TLSSocket(...)` on the
 * result. Bytes `sock` had received and not yet handed out (a ClientHello put back after a peek) come first.
 * `sock` stays the connection's owner for the proxy: it is destroyed (and emits 'close') when this closes.
 */
export function streamSocketFor(sock: TcpSocket): Socket {
  return new ConnectionStreamSocket(sock)
}

class ConnectionStreamSocket extends Socket {
  readonly #owner: TcpSocket
  readonly #h: JSStreamHandle
  #reading = false
  /** received while TLS had reads stopped (its buffer full): not yet consumed, so the window stays shut */
  #held: Uint8Array[] = []
  #eof = false
  #eofDelivered = false
  #write: WriteReq | undefined
  /** the status #write completes with */
  #writeStatus = 0
  #shutdown: WriteReq | undefined
  #pendingShutdown: WriteReq | undefined
  #closing = false

  constructor(owner: TcpSocket) {
    const h = new JSStream()
    super({ handle: h as never, manualStart: true } as never)
    this.#owner = owner
    this.#h = h
    const { unread, eof } = owner.handOver(this.#events())
    this.#held = unread
    this.#eof = eof
    h.close = (cb) => this.#doClose(cb)
    h.isClosing = () => !this.readable || !this.writable
    h.onreadstart = () => {
      this.#reading = true
      this.#flushHeld()
      return 0
    }
    h.onreadstop = () => {
      this.#reading = false
      return 0
    }
    h.onshutdown = (req) => this.#doShutdown(req)
    h.onwrite = (req, bufs) => this.#doWrite(req, bufs)
    if (owner.connection.closed) queueMicrotask(() => this.destroy())
    // As JSStreamSocket: start reading (the TLS wrap takes the handle over right after).
    this.read(0)
  }

  #events(): ConnectionEvents {
    return {
      onData: (bytes) => {
        if (this.#reading && this.#held.length === 0) this.#feed(bytes)
        else this.#held.push(Buffer.from(bytes)) // a view, valid only during this call
      },
      onEof: () => {
        this.#eof = true
        this.#flushHeld()
      },
      onDrain: () => {
        if (this.#write) queueMicrotask(this.#completeWrite)
      },
      onClose: (err: TcpError | undefined) => {
        if (err) {
          this.emit('error', err)
          this.destroy()
          return
        }
        // Closed in order both ways: whatever the peer sent has been delivered; then go, as a stream that
        // ended and finished would (JSStreamSocket follows its stream's 'close').
        this.#eof = true
        this.#flushHeld()
        this.destroy()
      },
    }
  }

  /** To TLS, which decrypts it before this returns (the binding copies it): consumed, the window reopens. */
  #feed(bytes: Uint8Array): void {
    this.#h.readBuffer(bytes)
    this.#owner.connection.consumed(bytes.length)
  }

  #flushHeld(): void {
    while (this.#reading && this.#held.length > 0 && !this.destroyed) this.#feed(this.#held.shift()!)
    if (this.#eof && !this.#eofDelivered && this.#reading && this.#held.length === 0 && !this.destroyed) {
      this.#eofDelivered = true
      this.#h.emitEOF()
    }
  }

  #doWrite(req: WriteReq, bufs: Buffer[]): number {
    this.#write = req
    if (this.#closing) return 0 // doClose cancels it
    const conn = this.#owner.connection
    let status = 0
    let sent = true
    try {
      // One write: one TLS flush becomes as few segments as its size needs.
      sent = conn.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs))
    } catch {
      status = UV_EPIPE
    }
    // The handle's write must complete after this call returns (as JSStreamSocket's, which defers it), and
    // not before the connection has room for more (onDrain). A microtask, not process.nextTick: a tick is
    // an object with symbol-keyed fields that V8 builds on a slow path, ~2% of the appliance under keep-alive
    // load (perf); both run once the C++ write call has returned.
    this.#writeStatus = status
    if (sent || status !== 0) queueMicrotask(this.#completeWrite)
    return 0
  }

  readonly #completeWrite = (): void => this.#finishWrite(this.#writeStatus)

  #finishWrite(status: number): void {
    const req = this.#write
    if (!req) return
    this.#write = undefined
    this.#h.finishWrite(req, status)
    const s = this.#pendingShutdown
    if (s) {
      this.#pendingShutdown = undefined
      this.#doShutdown(s)
    }
  }

  #doShutdown(req: WriteReq): number {
    // TLS shuts down right after its last write (close_notify): the FIN follows that write.
    if (this.#write) {
      this.#pendingShutdown = req
      return 0
    }
    this.#shutdown = req
    if (this.#closing) return 0
    this.#owner.connection.close() // FIN after what is queued (in a state past that, close() does nothing)
    queueMicrotask(() => this.#finishShutdown(0))
    return 0
  }

  #finishShutdown(status: number): void {
    const req = this.#shutdown
    if (!req) return
    this.#shutdown = undefined
    this.#h.finishShutdown(req, status)
  }

  #doClose(cb: () => void): void {
    this.#closing = true
    // The owner decides RST or FIN: after our shutdown with nothing left unread, the connection finishes its
    // FIN exchange alone (Connection.orphan); otherwise it is reset.
    this.#owner.destroy()
    setImmediate(() => {
      this.#finishWrite(UV_ECANCELED)
      this.#pendingShutdown = undefined
      this.#finishShutdown(UV_ECANCELED)
      this.#closing = false
      cb()
    })
  }
}
