// What the HTTP layer adds per request, two ways:
//   1. latency: sequential keep-alive requests from a Node client to a Node origin over in-memory duplexPair
//      streams (no TLS, no TCP, so the figure is the layer's own), directly and through interceptHttp (Allow;
//      Inspect without hooks, as an Inspect rule that only decides per request; Inspect with both hooks in the
//      script sandbox), for HTTP/1.1 and HTTP/2: p50/p99 per request and the time added against the direct
//      run measured in the same process;
//   2. CPU: HTTP/1.1 keep-alive through a proxy process that terminates TLS on both sides over JS Duplex
//      streams (as the data plane does over its user-space TCP; loopback sockets underneath here), 16
//      connections, CPU µs per request of that process: relaying the decrypted bytes (the floor: TLS and the
//      streams, no HTTP) against interceptHttp, interleaved rounds, medians and spread.
//   npm run bench -- http-intercept            N=2000 per latency mode; TLS_REQS=20000 per CPU round, 3 rounds
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { type Duplex, duplexPair } from 'node:stream'
import tls from 'node:tls'
import { createHttpStats, type InterceptOptions, interceptHttp } from '../appliance/src/http/index.ts'
import { ScriptEngine } from '../appliance/src/http/script/index.ts'
import { makePki, SocketDuplex } from '../test/http/harness.ts'

// The proxy process of part 2 is this file again: `HTTP_INTERCEPT_PROXY=mode originPort pkiDir`.
if (process.env.HTTP_INTERCEPT_PROXY) await proxyProcess(process.env.HTTP_INTERCEPT_PROXY.split(' '))

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
  console.log(`${'  direct'.padEnd(29)} p50 ${base.toFixed(0)} µs  p99 ${pct(direct, 0.99).toFixed(0)} µs`)
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

// ------------------------------------------------------------------------ 2. CPU over TLS on JS streams

const TLS_REQS = Number(process.env.TLS_REQS ?? 20_000)
const TLS_ROUNDS = Number(process.env.TLS_ROUNDS ?? 3)
const TLS_CONNS = 16
type TlsMode = 'relay' | 'allow' | 'decide'

async function proxyProcess([mode, originPort, dir]: string[]): Promise<never> {
  const leaf = tls.createSecureContext({
    cert: readFileSync(`${dir}/leaf.crt`),
    key: readFileSync(`${dir}/leaf.key`),
  })
  const trust = tls.createSecureContext({ ca: readFileSync(`${dir}/ca.crt`) })
  const stats = createHttpStats()
  const server = net.createServer((raw) => {
    raw.setNoDelay(true)
    const o = net.connect({ port: Number(originPort), host: '127.0.0.1', noDelay: true })
    o.once('connect', () => {
      const up = tls.connect({
        socket: new SocketDuplex(o),
        servername: 'origin.test',
        secureContext: trust,
        ALPNProtocols: ['http/1.1'],
      })
      up.once('secureConnect', () => {
        const down = new tls.TLSSocket(new SocketDuplex(raw), {
          isServer: true,
          secureContext: leaf,
          ALPNProtocols: ['http/1.1'],
        })
        down.once('secure', () => {
          if (mode === 'relay') {
            down.pipe(up)
            up.pipe(down)
            return
          }
          void interceptHttp(down, up, {
            protocol: 'http/1.1',
            sni: 'origin.test',
            authority: 'origin.test',
            decide: () =>
              mode === 'decide' ? { action: 'Inspect', policy: 'p', rule: 'r' } : { action: 'Allow' },
            event: { endpointId: 'vpce-01234567890abcdef', viewerIp: '10.0.0.1' },
            stats,
          })
        })
      })
    })
  })
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }))
  process.on('message', (m) => {
    if (m !== 'cpu') return process.exit(0)
    const c = process.cpuUsage()
    process.send!({ cpu: c.user + c.system })
  })
  setTimeout(() => process.exit(1), 120_000).unref()
  return new Promise<never>(() => undefined)
}

async function tlsRound(mode: TlsMode, originPort: number, pki: ReturnType<typeof makePki>): Promise<number> {
  const child = fork(new URL(import.meta.url).pathname, [], {
    env: { ...process.env, HTTP_INTERCEPT_PROXY: `${mode} ${originPort} ${pki.dir}` },
  })
  const [{ port }] = (await once(child, 'message')) as [{ port: number }]
  const cpu = async () => {
    child.send('cpu')
    const [m] = (await once(child, 'message')) as [{ cpu: number }]
    return m.cpu
  }
  let left = TLS_REQS
  let go!: () => void
  const start = new Promise<void>((r) => {
    go = r
  })
  const agents: https.Agent[] = []
  const loop = async () => {
    const agent = new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: pki.caPem,
      servername: 'origin.test',
    })
    agents.push(agent)
    const one = () =>
      new Promise<void>((resolve, reject) => {
        const req = https.request(
          { agent, host: '127.0.0.1', port, path: '/item?id=1', headers: { host: 'origin.test' } },
          (res) => {
            res.resume()
            res.on('end', resolve)
          },
        )
        req.on('error', reject)
        req.end()
      })
    for (let i = 0; i < 30; i++) await one() // handshakes and warm-up, outside the window
    await start
    while (left-- > 0) await one()
  }
  const loops = Array.from({ length: TLS_CONNS }, loop)
  await new Promise((r) => setTimeout(r, 300))
  const c0 = await cpu()
  go()
  await Promise.all(loops)
  const c1 = await cpu()
  for (const a of agents) a.destroy()
  child.send('exit')
  await once(child, 'exit')
  return (c1 - c0) / TLS_REQS
}

{
  const pki = makePki()
  const origin = https.createServer({ cert: pki.cert, key: pki.key }, (_req, res) => {
    res.setHeader('content-length', BODY.length)
    res.end(BODY)
  })
  origin.on('connection', (s: net.Socket) => s.setNoDelay(true))
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  const originPort = (origin.address() as net.AddressInfo).port
  const modes: TlsMode[] = ['relay', 'allow', 'decide']
  const got = new Map<TlsMode, number[]>()
  for (let r = 0; r < TLS_ROUNDS; r++) {
    for (const m of r % 2 ? [...modes].reverse() : modes)
      got.set(m, [...(got.get(m) ?? []), await tlsRound(m, originPort, pki)])
  }
  origin.close()
  pki.cleanup()
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const floor = med(got.get('relay')!)
  console.log(
    `HTTP/1.1 keep-alive over TLS on JS streams (both sides), ${TLS_CONNS} connections, ${TLS_REQS} requests per round, ` +
      `${TLS_ROUNDS} rounds: CPU µs per request of the proxy process, median [min–max]`,
  )
  for (const m of modes) {
    const xs = got.get(m)!
    const label = m === 'relay' ? 'relay (no HTTP)' : m === 'decide' ? 'inspect, no hooks' : m
    const extra = m === 'relay' ? '' : `  HTTP layer ${(med(xs) - floor).toFixed(1)} µs`
    console.log(
      `  ${label.padEnd(18)} ${med(xs).toFixed(1)} [${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}]${extra}`,
    )
  }
}
process.exit(0)
