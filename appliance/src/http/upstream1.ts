// HTTP/1.1 toward the origin over the flow's one upstream connection (ARCHITECTURE.md item 7: no upstream
// connection is ever shared between flows, and none is ever opened here). Exchanges queue and go one at a
// time in order — we never pipeline upstream: a request's head is written, its body streamed with the
// client's framing, and the response parsed by llhttp (llhttp.ts, the parser Node's own client uses) and
// handed to the exchange's callbacks. Once the connection is gone (closed, a response without keep-alive, a
// parse error, an upgrade), every later exchange fails with FG_ERR_HTTP_UPSTREAM_GONE.
//
// This replaces http.request over a one-socket Agent: the same parser and the same rules, without the
// ClientRequest / Agent / IncomingMessage machinery per request (bench/http-intercept.ts).

import type { Duplex } from 'node:stream'
import type { Fields } from './headers.ts'
import { type LlhttpParser, type ParserCallbacks, RESPONSE_TYPE, responseParser } from './llhttp.ts'

export class UpstreamGoneError extends Error {
  readonly code = 'FG_ERR_HTTP_UPSTREAM_GONE'
  constructor() {
    super('the flow’s upstream connection is closed; no other is opened')
    this.name = 'UpstreamGoneError'
  }
}

export type ProtocolError = Error & { code?: string }

export interface UpstreamHead {
  status: number
  statusMessage: string
  /** [name, value, …] as the origin sent them */
  rawHeaders: string[]
  /** the connection stays usable after this response */
  keepAlive: boolean
}

/** How a request body goes upstream: none, as it comes (Content-Length), or chunked (re-framed here). */
export type BodyFraming = 'none' | 'length' | 'chunked'

export interface UpstreamExchange {
  readonly method: string
  /** the request head, latin1 (requestHead()) */
  readonly head: string
  readonly framing: BodyFraming
  /** a WebSocket handshake: a 101 hands the connection over (onUpgrade) */
  readonly upgrade: boolean
  /**
   * Its turn has come and its head has gone: the body follows through writeBody/endBody (so a pipelined
   * request's body waits for its turn). With framing 'none' the request is complete already.
   */
  onStart(): void
  /** 1xx other than 101 */
  onInformation(status: number, rawHeaders: string[]): void
  onResponse(head: UpstreamHead): void
  onBody(chunk: Buffer): void
  onEnd(rawTrailers: string[]): void
  /** failed before or during the response (the connection is gone); code HPE_* for a parse error */
  onError(err: ProtocolError): void
  onUpgrade(head: UpstreamHead, socket: Duplex, rest: Buffer): void
}

/** The request head as it goes on the wire (names as given, values as validated by the caller). */
export function requestHead(method: string, target: string, fields: Fields): string {
  let s = `${method} ${target} HTTP/1.1\r\n`
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!
    s += `${f[0]}: ${f[1]}\r\n`
  }
  return `${s}\r\n`
}

/** The Content-Length of a response llhttp accepted, when it frames the body alone (no Transfer-Encoding); else -1. */
function declaredLength(raw: readonly string[]): number {
  let length = -1
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') return -1
    if (n.length === 14 && n.toLowerCase() === 'content-length') {
      // llhttp has checked it: digits, and one value however often it is repeated.
      const v = Number(raw[i + 1]!.trim())
      if (!Number.isSafeInteger(v) || v < 0) return -1
      length = v
    }
  }
  return length
}

const reset = (message: string): ProtocolError => Object.assign(new Error(message), { code: 'ECONNRESET' })
const protocolError = (code: string, message: string): ProtocolError =>
  Object.assign(new Error(message), { code })

export interface UpstreamOptions {
  maxHeaderBytes: number
  /** an exception out of an exchange's callback: that exchange is lost (the connection is aborted) */
  onBug(err: unknown, ex: UpstreamExchange | null): void
  /** the origin broke the protocol while no exchange was waiting (bytes that answer no request) */
  onStray?(err: ProtocolError): void
  /** around each parse of a read from the origin (the client side corks its writes in between) */
  onParse?(): void
  onParsed?(): void
}

export class Http1Upstream implements ParserCallbacks {
  readonly socket: Duplex
  #parser: LlhttpParser | null
  #o: UpstreamOptions
  #queue: UpstreamExchange[] = []
  #active: UpstreamExchange | null = null
  /** the active exchange's final (or 101) head has come */
  #responded = false
  #responseDone = false
  #requestDone = false
  #keepAlive = true
  #upgradeHead: UpstreamHead | null = null
  /** header lines flushed before their head completed, or trailers */
  #flushed: string[] = []
  /** set when parsing must stop (an unsolicited or impossible response), handled after execute returns */
  #halt: ProtocolError | null = null
  #gone = false
  #detached = false
  /** inside parser.execute: the next exchange waits until it returns (below) */
  #parsing = false
  #startAfterParse = false
  /**
   * A body of declared length is read here, not by llhttp (whose binding copies every body chunk into a new
   * Buffer): llhttp is told the head ended the message (onHeadersComplete answers 2, its "upgrade" exit),
   * started afresh once execute returns, and the body's bytes are handed on as slices of what was read.
   * `#ownBody` marks that exit; `#bodyLeft` counts the bytes still due (-1: none of ours).
   */
  #ownBody = false
  #bodyLeft = -1
  #maxHeaderBytes: number

  constructor(socket: Duplex, o: UpstreamOptions) {
    this.socket = socket
    this.#o = o
    this.#maxHeaderBytes = o.maxHeaderBytes
    this.#parser = responseParser(this, o.maxHeaderBytes)
    socket.on('data', this.#onData)
    socket.on('end', this.#onEof)
    socket.on('close', this.#onClose)
  }

  /** No exchange will be carried any more (closed, not kept alive, failed, upgraded). */
  get gone(): boolean {
    return this.#gone
  }

  /** Queues an exchange; it fails at once (onError, synchronously) when the connection is gone. */
  send(ex: UpstreamExchange): void {
    if (this.#gone) {
      ex.onError(new UpstreamGoneError())
      return
    }
    if (this.#active) this.#queue.push(ex)
    else this.#start(ex)
  }

  /** Backpressure from the response's reader. */
  pause(): void {
    this.socket.pause()
  }
  resume(): void {
    if (!this.#detached) this.socket.resume()
  }

  /** Gives up on the connection (the exchange was answered otherwise): nothing more is parsed or sent. */
  abort(): void {
    this.#halt ??= reset('aborted')
    this.#active = null
    this.#setGone()
    this.socket.destroy()
  }

  #start(ex: UpstreamExchange): void {
    const s = this.socket
    // Bytes the origin sent before this request was made cannot be its answer: they are parsed first, with no
    // exchange active, so that a stray response fails the connection instead (onMessageBegin).
    for (let n = 0; n < 64 && !this.#halt && s.readableLength > 0 && !s.destroyed; n++) s.read()
    if (this.#gone || s.destroyed || !s.writable) {
      this.#setGone()
      ex.onError(new UpstreamGoneError())
      return
    }
    this.#active = ex
    this.#responded = false
    this.#responseDone = false
    this.#keepAlive = true
    this.#requestDone = ex.framing === 'none'
    s.write(ex.head, 'latin1')
    ex.onStart()
  }

  /**
   * A chunk of the active exchange's request body, framed as the exchange said. False when the connection's
   * buffer is full: wait for the socket's 'drain'.
   */
  writeBody(ex: UpstreamExchange, c: Buffer): boolean {
    const s = this.socket
    if (this.#active !== ex || this.#requestDone || c.length === 0) return true
    if (ex.framing !== 'chunked') return s.write(c)
    s.cork()
    s.write(`${c.length.toString(16)}\r\n`, 'latin1')
    s.write(c)
    const ok = s.write('\r\n', 'latin1')
    s.uncork()
    return ok
  }

  /** The active exchange's request body is complete (with its trailers, when chunked). */
  endBody(ex: UpstreamExchange, rawTrailers: readonly string[]): void {
    if (this.#active !== ex || this.#requestDone) return
    if (ex.framing === 'chunked') {
      let last = '0\r\n'
      for (let i = 0; i + 1 < rawTrailers.length; i += 2)
        last += `${rawTrailers[i]}: ${rawTrailers[i + 1]}\r\n`
      this.socket.write(`${last}\r\n`, 'latin1')
    }
    this.#requestDone = true
    this.#next()
  }

  /** The request body was cut short (the client went away mid-request): the connection is mid-message. */
  abortBody(ex: UpstreamExchange): void {
    if (this.#active === ex && !this.#requestDone) this.abort()
  }

  /** The active exchange is over when both its request and its response are. */
  #next(): void {
    if (!this.#active || !this.#responseDone || !this.#requestDone) return
    this.#active = null
    if (!this.#keepAlive) {
      this.#setGone()
      return
    }
    // Not from inside the parser: what follows the response in this read answers no request yet.
    if (this.#parsing) this.#startAfterParse = true
    else {
      const ex = this.#queue.shift()
      if (ex) this.#start(ex)
    }
  }

  #setGone(): void {
    if (this.#gone) return
    this.#gone = true
    const q = this.#queue
    this.#queue = []
    for (const ex of q) ex.onError(new UpstreamGoneError())
  }

  #fail(err: ProtocolError): void {
    const ex = this.#active
    this.abort()
    if (ex) ex.onError(err)
    else this.#o.onStray?.(err)
  }

  #onData = (chunk: Buffer): void => {
    if (!this.#parser || this.#halt) return
    let rest = chunk
    let failure: ProtocolError | null = null
    this.#parsing = true
    this.#o.onParse?.()
    try {
      while (rest.length > 0 && !this.#halt) {
        if (this.#bodyLeft > 0) {
          // Our own body: slices of the read, no copy.
          const n = Math.min(rest.length, this.#bodyLeft)
          this.#bodyLeft -= n
          this.#active?.onBody(n === rest.length ? rest : rest.subarray(0, n))
          rest = rest.subarray(n)
          if (this.#bodyLeft === 0) this.#bodyDone()
          continue
        }
        const p = this.#parser
        if (!p) break
        const r = p.execute(rest)
        if (typeof r !== 'number') {
          failure = r
          break
        }
        if (this.#halt || this.#upgradeHead) {
          rest = rest.subarray(r)
          break
        }
        if (!this.#ownBody) break
        // The head of a body of declared length has been parsed: llhttp starts afresh for the next message
        // (its "upgrade" exit leaves state behind that would hide later errors).
        this.#ownBody = false
        p.initialize(RESPONSE_TYPE, {}, this.#maxHeaderBytes, 0)
        rest = rest.subarray(r)
        if (this.#bodyLeft === 0) this.#bodyDone()
      }
    } catch (err) {
      // A bug in a callback (they run inside execute): this exchange is lost, never the process.
      const ex = this.#active
      this.abort()
      this.#o.onBug(err, ex)
      return
    } finally {
      this.#parsing = false
      this.#o.onParsed?.()
    }
    if (failure) {
      this.#fail(failure)
      return
    }
    if (this.#halt) {
      this.#fail(this.#halt)
      return
    }
    if (this.#upgradeHead) {
      this.#handOver(this.#upgradeHead, rest)
      return
    }
    if (this.#startAfterParse) {
      this.#startAfterParse = false
      const ex = this.#queue.shift()
      if (ex) this.#start(ex)
    }
  }

  /** Our own body (#bodyLeft) is whole: the response is. */
  #bodyDone(): void {
    this.#bodyLeft = -1
    const ex = this.#active
    if (!ex) return
    this.#responseDone = true
    ex.onEnd([])
    this.#next()
  }

  #onEof = (): void => {
    if (this.#halt || this.#detached) {
      this.#setGone()
      return
    }
    const p = this.#parser
    // End of input completes a close-delimited body; any other unfinished response was cut short.
    if (p && this.#active && this.#responded && !this.#responseDone) {
      this.#o.onParse?.()
      try {
        p.finish()
      } catch (err) {
        const ex = this.#active
        this.abort()
        this.#o.onBug(err, ex)
        return
      } finally {
        this.#o.onParsed?.()
      }
    }
    if (this.#active && !this.#responseDone) {
      this.#fail(reset('the upstream closed before the response ended'))
      return
    }
    this.#active = null
    this.#setGone()
    // As Node's client does at the server's end of input: nothing more can be asked of this connection.
    this.socket.destroy()
  }

  #onClose = (): void => {
    this.#onEof()
    this.#closeParser()
  }

  #closeParser(): void {
    const p = this.#parser
    this.#parser = null
    p?.close()
  }

  #handOver(head: UpstreamHead, rest: Buffer): void {
    const ex = this.#active!
    const s = this.socket
    this.#active = null
    this.#detached = true
    this.#setGone()
    s.removeListener('data', this.#onData)
    s.removeListener('end', this.#onEof)
    s.removeListener('close', this.#onClose)
    // As Node's client does on an upgrade: whoever takes the socket next starts it flowing.
    ;(s as { readableFlowing: boolean | null }).readableFlowing = null
    this.#closeParser()
    ex.onUpgrade(head, s, rest)
  }

  // ---- llhttp callbacks (inside execute/finish)

  onMessageBegin(): void {
    // A response starts: there must be a request waiting for it (a 1xx leaves it waiting for the final one).
    if (!this.#halt && (!this.#active || this.#responseDone))
      this.#halt = protocolError('HPE_UNSOLICITED_RESPONSE', 'a response to no request')
  }

  onHeaders(headers: string[], _url: string): void {
    for (let i = 0; i < headers.length; i++) this.#flushed.push(headers[i]!)
  }

  onHeadersComplete(
    _major: number,
    _minor: number,
    headers: string[] | undefined,
    _method: number | undefined,
    _url: string | undefined,
    status: number | undefined,
    statusMessage: string | undefined,
    _upgrade: boolean,
    keepAlive: boolean,
  ): number {
    if (this.#halt) return 0
    let raw = headers
    if (raw === undefined) {
      raw = this.#flushed
      this.#flushed = []
    }
    const ex = this.#active
    if (!ex || this.#responded) {
      this.#halt = protocolError('HPE_UNSOLICITED_RESPONSE', 'a response to no request')
      return 0
    }
    const code = status ?? 0
    const head: UpstreamHead = {
      status: code,
      statusMessage: statusMessage ?? '',
      rawHeaders: raw,
      keepAlive,
    }
    if (code === 101) {
      // llhttp stops after a 101 whatever its fields: the rest is the new protocol's.
      if (ex.upgrade) {
        this.#responded = true
        this.#upgradeHead = head
      } else
        this.#halt = protocolError('HPE_UNEXPECTED_UPGRADE', '101 to a request that asked for no upgrade')
      return 0
    }
    if (code < 200) {
      ex.onInformation(code, raw)
      return 1
    }
    this.#responded = true
    this.#keepAlive = keepAlive
    ex.onResponse(head)
    if (ex.method === 'HEAD') return 1
    if (this.#halt || code === 204 || code === 304) return 0
    const length = declaredLength(raw)
    if (length < 0) return 0
    this.#ownBody = true
    this.#bodyLeft = length
    return 2
  }

  onBody(chunk: Buffer): void {
    if (this.#halt || !this.#responded) return
    this.#active?.onBody(chunk)
  }

  onMessageComplete(): void {
    // A 1xx ends here too (the final response follows); a 101 is handed over once execute returns; a head
    // whose body we read ourselves "ends" here too (#ownBody).
    if (this.#halt || !this.#responded || this.#upgradeHead || this.#ownBody) return
    const ex = this.#active
    if (!ex) return
    const trailers = this.#flushed
    this.#flushed = []
    this.#responseDone = true
    ex.onEnd(trailers)
    this.#next()
  }
}
