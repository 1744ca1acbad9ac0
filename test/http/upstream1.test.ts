// The HTTP/1.1 upstream client (upstream1.ts) through interceptHttp over duplexPair streams, against Node
// http origins and raw origins: one exchange at a time upstream with each pipelined body going with its own
// request, request trailers, a reader that falls behind holding the origin back, and bytes from the origin
// that answer no request.
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import { type Duplex, duplexPair } from 'node:stream'
import test from 'ava'
import {
  createHttpStats,
  type HttpStats,
  type InterceptOptions,
  interceptHttp,
} from '../../appliance/src/http/index.ts'

interface Wired {
  client: Duplex
  stats: HttpStats
  done: Promise<void>
  /** everything the client has read so far (latin1) */
  got(): string
}

/** client ⇄ [client | proxyClient] → interceptHttp → [proxyUpstream | origin] ⇄ `origin`. */
function wire(origin: (d: Duplex) => void, o: Partial<InterceptOptions> = {}, tls = false): Wired {
  const [client, proxyClient] = duplexPair()
  // As a TLS socket would look to interceptHttp: no h2c preface sniffing (ALPN said http/1.1).
  if (tls) Object.assign(proxyClient, { encrypted: true })
  const [proxyUpstream, originSide] = duplexPair()
  origin(originSide)
  const stats = createHttpStats()
  const done = interceptHttp(proxyClient, proxyUpstream, {
    protocol: 'http/1.1',
    sni: null,
    authority: 'origin.test',
    decide: () => ({ action: 'Allow' }),
    event: { endpointId: 'vpce-01234567890abcdef', viewerIp: '10.0.0.1' },
    stats,
    limits: { idleMs: 5000 },
    ...o,
  })
  let got = ''
  client.on('data', (c: Buffer) => {
    got += c.toString('latin1')
  })
  return { client, stats, done, got: () => got }
}

const until = async (cond: () => boolean, ms = 3000) => {
  const stop = Date.now() + ms
  while (!cond()) {
    if (Date.now() > stop) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
  trailers: Record<string, string | undefined>
  /** another request of this connection was still unanswered when this one arrived */
  overlapped: boolean
}

/** A Node origin that records each request and answers it after `delayMs`, echoing what it saw. */
function recordingOrigin(delayMs = 0) {
  const seen: Seen[] = []
  let pending = 0
  const server = http.createServer((req, res) => {
    const overlapped = pending > 0
    pending++
    let body = ''
    req.setEncoding('latin1')
    req.on('data', (c: string) => {
      body += c
    })
    req.on('end', () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body,
        trailers: req.trailers,
        overlapped,
      })
      setTimeout(() => {
        pending--
        res.end(`${req.method} ${req.url} ${body}`)
      }, delayMs)
    })
  })
  return { seen, attach: (d: Duplex) => server.emit('connection', d) }
}

const bodies = (s: string) => [...s.matchAll(/\r\n\r\n([A-Z]+ \/\S* [^H]*)/g)].map((m) => m[1])

test('pipelined requests with bodies: one at a time upstream, each body with its own request, answers in order', async (t) => {
  const origin = recordingOrigin(15)
  const w = wire(origin.attach)
  w.client.end(
    'POST /1 HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\n\r\nhello' +
      'PUT /2 HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n' +
      'POST /3 HTTP/1.1\r\nHost: origin.test\r\n\r\n' +
      'GET /4 HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n',
  )
  await w.done
  t.deepEqual(
    origin.seen.map((s) => [s.method, s.url, s.body]),
    [
      ['POST', '/1', 'hello'],
      ['PUT', '/2', 'abcde'],
      ['POST', '/3', ''],
      ['GET', '/4', ''],
    ],
  )
  t.deepEqual(
    origin.seen.map((s) => s.overlapped),
    [false, false, false, false],
    'never pipelined upstream',
  )
  t.is(origin.seen[1]!.headers['transfer-encoding'], 'chunked')
  // As Node's client did: a body-carrying method without framing says so; GET does not.
  t.is(origin.seen[2]!.headers['content-length'], '0')
  t.is(origin.seen[3]!.headers['content-length'], undefined)
  t.deepEqual(bodies(w.got()), ['POST /1 hello', 'PUT /2 abcde', 'POST /3 ', 'GET /4 '])
  t.is(w.stats.upstreamResponses, 4)
})

test('trailers of a chunked request are relayed', async (t) => {
  const origin = recordingOrigin()
  const w = wire(origin.attach)
  w.client.end(
    'POST /t HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: close\r\n\r\n' +
      '5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n',
  )
  await w.done
  t.is(origin.seen[0]!.body, 'hello')
  t.is(origin.seen[0]!.trailers['x-checksum'], 'abc123')
})

test('a client that stops reading holds the origin back; the body then arrives whole', async (t) => {
  const data = randomBytes(8 * 1024 * 1024)
  let written = 0
  let blocked = false
  const server = http.createServer((_req, res) => {
    res.setHeader('content-length', data.length)
    let i = 0
    const step = () => {
      while (i < data.length) {
        const more = res.write(data.subarray(i, i + 65_536))
        i += 65_536
        written = i
        if (!more) {
          blocked = true
          return void res.once('drain', step)
        }
      }
      res.end()
    }
    step()
  })
  const [client, proxyClient] = duplexPair()
  const [proxyUpstream, originSide] = duplexPair()
  server.emit('connection', originSide)
  const done = interceptHttp(proxyClient, proxyUpstream, {
    protocol: 'http/1.1',
    sni: null,
    authority: 'origin.test',
    decide: () => ({ action: 'Allow' }),
    event: { endpointId: '', viewerIp: '10.0.0.1' },
    stats: createHttpStats(),
  })
  // A half-close after the request: the answer still comes (and the flow can end on a duplexPair).
  client.end('GET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n')
  // Nobody reads the client side for a while.
  await until(() => blocked)
  await new Promise((r) => setTimeout(r, 200))
  t.true(written < data.length / 4, `the origin wrote ${written} bytes while the client read nothing`)
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  await done
  const all = Buffer.concat(chunks)
  const body = all.subarray(all.indexOf('\r\n\r\n') + 4)
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
  t.is(body.length, data.length)
  t.is(sha(body), sha(data))
})

test('bytes from the origin that answer no request never reach the client as an answer', async (t) => {
  const w = wire((d) => {
    d.on('error', () => {})
    // Before any request: a response nobody asked for.
    d.write('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle')
    d.on('data', () => d.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
  })
  await new Promise((r) => setTimeout(r, 20))
  if (w.client.writable) w.client.end('GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n')
  await w.done
  t.notRegex(w.got(), /smuggle/)
  // The client either got our 502 or a closed connection, never the origin's stray 200.
  t.true(w.got() === '' || /^HTTP\/1\.1 502 /.test(w.got()), JSON.stringify(w.got()))
})

// ---- the client side (http1.ts writes the answers itself: framing for the client's version, order, closes)

/** Sends `input` (then a FIN), returns everything read back once the flow has ended. */
async function exchange(
  origin: (d: Duplex) => void,
  input: string,
  o: Partial<InterceptOptions> = {},
  tls = false,
) {
  const w = wire(origin, o, tls)
  w.client.end(input)
  await w.done
  return { text: w.got(), stats: w.stats }
}

const chunkedOrigin = () => {
  const server = http.createServer((req, res) => {
    req.resume()
    // No Content-Length: chunked on the wire to us.
    res.write(`part one of ${req.url}|`)
    res.end('part two')
  })
  return (d: Duplex) => server.emit('connection', d)
}

test('HTTP/1.0 clients: a chunked answer goes back close-delimited; keep-alive only when asked and framed', async (t) => {
  const plain = await exchange(chunkedOrigin(), 'GET /x HTTP/1.0\r\nHost: origin.test\r\n\r\n')
  t.regex(plain.text, /^HTTP\/1\.1 200 OK\r\n/)
  t.notRegex(plain.text, /transfer-encoding/i)
  t.regex(plain.text, /\r\nConnection: close\r\n/)
  t.true(plain.text.endsWith('\r\n\r\npart one of /x|part two'))
  // Keep-alive asked, but the answer has no length: the close ends it, so the connection closes.
  const asked = await exchange(
    chunkedOrigin(),
    'GET /y HTTP/1.0\r\nHost: origin.test\r\nConnection: keep-alive\r\n\r\nGET /z HTTP/1.0\r\nHost: origin.test\r\n\r\n',
  )
  t.regex(asked.text, /\r\nConnection: close\r\n/)
  t.notRegex(asked.text, /\/z/, 'nothing after the close-delimited answer')
  // A framed answer keeps a 1.0 keep-alive connection.
  const origin = recordingOrigin()
  const framed = await exchange(
    origin.attach,
    'GET /a HTTP/1.0\r\nHost: origin.test\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: origin.test\r\n\r\n',
  )
  t.deepEqual(
    origin.seen.map((s) => s.url),
    ['/a', '/b'],
  )
  t.regex(
    framed.text,
    /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\nConnection: keep-alive\r\n[\s\S]*HTTP\/1\.1 200 OK\r\n[\s\S]*\r\nConnection: close\r\n/,
  )
})

test('HTTP/1.1 clients get a chunked answer re-chunked, with its trailers', async (t) => {
  const server = http.createServer((req, res) => {
    req.resume()
    res.setHeader('trailer', 'x-sum')
    res.write('abc')
    res.addTrailers({ 'x-sum': '42' })
    res.end('def')
  })
  const r = await exchange((d) => server.emit('connection', d), 'GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n')
  t.regex(r.text, /\r\nTransfer-Encoding: chunked\r\n/)
  t.true(r.text.endsWith('\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nx-sum: 42\r\n\r\n'), JSON.stringify(r.text))
})

test('an expectation other than 100-continue is a 417; the connection goes on', async (t) => {
  const origin = recordingOrigin()
  const r = await exchange(
    origin.attach,
    'POST /e HTTP/1.1\r\nHost: origin.test\r\nExpect: something-else\r\nContent-Length: 3\r\n\r\nabc' +
      'GET /after HTTP/1.1\r\nHost: origin.test\r\n\r\n',
  )
  t.regex(r.text, /^HTTP\/1\.1 417 Expectation Failed\r\n/)
  t.deepEqual(
    origin.seen.map((s) => s.url),
    ['/after'],
  )
  t.true(r.text.endsWith('GET /after '))
})

test('Upgrade: h2c is served as HTTP/1.1, and a request pipelined after it is served too', async (t) => {
  const origin = recordingOrigin()
  const r = await exchange(
    origin.attach,
    'GET /a HTTP/1.1\r\nHost: origin.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n' +
      'GET /b HTTP/1.1\r\nHost: origin.test\r\n\r\n',
  )
  t.deepEqual(
    origin.seen.map((s) => [s.url, s.headers.upgrade, s.headers['http2-settings']]),
    [
      ['/a', undefined, undefined],
      ['/b', undefined, undefined],
    ],
  )
  t.deepEqual(bodies(r.text), ['GET /a ', 'GET /b '])
})

test('a pipelined Deny waits for the answer before it, and a denied body is read off, not forwarded', async (t) => {
  const origin = recordingOrigin(30)
  const r = await exchange(
    origin.attach,
    'GET /slow HTTP/1.1\r\nHost: origin.test\r\n\r\n' +
      'POST /denied HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n' +
      'GET /last HTTP/1.1\r\nHost: origin.test\r\n\r\n',
    { decide: (f) => ({ action: f.path === '/denied' ? 'Deny' : 'Allow' }) },
  )
  const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])
  t.deepEqual(statuses, ['200', '403', '200'])
  t.deepEqual(
    origin.seen.map((s) => s.url),
    ['/slow', '/last'],
  )
  t.is(r.stats.localResponses.deny, 1)
})

test('an HTTP/2 preface on a connection that chose HTTP/1.1 is a 400, never forwarded', async (t) => {
  const origin = recordingOrigin()
  const r = await exchange(origin.attach, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', {}, true)
  t.regex(r.text, /^HTTP\/1\.1 400 /)
  t.is(r.stats.malformed.client, 1)
  t.is(origin.seen.length, 0)
})

test('a response with a stray one after it in the same read: the answer goes back, the stray fails the upstream', async (t) => {
  const w = wire((d) => {
    d.on('error', () => {})
    d.once('data', () => {
      d.write(
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst' +
          'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle',
      )
    })
  })
  w.client.write('GET /a HTTP/1.1\r\nHost: origin.test\r\n\r\n')
  // The upstream is dropped; with nothing in flight, so is the client connection (which hangs up in turn).
  w.client.on('end', () => w.client.end())
  await w.done
  t.regex(w.got(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nfirst$/)
  t.is(w.stats.malformed.upstream, 1)
})

test('a body of declared length split over many reads arrives whole, and the connection goes on', async (t) => {
  const body = Buffer.alloc(200_000, 0x61)
  let served = 0
  const w = wire((d) => {
    d.on('error', () => {})
    d.on('end', () => d.end())
    let buf = ''
    d.on('data', (c: Buffer) => {
      buf += c.toString('latin1')
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4)
        served++
        d.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`)
        // In pieces that do not line up with anything.
        for (let i = 0; i < body.length; i += 7_777) d.write(body.subarray(i, i + 7_777))
      }
    })
  })
  w.client.end('GET /1 HTTP/1.1\r\nHost: origin.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: origin.test\r\n\r\n')
  await w.done
  t.is(served, 2)
  const parts = w
    .got()
    .split(/HTTP\/1\.1 200 OK\r\n[\s\S]*?\r\n\r\n/)
    .filter((p) => p.length > 0)
  t.deepEqual(
    parts.map((p) => p.length),
    [body.length, body.length],
  )
  t.is(w.stats.upstreamResponses, 2)
})
