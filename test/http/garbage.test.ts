// Malformed HTTP from either side, seeded and bounded: every flow must end (no hang), nothing may throw
// out of the layer (no internal error, no crash), and what the client gets is an answer or a close.
import http from 'node:http'
import { type Duplex, duplexPair } from 'node:stream'
import test from 'ava'
import { createHttpStats, type HttpStats, interceptHttp } from '../../appliance/src/http/index.ts'
import { SeededRandom } from '../../appliance/src/tcp/clock.ts'

const CASES = 150
/**
 * Flows must end by the protocol, not by the idle timer: those that took the idle time, per test. Far above
 * what a flow takes on a loaded 2-core machine (tens of ms), so only the timer explains reaching it.
 */
const IDLE_MS = 2500
const FLOW_DEADLINE_MS = 6000

const REQUESTS = [
  'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n',
  'POST /p?q=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello',
  'PUT /u HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85\x01\x02\x03\x04abcde',
  'GET /a HTTP/1.1\r\nHost: a.test\r\n\r\nGET /b HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
]
const RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi',
  'HTTP/1.0 200 OK\r\n\r\nuntil close',
]

function mutate(r: SeededRandom, s: string): Buffer {
  const b = [...Buffer.from(s, 'latin1')]
  const n = r.int(1, 4)
  for (let i = 0; i < n; i++) {
    const at = r.int(0, Math.max(0, b.length - 1))
    switch (r.int(0, 4)) {
      case 0:
        b[at] = r.int(0, 255)
        break
      case 1:
        b.splice(at, 0, ...Array.from({ length: r.int(1, 8) }, () => r.int(0, 255)))
        break
      case 2:
        b.splice(at, r.int(1, 8))
        break
      case 3:
        b.splice(at, 0, ...Buffer.from(['\r\n', ':', ' ', '\n', '0\r\n', 'Host: b.test\r\n'][r.int(0, 5)]!))
        break
      default:
        b.length = at
    }
  }
  return Buffer.from(b)
}

/** Runs one flow; resolves with what the client read, or rejects if the flow does not end in time. */
function runFlow(
  slow: string[],
  stats: HttpStats,
  clientBytes: Buffer,
  origin: (d: Duplex) => void,
  protocol: 'http/1.1' | 'h2' = 'http/1.1',
): Promise<string> {
  const [client, proxyClient] = duplexPair()
  const [proxyUpstream, originSide] = duplexPair()
  origin(originSide)
  const done = interceptHttp(proxyClient, proxyUpstream, {
    protocol,
    sni: 'a.test',
    authority: 'a.test',
    decide: (f) => ({ action: f.path === '/deny' ? 'Deny' : 'Allow' }),
    event: { endpointId: '', viewerIp: '10.0.0.1' },
    stats,
    limits: { idleMs: IDLE_MS },
  })
  let got = ''
  client.on('data', (c: Buffer) => {
    got += c.toString('latin1')
  })
  client.on('error', () => {})
  // HTTP/2 ends a session at the client's FIN: hang up once something came back (or after a moment).
  if (protocol === 'h2') {
    client.write(clientBytes)
    const hangUp = () => client.end()
    client.once('data', () => setTimeout(hangUp, 20))
    setTimeout(hangUp, 200)
  } else client.end(clientBytes)
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('flow did not end')), FLOW_DEADLINE_MS)
    void done.then(() => {
      clearTimeout(timer)
      if (Date.now() - started >= IDLE_MS - 50) slow.push(clientBytes.toString('latin1'))
      client.destroy()
      originSide.destroy()
      resolve(got)
    })
  })
}

const nodeOrigin = () => {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => res.end('ok'))
  })
  server.on('upgrade', (_req, socket: Duplex) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'))
  server.on('clientError', (_e, socket: Duplex) => socket.destroy())
  return (d: Duplex) => server.emit('connection', d)
}

test('mutated client requests: each flow ends, answered or closed, never an internal error', async (t) => {
  const r = new SeededRandom(0x5eed)
  const stats = createHttpStats()
  const slow: string[] = []
  const origin = nodeOrigin()
  let answered = 0
  for (let i = 0; i < CASES; i++) {
    const input = mutate(r, REQUESTS[i % REQUESTS.length]!)
    const got = await runFlow(slow, stats, input, origin)
    if (/^HTTP\/1\.1 \d{3} /.test(got)) answered++
    else
      t.is(got, '', `case ${i}: only whole answers or nothing (${JSON.stringify(input.toString('latin1'))})`)
  }
  t.is(stats.internalErrors, 0)
  t.deepEqual(slow, [], 'flows left to the idle timer')
  t.true(stats.malformed.client > 0, 'some inputs were malformed')
  t.true(answered > CASES / 2, `${answered} answered`)
})

test('mutated origin responses: each flow ends; a broken head is a 502, never an internal error', async (t) => {
  const r = new SeededRandom(0xbad0)
  const stats = createHttpStats()
  const slow: string[] = []
  for (let i = 0; i < CASES; i++) {
    const answer = mutate(r, RESPONSES[i % RESPONSES.length]!)
    const request = i % 3 === 0 ? REQUESTS[3]! : REQUESTS[0]!
    await runFlow(slow, stats, Buffer.from(request, 'latin1'), (d) => {
      d.once('data', () => d.end(answer))
      d.on('error', () => {})
    })
  }
  t.is(stats.internalErrors, 0)
  t.deepEqual(slow, [], 'flows left to the idle timer')
  t.true(stats.malformed.upstream > 0)
  t.true(stats.localResponses.upstream_error > 0)
})

test('HTTP/2: a valid preface then mutated frames: each flow ends, never an internal error', async (t) => {
  const r = new SeededRandom(0x2222)
  const stats = createHttpStats()
  const slow: string[] = []
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
  // SETTINGS (empty), then HEADERS on stream 1 with a literal :method GET, :path /, :scheme https and
  // :authority a.test, END_STREAM|END_HEADERS.
  const settings = Buffer.from('000000040000000000', 'hex')
  const block = Buffer.from([0x82, 0x84, 0x87, 0x41, 0x06, ...Buffer.from('a.test')])
  const headers = Buffer.concat([Buffer.from([0, 0, block.length, 0x01, 0x05, 0, 0, 0, 1]), block])
  const frames = Buffer.concat([settings, headers]).toString('latin1')
  const server = (await import('node:http2')).createServer()
  server.on('stream', (s) => {
    s.respond({ ':status': 200 })
    s.end('ok')
  })
  server.on('sessionError', () => {})
  let answered = 0
  for (let i = 0; i < CASES; i++) {
    const input = i === 0 ? Buffer.from(frames, 'latin1') : mutate(r, frames)
    const got = await runFlow(
      slow,
      stats,
      Buffer.concat([preface, input]),
      (d) => server.emit('connection', d),
      'h2',
    )
    if (got.length > 0) answered++
  }
  t.is(stats.internalErrors, 0)
  t.deepEqual(slow, [], 'flows left to the idle timer')
  t.true(stats.upstreamResponses > 0, 'the unmutated case went through')
  t.true(answered > 0)
})
