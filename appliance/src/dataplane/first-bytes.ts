// The first bytes of a terminated flow, read from the client's stream before anything is decided: a TLS
// ClientHello (SNI, ALPN), an HTTP/1 request head, the HTTP/2 prior-knowledge preface, or something else.
// What the L7 path does with the flow (relay, intercept TLS, proxy HTTP, reset) depends on it
// (ARCHITECTURE.md item 6). Bounded in bytes (the peek parsers' limits) and in time; a server that speaks
// first (SMTP, SSH banners) ends the wait at once, since neither TLS nor HTTP starts that way.

import type { Duplex } from 'node:stream'
import { HTTP_PEEK_MAX, HttpRequestInfo, peekHttpRequest } from '../peek/http.ts'
import { Peek } from '../peek/status.ts'
import { ClientHelloInfo, MAX_CLIENT_HELLO, peekClientHello } from '../peek/tls.ts'

export type OtherReason = 'unknown' | 'malformed' | 'server-first' | 'timeout' | 'closed'

export type FirstBytes =
  | { kind: 'tls'; hello: ClientHelloInfo }
  | { kind: 'http'; request: HttpRequestInfo }
  | { kind: 'h2c' }
  | { kind: 'other'; why: OtherReason }

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

/**
 * Classifies what the client sent so far; undefined while more bytes could change the answer. `ended`:
 * no more will come (end of stream, timeout), so take what there is.
 */
export function classifyFirstBytes(b: Buffer, ended: boolean): FirstBytes | undefined {
  if (b.length === 0) return ended ? { kind: 'other', why: 'closed' } : undefined
  const n = Math.min(b.length, H2_PREFACE.length)
  if (b.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
    if (n === H2_PREFACE.length) return { kind: 'h2c' }
    return ended ? { kind: 'other', why: 'unknown' } : undefined
  }
  const hello = new ClientHelloInfo()
  const t = peekClientHello(b, 0, Math.min(b.length, MAX_CLIENT_HELLO), hello)
  if (t === Peek.complete) return { kind: 'tls', hello }
  if (t === Peek.malformed) return { kind: 'other', why: 'malformed' }
  if (t === Peek.needMore) {
    if (ended || b.length >= MAX_CLIENT_HELLO) return { kind: 'other', why: ended ? 'unknown' : 'malformed' }
    return undefined
  }
  const request = new HttpRequestInfo()
  const h = peekHttpRequest(b, 0, b.length, request)
  if (h === Peek.complete) return { kind: 'http', request }
  if (h === Peek.needMore && !ended && b.length < HTTP_PEEK_MAX) return undefined
  return { kind: 'other', why: h === Peek.malformed ? 'malformed' : 'unknown' }
}

export interface FirstRead {
  first: FirstBytes
  /** what was read; still unread on `client` (put back) unless the client's stream ended */
  bytes: Buffer
  /** the client's stream ended while reading: `bytes` is all it sent */
  ended: boolean
}

/**
 * Reads the client's first bytes from `client` and puts them back (unshift) so the next reader — a relay
 * or a TLS server socket — sees the stream from its start. Watches `server` without consuming it.
 */
export function readFirstBytes(client: Duplex, server: Duplex, timeoutMs: number): Promise<FirstRead> {
  return new Promise((resolve) => {
    let bytes: Buffer = Buffer.alloc(0)
    let done = false
    const finish = (first: FirstBytes, ended: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      client.removeListener('data', onData)
      client.removeListener('end', onEnd)
      client.removeListener('close', onClose)
      server.removeListener('readable', onServer)
      if (!ended) {
        client.pause()
        if (bytes.length > 0) client.unshift(bytes)
      }
      resolve({ first, bytes, ended })
    }
    const onData = (chunk: Buffer) => {
      bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk])
      const first = classifyFirstBytes(bytes, false)
      if (first) finish(first, false)
    }
    const onEnd = () => finish(classifyFirstBytes(bytes, true)!, true)
    const onClose = () => finish({ kind: 'other', why: 'closed' }, true)
    const onServer = () =>
      finish(
        bytes.length === 0 ? { kind: 'other', why: 'server-first' } : classifyFirstBytes(bytes, true)!,
        false,
      )
    const timer = setTimeout(() => {
      const first = classifyFirstBytes(bytes, true)!
      finish(first.kind === 'other' && bytes.length === 0 ? { kind: 'other', why: 'timeout' } : first, false)
    }, timeoutMs)
    client.on('data', onData)
    client.once('end', onEnd)
    client.once('close', onClose)
    server.once('readable', onServer)
  })
}
