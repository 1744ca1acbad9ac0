// Throughput of the user-space TCP stack end to end over a lossless in-memory link (two stacks, one bulk
// transfer), beside a baseline measured in the same run: the same bytes through a Node stream.PassThrough.
// Two figures: the pure core (Connection API) and the Duplex shell (what the relay will use); a second
// baseline is kernel TCP over loopback through node:net. No Geneve/IP encoding is included (it is not ours yet).
//   node bench/tcp-sim.ts [--mb 256]
import { once } from 'node:events'
import { createServer, connect as netConnect } from 'node:net'
import { PassThrough } from 'node:stream'
import { parseArgs } from 'node:util'
import { SeededRandom, systemClock } from '../appliance/src/tcp/clock.ts'
import type { TcpRepr } from '../appliance/src/tcp/segment.ts'
import { type FourTuple, TcpStack } from '../appliance/src/tcp/stack.ts'
import { tcpConnect, tcpListen } from '../appliance/src/tcp/stream.ts'
import { flip } from '../test/tcp/link.ts'

const { values } = parseArgs({ options: { mb: { type: 'string', default: '256' } } })
const TOTAL = Number(values.mb) * 1024 * 1024
const CHUNK = 64 * 1024
const chunk = new Uint8Array(CHUNK).fill(7)

const TUPLE: FourTuple = { localAddr: '10.0.0.1', localPort: 40_000, remoteAddr: '10.0.0.2', remotePort: 443 }

function stacks() {
  let queue: { to: TcpStack; tuple: FourTuple; seg: TcpRepr }[] = []
  const config = { sndBufSize: 1 << 20, rcvBufSize: 1 << 20, oooLimit: 1 << 20 }
  const a: TcpStack = new TcpStack({
    clock: systemClock,
    random: new SeededRandom(1),
    config,
    output: (t, s) => queue.push({ to: b, tuple: flip(t), seg: s }),
  })
  const b: TcpStack = new TcpStack({
    clock: systemClock,
    random: new SeededRandom(2),
    config,
    output: (t, s) => queue.push({ to: a, tuple: flip(t), seg: s }),
  })
  const pump = () => {
    let n = 0
    while (queue.length) {
      const q = queue
      queue = []
      for (const d of q) d.to.input(d.tuple, d.seg)
      n += q.length
    }
    return n
  }
  return { a, b, pump }
}

async function core(): Promise<number> {
  const { a, b, pump } = stacks()
  let received = 0
  b.listen({ localAddr: '10.0.0.2', localPort: 443 }, (conn) => {
    conn.events = {
      onData: (d) => {
        received += d.length
        conn.consumed(d.length)
      },
    }
  })
  let sent = 0
  const conn = a.connect(TUPLE)
  const write = () => {
    while (sent < TOTAL) {
      sent += CHUNK
      if (!conn.write(chunk)) return
    }
  }
  conn.events = { onEstablished: write, onDrain: write }
  const t0 = performance.now()
  while (received < TOTAL) {
    if (pump() === 0) await new Promise((r) => setImmediate(r))
  }
  return performance.now() - t0
}

async function duplex(): Promise<number> {
  const { a, b, pump } = stacks()
  let received = 0
  let running = true
  const loop = () => {
    pump()
    if (running) setImmediate(loop)
  }
  setImmediate(loop)
  const done = new Promise<void>((resolve) => {
    tcpListen(b, { localAddr: '10.0.0.2', localPort: 443 }, (s) => {
      s.on('data', (d: Buffer) => {
        received += d.length
        if (received >= TOTAL) resolve()
      })
    })
  })
  const c = tcpConnect(a, TUPLE)
  const t0 = performance.now()
  let sent = 0
  const write = () => {
    while (sent < TOTAL) {
      sent += CHUNK
      if (!c.write(chunk)) return
    }
  }
  c.on('drain', write)
  c.once('connect', write)
  await done
  running = false
  return performance.now() - t0
}

async function passThrough(): Promise<number> {
  const p = new PassThrough()
  let received = 0
  const t0 = performance.now()
  const done = new Promise<void>((resolve) => {
    p.on('data', (d: Buffer) => {
      received += d.length
      if (received >= TOTAL) resolve()
    })
  })
  let sent = 0
  const write = () => {
    while (sent < TOTAL) {
      sent += CHUNK
      if (!p.write(chunk)) return
    }
  }
  p.on('drain', write)
  write()
  await done
  return performance.now() - t0
}

/** Kernel TCP over loopback through Node's net module: the same bytes, the same write loop. */
async function kernel(): Promise<number> {
  let received = 0
  let resolveDone!: () => void
  const done = new Promise<void>((r) => {
    resolveDone = r
  })
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      received += d.length
      if (received >= TOTAL) resolveDone()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const c = netConnect(port, '127.0.0.1')
  await once(c, 'connect')
  const t0 = performance.now()
  let sent = 0
  const write = () => {
    while (sent < TOTAL) {
      sent += CHUNK
      if (!c.write(chunk)) return
    }
  }
  c.on('drain', write)
  write()
  await done
  const ms = performance.now() - t0
  c.destroy()
  server.close()
  return ms
}

const mbps = (ms: number) => TOTAL / 1024 / 1024 / (ms / 1000)
// Warm up the JIT on a small run of each, then measure.
for (const f of [core, duplex, passThrough, kernel]) await f()
const base = mbps(await passThrough())
const k = mbps(await kernel())
const c = mbps(await core())
const d = mbps(await duplex())
console.log(`transfer: ${TOTAL / 1024 / 1024} MiB, MSS 8440, 1 MiB buffers, lossless in-memory link`)
console.log(`baseline stream.PassThrough : ${base.toFixed(0)} MB/s`)
console.log(`kernel TCP (net, loopback)  : ${k.toFixed(0)} MB/s`)
console.log(
  `tcp core (Connection API)   : ${c.toFixed(0)} MB/s  ${(c / base).toFixed(3)}× PassThrough, ${(c / k).toFixed(2)}× kernel`,
)
console.log(
  `tcp Duplex (TcpSocket)      : ${d.toFixed(0)} MB/s  ${(d / base).toFixed(3)}× PassThrough, ${(d / k).toFixed(2)}× kernel`,
)
console.log(
  '(PassThrough hands the same chunk objects along without copying; the Connection API hands in-order bytes over as views, TcpSocket copies every received byte once.)',
)
