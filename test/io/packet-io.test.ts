// One suite, every PacketIO backend (STYLE.md: hono's shared router suite). Real sockets on loopback: a
// "GWLB" made of dgram sockets on its own 127/8 address sends Geneve datagrams from its per-flow source
// ports and listens on 6081, as GWLB does; the backend under test runs on another 127/8 address.
import { spawn } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import test, { type ExecutionContext } from 'ava'
import { loadAddon } from '../../appliance/src/io/addon.ts'
import {
  createPacketIO,
  DgramPacketIO,
  ipv4ToU32,
  type PacketIO,
  type PacketIOBackend,
  type RxBatch,
  u32ToIpv4,
} from '../../appliance/src/io/index.ts'
import { fold, gwlbGeneveHeader, ipv4Udp, sum16 } from '../support/netns/packets.ts'
import { privilegedTest } from '../support/netns/privileges.ts'

const PORT = 6081

interface Msg {
  data: Buffer
  address: string
  port: number
}

/** A bound UDP socket that records what it receives. */
async function peer(
  address: string,
  port: number,
): Promise<{ s: Socket; got: Msg[]; next(ms?: number): Promise<Msg> }> {
  // A large receive buffer: the native backend replies in bursts of a whole batch.
  const s = createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: 4 << 20 })
  const got: Msg[] = []
  const waiters: Array<() => void> = []
  s.on('message', (data, r) => {
    got.push({ data, address: r.address, port: r.port })
    waiters.splice(0).forEach((w) => {
      w()
    })
  })
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject)
    s.bind(port, address, () => resolve())
  })
  let taken = 0
  return {
    s,
    got,
    next(ms = 2000) {
      return new Promise<Msg>((resolve, reject) => {
        const check = () => {
          if (taken < got.length) {
            clearTimeout(timer)
            resolve(got[taken++]!)
          } else waiters.push(check)
        }
        const timer = setTimeout(
          () => reject(new Error(`no datagram on ${address}:${port} within ${ms} ms`)),
          ms,
        )
        check()
      })
    },
  }
}

function send(s: Socket, data: Uint8Array, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => s.send(data, port, address, (e) => (e ? reject(e) : resolve())))
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let netSeq = 0
/** A fresh 127.a.b.0/24 per test, so parallel test files never share a port. */
function loopNet(): { app: string; gwlb: string; gwlb2: string } {
  const a = 1 + ((process.pid + netSeq * 7) % 250)
  const b = 1 + ((Math.floor(Math.random() * 250) + netSeq++) % 250)
  return { app: `127.${a}.${b}.1`, gwlb: `127.${a}.${b}.2`, gwlb2: `127.${a}.${b}.3` }
}

function genevePacket(cookie: number, payload = 'hello'): Buffer {
  const endpointId = Buffer.from('0123456789abcdef', 'hex')
  const attachmentId = Buffer.alloc(8)
  const h = gwlbGeneveHeader(0x0800, { endpointId, attachmentId, cookie })
  return Buffer.concat([h, ipv4Udp('10.0.1.2', '10.0.2.2', 40000, 53, Buffer.from(payload))])
}

/** Echo: every datagram of at least a Geneve base header goes back unchanged. */
function echo(io: () => PacketIO) {
  return (b: RxBatch) => {
    for (let i = 0; i < b.count; i++) if (b.length(i) >= 8) io().reply(b, i)
  }
}

async function started(
  backend: PacketIOBackend,
  app: string,
  handler?: (b: RxBatch) => void,
): Promise<PacketIO> {
  const io = createPacketIO({ backend, bindAddr: app, port: PORT })
  await io.start(handler ?? echo(() => io))
  return io
}

for (const backend of ['native', 'dgram'] as const) {
  const t0: (title: string, fn: (t: ExecutionContext) => Promise<void>) => void =
    backend === 'native' ? privilegedTest(['root', 'addon']) : (title, fn) => test(title, fn)
  const name = (s: string) => `${backend}: ${s}`

  t0(name('replies the GWLB way: IPs swapped, source port kept, to 6081, bytes echoed'), async (t) => {
    const n = loopNet()
    const io = await started(backend, n.app)
    const gw = await peer(n.gwlb, PORT)
    const f1 = await peer(n.gwlb, 60000)
    const f2 = await peer(n.gwlb, 60001)
    try {
      t.is(io.port, PORT)
      const p1 = genevePacket(0x11111111)
      const p2 = genevePacket(0x22222222, 'second flow')
      await send(f1.s, p1, PORT, n.app)
      const r1 = await gw.next()
      await send(f2.s, p2, PORT, n.app)
      const r2 = await gw.next()
      t.is(r1.address, n.app, 'from the address GWLB sent to')
      t.is(r1.port, 60000, 'from GWLB’s source port of that flow')
      t.deepEqual(r1.data, p1, 'Geneve header and inner packet byte for byte')
      t.is(r2.port, 60001)
      t.deepEqual(r2.data, p2)
      await sleep(50)
      t.is(f1.got.length + f2.got.length, 0, 'nothing goes back to the GWLB source port (naive echo)')
      t.is(io.stats.rxPackets, 2)
      t.is(io.stats.txPackets, 2)
    } finally {
      await io.close()
      for (const p of [gw, f1, f2]) p.s.close()
    }
  })

  t0(name('batch exposes sender, source port and local address'), async (t) => {
    const n = loopNet()
    const seen: Array<[string, number, string, number]> = []
    const io = await started(backend, n.app, (b) => {
      for (let i = 0; i < b.count; i++) {
        seen.push([u32ToIpv4(b.remoteAddr(i)), b.remotePort(i), u32ToIpv4(b.localAddr(i)), b.length(i)])
        t.true(b.capacity(i) >= b.length(i))
        t.deepEqual(b.view(i), b.buffer(i).subarray(b.offset(i), b.offset(i) + b.length(i)))
      }
    })
    const f = await peer(n.gwlb, 60005)
    try {
      const p = genevePacket(7)
      await send(f.s, p, PORT, n.app)
      for (let k = 0; k < 100 && seen.length === 0; k++) await sleep(10)
      t.deepEqual(seen, [[n.gwlb, 60005, n.app, p.length]])
    } finally {
      await io.close()
      f.s.close()
    }
  })

  t0(name('always replies to the node that sent the packet (several GWLB nodes)'), async (t) => {
    const n = loopNet()
    const io = await started(backend, n.app)
    const gwA = await peer(n.gwlb, PORT)
    const gwB = await peer(n.gwlb2, PORT)
    const fA = await peer(n.gwlb, 60010)
    const fB = await peer(n.gwlb2, 60010)
    try {
      await send(fA.s, genevePacket(1, 'A'), PORT, n.app)
      await send(fB.s, genevePacket(2, 'B'), PORT, n.app)
      const a = await gwA.next()
      const b = await gwB.next()
      t.true(a.data.toString().endsWith('A'))
      t.true(b.data.toString().endsWith('B'))
      t.is(a.port, 60010)
      t.is(b.port, 60010)
    } finally {
      await io.close()
      for (const p of [gwA, gwB, fA, fB]) p.s.close()
    }
  })

  t0(name('a burst of 500 datagrams over 8 flows all come back on the right ports'), async (t) => {
    const n = loopNet()
    const io = await started(backend, n.app)
    const gw = await peer(n.gwlb, PORT)
    const flows = await Promise.all(Array.from({ length: 8 }, (_, k) => peer(n.gwlb, 61000 + k)))
    try {
      const N = 500
      // Fire without waiting, so datagrams queue up and the native backend sees real batches.
      const sends: Promise<void>[] = []
      for (let k = 0; k < N; k++) {
        const p = genevePacket(k, `#${k}`)
        p.writeUInt32BE(k, 36) // the cookie carries the sequence number
        sends.push(send(flows[k % 8]!.s, p, PORT, n.app))
      }
      await Promise.all(sends)
      for (let k = 0; k < 200 && gw.got.length < N; k++) await sleep(10)
      t.is(gw.got.length, N, 'every datagram returned (loopback, 8 MiB receive buffer)')
      for (const m of gw.got) t.is(m.port, 61000 + (m.data.readUInt32BE(36) % 8))
      if (backend === 'native') t.true(io.stats.rxBatches < io.stats.rxPackets, 'recvmmsg batched')
      t.is(io.stats.txPackets, N)
    } finally {
      await io.close()
      gw.s.close()
      for (const f of flows) f.s.close()
    }
  })

  t0(name('send() from outside a batch goes out along a stored return path'), async (t) => {
    const n = loopNet()
    const io = await started(backend, n.app, () => {})
    const gw = await peer(n.gwlb, PORT)
    try {
      const p = genevePacket(99, 'unsolicited, on a known flow')
      const scratch = Buffer.concat([Buffer.alloc(3), p, Buffer.alloc(5)])
      io.send(scratch, 3, p.length, {
        localAddr: ipv4ToU32(n.app),
        remoteAddr: ipv4ToU32(n.gwlb),
        remotePort: 60123,
      })
      scratch.fill(0) // the backend copied: reusing the caller's buffer must not change what is sent
      const r = await gw.next()
      t.is(r.address, n.app)
      t.is(r.port, 60123)
      t.deepEqual(r.data, p)
    } finally {
      await io.close()
      gw.s.close()
    }
  })

  t0(name('a reply may be rewritten in place and change length'), async (t) => {
    const n = loopNet()
    let io: PacketIO | undefined
    io = await started(backend, n.app, (b) => {
      for (let i = 0; i < b.count; i++) {
        const buf = b.buffer(i)
        const off = b.offset(i)
        buf[off + b.length(i) - 5] = 0x58 // 'X'
        io!.reply(b, i, b.length(i) - 4)
      }
    })
    const gw = await peer(n.gwlb, PORT)
    const f = await peer(n.gwlb, 60020)
    try {
      const p = genevePacket(5, 'abcdefgh')
      await send(f.s, p, PORT, n.app)
      const r = await gw.next()
      t.is(r.data.length, p.length - 4)
      t.is(r.data.subarray(-4).toString(), 'abcX')
    } finally {
      await io.close()
      gw.s.close()
      f.s.close()
    }
  })

  t0(name('the Geneve port stays bound: no ICMP port-unreachable, a second bind fails'), async (t) => {
    const n = loopNet()
    const io = await started(backend, n.app, () => {}) // receives and drops everything
    // A connected UDP socket learns of ICMP port-unreachable as ECONNREFUSED on its next operation.
    const probe = createSocket('udp4')
    const errors: string[] = []
    probe.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message))
    await new Promise<void>((resolve) => probe.connect(PORT, n.app, () => resolve()))
    const ping = () => new Promise<void>((r) => probe.send(Buffer.from('x'), () => r()))
    try {
      for (let k = 0; k < 3; k++) {
        await ping()
        await sleep(20)
      }
      t.deepEqual(errors, [], 'no ECONNREFUSED while bound')
      const second = createSocket('udp4')
      const bindErr = await new Promise<string>((resolve) => {
        second.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''))
        second.bind({ port: PORT, address: n.app, exclusive: true }, () => resolve('bound'))
      })
      second.close()
      t.is(bindErr, 'EADDRINUSE')
      // Control: once closed, the same probe does see the kernel's port-unreachable, so the check above
      // can fail.
      await io.close()
      for (let k = 0; k < 3 && errors.length === 0; k++) {
        await ping()
        await sleep(30)
      }
      t.true(errors.includes('ECONNREFUSED'), `after close: ${errors.join(',')}`)
    } finally {
      await io.close()
      probe.close()
    }
  })

  t0(name('malformed and oversized input does not crash; the loop goes on'), async (t) => {
    const n = loopNet()
    const io = createPacketIO({ backend, bindAddr: n.app, port: PORT, slotSize: 2048 })
    const lengths: number[] = []
    await io.start((b) => {
      for (let i = 0; i < b.count; i++) {
        lengths.push(b.length(i))
        if (b.length(i) >= 40) io.reply(b, i)
        else io.reply(b, i, 0) // a zero-length reply is refused and counted, not sent
      }
    })
    const gw = await peer(n.gwlb, PORT)
    const f = await peer(n.gwlb, 60030)
    try {
      const junk = [
        Buffer.alloc(0),
        Buffer.from([0xff]),
        Buffer.alloc(4000, 0xab),
        Buffer.from('GET / HTTP/1.1\r\n'),
      ]
      for (const j of junk) await send(f.s, j, PORT, n.app)
      const good = genevePacket(3)
      await send(f.s, good, PORT, n.app)
      const r = await gw.next()
      t.deepEqual(r.data, good, 'a valid datagram after the junk is still served')
      t.deepEqual(lengths.slice(0, 4), [0, 1, 0, 16], 'the oversized datagram is delivered with length 0')
      t.is(io.stats.rxTruncated, 1)
      t.is(io.stats.txDropped, 4, 'replies of length 0 and 1 refused')
      t.is(gw.got.length, 1)
      t.throws(() => io.reply({ count: 0 } as unknown as RxBatch, 0), { message: /only valid/ })
    } finally {
      await io.close()
      gw.s.close()
      f.s.close()
    }
  })
}

privilegedTest(['root', 'addon'])(
  'native: the outer header is what GWLB itself sends: IPv4, TTL 255, DF clear, valid non-zero UDP checksum',
  async (t) => {
    const n = loopNet()
    const a = loadAddon()
    // A raw capture socket sees the datagram as it crossed the wire, header and all.
    const fd = a.captureOpen(17)
    const SLOT = 65536
    const ring = Buffer.allocUnsafeSlow(SLOT * 16)
    const meta = new Uint32Array(16 * 8)
    const captured: Buffer[] = []
    const src = ipv4ToU32(n.app)
    const dst = ipv4ToU32(n.gwlb)
    const poller = a.pollerOpen(fd, 1, ring, SLOT, meta, 16, (count) => {
      for (let i = 0; i < count; i++) {
        const p = ring.subarray(i * SLOT, i * SLOT + meta[i * 8]!)
        if (p.length >= 28 && p.readUInt32BE(12) === src && p.readUInt32BE(16) === dst)
          captured.push(Buffer.from(p))
      }
    })
    const io = await started('native', n.app)
    const gw = await peer(n.gwlb, PORT)
    const f = await peer(n.gwlb, 60040)
    try {
      for (const payload of ['odd length!', 'even length!']) {
        const p = genevePacket(0xabcdef01, payload)
        await send(f.s, p, PORT, n.app)
        await gw.next()
      }
      for (let k = 0; k < 100 && captured.length < 2; k++) await sleep(10)
      t.is(captured.length, 2)
      for (const pkt of captured) {
        t.is(pkt[0], 0x45, 'IPv4, no options')
        t.is(pkt[8], 255, 'TTL 255')
        t.is(pkt.readUInt16BE(6), 0, 'DF clear, not a fragment')
        t.is(pkt[9], 17)
        t.is(pkt.readUInt16BE(2), pkt.length)
        t.is(fold(sum16(pkt, 0, 20)), 0xffff, 'IPv4 header checksum')
        t.is(pkt.readUInt16BE(20), 60040, 'source port: GWLB’s')
        t.is(pkt.readUInt16BE(22), PORT, 'destination port: 6081')
        t.is(pkt.readUInt16BE(24), pkt.length - 20, 'UDP length')
        t.not(pkt.readUInt16BE(26), 0, 'UDP checksum present')
        const pseudo = sum16(pkt, 12, 8) + 17 + (pkt.length - 20)
        t.is(fold(sum16(pkt, 20, pkt.length - 20, pseudo)), 0xffff, 'UDP checksum valid')
      }
    } finally {
      a.pollerClose(poller)
      a.fdClose(fd)
      await io.close()
      gw.s.close()
      f.s.close()
    }
  },
)

privilegedTest(['root', 'addon'])(
  'auto: without CAP_NET_RAW the echo appliance falls back to dgram, and still replies the GWLB way',
  async (t) => {
    const n = loopNet()
    const echo = new URL('../support/echo-appliance.ts', import.meta.url).pathname
    // setpriv drops CAP_NET_RAW from this child only: a real unprivileged start, not a simulated one.
    const child = spawn(
      'setpriv',
      [
        '--bounding-set',
        '-net_raw',
        '--inh-caps',
        '-net_raw',
        process.execPath,
        echo,
        '--bind',
        n.app,
        '--port',
        String(PORT),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    const gw = await peer(n.gwlb, PORT)
    const f = await peer(n.gwlb, 60050)
    try {
      for (let k = 0; k < 500 && !/listening/.test(out) && child.exitCode === null; k++) await sleep(10)
      t.regex(out, /listening dgram 6081/, err)
      t.regex(err, /fallback to dgram: FG_ERR_IO_RAW_SOCKET/)
      const p = genevePacket(77)
      await send(f.s, p, PORT, n.app)
      const r = await gw.next()
      t.is(r.port, 60050)
      t.deepEqual(r.data, p)
    } finally {
      child.kill('SIGKILL')
      gw.s.close()
      f.s.close()
    }
  },
)

// The dgram backend's documented limits (dgram.ts): they are counted, and they stay local to one port.
test('dgram: a GWLB port held exclusively elsewhere, or beyond maxPortSockets, drops and counts its replies', async (t) => {
  const n = loopNet()
  const io = new DgramPacketIO({ bindAddr: n.app, port: PORT, maxPortSockets: 2 })
  await io.start(echo(() => io))
  // Another process's socket on our address and GWLB port 60060, without SO_REUSEADDR.
  const squatter = createSocket({ type: 'udp4' })
  await new Promise<void>((resolve) => squatter.bind(60060, n.app, () => resolve()))
  const gw = await peer(n.gwlb, PORT)
  const ports = [60060, 60061, 60062]
  const flows = await Promise.all(ports.map((p) => peer(n.gwlb, p)))
  const until = async (cond: () => boolean) => {
    for (let k = 0; k < 200 && !cond(); k++) await sleep(10)
  }
  try {
    await send(flows[0]!.s, genevePacket(1), PORT, n.app)
    await until(() => io.stats.txDropped === 1)
    t.is(io.stats.txDropped, 1, '60060: the bind is refused, the reply dropped and counted')
    await send(flows[1]!.s, genevePacket(2), PORT, n.app)
    t.is((await gw.next()).port, 60061, 'other ports are unaffected')
    // The failed port is tried again on its next reply: the squatter has left.
    await new Promise<void>((resolve) => squatter.close(() => resolve()))
    await send(flows[0]!.s, genevePacket(3), PORT, n.app)
    t.is((await gw.next()).port, 60060)
    // Two port sockets exist now: a third GWLB port is over maxPortSockets.
    await send(flows[2]!.s, genevePacket(4), PORT, n.app)
    await until(() => io.stats.txDropped === 2)
    t.is(io.stats.txDropped, 2, '60062: over the cap, dropped and counted')
    await sleep(30)
    t.deepEqual(
      gw.got.map((m) => m.port),
      [60061, 60060],
    )
    t.is(io.stats.txPackets, 2)
  } finally {
    await io.close()
    gw.s.close()
    for (const f of flows) f.s.close()
  }
})

test('ipv4ToU32 / u32ToIpv4 round-trip and reject garbage', (t) => {
  t.is(ipv4ToU32('10.0.0.1'), 0x0a000001)
  t.is(ipv4ToU32('255.255.255.255'), 0xffffffff)
  t.is(u32ToIpv4(0xc0a80102), '192.168.1.2')
  for (const bad of ['1.2.3', '1.2.3.256', 'a.b.c.d', '::1', '1.2.3.4.5']) {
    t.throws(() => ipv4ToU32(bad), { message: /not an IPv4/ })
  }
})
