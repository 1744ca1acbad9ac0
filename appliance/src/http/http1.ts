// HTTP/1.1 between the client and the flow's one upstream connection. Toward the client: Node's own server
// (llhttp, keep-alive, pipelining, 100-continue, re-framing for the client's version) — one http.Server per
// process that never listens, handed each client stream ('connection'), with the flow's state found by the
// stream. Toward the origin: upstream1.ts, an llhttp client over the flow's upstream stream. Requests reach
// the upstream one at a time in arrival order (pipelined client requests wait their turn); responses go
// back in the same order (Node's server queues them).

import http, { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
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
  const f = new Http1Flow(flow, o, limits)
  FLOWS.set(flow.client, f)
  serverFor(limits.maxHeaderBytes).emit('connection', flow.client)
}

// ---------------------------------------------------------------------------------------------- server

/** The flow each client stream belongs to (the shared servers' handlers look it up). */
const FLOWS = new WeakMap<Duplex, Http1Flow>()
/** One server per header-size limit (in practice one per process). It holds no per-connection state. */
const SERVERS = new Map<number, http.Server>()

function serverFor(maxHeaderBytes: number): http.Server {
  let server = SERVERS.get(maxHeaderBytes)
  if (server) return server
  server = http.createServer({
    maxHeaderSize: maxHeaderBytes,
    // Host is checked in exchange.ts (and counted); Node's own check answers 400 uncounted.
    requireHostHeader: false,
    // No "Keep-Alive: timeout=5" of ours on relayed responses; the flow's idle timer closes idle connections.
    keepAliveTimeout: 0,
    requestTimeout: 0,
    joinDuplicateHeaders: false,
    // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3): Node then skips its
    // IncomingMessage's stream life cycle ('data', 'end', 'close' and their ticks).
    optimizeEmptyRequests: true,
    // Only WebSocket upgrades are taken (h2c and anything else: answered as plain HTTP/1.1, RFC 9110 §7.8).
    shouldUpgradeCallback: isWebSocketUpgrade,
  })
  // A client that half-closes after its request still gets the response.
  ;(server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
  server.on('request', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, false))
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, true))
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    const f = FLOWS.get(socket)
    if (!f) return void socket.destroy()
    f.o.stats.localResponses.method_not_allowed++
    writeRaw(socket, localResponse(405, 'method_not_allowed', true))
  })
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    const f = FLOWS.get(socket)
    if (!f) return void socket.destroy()
    f.guarded(
      () => f.clientError(err, socket),
      () => socket.destroy(),
    )
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const f = FLOWS.get(socket)
    if (!f) return void socket.destroy()
    f.guarded(
      () => f.upgrade(req, socket, head),
      () => socket.destroy(),
    )
  })
  SERVERS.set(maxHeaderBytes, server)
  return server
}

function onRequest(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
  const f = FLOWS.get(req.socket)
  if (!f) return void res.destroy()
  f.guarded(
    () => f.request(req, res, expectContinue),
    () => res.destroy(),
  )
}

// ------------------------------------------------------------------------------------------------ flow

/** Methods for which Node's client sent `Content-Length: 0` on a request without body framing. */
const BODYLESS_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'])

class Http1Flow {
  readonly flow: FlowLifetime
  readonly o: InterceptOptions
  readonly limits: Required<HttpLimits>
  readonly upstream: Http1Upstream
  inFlight = 0
  upstreamGone = false

  constructor(flow: FlowLifetime, o: InterceptOptions, limits: Required<HttpLimits>) {
    this.flow = flow
    this.o = o
    this.limits = limits
    this.upstream = new Http1Upstream(flow.upstream, limits.maxHeaderBytes, (err, ex) => {
      this.bug(err)
      if (ex instanceof Exchange) ex.res.destroy()
      else if (ex instanceof UpgradeExchange) ex.socket.destroy()
    })
    const upstreamEnded = () => {
      this.upstreamGone = true
      if (this.inFlight === 0) flow.endGracefully(flow.client)
    }
    flow.upstream.once('end', upstreamEnded)
    flow.upstream.once('close', upstreamEnded)
    flow.client.once('close', () => flow.endGracefully(flow.upstream))
  }

  /** Runs a handler; an exception costs the one exchange (counted, logged), never the process. */
  guarded(fn: () => void, recover: () => void): void {
    try {
      fn()
    } catch (err) {
      this.bug(err)
      try {
        recover()
      } catch {
        // best effort: the flow destroys both streams in the end
      }
    }
  }

  bug(err: unknown): void {
    this.o.stats.internalErrors++
    this.o.log?.warn(
      { err: err instanceof Error ? err.stack : String(err) },
      'HTTP layer error; exchange reset',
    )
  }

  readonly #resClosed = () => {
    this.inFlight--
    this.flow.touch()
    if (this.upstreamGone && this.inFlight === 0) this.flow.endGracefully(this.flow.client)
  }

  request(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    const { stats } = this.o
    this.flow.touch()
    this.inFlight++
    res.on('close', this.#resClosed)
    const fields = fieldsFromRaw(req.rawHeaders)
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
    if (req.httpVersionMinor >= 1 && firstField(fields, 'host') === undefined) {
      stats.malformed.client++
      stats.localResponses.bad_request++
      sendLocal(res, localResponse(400, 'bad_request', true))
      return
    }
    const plan = planRequest(
      { method: req.method!, target: req.url!, fields, httpVersion: req.httpVersion },
      this.o,
      HTTP1_FRAMING,
    )
    const w = plan.watch
    if (w) res.once('close', () => w.end(res.writableFinished))
    // A final answer to an Expect: 100-continue request before its 100 closes the connection (Node's
    // ServerResponse does so itself): the client may still hold the body (RFC 9110 §10.1.1).
    if (plan.kind === 'respond') {
      w?.requestEnd()
      sendLocal(res, plan.response, w)
      return
    }
    if (this.upstreamGone) {
      this.upstreamFailed(res, new UpstreamGoneError(), w)
      return
    }
    const framing = bodyFraming(fields)
    setFraming(plan.request.fields, fields, framing, plan.request.method)
    this.upstream.send(new Exchange(this, req, res, plan, framing, expectContinue))
  }

  upstreamFailed(res: ServerResponse, err: ProtocolError, w: ExchangeObserver | undefined): void {
    const { stats } = this.o
    this.upstreamGone = true
    if (err.code?.startsWith('HPE_')) stats.malformed.upstream++
    if (!res.headersSent) {
      stats.localResponses.upstream_error++
      sendLocal(res, localResponse(502, 'upstream_error', true), w)
    } else {
      stats.aborted++
      res.destroy()
    }
  }

  clientError(err: Error & { code?: string }, socket: Duplex): void {
    const { stats } = this.o
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy()
    stats.malformed.client++
    // Node's own rule: answer only when no response to this connection has started (else the bytes would
    // land inside it); _httpMessage is the ServerResponse in flight.
    const current = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
    if (current?.headersSent) return void socket.destroy()
    stats.localResponses.bad_request++
    writeRaw(socket, localResponse(err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, 'bad_request', true))
    this.flow.endGracefully(socket)
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { stats } = this.o
    this.flow.touch()
    const plan = planRequest(
      {
        method: req.method!,
        target: req.url!,
        fields: fieldsFromRaw(req.rawHeaders),
        upgrade: true,
        httpVersion: req.httpVersion,
      },
      this.o,
      HTTP1_FRAMING,
    )
    // An observed handshake ends with its answer's head: what follows is frames, not an exchange.
    const w = plan.watch
    w?.requestEnd()
    if (plan.kind === 'respond') {
      writeLocal(socket, plan.response, w)
      return
    }
    if (this.upstreamGone) {
      stats.localResponses.upstream_error++
      writeLocal(socket, localResponse(502, 'upstream_error', true), w)
      return
    }
    this.upstream.send(new UpgradeExchange(this, socket, head, plan))
  }
}

// ------------------------------------------------------------------------------------------- exchanges

/** How the response body is handled: relayed as it comes, collected for onResponse, or read off. */
const RELAY = 0
const COLLECT = 1
const DISCARD = 2

/** One request and its response (upstream1.ts calls back here). */
class Exchange implements UpstreamExchange {
  readonly method: string
  readonly head: string
  readonly framing: BodyFraming
  readonly body: IncomingMessage | null
  readonly upgrade = false
  readonly f: Http1Flow
  readonly res: ServerResponse
  readonly hook: ResponseHook | null
  readonly expectContinue: boolean
  readonly w: ExchangeObserver | undefined
  #mode = RELAY
  #chunks: Buffer[] | null = null
  #head: ResponseHead | null = null
  #paused = false
  /** a 'close' listener is on res to let the origin go if the client does */
  #held = false

  constructor(
    f: Http1Flow,
    req: IncomingMessage,
    res: ServerResponse,
    plan: ForwardPlan,
    framing: BodyFraming,
    expectContinue: boolean,
  ) {
    const r = plan.request
    this.method = r.method
    this.head = requestHead(r.method, r.target, r.fields)
    this.framing = framing
    this.body = framing === 'none' ? null : req
    this.f = f
    this.res = res
    this.hook = plan.onResponse
    this.expectContinue = expectContinue
    this.w = plan.watch
  }

  onRequestBody(chunk: Buffer): void {
    this.f.flow.touch()
    this.w?.requestBody(chunk)
  }

  onRequestEnd(): void {
    this.w?.requestEnd()
  }

  onInformation(status: number, raw: string[]): void {
    const res = this.res
    // The client waits for a 100 before sending its body: the origin's is relayed. RFC 8297 Early Hints are
    // relayed (Link fields); other 1xx (102) are the upstream's business.
    if (status === 100) {
      if (this.expectContinue && !res.headersSent) res.writeContinue()
    } else if (status === 103 && !res.headersSent) {
      const link: string[] = []
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'link') link.push(raw[i + 1]!)
      if (link.length > 0) res.writeEarlyHints({ link })
    }
  }

  onResponse(up: UpstreamHead): void {
    const { f, res } = this
    const { stats } = f.o
    f.flow.touch()
    // The upstream will close after this response: so does the client connection (one upstream per flow).
    if (!up.keepAlive) {
      f.upstreamGone = true
      res.shouldKeepAlive = false
    }
    const status = up.status
    // llhttp takes any three digits and a reason Node's writer refuses (control characters): a status
    // no client could be given is a malformed response, a reason it would refuse is replaced.
    if (status < 200 || status > 999) {
      this.#mode = DISCARD
      f.upstream.abort()
      f.upstreamFailed(
        res,
        Object.assign(new Error(`status ${status}`), { code: 'HPE_INVALID_STATUS' }),
        this.w,
      )
      return
    }
    const reason = BAD_REASON.test(up.statusMessage) ? (STATUS_CODES[status] ?? '') : up.statusMessage
    res.sendDate = false
    const hook = this.hook
    if (!hook) {
      stats.upstreamResponses++
      const raw = stripHopByHopRaw(up.rawHeaders, HTTP1_FRAMING.response)
      this.w?.response(status, reason, pairs(raw))
      res.writeHead(status, reason, raw)
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
      this.#head = head
    } else {
      if (!bodyless) stats.responseBodies.headers_only++
      this.#finish(head, undefined, bodyless)
    }
  }

  /** onResponse, then the response (the body: `body` as offered, else the origin's streaming after). */
  #finish(head: ResponseHead, body: Buffer | undefined, bodyless: boolean): void {
    const { f, res } = this
    const p = planResponse(this.hook!, head, body, f.o)
    if (!p.ok) {
      this.#mode = DISCARD // read off, so the upstream connection stays usable
      res.sendDate = true
      sendLocal(res, p.response, this.w)
      return
    }
    f.o.stats.upstreamResponses++
    const whole = p.body ?? body
    if (whole && !bodyless) setField(p.head.fields, 'content-length', String(whole.length))
    this.w?.response(p.head.status, p.head.statusMessage, p.head.fields)
    res.writeHead(p.head.status, p.head.statusMessage, rawFromFields(p.head.fields))
    if (whole) {
      if (this.w && !bodyless) this.w.responseBody(whole)
      this.#mode = DISCARD
      res.end(whole)
    } else this.#mode = RELAY
  }

  onBody(chunk: Buffer): void {
    this.f.flow.touch()
    if (this.#mode === RELAY) {
      const res = this.res
      this.w?.responseBody(chunk)
      if (!res.write(chunk) && !res.destroyed && !this.#paused) {
        // The client reads slower than the origin sends: stop reading the origin until it drains.
        if (!this.#held) {
          this.#held = true
          res.on('close', this.#resume)
        }
        this.#paused = true
        this.f.upstream.pause()
        res.once('drain', this.#resume)
      }
    } else if (this.#mode === COLLECT) this.#chunks!.push(chunk)
  }

  readonly #resume = () => {
    if (!this.#paused) return
    this.#paused = false
    this.f.upstream.resume()
  }

  onEnd(trailers: string[]): void {
    const { f, res } = this
    if (this.#mode === RELAY) {
      if (trailers.length > 0) res.addTrailers(pairs(trailers))
      res.end()
      // A finished response emits no 'drain': nothing is left for this one to hold the origin back for.
      this.#resume()
    } else if (this.#mode === COLLECT) {
      const chunks = this.#chunks!
      this.#chunks = null
      f.guarded(
        () => this.#finish(this.#head!, Buffer.concat(chunks), false),
        () => res.destroy(),
      )
    }
  }

  onError(err: ProtocolError): void {
    this.#mode = DISCARD
    this.f.upstreamFailed(this.res, err, this.w)
  }

  onUpgrade(): void {
    // Not asked for: upstream1.ts fails a 101 to a plain request instead.
  }
}

/** A WebSocket handshake: the 101 turns both connections into a relay; a refusal is passed on, then closed. */
class UpgradeExchange implements UpstreamExchange {
  readonly method: string
  readonly head: string
  readonly framing = 'none' as const
  readonly body = null
  readonly upgrade = true
  readonly f: Http1Flow
  readonly socket: Duplex
  readonly clientHead: Buffer
  readonly w: ExchangeObserver | undefined

  constructor(f: Http1Flow, socket: Duplex, clientHead: Buffer, plan: ForwardPlan) {
    this.f = f
    this.socket = socket
    this.clientHead = clientHead
    this.w = plan.watch
    this.method = plan.request.method
    this.head = requestHead(plan.request.method, plan.request.target, plan.request.fields)
  }

  onRequestBody(): void {}
  onRequestEnd(): void {}
  onInformation(): void {}

  /** An observed handshake ends with its answer's head. */
  #answered(status: number, message: string, fields: Fields): void {
    this.w?.response(status, message, fields)
    this.w?.end(true)
  }

  onUpgrade(up: UpstreamHead, upSocket: Duplex, upHead: Buffer): void {
    const { f, socket } = this
    f.guarded(
      () => {
        const { stats } = f.o
        stats.upstreamResponses++
        stats.websocketUpgrades++
        const fields = fieldsFromRaw(up.rawHeaders)
        const message = up.statusMessage || 'Switching Protocols'
        this.#answered(101, message, fields)
        socket.write(rawHead(101, message, fields))
        relayWebSocket(socket, this.clientHead, upSocket, upHead, {
          stats,
          flow: f.flow,
          log: f.o.log,
          maxFrameBytes: f.limits.maxWebSocketFrameBytes,
          rsvMask: rsvMaskFor(firstField(fields, 'sec-websocket-extensions')),
        })
      },
      () => upSocket.destroy(),
    )
  }

  // Upgrade refused by the origin: its answer goes back as is, and the connection closes (the server's
  // parser has already let go of it).
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
    this.socket.end()
  }

  onError(err: ProtocolError): void {
    const { stats } = this.f.o
    if (err.code?.startsWith('HPE_')) stats.malformed.upstream++
    stats.localResponses.upstream_error++
    writeLocal(this.socket, localResponse(502, 'upstream_error', true), this.w)
  }
}

// --------------------------------------------------------------------------------------------- helpers

/** What Node's ServerResponse refuses in a reason phrase (its checkInvalidHeaderChar). */
const BAD_REASON = /[^\t\x20-\x7e\x80-\xff]/

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const up = req.headers.upgrade
  return req.method === 'GET' && !!up && up.split(',').some((t) => t.trim().toLowerCase() === 'websocket')
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
 * The forwarded request carries the client's framing, whatever a script did to its fields (a script sees no
 * body and cannot change one): the client's Content-Length or Transfer-Encoding, or none — then, as Node's
 * client did, `Content-Length: 0` for methods that usually carry a body.
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

function sendLocal(res: ServerResponse, r: LocalResponse, w?: ExchangeObserver): void {
  if (w) observeLocal(w, r)
  if (r.close) res.shouldKeepAlive = false
  res.writeHead(r.status, r.statusMessage, rawFromFields(r.fields))
  res.end(r.body)
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

/** A response straight onto a socket the HTTP server has let go of (upgrade, CONNECT, parse error). */
function writeRaw(socket: Duplex, r: LocalResponse): void {
  const fields: Fields = [...r.fields, ['connection', 'close']]
  socket.end(Buffer.concat([Buffer.from(rawHead(r.status, r.statusMessage, fields)), r.body]))
  socket.resume() // whatever else the client sends is dropped, so its FIN is seen and the socket closes
}
