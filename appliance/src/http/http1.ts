// HTTP/1.1 between the client and the flow's one upstream connection, on llhttp both ways (llhttp.ts: the
// parser Node's own http module drives, strict): requests parsed here from the client stream, answered in
// order — by us (exchange.ts decided so) or by the origin through upstream1.ts, which carries them one at a
// time. The responses are written here too (status line, fields, framing for the client's version), so no
// http.Server, IncomingMessage or ServerResponse is made per request (bench/http-intercept.ts).
//
// Order: the request at the head of the queue is the one being answered. Requests pipelined behind it are
// parsed as they come but wait: their bodies are held (at most what one read carried, since reading stops
// while the head's answer is pending) and sent upstream when their turn comes.

import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { HTTP1_FRAMING, planRequest, planResponse, type RequestPlan, type ResponseHook } from './exchange.ts'
import type { FlowLifetime } from './flow.ts'
import {
  contentLength,
  type Fields,
  fieldsFromRaw,
  firstField,
  rawFromFields,
  removeField,
  setField,
  stripHopByHop,
  stripHopByHopRaw,
} from './headers.ts'
import { type LlhttpParser, METHODS, type ParserCallbacks, requestParser } from './llhttp.ts'
import { type LocalResponse, localResponse, type ResponseHead } from './local.ts'
import type { ExchangeObserver, HttpLimits, InterceptOptions } from './types.ts'
import {
  type BodyFraming,
  Http1Upstream,
  type ProtocolError,
  requestHead,
  type UpstreamExchange,
  UpstreamGoneError,
  type UpstreamHead,
} from './upstream1.ts'
import { rsvMaskFor } from './ws-frames.ts'
import { relayWebSocket } from './ws-relay.ts'

type ForwardPlan = Extract<RequestPlan, { kind: 'forward' }>

export function serveHttp1(flow: FlowLifetime, o: InterceptOptions, limits: Required<HttpLimits>): void {
  new Http1Flow(flow, o, limits)
}

/** Methods for which Node's client sent `Content-Length: 0` on a request without body framing. */
const BODYLESS_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'])

class Http1Flow implements ParserCallbacks {
  readonly flow: FlowLifetime
  readonly client: Duplex
  readonly o: InterceptOptions
  readonly limits: Required<HttpLimits>
  readonly upstream: Http1Upstream
  /** requests in arrival order; [0] is being answered */
  readonly queue: Exchange[] = []
  upstreamGone = false
  #parser: LlhttpParser | null
  /** the request being parsed (its body and trailers go to it) */
  #parsing: Exchange | null = null
  #flushed: string[] = []
  #url = ''
  /** the client's FIN has come: answer what was asked, then close */
  #clientEnded = false
  /** no further request will be served (a response said close, or the input is broken) */
  #closing = false
  /** the client stream has gone to a WebSocket relay (or is being refused one) */
  #detached = false
  /** reading the client stops while a pipelined request waits or the upstream is full */
  #heldForOrder = false
  #heldForUpstream = false
  #corked = false
  /** inside a parse of either side: writes are uncorked when it returns */
  #inParse = 0
  /** a request that ends the connection has been parsed: what follows it is not read */
  #lastParsed = false

  constructor(flow: FlowLifetime, o: InterceptOptions, limits: Required<HttpLimits>) {
    this.flow = flow
    this.client = flow.client
    this.o = o
    this.limits = limits
    this.#parser = requestParser(this, limits.maxHeaderBytes)
    this.upstream = new Http1Upstream(flow.upstream, {
      maxHeaderBytes: limits.maxHeaderBytes,
      onBug: (err, ex) => {
        this.bug(err)
        if (ex instanceof Exchange) this.client.destroy()
        else if (ex instanceof UpgradeExchange) ex.socket.destroy()
      },
      onStray: () => {
        this.o.stats.malformed.upstream++
      },
      onParse: () => {
        this.#inParse++
      },
      onParsed: () => {
        this.#inParse--
        this.uncork()
      },
    })
    const upstreamEnded = () => {
      this.upstreamGone = true
      if (this.queue.length === 0) flow.endGracefully(this.client)
    }
    flow.upstream.once('end', upstreamEnded)
    flow.upstream.once('close', upstreamEnded)
    flow.upstream.on('drain', this.#upstreamDrained)
    this.client.on('data', this.#onData)
    this.client.on('end', this.#onEnd)
    this.client.once('close', () => {
      this.#closeParser()
      if (!this.#detached) {
        for (const x of this.queue) x.abandon()
        this.queue.length = 0
      }
      flow.endGracefully(flow.upstream)
    })
  }

  bug(err: unknown): void {
    this.o.stats.internalErrors++
    this.o.log?.warn(
      { err: err instanceof Error ? err.stack : String(err) },
      'HTTP layer error; exchange reset',
    )
  }

  /**
   * Writes to the client made while one read is parsed go out together (one TLS record, one TCP burst):
   * corked here, uncorked when the parse returns (or on the next tick, outside a parse).
   */
  cork(): void {
    if (this.#corked) return
    this.#corked = true
    this.client.cork()
    if (this.#inParse === 0) process.nextTick(this.uncork)
  }

  readonly uncork = (): void => {
    if (!this.#corked || this.#inParse > 0) return
    this.#corked = false
    this.client.uncork()
  }

  #closeParser(): void {
    const p = this.#parser
    this.#parser = null
    p?.close()
  }

  // ------------------------------------------------------------------------------------ client input

  readonly #onData = (chunk: Buffer): void => {
    this.flow.touch()
    let rest: Buffer | null = chunk
    while (rest && rest.length > 0) {
      const p = this.#parser
      // Past the last request we serve (a close is due), input is read and dropped.
      if (!p || this.#closing || this.#lastParsed || this.#detached) break
      let r: ReturnType<LlhttpParser['execute']>
      this.#inParse++
      try {
        r = p.execute(rest)
      } catch (err) {
        // A bug in a callback: the parser's state cannot be trusted; this connection is lost, no other.
        this.#inParse--
        this.uncork()
        this.bug(err)
        this.client.destroy()
        return
      }
      this.#inParse--
      this.uncork()
      if (typeof r !== 'number') {
        // After a request that ends the connection, llhttp refuses what follows: it is not read anyway.
        if (!this.#lastParsed) this.#malformed(r)
        break
      }
      const last = this.queue.at(-1)
      // An upgrade stops the parser after its message: the rest of the read is the new protocol's, or — when
      // we serve the request as plain HTTP/1.1 (h2c and any other upgrade) — the next request.
      if (last && last.upgradeHead === null && last.parsedUpgrade) {
        last.parsedUpgrade = false
        if (last.websocket || last.connect) {
          last.upgradeHead = rest.subarray(r)
          this.#detach()
          this.#pump()
          return
        }
      } else if (r === 0) break
      rest = r < rest.length ? rest.subarray(r) : null
    }
    this.#hold()
  }

  readonly #onEnd = (): void => {
    const p = this.#parser
    if (p && !this.#closing && !this.#detached) {
      const r = p.finish()
      if (r) {
        this.#malformed(r)
        return
      }
    }
    this.#clientEnded = true
    // With nothing left to answer we close too (the client half-closed after its last request).
    if (this.queue.length === 0) this.flow.endGracefully(this.client)
  }

  /** llhttp refused the input: 400 (431 for an oversized head) unless an answer has begun; then close. */
  #malformed(err: ProtocolError): void {
    const { stats } = this.o
    this.#closing = true
    this.#closeParser()
    stats.malformed.client++
    const current = this.queue[0]
    if (current?.headSent || !this.client.writable) {
      this.client.destroy()
      return
    }
    stats.localResponses.bad_request++
    for (const x of this.queue) x.abandon()
    this.queue.length = 0
    writeRaw(this.client, localResponse(err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, 'bad_request', true))
    this.flow.endGracefully(this.client)
  }

  /** Reading stops while a request waits for an earlier one's answer (and while the upstream is full). */
  #hold(): void {
    const hold = this.queue.length > 1
    if (hold !== this.#heldForOrder) {
      this.#heldForOrder = hold
      this.#flowControl()
    }
  }

  readonly #upstreamDrained = (): void => {
    if (!this.#heldForUpstream) return
    this.#heldForUpstream = false
    this.#flowControl()
  }

  /** A body chunk could not go upstream at once: read no more of the client until the upstream drains. */
  upstreamFull(): void {
    this.#heldForUpstream = true
    this.#flowControl()
  }

  #flowControl(): void {
    if (this.#detached) return
    if (this.#heldForOrder || this.#heldForUpstream) this.client.pause()
    else this.client.resume()
  }

  // ------------------------------------------------------------------------------ llhttp (requests)

  onMessageBegin(): void {}

  onHeaders(headers: string[], url: string): void {
    for (let i = 0; i < headers.length; i++) this.#flushed.push(headers[i]!)
    this.#url += url
  }

  onHeadersComplete(
    major: number,
    minor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    _status: number | undefined,
    _statusMessage: string | undefined,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    let raw = headers
    if (raw === undefined) {
      raw = this.#flushed
      this.#flushed = []
    }
    let target = url
    if (target === undefined || target === '') {
      target = this.#url
      this.#url = ''
    }
    const x = new Exchange(this, METHODS[method ?? -1] ?? '', target, major, minor, raw, keepAlive, upgrade)
    this.#parsing = x
    this.queue.push(x)
    if (!keepAlive || x.websocket || x.connect) this.#lastParsed = true
    // The first in the queue is answered at once, the others when their turn comes; a handshake once the
    // bytes after its head are known (#onData).
    if (this.queue.length === 1 && !x.websocket && !x.connect) x.begin()
    return 0
  }

  onBody(chunk: Buffer): void {
    this.#parsing?.requestBody(chunk)
  }

  onMessageComplete(): void {
    const x = this.#parsing
    if (!x) return
    this.#parsing = null
    const trailers = this.#flushed
    this.#flushed = []
    x.requestComplete(trailers)
  }

  // --------------------------------------------------------------------------------------- answers

  /** The head of the queue is answered and its request read: the next one's turn. */
  next(): void {
    const done = this.queue.shift()
    if (!done) return
    if (!done.keepAlive || (this.#clientEnded && this.queue.length === 0)) {
      done.abandon()
      // The answer said close (or the client half-closed after its last request): end after it.
      this.#closing = true
      for (const x of this.queue) x.abandon()
      this.queue.length = 0
      this.flow.endGracefully(this.client)
      return
    }
    if (this.upstreamGone && this.queue.length === 0) {
      this.flow.endGracefully(this.client)
      return
    }
    const x = this.queue[0]
    if (x) x.begin()
    this.#hold()
  }

  upstreamFailed(x: Exchange, err: ProtocolError): void {
    const { stats } = this.o
    this.upstreamGone = true
    if (err.code?.startsWith('HPE_')) stats.malformed.upstream++
    if (!x.headSent) {
      stats.localResponses.upstream_error++
      x.sendLocal(localResponse(502, 'upstream_error', true))
    } else {
      stats.aborted++
      this.client.destroy()
    }
  }

  /** A WebSocket handshake (or CONNECT) took the client stream: no more HTTP/1.1 is parsed from it. */
  #detach(): void {
    this.#detached = true
    this.#closeParser()
    this.client.removeListener('data', this.#onData)
    this.client.removeListener('end', this.#onEnd)
    this.client.pause()
  }

  /** Starts the upgrade at the head of the queue once its turn has come (it is the last request). */
  #pump(): void {
    const x = this.queue[0]
    if (x?.upgradeHead) x.begin()
  }

  /** The upgrade's answer: the stream goes to whoever reads it next (the relay), or closes. */
  upgradeDone(): void {
    this.queue.length = 0
    ;(this.client as { readableFlowing: boolean | null }).readableFlowing = null
  }
}

// ------------------------------------------------------------------------------------------ exchanges

/** How the response body is handled: relayed as it comes, collected for onResponse, or read off. */
const RELAY = 0
const COLLECT = 1
const DISCARD = 2

/** One request from the client and its answer; toward the origin through upstream1.ts. */
class Exchange implements UpstreamExchange {
  readonly f: Http1Flow
  method: string
  head = ''
  framing: BodyFraming = 'none'
  readonly upgrade = false
  readonly target: string
  readonly minor: number
  readonly major: number
  readonly raw: string[]
  /** the client's keep-alive and ours: false once either side said close */
  keepAlive: boolean
  /** llhttp stopped after this head (Upgrade + Connection: upgrade, or CONNECT) */
  parsedUpgrade: boolean
  readonly websocket: boolean
  readonly connect: boolean
  /** bytes the client sent past an upgrade's head (set once its head has been parsed) */
  upgradeHead: Buffer | null = null
  expectContinue = false
  sent100 = false
  /** an answer has begun (head written) / ended */
  headSent = false
  finished = false
  /** the client's request has been read whole (its body gone upstream, or read off) */
  requestDone = false
  #trailers: string[] = []
  #w: ExchangeObserver | undefined
  #hook: ResponseHook | null = null
  /** 'wait': not begun; 'up': its body goes upstream; 'drop': answered here, its body is read off */
  #body: 'wait' | 'up' | 'drop' = 'wait'
  #held: Buffer[] | null = null
  #started = false
  #mode = RELAY
  #chunks: Buffer[] | null = null
  #collected: ResponseHead | null = null
  #bodyless = false
  #chunkedOut = false
  #paused = false
  /** abandoned (the connection closes first, or the client went away): nothing more is written for it */
  #dead = false

  constructor(
    f: Http1Flow,
    method: string,
    target: string,
    major: number,
    minor: number,
    raw: string[],
    keepAlive: boolean,
    upgrade: boolean,
  ) {
    this.f = f
    this.method = method
    this.target = target
    this.major = major
    this.minor = minor
    this.raw = raw
    this.keepAlive = keepAlive
    this.parsedUpgrade = upgrade
    this.connect = method === 'CONNECT'
    this.websocket = upgrade && !this.connect && isWebSocketUpgrade(method, raw)
    if (this.websocket || this.connect) this.keepAlive = false
  }

  /** The request's turn: checks, decision, then a local answer or the upstream. */
  begin(): void {
    const { f } = this
    const { stats } = f.o
    f.flow.touch()
    f.cork()
    if (this.connect) {
      stats.localResponses.method_not_allowed++
      this.#upgradeAnswered()
      writeRaw(f.client, localResponse(405, 'method_not_allowed', true))
      return
    }
    const fields = fieldsFromRaw(this.raw)
    if (!this.websocket && this.major === 1 && this.minor === 1) {
      // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
      if (firstField(fields, 'host') === undefined) {
        stats.malformed.client++
        stats.localResponses.bad_request++
        this.sendLocal(localResponse(400, 'bad_request', true))
        return
      }
      // RFC 9110 §10.1.1, as Node's server: 100-continue is honoured (the origin's 100 is relayed), any other
      // expectation is a 417.
      const expect = firstField(fields, 'expect')
      if (expect !== undefined) {
        if (!/(?:^|\W)100-continue(?:$|\W)/i.test(expect)) {
          this.#body = 'drop'
          this.#write(417, STATUS_CODES[417]!, [['content-length', '0']], true)
          this.#end()
          return
        }
        this.expectContinue = true
      }
    }
    const plan = planRequest(
      {
        method: this.method,
        target: this.target,
        fields,
        httpVersion: `${this.major}.${this.minor}`,
        ...(this.websocket ? { upgrade: true } : {}),
      },
      f.o,
      HTTP1_FRAMING,
    )
    const w = plan.watch
    this.#w = w
    if (this.websocket) {
      this.#beginUpgrade(plan, w)
      return
    }
    // A final answer to an Expect: 100-continue request before its 100 closes the connection: the client may
    // still hold the body (RFC 9110 §10.1.1).
    if (plan.kind === 'respond') {
      w?.requestEnd()
      this.sendLocal(plan.response)
      return
    }
    if (f.upstreamGone) {
      f.upstreamFailed(this, new UpstreamGoneError())
      return
    }
    const r = plan.request
    this.framing = bodyFraming(fields)
    setFraming(r.fields, fields, this.framing, r.method)
    this.method = r.method
    this.head = requestHead(r.method, r.target, r.fields)
    this.#hook = plan.onResponse
    this.#body = 'up'
    f.upstream.send(this)
  }

  #beginUpgrade(plan: RequestPlan, w: ExchangeObserver | undefined): void {
    const { f } = this
    // An observed handshake ends with its answer's head: what follows is frames, not an exchange.
    w?.requestEnd()
    if (plan.kind === 'respond') {
      this.#upgradeAnswered()
      writeLocal(f.client, plan.response, w)
      return
    }
    if (f.upstreamGone) {
      f.o.stats.localResponses.upstream_error++
      this.#upgradeAnswered()
      writeLocal(f.client, localResponse(502, 'upstream_error', true), w)
      return
    }
    f.upstream.send(new UpgradeExchange(f, this, plan, w))
  }

  /** The handshake was answered (101, a refusal, or ours): the client stream is the relay's or closes. */
  #upgradeAnswered(): void {
    this.finished = true
    this.requestDone = true
    this.f.upgradeDone()
  }

  upgradeAnswered(): void {
    this.#upgradeAnswered()
  }

  /** A later request, abandoned because the connection closes before its turn. */
  abandon(): void {
    if (this.#dead) return
    this.#dead = true
    if (this.#body === 'up' && this.#started && !this.requestDone) this.f.upstream.abortBody(this)
    this.#body = 'drop'
    this.#held = null
    this.#resume()
    this.#w?.end(false)
    this.#w = undefined
  }

  // ---- request body (from the client parser)

  requestBody(chunk: Buffer): void {
    this.f.flow.touch()
    if (this.#body === 'drop' || chunk.length === 0) return
    if (this.#body === 'wait' || !this.#started) {
      // Not its turn yet: held (at most one read's worth; reading stops until the turn comes).
      this.#held ??= []
      this.#held.push(chunk)
      return
    }
    this.#w?.requestBody(chunk)
    if (!this.f.upstream.writeBody(this, chunk)) this.f.upstreamFull()
  }

  requestComplete(trailers: string[]): void {
    this.requestDone = true
    this.#trailers = trailers
    if (this.#body === 'up' && this.#started && this.framing !== 'none') {
      this.#w?.requestEnd()
      this.f.upstream.endBody(this, trailers)
    }
    if (this.finished && this.f.queue[0] === this) this.f.next()
  }

  // ---- upstream (upstream1.ts)

  onStart(): void {
    this.#started = true
    const held = this.#held
    this.#held = null
    if (held) for (const c of held) this.requestBody(c)
    if (this.framing === 'none' || this.requestDone) {
      this.#w?.requestEnd()
      this.f.upstream.endBody(this, this.#trailers)
    }
  }

  onInformation(status: number, raw: string[]): void {
    const { f } = this
    if (this.#dead) return
    // 1xx only to HTTP/1.1 clients (RFC 9110 §15.2). The client waits for a 100 before sending its body: the
    // origin's is relayed. RFC 8297 Early Hints are relayed (Link fields); other 1xx are the upstream's.
    if (this.headSent || this.minor === 0) return
    if (status === 100) {
      if (!this.expectContinue || this.sent100) return
      this.sent100 = true
      f.cork()
      f.client.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1')
    } else if (status === 103) {
      const link: string[] = []
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'link') link.push(raw[i + 1]!)
      if (link.length === 0 || link.some((l) => BAD_VALUE.test(l))) return
      f.cork()
      f.client.write(`HTTP/1.1 103 Early Hints\r\nLink: ${link.join(', ')}\r\n\r\n`, 'latin1')
    }
  }

  onResponse(up: UpstreamHead): void {
    const { f } = this
    const { stats } = f.o
    f.flow.touch()
    if (this.#dead) {
      this.#mode = DISCARD
      return
    }
    // The upstream will close after this response: so does the client connection (one upstream per flow).
    if (!up.keepAlive) {
      f.upstreamGone = true
      this.keepAlive = false
    }
    const status = up.status
    // llhttp takes any three digits and a reason no client should be given (control characters): a status
    // no client could be given is a malformed response, a reason it would refuse is replaced.
    if (status < 200 || status > 999) {
      this.#mode = DISCARD
      f.upstream.abort()
      f.upstreamFailed(this, Object.assign(new Error(`status ${status}`), { code: 'HPE_INVALID_STATUS' }))
      return
    }
    const reason = BAD_REASON.test(up.statusMessage) ? (STATUS_CODES[status] ?? '') : up.statusMessage
    const hook = this.#hook
    if (!hook) {
      stats.upstreamResponses++
      const raw = stripHopByHopRaw(up.rawHeaders, HTTP1_FRAMING.response)
      this.#w?.response(status, reason, pairs(raw))
      this.#writeRaw(status, reason, raw, false)
      return
    }
    const head: ResponseHead = {
      status,
      statusMessage: reason,
      fields: stripHopByHop(fieldsFromRaw(up.rawHeaders), HTTP1_FRAMING.response),
    }
    const bodyless = this.method === 'HEAD' || status === 204 || status === 304
    const declared = contentLength(head.fields)
    if (!bodyless && declared !== null && declared <= f.limits.maxResponseBodyBytes) {
      stats.responseBodies.offered++
      this.#mode = COLLECT
      this.#chunks = []
      this.#collected = head
    } else {
      if (!bodyless) stats.responseBodies.headers_only++
      this.#finishHook(head, undefined, bodyless)
    }
  }

  /** onResponse, then the answer (the body: `body` as offered, else the origin's streaming after). */
  #finishHook(head: ResponseHead, body: Buffer | undefined, bodyless: boolean): void {
    const { f } = this
    const p = planResponse(this.#hook!, head, body, f.o)
    if (!p.ok) {
      this.#mode = DISCARD // read off, so the upstream connection stays usable
      this.sendLocal(p.response)
      return
    }
    f.o.stats.upstreamResponses++
    const whole = p.body ?? body
    if (whole && !bodyless) setField(p.head.fields, 'content-length', String(whole.length))
    this.#w?.response(p.head.status, p.head.statusMessage, p.head.fields)
    this.#writeRaw(p.head.status, p.head.statusMessage, rawFromFields(p.head.fields), false)
    if (whole) {
      if (!bodyless) {
        this.#w?.responseBody(whole)
        this.#bodyChunk(whole)
      }
      this.#mode = DISCARD
      this.#end()
    } else this.#mode = RELAY
  }

  onBody(chunk: Buffer): void {
    this.f.flow.touch()
    if (this.#dead) return
    if (this.#mode === RELAY) {
      this.#w?.responseBody(chunk)
      if (!this.#bodyChunk(chunk) && !this.#paused && !this.f.client.destroyed) {
        // The client reads slower than the origin sends: stop reading the origin until it drains.
        this.#paused = true
        this.f.upstream.pause()
        this.f.client.once('drain', this.#resume)
      }
    } else if (this.#mode === COLLECT) this.#chunks!.push(chunk)
  }

  readonly #resume = (): void => {
    if (!this.#paused) return
    this.#paused = false
    this.f.client.removeListener('drain', this.#resume)
    this.f.upstream.resume()
  }

  onEnd(trailers: string[]): void {
    if (this.#dead) return
    if (this.#mode === RELAY) {
      this.#end(trailers)
      // An answered response holds the origin back no longer.
      this.#resume()
    } else if (this.#mode === COLLECT) {
      const chunks = this.#chunks!
      this.#chunks = null
      this.#finishHook(this.#collected!, Buffer.concat(chunks), false)
    }
  }

  onError(err: ProtocolError): void {
    this.#mode = DISCARD
    if (this.finished || this.#dead) {
      this.f.upstreamGone = true
      return
    }
    this.f.upstreamFailed(this, err)
  }

  onUpgrade(): void {
    // Not asked for: upstream1.ts fails a 101 to a plain request instead.
  }

  // ---- the answer, written here

  /** A response made here (Deny, 400, 502, a script's); `close` ends the connection after it. */
  sendLocal(r: LocalResponse): void {
    if (this.#dead) return
    if (this.#w) observeLocal(this.#w, r)
    if (r.close) this.keepAlive = false
    // Its request is not going upstream: whatever body it still has is read and dropped.
    if (this.#body !== 'up' || !this.#started) {
      this.#body = 'drop'
      this.#held = null
    }
    this.#writeRaw(r.status, r.statusMessage, rawFromFields(r.fields), true)
    if (!this.#bodyless && r.body.length > 0) this.#bodyChunk(r.body)
    this.#end()
  }

  #write(status: number, reason: string, fields: Fields, local: boolean): void {
    this.#writeRaw(status, reason, rawFromFields(fields), local)
  }

  /**
   * The status line and fields (names as given; hop-by-hop ones already gone), with what this hop adds:
   * the framing for the client's version, Connection, and a Date on answers made here.
   */
  #writeRaw(status: number, reason: string, raw: string[], local: boolean): void {
    const { f } = this
    this.#bodyless = this.method === 'HEAD' || status === 204 || status === 304
    let length = false
    let te: string | undefined
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!
      if (n.length === 14 && n.toLowerCase() === 'content-length') length = true
      else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') te = raw[i + 1]
    }
    // A 100-continue request answered before its 100: the body may still come (RFC 9110 §10.1.1).
    if (this.expectContinue && !this.sent100) this.keepAlive = false
    if (!length && !this.#bodyless) {
      if (te !== undefined) {
        // Codings the origin applied stay; chunked last frames the body, else only the close does.
        if (/(?:^|,)\s*chunked\s*$/i.test(te)) this.#chunkedOut = true
        else this.keepAlive = false
      } else if (this.minor >= 1) this.#chunkedOut = true
      else this.keepAlive = false // HTTP/1.0: the close ends the body
    } else if (!length && this.minor === 0) this.keepAlive = false
    let s = `HTTP/1.1 ${status} ${reason}\r\n`
    for (let i = 0; i + 1 < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`
    if (local) s += `Date: ${httpDate()}\r\n`
    s += this.keepAlive ? 'Connection: keep-alive\r\n' : 'Connection: close\r\n'
    if (this.#chunkedOut && te === undefined) s += 'Transfer-Encoding: chunked\r\n'
    this.headSent = true
    f.cork()
    f.client.write(`${s}\r\n`, 'latin1')
  }

  /** A body chunk toward the client, chunk-framed when the answer is chunked. False: the client is full. */
  #bodyChunk(c: Buffer): boolean {
    const client = this.f.client
    if (this.#bodyless || c.length === 0 || client.destroyed) return true
    if (!this.#chunkedOut) return client.write(c)
    this.f.cork()
    client.write(`${c.length.toString(16)}\r\n`, 'latin1')
    client.write(c)
    return client.write('\r\n', 'latin1')
  }

  /** The answer is whole; the connection moves on once the request has been read too. */
  #end(trailers?: string[]): void {
    const { f } = this
    if (this.#chunkedOut && !this.#bodyless) {
      let last = '0\r\n'
      if (trailers)
        for (let i = 0; i + 1 < trailers.length; i += 2) last += `${trailers[i]}: ${trailers[i + 1]}\r\n`
      f.cork()
      f.client.write(`${last}\r\n`, 'latin1')
    }
    this.finished = true
    this.#w?.end(true)
    this.#w = undefined
    f.flow.touch()
    // Closing after it need not wait for the rest of the request (Node's server does the same).
    if ((this.requestDone || !this.keepAlive) && f.queue[0] === this) f.next()
  }
}

/** A WebSocket handshake: the 101 turns both connections into a relay; a refusal is passed on, then closed. */
class UpgradeExchange implements UpstreamExchange {
  readonly method: string
  readonly head: string
  readonly framing = 'none' as const
  readonly upgrade = true
  readonly f: Http1Flow
  readonly x: Exchange
  readonly socket: Duplex
  readonly w: ExchangeObserver | undefined

  constructor(f: Http1Flow, x: Exchange, plan: ForwardPlan, w: ExchangeObserver | undefined) {
    this.f = f
    this.x = x
    this.socket = f.client
    this.w = w
    this.method = plan.request.method
    this.head = requestHead(plan.request.method, plan.request.target, plan.request.fields)
  }

  onStart(): void {}
  onInformation(): void {}

  /** An observed handshake ends with its answer's head. */
  #answered(status: number, message: string, fields: Fields): void {
    this.w?.response(status, message, fields)
    this.w?.end(true)
    this.x.upgradeAnswered()
  }

  onUpgrade(up: UpstreamHead, upSocket: Duplex, upHead: Buffer): void {
    const { f, socket } = this
    try {
      const { stats } = f.o
      stats.upstreamResponses++
      stats.websocketUpgrades++
      const fields = fieldsFromRaw(up.rawHeaders)
      const message = up.statusMessage || 'Switching Protocols'
      this.#answered(101, message, fields)
      f.uncork()
      socket.write(rawHead(101, message, fields))
      relayWebSocket(socket, this.x.upgradeHead ?? Buffer.alloc(0), upSocket, upHead, {
        stats,
        flow: f.flow,
        log: f.o.log,
        maxFrameBytes: f.limits.maxWebSocketFrameBytes,
        rsvMask: rsvMaskFor(firstField(fields, 'sec-websocket-extensions')),
      })
    } catch (err) {
      f.bug(err)
      upSocket.destroy()
    }
  }

  // Upgrade refused by the origin: its answer goes back as is, and the connection closes.
  onResponse(up: UpstreamHead): void {
    this.f.o.stats.upstreamResponses++
    const fields = stripHopByHop(fieldsFromRaw(up.rawHeaders))
    fields.push(['connection', 'close'])
    this.#answered(up.status, up.statusMessage, fields)
    this.socket.write(rawHead(up.status, up.statusMessage, fields))
  }

  onBody(chunk: Buffer): void {
    this.socket.write(chunk)
  }

  onEnd(): void {
    this.f.flow.endGracefully(this.socket)
  }

  onError(err: ProtocolError): void {
    const { stats } = this.f.o
    if (err.code?.startsWith('HPE_')) stats.malformed.upstream++
    stats.localResponses.upstream_error++
    this.x.upgradeAnswered()
    writeLocal(this.socket, localResponse(502, 'upstream_error', true), this.w)
  }
}

// --------------------------------------------------------------------------------------------- helpers

/** What no client should be given in a reason phrase or a field value (Node's checkInvalidHeaderChar). */
const BAD_REASON = /[^\t\x20-\x7e\x80-\xff]/
const BAD_VALUE = BAD_REASON

function isWebSocketUpgrade(method: string, raw: readonly string[]): boolean {
  if (method !== 'GET') return false
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length !== 7 || raw[i]!.toLowerCase() !== 'upgrade') continue
    if (raw[i + 1]!.split(',').some((t) => t.trim().toLowerCase() === 'websocket')) return true
  }
  return false
}

/** The client's request body framing, as llhttp accepted it (chunked last when Transfer-Encoding is sent). */
function bodyFraming(fields: Fields): BodyFraming {
  let length = false
  for (let i = 0; i < fields.length; i++) {
    const n = fields[i]![0]
    if (n === 'transfer-encoding') return 'chunked'
    if (n === 'content-length' && fields[i]![1].trim() !== '0') length = true
  }
  return length ? 'length' : 'none'
}

/**
 * The forwarded request carries the client's framing, whatever became of its fields (the sandbox already
 * refuses scripts that change them, script/result.ts): the client's Content-Length or Transfer-Encoding, or
 * none — then, as Node's client did, `Content-Length: 0` for methods that usually carry a body.
 */
function setFraming(out: Fields, client: Fields, framing: BodyFraming, method: string): void {
  const te = firstField(out, 'transfer-encoding')
  const cl = firstField(out, 'content-length')
  if (framing === 'chunked') {
    const want = firstField(client, 'transfer-encoding')!
    if (cl !== undefined) removeField(out, 'content-length')
    if (te !== want) setField(out, 'transfer-encoding', want)
  } else if (framing === 'length') {
    const want = firstField(client, 'content-length')!
    if (te !== undefined) removeField(out, 'transfer-encoding')
    if (cl !== want) setField(out, 'content-length', want)
  } else {
    if (te !== undefined) removeField(out, 'transfer-encoding')
    if (cl === undefined || cl.trim() !== '0') {
      if (cl !== undefined) removeField(out, 'content-length')
      if (!BODYLESS_BY_DEFAULT.has(method)) out.push(['content-length', '0'])
    }
  }
}

let dateSecond = -1
let dateText = ''
/** IMF-fixdate, computed at most once a second (RFC 9110 §5.6.7). */
function httpDate(): string {
  const now = Date.now()
  const s = Math.floor(now / 1000)
  if (s !== dateSecond) {
    dateSecond = s
    dateText = new Date(now).toUTCString()
  }
  return dateText
}

/** A response made here, told to the exchange's observer. */
function observeLocal(w: ExchangeObserver, r: LocalResponse): void {
  w.response(r.status, r.statusMessage, r.fields)
  if (r.body.length > 0) w.responseBody(r.body)
}

/** writeRaw for an (observed) handshake answered here. */
function writeLocal(socket: Duplex, r: LocalResponse, w: ExchangeObserver | undefined): void {
  if (w) {
    observeLocal(w, r)
    w.end(true)
  }
  writeRaw(socket, r)
}

function pairs(raw: readonly string[]): [string, string][] {
  const out: [string, string][] = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}

function rawHead(status: number, message: string, fields: readonly (readonly [string, string])[]): string {
  let s = `HTTP/1.1 ${status} ${message}\r\n`
  for (const [n, v] of fields) s += `${n}: ${v}\r\n`
  return `${s}\r\n`
}

/** A response straight onto the client stream, then close (a refused handshake, CONNECT, a parse error). */
function writeRaw(socket: Duplex, r: LocalResponse): void {
  const fields: Fields = [...r.fields, ['connection', 'close']]
  socket.end(Buffer.concat([Buffer.from(rawHead(r.status, r.statusMessage, fields)), r.body]))
  socket.resume() // whatever else the client sends is dropped, so its FIN is seen and the socket closes
}
