// HTTP/2 between the client and the flow's one upstream connection (RFC 9113), with Node's http2 (nghttp2)
// on both sides: a server session on the client stream and a client session whose connection is the
// flow's upstream stream. Each client stream becomes one upstream stream; resets and GOAWAYs are passed on.

import { STATUS_CODES } from 'node:http'
import http2, {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import { HTTP2_FRAMING, planRequest, planResponse, type RequestPlan, type ResponseHook } from './exchange.ts'
import type { FlowLifetime } from './flow.ts'
import { guard } from './guard.ts'
import {
  contentLength,
  type Fields,
  fieldsFromRaw,
  firstField,
  isValidHost,
  objectFromFields,
  rawFromFields,
  removeField,
  setField,
} from './headers.ts'
import { type LocalResponse, localResponse, type ResponseHead } from './local.ts'
import type { ExchangeObserver, HttpLimits, InterceptOptions } from './types.ts'

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants

type ForwardPlan = Extract<RequestPlan, { kind: 'forward' }>

export function serveHttp2(
  flow: FlowLifetime,
  o: InterceptOptions,
  limits: Required<HttpLimits>,
  scheme: 'https' | 'http',
): void {
  const { client, upstream } = flow
  const { stats } = o
  const touch = () => flow.touch()
  let upstreamGone = false

  const server = http2.createServer({
    maxHeaderListPairs: 256,
    // Relay what the peers send, even a field repeated that should not be; refusing is the endpoints' call.
    strictSingleValueFields: false,
    // Server push is refused both ways: the client never asked the origin for pushed streams through us.
    settings: { enablePush: false, maxConcurrentStreams: 128, maxHeaderListSize: limits.maxHeaderBytes },
  })
  let session: ServerHttp2Session | undefined
  server.on('session', (s: ServerHttp2Session) => {
    session = s
  })

  const upOptions: http2.ClientSessionOptions & { strictSingleValueFields: boolean } = {
    createConnection: () => upstream,
    settings: { enablePush: false, maxHeaderListSize: limits.maxHeaderBytes },
    maxHeaderListPairs: 256,
    strictSingleValueFields: false, // a runtime option of every session; @types/node has it on servers only
  }
  const up: ClientHttp2Session = http2.connect(`${scheme}://${urlHost(o.authority)}`, upOptions)

  const closeClientSession = (code: number) => {
    if (!session || session.closed || session.destroyed) return
    if (code !== NGHTTP2_NO_ERROR) session.goaway(code)
    // close(): GOAWAY, then the session (and its socket) ends once the streams in flight are done.
    session.close()
  }
  const upstreamEnded = (code: number) => {
    if (upstreamGone) return
    upstreamGone = true
    closeClientSession(code)
  }
  up.on('goaway', (code: number) => {
    stats.h2Goaways.upstream++
    upstreamEnded(code)
  })
  up.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'ERR_HTTP2_ERROR' || err.code === 'ERR_HTTP2_SESSION_ERROR') stats.malformed.upstream++
  })
  up.on('close', () => upstreamEnded(NGHTTP2_NO_ERROR))
  upstream.once('close', () => upstreamEnded(NGHTTP2_NO_ERROR))
  client.once('close', () => {
    if (!up.closed) up.close()
    flow.endGracefully(upstream)
  })
  // The client sent its close_notify and FIN (curl does, without a GOAWAY): nothing more comes from it.
  // Over a net.Socket Node ends the session then; over the user-space TCP stack's half-open stream it
  // would wait for the idle timer, the flow in CLOSE-WAIT (its flow record 350 s late: seen in the lab,
  // test/appliance/aws-har.test.ts). Close the session: streams in flight finish, then our side ends.
  client.once('end', () => closeClientSession(NGHTTP2_NO_ERROR))

  const sendLocal = (stream: ServerHttp2Stream, r: LocalResponse, head: boolean, w?: ExchangeObserver) => {
    if (stream.destroyed || stream.closed) return
    if (w) {
      w.response(r.status, r.statusMessage, r.fields)
      if (!head && r.body.length > 0) w.responseBody(r.body)
    }
    stream.resume() // a body we will not read is read off, so flow control does not stall the session
    stream.respond([':status', String(r.status), ...rawFromFields(r.fields)], { endStream: head })
    if (!head) stream.end(r.body)
    if (r.close) stream.once('close', () => closeClientSession(NGHTTP2_NO_ERROR))
  }

  const resetStream = (stream: ServerHttp2Stream) => {
    if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR)
  }
  const onStream = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ) => {
    touch()
    stream.on('error', noop)
    const method = String(headers[':method'] ?? '')
    const isHead = method === 'HEAD'
    if (method === 'CONNECT') {
      stats.localResponses.method_not_allowed++
      return sendLocal(stream, localResponse(405, 'method_not_allowed', false), false)
    }
    const fields: Fields = []
    for (const [n, v] of fieldsFromRaw(rawHeaders)) if (n[0] !== ':') fields.push([n, v])
    const authority = headers[':authority'] as string | undefined
    const host = firstField(fields, 'host')
    // RFC 9113 §8.3.1: a Host that names another entity than :authority makes the request malformed.
    if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
      stats.malformed.client++
      stats.localResponses.bad_request++
      return sendLocal(stream, localResponse(400, 'bad_request', false), isHead)
    }
    if (authority !== undefined && !isValidHost(authority)) {
      stats.malformed.client++
      stats.localResponses.bad_request++
      return sendLocal(stream, localResponse(400, 'bad_request', false), isHead)
    }
    // The hooks and the policy see HTTP/2's :authority as the Host field (the CloudFront event does too).
    if (authority !== undefined && host === undefined) fields.unshift(['host', authority])
    const plan = planRequest(
      { method, target: String(headers[':path'] ?? ''), fields, httpVersion: '2.0' },
      o,
      HTTP2_FRAMING,
    )
    const w = plan.watch
    if (w) stream.once('close', () => w.end((stream.rstCode ?? NGHTTP2_NO_ERROR) === NGHTTP2_NO_ERROR))
    if (plan.kind === 'respond') {
      w?.requestEnd()
      return sendLocal(stream, plan.response, isHead, w)
    }
    forward(stream, plan, isHead, w)
  }
  server.on('stream', guard(o, onStream, resetStream))

  const forward = (
    stream: ServerHttp2Stream,
    plan: ForwardPlan,
    isHead: boolean,
    w: ExchangeObserver | undefined,
  ) => {
    const fields = plan.request.fields.slice()
    const authority = firstField(fields, 'host') ?? o.authority
    removeField(fields, 'host')
    const raw = [
      ':method',
      plan.request.method,
      ':scheme',
      scheme,
      ':authority',
      authority,
      ':path',
      plan.request.target,
      ...rawFromFields(fields),
    ]
    let upStream: ClientHttp2Stream
    try {
      if (upstreamGone || up.closed || up.destroyed) throw new Error('upstream session gone')
      upStream = up.request(raw, {
        endStream: stream.endAfterHeaders,
        waitForTrailers: !stream.endAfterHeaders,
      })
    } catch {
      // Not processed upstream: the client may retry it on a new connection (RFC 9113 §8.7).
      if (!stream.destroyed) stream.close(NGHTTP2_REFUSED_STREAM)
      return
    }
    upStream.on('error', noop)

    // Request body and trailers, client → upstream.
    let requestTrailers: Fields | undefined
    stream.on('trailers', (_h: IncomingHttpHeaders, _f: number, rawT: string[]) => {
      requestTrailers = fieldsFromRaw(rawT)
    })
    upStream.on('wantTrailers', () => upStream.sendTrailers(objectFromFields(requestTrailers ?? [])))
    if (!stream.endAfterHeaders) {
      stream.on('data', touch)
      if (w) {
        stream.on('data', (c: Buffer) => w.requestBody(c))
        stream.once('end', () => w.requestEnd())
      }
      stream.pipe(upStream)
    } else w?.requestEnd()

    // Resets, either way. A stream that ended normally on one side while the other is still open (a local
    // 502 before the upstream's body ended) cancels the other.
    stream.on('close', () => {
      if (upStream.closed || upStream.destroyed) return
      const code = stream.rstCode ?? NGHTTP2_NO_ERROR
      if (code !== NGHTTP2_NO_ERROR) stats.h2Resets.client++
      upStream.close(code === NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : code)
    })
    upStream.on('close', () => {
      if (stream.destroyed || stream.closed || upStream.readableEnded) return
      const code = upStream.rstCode ?? NGHTTP2_INTERNAL_ERROR
      if (code !== NGHTTP2_NO_ERROR) stats.h2Resets.upstream++
      if (stream.headersSent) stats.aborted++
      stream.close(code === NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : code)
    })

    upStream.on('headers', (h: IncomingHttpHeaders) => {
      // 1xx informational responses pass on (100 Continue, 103 Early Hints).
      if (!stream.headersSent && !stream.destroyed) stream.additionalHeaders(h as never)
    })
    let responseTrailers: Fields | undefined
    upStream.on('trailers', (_h: IncomingHttpHeaders, _f: number, rawT: string[]) => {
      responseTrailers = fieldsFromRaw(rawT)
    })
    const onResponse = (h: IncomingHttpHeaders, flags: number, rawH: string[]) => {
      touch()
      const status = Number(h[':status'])
      // nghttp2 takes any three digits; Node's respond() only 200-599 (1xx came as 'headers').
      if (!(status >= 200 && status <= 599)) {
        stats.malformed.upstream++
        stats.localResponses.upstream_error++
        upStream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR)
        return sendLocal(stream, localResponse(502, 'upstream_error', false), isHead, w)
      }
      const head: ResponseHead = { status, statusMessage: STATUS_CODES[status] ?? '', fields: [] }
      for (const [n, v] of fieldsFromRaw(rawH)) if (n[0] !== ':') head.fields.push([n, v])
      const ended = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0
      const bodyless = isHead || status === 204 || status === 304 || ended
      const hook = plan.onResponse
      if (!hook) {
        stats.upstreamResponses++
        return respond(head, bodyless)
      }
      const declared = contentLength(head.fields)
      if (!bodyless && declared !== null && declared <= limits.maxResponseBodyBytes) {
        stats.responseBodies.offered++
        const chunks: Buffer[] = []
        upStream.on('data', (c: Buffer) => {
          touch()
          chunks.push(c)
        })
        upStream.on(
          'end',
          guard(
            o,
            () => finish(hook, head, Buffer.concat(chunks), bodyless),
            () => resetStream(stream),
          ),
        )
      } else {
        if (!bodyless) stats.responseBodies.headers_only++
        finish(hook, head, undefined, bodyless)
      }
    }
    upStream.on(
      'response',
      guard(o, onResponse, () => resetStream(stream)),
    )

    const respond = (head: ResponseHead, bodyless: boolean, whole?: Buffer) => {
      if (stream.destroyed || stream.closed) return
      const raw = [':status', String(head.status), ...rawFromFields(head.fields)]
      w?.response(head.status, head.statusMessage, head.fields)
      if (bodyless || whole) {
        stream.respond(raw, { endStream: bodyless })
        if (w && whole && !bodyless) w.responseBody(whole)
        if (!bodyless) stream.end(whole)
        upStream.resume()
        return
      }
      stream.respond(raw, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers(objectFromFields(responseTrailers ?? [])))
      upStream.on('data', touch)
      if (w) upStream.on('data', (c: Buffer) => w.responseBody(c))
      upStream.pipe(stream)
    }

    const finish = (hook: ResponseHook, head: ResponseHead, body: Buffer | undefined, bodyless: boolean) => {
      const p = planResponse(hook, head, body, o)
      if (!p.ok) {
        upStream.resume()
        return sendLocal(stream, p.response, isHead, w)
      }
      stats.upstreamResponses++
      const whole = p.body ?? body
      if (whole && !bodyless) setField(p.head.fields, 'content-length', String(whole.length))
      respond(p.head, bodyless, bodyless ? undefined : whole)
    }
  }

  server.on('sessionError', (err: Error & { code?: string }) => {
    if (err.code === 'ERR_HTTP2_ERROR' || err.code === 'ERR_HTTP2_SESSION_ERROR') stats.malformed.client++
  })
  server.emit('connection', client)
  session?.on('goaway', () => {
    stats.h2Goaways.client++
    // The client is done with this connection: let the upstream streams finish, then close that one too.
    if (!up.closed) up.close()
  })
  session?.on('close', () => {
    if (!up.closed) up.close()
  })
}

function noop(): void {}

/** An authority for a URL: IPv6 literals need brackets. */
function urlHost(authority: string): string {
  return authority.includes(':') && !authority.startsWith('[') ? `[${authority}]` : authority
}
