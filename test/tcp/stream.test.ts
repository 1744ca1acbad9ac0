// The Duplex shell over two stacks: backpressure both ways, half-close, destroy → RST, refused connects.
// Segments cross on setImmediate; each turn with nothing in flight moves the fake clock by 1 ms.

import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import test from 'ava'
import { relay } from '../../appliance/src/dataplane/tcp-proxy.ts'
import { FakeClock, SeededRandom } from '../../appliance/src/tcp/clock.ts'
import { resetFor } from '../../appliance/src/tcp/connection.ts'
import type { TcpError } from '../../appliance/src/tcp/errors.ts'
import { Flag, type TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { type FourTuple, TcpStack, tupleKey } from '../../appliance/src/tcp/stack.ts'
import { State } from '../../appliance/src/tcp/state.ts'
import { type TcpSocket, tcpAccept, tcpConnect, tcpListen } from '../../appliance/src/tcp/stream.ts'
import { A, flip, Link, pair, pair2 } from './link.ts'

function random(n: number, seed: number): Buffer {
  const r = new SeededRandom(seed)
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = r.u32() & 0xff
  return b
}

/** Reads to EOF without destroying (for-await would destroy the socket at EOF, and destroy() means RST). */
async function readAll(s: TcpSocket): Promise<Buffer> {
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  await once(s, 'end')
  return Buffer.concat(chunks)
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

test('1 MB each way at once, half-close on both sides, byte-exact', async (t) => {
  const l = new Link()
  const [c, s] = await pair(l)
  t.is(c.remoteAddress, '10.0.0.2')
  t.is(s.remoteAddress, '10.0.0.1')
  t.is(s.remotePort, 40_000)
  const up = random(1 << 20, 1)
  const down = random(1 << 20, 2)
  const [gotUp, gotDown] = await Promise.all([
    readAll(s),
    readAll(c),
    (async () => {
      c.end(up)
      s.end(down)
    })(),
  ])
  t.is(sha(gotUp), sha(up))
  t.is(sha(gotDown), sha(down))
  await Promise.all([c, s].map((x) => (x.closed ? undefined : once(x, 'close'))))
  // The Duplex closes once both directions are done; the FIN exchange then completes underneath.
  const done = (x: TcpSocket) => x.connection.state === State.TIME_WAIT || x.connection.state === State.CLOSED
  for (let i = 0; i < 1000 && !(done(c) && done(s)); i++) await new Promise((r) => setImmediate(r))
  t.true(done(c) && done(s))
  t.is(l.a.metrics.resetsSent + l.b.metrics.resetsSent, 0)
  l.stop()
})

test('half-close: after end() the peer still answers and we still read', async (t) => {
  const l = new Link()
  const [c, s] = await pair(l)
  s.on('data', () => {})
  const request = Buffer.from('GET / HTTP/1.0\r\n\r\n')
  const serverGot: Buffer[] = []
  s.removeAllListeners('data')
  s.on('data', (d: Buffer) => serverGot.push(d))
  s.on('end', () => {
    // The client's FIN arrived; the server is in CLOSE-WAIT and can still send.
    t.is(s.connection.state, State.CLOSE_WAIT)
    s.end(Buffer.concat([Buffer.from('echo:'), ...serverGot]))
  })
  c.end(request)
  const reply = await readAll(c)
  t.is(reply.toString(), `echo:${request}`)
  l.stop()
})

test('backpressure: a reader that stops closes the window; memory stays within the buffers', async (t) => {
  // The receive buffer may autotune up to 4 MiB (the default rcvBufMax), but not for a reader that stopped.
  const cfg = { rcvBufSize: 32 * 1024, sndBufSize: 32 * 1024, sndBufMax: 32 * 1024 }
  const l = new Link(cfg)
  const [c, s] = await pair(l)
  s.pause()
  const data = random(1 << 20, 3)
  let writesBlocked = 0
  const writer = (async () => {
    for (let o = 0; o < data.length; o += 16 * 1024) {
      if (!c.write(data.subarray(o, o + 16 * 1024))) {
        writesBlocked++
        await once(c, 'drain')
      }
    }
    c.end()
  })()
  // Let the stacks run while nobody reads.
  for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r))
  t.true(writesBlocked > 0, 'the writer saw backpressure')
  t.is(s.connection.rcvBuf, cfg.rcvBufSize, 'no autotuning for a reader that stopped')
  t.true(s.connection.rcvUnread <= cfg.rcvBufSize, 'receiver holds at most its buffer')
  t.true(
    c.connection.sendBuffered <= cfg.sndBufSize + 16 * 1024,
    'sender holds at most its buffer (+1 write)',
  )
  t.is(s.connection.sndWnd >= 0, true)
  t.is(c.connection.sndWnd, 0, 'the window is closed')
  const got = readAll(s)
  s.resume()
  await writer
  t.is(sha(await got), sha(data))
  l.stop()
})

test('destroy() sends RST: the peer errors with ECONNRESET', async (t) => {
  const l = new Link()
  const [c, s] = await pair(l)
  const err = once(s, 'error')
  c.destroy()
  const [e] = (await err) as [TcpError]
  t.is(e.code, 'FG_ERR_TCP_RESET')
  t.is(e.errno, 'ECONNRESET')
  t.is(l.a.metrics.resetsSent, 1)
  t.is(l.b.metrics.resetsReceived, 1)
  l.stop()
})

test('end() then destroy() before the peer has closed: no RST, the FIN exchange finishes on its own', async (t) => {
  // A TLS layer that has seen close_notify answers it, ends and destroys its stream at once; the peer's FIN
  // is still on its way. Linux's close() does not reset such a peer, nor do we (Connection.orphan).
  const l = new Link()
  const [c, s] = await pair(l)
  const got = readAll(s)
  c.end(Buffer.from('bye'))
  c.destroy()
  t.is((await got).toString(), 'bye')
  s.end()
  await once(s, 'close')
  for (let i = 0; i < 50 && l.a.get(A)?.state !== State.TIME_WAIT; i++) await new Promise(setImmediate)
  t.is(l.a.get(A)?.state, State.TIME_WAIT, "the orphan took the peer's FIN and went to TIME-WAIT")
  t.is(l.a.metrics.resetsSent, 0)
  t.is(l.b.metrics.resetsReceived, 0)
  l.stop()
})

test('an orphaned connection resets a peer that still sends data, and one that never sends its FIN', async (t) => {
  const l = new Link({ finTimeoutMs: 200 })
  const [c, s] = await pair(l)
  c.end()
  c.destroy()
  await once(s.resume(), 'end')
  const err = once(s, 'error')
  s.write(Buffer.from('nobody reads this'))
  const [e] = (await err) as [TcpError]
  t.is(e.errno, 'ECONNRESET', 'data after close: RST, as Linux')
  t.is(l.a.metrics.resetsSent, 1)
  const [c2, s2] = await pair2(l)
  c2.end()
  c2.destroy()
  await once(s2.resume(), 'end')
  const err2 = once(s2, 'error')
  // s2 never ends: after finTimeoutMs the orphan gives up with RST.
  const [e2] = (await err2) as [TcpError]
  t.is(e2.errno, 'ECONNRESET')
  t.is(l.a.metrics.resetsSent, 2)
  l.stop()
})

test('relay: an abort on one side resets the other, even one already half-closed in order', async (t) => {
  // client c1 ⇄ s1 [relay] c2 ⇄ s2 origin. The origin ends first (its FIN is relayed: s1's FIN is queued),
  // then resets: the client must see that reset, not a quiet close (docs/flowpolicy.md, tcpProxy).
  const l = new Link()
  const [c1, s1] = await pair(l)
  const [c2, s2] = await pair2(l)
  relay(s1, c2)
  c1.resume()
  s2.end()
  await once(c1, 'end') // the origin's FIN reached the client through the relay
  const err = once(c1, 'error')
  const at = l.clock.now()
  s2.connection.abort()
  const [e] = (await err) as [TcpError]
  t.is(e.errno, 'ECONNRESET')
  // At once, not when the relay's half-closed side gave up waiting for the client's FIN (finTimeoutMs).
  t.true(l.clock.now() - at < 1000, `reset after ${l.clock.now() - at} ms`)
  l.stop()
})

test('connecting to a port nobody listens on fails with ECONNREFUSED', async (t) => {
  const l = new Link()
  const c = tcpConnect(l.a, A)
  const [e] = (await once(c, 'error')) as [TcpError]
  t.is(e.errno, 'ECONNREFUSED')
  l.stop()
})

test('streams compose: pipeline through the stack is byte-exact', async (t) => {
  const l = new Link()
  const [c, s] = await pair(l)
  const data = random(300_000, 9)
  const got = readAll(s)
  await pipeline(
    (async function* () {
      for (let o = 0; o < data.length; o += 7000) yield data.subarray(o, o + 7000)
    })(),
    c,
  )
  t.is(sha(await got), sha(data))
  l.stop()
})

// The shape issue 4 item 2 will take: a proxy stack in the middle that answers the client as the server
// and connects to the server as the client. Upstream first: the client's SYN is held until the server has
// accepted; a refusal is passed on as RST. This shows the API the data plane will plug into.

class ProxyNet {
  readonly clock = new FakeClock(0)
  readonly client: TcpStack
  readonly proxy: TcpStack
  readonly server: TcpStack
  #queue: (() => void)[] = []
  #running = true
  readonly #pending = new Set<string>()
  readonly relayed: Promise<void>[] = []
  constructor() {
    const rnd = (n: number) => new SeededRandom(n)
    // Everything the client and the server send passes through the proxy (as GWLB would deliver it).
    this.client = new TcpStack({
      clock: this.clock,
      random: rnd(1),
      output: (t, s) => this.#queue.push(() => this.#atProxy(flip(t), s)),
    })
    this.server = new TcpStack({
      clock: this.clock,
      random: rnd(3),
      output: (t, s) => this.#queue.push(() => this.#atProxy(flip(t), s)),
    })
    this.proxy = new TcpStack({
      clock: this.clock,
      random: rnd(2),
      resetUnknown: false,
      output: (t, s) => {
        const to = t.remoteAddr === 'client' ? this.client : this.server
        this.#queue.push(() => to.input(flip(t), s))
      },
    })
    const tick = () => {
      if (!this.#running) return
      const q = this.#queue
      this.#queue = []
      for (const f of q) f()
      if (!q.length) this.clock.advance(1)
      setImmediate(tick)
    }
    setImmediate(tick)
  }
  #atProxy(tuple: FourTuple, seg: TcpRepr): void {
    const isNewSyn = seg.flags === Flag.SYN && !this.proxy.get(tuple)
    if (!isNewSyn) {
      this.proxy.input(tuple, seg)
      return
    }
    if (tuple.localAddr !== 'server') return // only client-side SYNs start a flow
    const key = tupleKey(tuple)
    if (this.#pending.has(key)) return // a retransmitted SYN while upstream is still connecting
    this.#pending.add(key)
    // Hold the SYN; connect upstream as the client (the client's address and port).
    const upstream = tcpConnect(this.proxy, {
      localAddr: tuple.remoteAddr,
      localPort: tuple.remotePort,
      remoteAddr: tuple.localAddr,
      remotePort: tuple.localPort,
    })
    upstream.once('connect', () => {
      const down = tcpAccept(this.proxy, tuple, seg)!
      this.relayed.push(Promise.all([pipeline(down, upstream), pipeline(upstream, down)]).then(() => {}))
    })
    upstream.once('error', () => {
      // Refused upstream: the client sees the RST the server would have sent.
      const rst = resetFor(seg)!
      this.#queue.push(() => this.client.input(flip(tuple), rst))
    })
  }
  stop(): void {
    this.#running = false
  }
}

test('proxy shape: upstream first, both directions relayed through two user-space connections', async (t) => {
  const n = new ProxyNet()
  let serverSaw: string | undefined
  tcpListen(n.server, { localAddr: 'server', localPort: 443 }, (s) => {
    serverSaw = `${s.remoteAddress}:${s.remotePort}`
    const got: Buffer[] = []
    s.on('data', (d: Buffer) => got.push(d))
    s.on('end', () => s.end(Buffer.concat([Buffer.from('reply:'), ...got])))
  })
  const c = tcpConnect(n.client, {
    localAddr: 'client',
    localPort: 50_000,
    remoteAddr: 'server',
    remotePort: 443,
  })
  const body = random(200_000, 5)
  c.end(body)
  const reply = await readAll(c)
  t.is(serverSaw, 'client:50000', 'the server sees the real client address')
  t.is(sha(reply), sha(Buffer.concat([Buffer.from('reply:'), body])))
  t.is(n.proxy.metrics.connectionsOpened, 2)
  n.stop()
})

test('proxy shape: a refused upstream is refused to the client', async (t) => {
  const n = new ProxyNet()
  const c = tcpConnect(n.client, {
    localAddr: 'client',
    localPort: 50_001,
    remoteAddr: 'server',
    remotePort: 444,
  })
  const [e] = (await once(c, 'error')) as [TcpError]
  t.is(e.errno, 'ECONNREFUSED')
  n.stop()
})
