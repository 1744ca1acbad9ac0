// HTTP/1.1 between the client and the flow's one upstream connection, with Node's own parsers on both
// sides: an http.Server that never listens is handed the client stream ('connection'), and every
// upstream request goes through an agent that only ever has the flow's upstream stream (agent.ts).
// Requests reach the upstream one at a time in arrival order (pipelined client requests wait their turn);
// responses go back in the same order (Node's server queues them).

import http, { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { OneConnectionAgent, UpstreamGoneError } from './agent.ts'
import { HTTP1_FRAMING, planRequest, planResponse, type RequestPlan, type ResponseHook } from './exchange.ts'
import type { FlowLifetime } from './flow.ts'
import { guard } from './guard.ts'
import {
  contentLength,
  type Fields,
  fieldsFromRaw,
  firstField,
  rawFromFields,
  setField,
  stripHopByHop,
} from './headers.ts'
import { type LocalResponse, localResponse, type ResponseHead } from './local.ts'
import type { ExchangeObserver, HttpLimits, InterceptOptions } from './types.ts'
import { rsvMaskFor } from './ws-frames.ts'
import { relayWebSocket } from './ws-relay.ts'

type ForwardPlan = Extract<RequestPlan, { kind: 'forward' }>

export function serveHttp1(flow: FlowLifetime, o: InterceptOptions, limits: Required<HttpLimits>): void {
  const { client, upstream } = flow
  const { stats } = o
  const agent = new OneConnectionAgent(upstream)
  let inFlight = 0
  let upstreamGone = false
  const touch = () => flow.touch()

  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    // Host is checked in exchange.ts (and counted); Node's own check answers 400 uncounted.
    requireHostHeader: false,
    // No "Keep-Alive: timeout=5" of ours on relayed responses; the flow's idle timer closes idle connections.
    keepAliveTimeout: 0,
    requestTimeout: 0,
    joinDuplicateHeaders: false,
    // Only WebSocket upgrades are taken (h2c and anything else: answered as plain HTTP/1.1, RFC 9110 §7.8).
    shouldUpgradeCallback: isWebSocketUpgrade,
  })
  // A client that half-closes after its request still gets the response.
  ;(server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true

  const upstreamEnded = () => {
    upstreamGone = true
    if (inFlight === 0) flow.endGracefully(client)
  }
  upstream.once('end', upstreamEnded)
  upstream.once('close', upstreamEnded)
  client.once('close', () => flow.endGracefully(upstream))

  const sendLocal = (res: ServerResponse, r: LocalResponse, w?: ExchangeObserver) => {
    if (w) observeLocal(w, r)
    if (r.close) res.shouldKeepAlive = false
    res.writeHead(r.status, r.statusMessage, rawFromFields(r.fields))
    res.end(r.body)
  }

  const handle = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => {
    touch()
    inFlight++
    res.once('close', () => {
      inFlight--
      touch()
      if (upstreamGone && inFlight === 0) flow.endGracefully(client)
    })
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
    if (req.httpVersionMinor >= 1 && req.headers.host === undefined) {
      stats.malformed.client++
      stats.localResponses.bad_request++
      return sendLocal(res, localResponse(400, 'bad_request', true))
    }
    const plan = planRequest(
      {
        method: req.method!,
        target: req.url!,
        fields: fieldsFromRaw(req.rawHeaders),
        httpVersion: req.httpVersion,
      },
      o,
      HTTP1_FRAMING,
    )
    const w = plan.watch
    if (w) res.once('close', () => w.end(res.writableFinished))
    // A final answer to an Expect: 100-continue request before its 100 closes the connection (Node's
    // ServerResponse does so itself): the client may still hold the body (RFC 9110 §10.1.1).
    if (plan.kind === 'respond') {
      w?.requestEnd()
      return sendLocal(res, plan.response, w)
    }
    if (upstreamGone) return upstreamFailed(res, new UpstreamGoneError(), w)

    let upReq: http.ClientRequest
    try {
      upReq = request(plan)
    } catch (err) {
      return upstreamFailed(res, err as Error, w)
    }
    // The client waits for a 100 before sending its body: the origin's 100 is relayed (Node sends a head with
    // Expect: 100-continue at once, without waiting for body bytes).
    upReq.on('continue', () => {
      if (expectContinue && !res.headersSent) res.writeContinue()
    })
    upReq.on('information', (info) => {
      // RFC 8297 Early Hints are relayed; other 1xx (102) are the upstream's business.
      if (info.statusCode === 103 && !res.headersSent && info.headers.link)
        res.writeEarlyHints({ link: info.headers.link })
    })
    let answered = false
    upReq.on(
      'response',
      guard(
        o,
        (upRes: IncomingMessage) => {
          answered = true
          onResponse(req, res, upReq, upRes, plan.onResponse, w)
        },
        () => res.destroy(),
      ),
    )
    upReq.on('error', (err) => {
      answered = true
      upstreamFailed(res, err, w)
    })
    // Node ends some exchanges without 'response' or 'error' (a 101 to a request that asked for no
    // upgrade: it destroys the socket): the client must still get an answer.
    upReq.on('close', () => {
      if (!answered)
        upstreamFailed(res, Object.assign(new Error('no response'), { code: 'HPE_UNEXPECTED_UPGRADE' }), w)
    })
    req.on('data', touch)
    if (w) {
      req.on('data', (c: Buffer) => w.requestBody(c))
      req.once('end', () => w.requestEnd())
    }
    req.on('error', () => upReq.destroy())
    req.pipe(upReq)
  }

  const request = (plan: ForwardPlan) =>
    http.request({
      agent,
      method: plan.request.method,
      path: plan.request.target,
      headers: rawFromFields(plan.request.fields),
      setHost: false,
      maxHeaderSize: limits.maxHeaderBytes,
      joinDuplicateHeaders: false,
    })

  const upstreamFailed = (res: ServerResponse, err: Error & { code?: string }, w?: ExchangeObserver) => {
    upstreamGone = true
    if (err.code?.startsWith('HPE_')) stats.malformed.upstream++
    if (!res.headersSent) {
      stats.localResponses.upstream_error++
      sendLocal(res, localResponse(502, 'upstream_error', true), w)
    } else {
      stats.aborted++
      res.destroy()
    }
  }

  const onResponse = (
    req: IncomingMessage,
    res: ServerResponse,
    upReq: http.ClientRequest,
    upRes: IncomingMessage,
    hook: ResponseHook | null,
    w: ExchangeObserver | undefined,
  ) => {
    touch()
    // The upstream will close after this response: so does the client connection (one upstream per flow).
    if (!upReq.shouldKeepAlive) {
      upstreamGone = true
      res.shouldKeepAlive = false
    }
    const status = upRes.statusCode!
    // llhttp takes any three digits and a reason Node's writer refuses (control characters): a status
    // no client could be given is a malformed response, a reason it would refuse is replaced.
    if (status < 200 || status > 999) {
      upRes.destroy()
      return upstreamFailed(
        res,
        Object.assign(new Error(`status ${status}`), { code: 'HPE_INVALID_STATUS' }),
        w,
      )
    }
    const reason = upRes.statusMessage ?? ''
    const head: ResponseHead = {
      status,
      statusMessage: BAD_REASON.test(reason) ? (STATUS_CODES[status] ?? '') : reason,
      fields: stripHopByHop(fieldsFromRaw(upRes.rawHeaders), HTTP1_FRAMING.response),
    }
    const bodyless = req.method === 'HEAD' || head.status === 204 || head.status === 304
    res.sendDate = false
    if (!hook) {
      stats.upstreamResponses++
      w?.response(head.status, head.statusMessage, head.fields)
      res.writeHead(head.status, head.statusMessage, rawFromFields(head.fields))
      return relayBody(upRes, res, w)
    }
    const declared = contentLength(head.fields)
    const finish = (body: Buffer | undefined) => {
      const p = planResponse(hook, head, body, o)
      if (!p.ok) {
        upRes.resume() // read it off so the upstream connection stays usable
        res.sendDate = true
        return sendLocal(res, p.response, w)
      }
      stats.upstreamResponses++
      const whole = p.body ?? body
      if (whole && !bodyless) setField(p.head.fields, 'content-length', String(whole.length))
      w?.response(p.head.status, p.head.statusMessage, p.head.fields)
      res.writeHead(p.head.status, p.head.statusMessage, rawFromFields(p.head.fields))
      if (whole) {
        if (w && !bodyless) w.responseBody(whole)
        upRes.resume()
        res.end(whole)
      } else relayBody(upRes, res, w)
    }
    if (!bodyless && declared !== null && declared <= limits.maxResponseBodyBytes) {
      stats.responseBodies.offered++
      collect(
        upRes,
        touch,
        guard(
          o,
          (body: Buffer | undefined) => {
            if (body) finish(body)
            else upstreamFailed(res, new Error('upstream response body cut short'), w)
          },
          () => res.destroy(),
        ),
      )
    } else {
      if (!bodyless) stats.responseBodies.headers_only++
      finish(undefined)
    }
  }

  const relayBody = (upRes: IncomingMessage, res: ServerResponse, w: ExchangeObserver | undefined) => {
    upRes.on('data', touch)
    if (w) upRes.on('data', (c: Buffer) => w.responseBody(c))
    upRes.pipe(res, { end: false })
    upRes.on('end', () => {
      if (upRes.rawTrailers.length > 0) res.addTrailers(pairs(upRes.rawTrailers))
      res.end()
    })
    upRes.on('close', () => {
      if (!upRes.complete) {
        upstreamGone = true
        stats.aborted++
        res.destroy()
      }
    })
  }

  const reset = (_req: IncomingMessage, res: ServerResponse) => res.destroy()
  server.on(
    'request',
    guard(o, (req: IncomingMessage, res: ServerResponse) => handle(req, res, false), reset),
  )
  server.on(
    'checkContinue',
    guard(o, (req: IncomingMessage, res: ServerResponse) => handle(req, res, true), reset),
  )
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    stats.localResponses.method_not_allowed++
    writeRaw(socket, localResponse(405, 'method_not_allowed', true))
  })
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy()
    stats.malformed.client++
    // Node's own rule: answer only when no response to this connection has started (else the bytes would
    // land inside it); _httpMessage is the ServerResponse in flight.
    const current = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
    if (current?.headersSent) return void socket.destroy()
    stats.localResponses.bad_request++
    writeRaw(socket, localResponse(err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, 'bad_request', true))
    flow.endGracefully(socket)
  })
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    touch()
    const plan = planRequest(
      {
        method: req.method!,
        target: req.url!,
        fields: fieldsFromRaw(req.rawHeaders),
        upgrade: true,
        httpVersion: req.httpVersion,
      },
      o,
      HTTP1_FRAMING,
    )
    // An observed handshake ends with its answer's head: what follows is frames, not an exchange.
    const w = plan.watch
    w?.requestEnd()
    const answerHead = (status: number, message: string, fields: Fields) => {
      w?.response(status, message, fields)
      w?.end(true)
    }
    const local = (r: LocalResponse) => {
      if (w) {
        observeLocal(w, r)
        w.end(true)
      }
      writeRaw(socket, r)
    }
    if (plan.kind === 'respond') return local(plan.response)
    let upReq: http.ClientRequest
    try {
      upReq = request(plan)
    } catch {
      stats.localResponses.upstream_error++
      return local(localResponse(502, 'upstream_error', true))
    }
    const onUpgraded = (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      stats.upstreamResponses++
      stats.websocketUpgrades++
      const fields = fieldsFromRaw(upRes.rawHeaders)
      answerHead(101, upRes.statusMessage ?? 'Switching Protocols', fields)
      socket.write(rawHead(101, upRes.statusMessage ?? 'Switching Protocols', fields))
      relayWebSocket(socket, head, upSocket, upHead, {
        stats,
        flow,
        log: o.log,
        maxFrameBytes: limits.maxWebSocketFrameBytes,
        rsvMask: rsvMaskFor(firstField(fieldsFromRaw(upRes.rawHeaders), 'sec-websocket-extensions')),
      })
    }
    upReq.on(
      'upgrade',
      guard(o, onUpgraded, (_r, upSocket) => upSocket.destroy()),
    )
    // Upgrade refused by the origin: its answer goes back as is, and the connection closes (the server's
    // parser has already let go of it).
    const onRefused = (upRes: IncomingMessage) => {
      stats.upstreamResponses++
      const fields = stripHopByHop(fieldsFromRaw(upRes.rawHeaders))
      fields.push(['connection', 'close'])
      answerHead(upRes.statusCode!, upRes.statusMessage ?? '', fields)
      socket.write(rawHead(upRes.statusCode!, upRes.statusMessage ?? '', fields))
      upRes.pipe(socket)
    }
    upReq.on(
      'response',
      guard(o, onRefused, () => socket.destroy()),
    )
    upReq.on('error', (err: Error & { code?: string }) => {
      if (err.code?.startsWith('HPE_')) stats.malformed.upstream++
      stats.localResponses.upstream_error++
      local(localResponse(502, 'upstream_error', true))
    })
    upReq.end()
  }
  server.on(
    'upgrade',
    guard(o, onUpgrade, (_req, socket) => socket.destroy()),
  )

  server.emit('connection', client)
}

/** A response made here, told to the exchange's observer. */
function observeLocal(w: ExchangeObserver, r: LocalResponse): void {
  w.response(r.status, r.statusMessage, r.fields)
  if (r.body.length > 0) w.responseBody(r.body)
}

/** What Node's ServerResponse refuses in a reason phrase (its checkInvalidHeaderChar). */
const BAD_REASON = /[^\t\x20-\x7e\x80-\xff]/

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const up = req.headers.upgrade
  return req.method === 'GET' && !!up && up.split(',').some((t) => t.trim().toLowerCase() === 'websocket')
}

/** Reads a whole body; `done(undefined)` when it ended early. */
function collect(src: IncomingMessage, touch: () => void, done: (body: Buffer | undefined) => void): void {
  const chunks: Buffer[] = []
  src.on('data', (c: Buffer) => {
    touch()
    chunks.push(c)
  })
  src.on('end', () => done(Buffer.concat(chunks)))
  src.on('close', () => {
    if (!src.complete) done(undefined)
  })
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

/** A response straight onto a socket the HTTP server has let go of (upgrade, CONNECT, parse error). */
function writeRaw(socket: Duplex, r: LocalResponse): void {
  const fields: Fields = [...r.fields, ['connection', 'close']]
  socket.end(Buffer.concat([Buffer.from(rawHead(r.status, r.statusMessage, fields)), r.body]))
  socket.resume() // whatever else the client sends is dropped, so its FIN is seen and the socket closes
}
