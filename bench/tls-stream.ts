// TLS over the user-space TCP stack, in one process, without the lab: what a keep-alive request/response
// costs in CPU when both TLS ends sit on our connections, against the same exchange over kernel loopback
// TCP measured in the same run (the baseline; a bare Node TLS proxy's legs are that). Three transports:
//   kernel       tls.createServer / tls.connect over 127.0.0.1 (libuv handles, kernel TCP)
//   handle       TLS straight on the connection (tcp/stream-handle.ts: what the interceptor uses)
//   duplex       TLS over the TcpSocket Duplex (Node wraps it in JSStreamSocket: the path before)
// The two user-space stacks are joined in memory: segments cross in batches on setImmediate, as the packet
// loop hands them over, with no Geneve or syscalls — so the figure is TCP + TLS plumbing alone. Each round runs
// every transport (order rotating) for COUNT exchanges of a 100-byte request and a 1 KiB response over CONNS
// connections; reported: CPU µs per exchange (both TLS ends together), median over rounds, and the ratios to
// the kernel baseline of the same round.
//   npm run bench -- tls-stream          ROUNDS=5 COUNT=20000 CONNS=8
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { connect, createServer, type TLSSocket, TLSSocket as TlsSocket } from 'node:tls'
import { systemClock } from '../appliance/src/tcp/clock.ts'
import type { TcpRepr } from '../appliance/src/tcp/segment.ts'
import { type FourTuple, TcpStack } from '../appliance/src/tcp/stack.ts'
import { type TcpSocket, tcpConnect, tcpListen } from '../appliance/src/tcp/stream.ts'
import { streamSocketFor } from '../appliance/src/tcp/stream-handle.ts'
import { StandInCa } from '../standin/src/origin-pki.ts'
import { flip } from '../test/tcp/link.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const COUNT = Number(process.env.COUNT ?? 20_000)
const CONNS = Number(process.env.CONNS ?? 8)
const NAME = 'origin.bench.test'
const REQUEST = Buffer.alloc(100, 0x61)
const RESPONSE = Buffer.alloc(1024, 0x62)
// Bounded whatever happens.
setTimeout(() => {
  console.error('tls-stream: over its time limit')
  process.exit(3)
}, 300_000).unref()

const ca = await StandInCa.create('CN=tls-stream bench CA')
const leaf = await ca.issue([NAME])
const serverOpts = { cert: leaf.certPem, key: leaf.keyPem() }

type Transport = 'kernel' | 'handle' | 'duplex'
type Pair = [client: TLSSocket, server: TLSSocket]

/** Two stacks joined in memory; segments cross in batches on setImmediate. */
class MemoryLink {
  readonly a: TcpStack
  readonly b: TcpStack
  #queue: { to: TcpStack; tuple: FourTuple; seg: TcpRepr }[] = []
  #scheduled = false
  constructor() {
    const out = (to: () => TcpStack) => (tuple: FourTuple, seg: TcpRepr) => {
      this.#queue.push({ to: to(), tuple: flip(tuple), seg })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(this.#drain)
      }
    }
    this.a = new TcpStack({ clock: systemClock, output: out(() => this.b) })
    this.b = new TcpStack({ clock: systemClock, output: out(() => this.a) })
  }
  readonly #drain = () => {
    this.#scheduled = false
    const q = this.#queue
    this.#queue = []
    for (const d of q) d.to.input(d.tuple, d.seg)
  }
}

async function tcpPairs(n: number): Promise<[TcpSocket, TcpSocket][]> {
  const link = new MemoryLink()
  const pairs: [TcpSocket, TcpSocket][] = []
  for (let i = 0; i < n; i++) {
    const tuple = { localAddr: '10.0.0.1', localPort: 40_000 + i, remoteAddr: '10.0.0.2', remotePort: 443 }
    const server = new Promise<TcpSocket>((resolve) => {
      const l = tcpListen(
        link.b,
        { localAddr: '10.0.0.2', localPort: 443, remoteAddr: '10.0.0.1', remotePort: tuple.localPort },
        (s) => {
          l.close()
          resolve(s)
        },
      )
    })
    const c = tcpConnect(link.a, tuple)
    pairs.push([c, await server])
  }
  return pairs
}

async function open(t: Transport, n: number): Promise<{ pairs: Pair[]; close(): void }> {
  if (t === 'kernel') {
    const servers: TLSSocket[] = []
    const srv = createServer(serverOpts, (s) => {
      s.setNoDelay(true)
      servers.push(s)
    })
    srv.listen(0, '127.0.0.1')
    await once(srv, 'listening')
    const port = (srv.address() as AddressInfo).port
    const clients: TLSSocket[] = []
    for (let i = 0; i < n; i++) {
      const c = connect({ host: '127.0.0.1', port, servername: NAME, ca: ca.pem })
      c.setNoDelay(true)
      await once(c, 'secureConnect')
      clients.push(c)
    }
    while (servers.length < n) await new Promise((r) => setImmediate(r))
    return {
      pairs: clients.map((c, i) => [c, servers[i]!] as Pair),
      close: () => {
        for (const s of [...clients, ...servers]) s.destroy()
        srv.close()
      },
    }
  }
  const tcp = await tcpPairs(n)
  const wrap = (s: TcpSocket) => (t === 'handle' ? streamSocketFor(s) : s)
  const pairs: Pair[] = []
  for (const [c, s] of tcp) {
    const server = new TlsSocket(wrap(s), { isServer: true, ...serverOpts })
    const client = connect({ socket: wrap(c), servername: NAME, ca: ca.pem })
    await Promise.all([once(client, 'secureConnect'), once(server, 'secure')])
    pairs.push([client, server])
  }
  return {
    pairs,
    close: () => {
      for (const s of pairs.flat()) s.destroy()
    },
  }
}

/** COUNT exchanges spread over the pairs; resolves with CPU µs per exchange. */
async function run(pairs: Pair[], count: number): Promise<number> {
  let started = 0
  const one = ([client, server]: Pair) =>
    new Promise<void>((resolve, reject) => {
      let got = 0
      let want = 0
      server.on('data', (d: Buffer) => {
        got += d.length
        while (got >= REQUEST.length) {
          got -= REQUEST.length
          server.write(RESPONSE)
        }
      })
      const next = () => {
        if (started >= count) return resolve()
        started++
        want = RESPONSE.length
        client.write(REQUEST)
      }
      client.on('data', (d: Buffer) => {
        want -= d.length
        if (want === 0) next()
        else if (want < 0) reject(new Error('extra bytes'))
      })
      next()
    })
  const cpu0 = process.cpuUsage()
  await Promise.all(pairs.map(one))
  const c = process.cpuUsage(cpu0)
  for (const p of pairs) for (const s of p) s.removeAllListeners('data')
  return (c.user + c.system) / count
}

const transports: Transport[] = ['kernel', 'handle', 'duplex']
const results = new Map<Transport, number[]>(transports.map((t) => [t, []]))
// Warm-up: JIT and the TLS code paths, not measured.
for (const t of transports) {
  const o = await open(t, CONNS)
  await run(o.pairs, 2000)
  o.close()
}
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < transports.length; i++) {
    const t = transports[(i + r) % transports.length]!
    const o = await open(t, CONNS)
    results.get(t)!.push(await run(o.pairs, COUNT))
    o.close()
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
console.log(
  `tls-stream: ${ROUNDS} rounds × ${COUNT} exchanges (100 B request, 1 KiB response, TLS 1.3) over ${CONNS} connections, both TLS ends in this process`,
)
console.log(
  '  CPU µs per exchange, median [min–max] over rounds; ratio to kernel, median of same-round ratios',
)
for (const t of transports) {
  const xs = results.get(t)!
  const ratios = xs.map((x, i) => x / results.get('kernel')![i]!)
  console.log(
    `  ${t.padEnd(7)} ${median(xs).toFixed(1).padStart(6)}  [${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}]` +
      (t === 'kernel' ? '' : `   ×${median(ratios).toFixed(2)} the kernel's cost`),
  )
}
process.exit(0)
