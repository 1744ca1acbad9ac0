// HTTP/2 with prior knowledge on a cleartext stream (RFC 9113 §3.3): the client starts with the connection
// preface instead of an HTTP/1.1 request line. Over TLS, h2 is chosen by ALPN and this is never consulted.

import type { Duplex } from 'node:stream'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

/** 'h2' once the whole preface is in, 'http1' at the first byte that differs, 'more' while undecided. */
export function classifyPreface(buf: Buffer): 'h2' | 'http1' | 'more' {
  const n = Math.min(buf.length, PREFACE.length)
  if (buf.compare(PREFACE, 0, n, 0, n) !== 0) return 'http1'
  return n === PREFACE.length ? 'h2' : 'more'
}

/**
 * Reads just enough of `s` to tell h2c prior knowledge from HTTP/1, then puts the bytes back (unshift) and
 * leaves the stream paused for whoever parses it next. True for h2c.
 */
export function sniffPreface(s: Duplex): Promise<boolean> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0)
    const done = (h2: boolean) => {
      s.off('data', onData)
      s.off('end', onEnd)
      s.off('close', onEnd)
      s.pause()
      if (buf.length > 0 && !s.destroyed && !s.readableEnded) s.unshift(buf)
      resolve(h2)
    }
    const onData = (c: Buffer) => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c])
      const k = classifyPreface(buf)
      if (k !== 'more') done(k === 'h2')
    }
    const onEnd = () => done(false)
    s.on('data', onData)
    s.once('end', onEnd)
    s.once('close', onEnd)
  })
}
