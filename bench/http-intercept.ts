// What the HTTP layer adds per request: sequential keep-alive requests from a Node client to a Node origin
// over in-memory duplexPair streams (no TLS, no TCP, so the figure is the layer's own), directly and through
// interceptHttp (Allow; Inspect without hooks, as an Inspect rule that only decides per request; Inspect with
// both hooks in the script sandbox), for HTTP/1.1 and HTTP/2. Prints p50/p99 per request and the added time
// against the direct run measured in the same process.
import http from 'node:http'
import http2 from 'node:http2'
import type net from 'node:net'
import { performance } from 'node:perf_hooks'
import { type Duplex, duplexPair } from 'node:stream'
import { createHttpStats, type InterceptOptions, interceptHttp } from '../appliance/src/http/index.ts'
import { ScriptEngine } from '../appliance/src/http/script/index.ts'

const N = Number(process.env.N ?? 2000)
const WARMUP = 200
const BUDGET_MS = 20_000
const BODY = Buffer.alloc(1024, 0x61)

type Mode = 'direct' | 'allow' | 'decide' | 'inspect'
const scripts = await ScriptEngine.create()
const hooks = {
  onRequest:
    'function onRequest(event) { event.request.headers["x-seen"] = { value: "1" }; return event.request }',
  onResponse:
    'function onResponse(event) { event.response.headers["x-flowgate"] = { value: "1" }; return event.response }',
}

/** The path a client stream takes: straight to the origin's end, or through interceptHttp. */
function wire(mode: Mode, protocol: 'http/1.1' | 'h2', originSide: (d: Duplex) => void): Duplex {
  const [client, proxyClient] = duplexPair()
  if (mode === 'direct') {
    originSide(proxyClient)
    return client
  }
  const [proxyUpstream, origin] = duplexPair()
  originSide(origin)
  const opts: InterceptOptions = {
    protocol,
    sni: null,
    authority: 'bench.test',
    decide: () =>
      mode === 'inspect'
        ? { action: 'Inspect', policy: 'p', rule: 'r', hooks }
        : mode === 'decide'
          ? { action: 'Inspect', policy: 'p', rule: 'r' }
          : { action: 'Allow' },
    scripts,
    event: { endpointId: 'vpce-01234567890abcdef', viewerIp: '10.0.0.1' },
    stats: createHttpStats(),
  }
  void interceptHttp(proxyClient, proxyUpstream, opts)
  return client
}

async function runH1(mode: Mode): Promise<number[]> {
  const server = http.createServer((_req, res) => {
    res.setHeader('content-length', BODY.length)
    res.end(BODY)
  })
  const stream = wire(mode, 'http/1.1', (d) => server.emit('connection', d))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  // The agent re-arms TCP keep-alive and (un)refs pooled sockets: no-ops on an in-memory stream.
  const s = stream as Duplex & Record<string, unknown>
  for (const m of ['ref', 'unref', 'setKeepAlive', 'setTimeout']) s[m] = () => s
  agent.createConnection = () => stream as unknown as net.Socket
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request({ agent, path: '/item?id=1', host: 'bench.test' }, (res) => {
        res.resume()
        res.on('end', resolve)
      })
      req.on('error', reject)
      req.end()
    })
  return time(one)
}

async function runH2(mode: Mode): Promise<number[]> {
  const server = http2.createServer()
  server.on('stream', (s) => {
    s.respond({ ':status': 200, 'content-length': BODY.length })
    s.end(BODY)
  })
  const stream = wire(mode, 'h2', (d) => server.emit('connection', d))
  const session = http2.connect('http://bench.test', {
    createConnection: () => stream as unknown as net.Socket,
  })
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = session.request({ ':path': '/item?id=1' })
      req.on('error', reject)
      req.resume()
      req.on('end', resolve)
    })
  try {
    return await time(one)
  } finally {
    session.destroy()
  }
}

async function time(one: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await one()
  const out: number[] = []
  const stop = performance.now() + BUDGET_MS
  for (let i = 0; i < N && performance.now() < stop; i++) {
    const t0 = performance.now()
    await one()
    out.push((performance.now() - t0) * 1000)
  }
  return out.sort((a, b) => a - b)
}

/** A new connection per request: what setting a flow up costs (server, agent, parser per flow). */
async function runH1Flows(mode: Mode): Promise<number[]> {
  const server = http.createServer((_req, res) => {
    res.setHeader('content-length', BODY.length)
    res.end(BODY)
  })
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const stream = wire(mode, 'http/1.1', (d) => server.emit('connection', d))
      const req = http.request(
        { createConnection: () => stream as unknown as net.Socket, path: '/item?id=1', host: 'bench.test' },
        (res) => {
          res.resume()
          res.on('end', resolve)
        },
      )
      req.on('error', reject)
      req.end()
    })
  return time(one)
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!
for (const [name, run] of [
  ['HTTP/1.1 keep-alive', runH1],
  ['HTTP/2', runH2],
  ['HTTP/1.1 one request per new flow', runH1Flows],
] as const) {
  const direct = await run('direct')
  const base = pct(direct, 0.5)
  console.log(`${name}: ${direct.length} sequential requests per mode, 1 KiB responses`)
  console.log(
    `  direct                     p50 ${base.toFixed(0)} µs  p99 ${pct(direct, 0.99).toFixed(0)} µs`,
  )
  for (const mode of ['allow', 'decide', 'inspect'] as const) {
    const xs = await run(mode)
    const p50 = pct(xs, 0.5)
    const label = mode === 'decide' ? 'inspect, no hooks' : mode
    console.log(
      `  through ${`(${label})`.padEnd(19)} p50 ${p50.toFixed(0)} µs  p99 ${pct(xs, 0.99).toFixed(0)} µs  ` +
        `added ${(p50 - base).toFixed(0)} µs  ×${(p50 / base).toFixed(2)}`,
    )
  }
}
process.exit(0)
