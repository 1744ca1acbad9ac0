import test from 'ava'
import { FlowClass, FlowTable } from '../../appliance/src/flow/table.ts'
import { ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { datagram, EP_BYTES, type Inner, tcp4, tcp6, udp4 } from '../wire/packets.ts'

function pkt(i: Inner, g: Parameters<typeof datagram>[1] = {}) {
  const p = new ParsedPacket()
  const d = datagram(i, g)
  if (parsePacket(d, d.length, p) !== 0) throw new Error('bad sample')
  return p
}
const rev = (i: Inner): Inner => ({ ...i, src: i.dst, dst: i.src, sport: i.dport, dport: i.sport })

function table(over: Partial<ConstructorParameters<typeof FlowTable>[0]> = {}) {
  let now = 0
  const ft = new FlowTable({ capacity: 8, seed: 1, now: () => now, ...over })
  return { ft, at: (ms: number) => (now = ms) }
}

function add(ft: FlowTable, p: ParsedPacket, now = 0) {
  ft.stagePacket(p)
  let i = ft.find()
  if (i < 0) i = ft.insert(now)
  if (i >= 0) ft.touch(i, ft.direction(i), 100, p.protocol === 6 ? p.tcpFlags : 0, now)
  return i
}

test('both directions of a flow are one entry; direction is relative to the first packet', (t) => {
  const { ft } = table()
  for (const inner of [tcp4(), tcp6(), udp4({ src: '203.0.113.9', dst: '10.0.0.1' })]) {
    const a = pkt(inner)
    const b = pkt(rev(inner))
    const i = add(ft, a)
    ft.stagePacket(a)
    t.is(ft.direction(i), 0)
    ft.stagePacket(b)
    t.is(ft.find(), i)
    t.is(ft.direction(i), 1)
  }
  t.is(ft.size, 3)
})

test('the key includes the endpoint id and the protocol but not the cookie', (t) => {
  const { ft } = table()
  const i = add(ft, pkt(tcp4(), { cookie: 1 }))
  ft.stagePacket(pkt(tcp4(), { cookie: 2 }))
  t.is(ft.find(), i)
  ft.stagePacket(pkt(tcp4(), { endpoint: Buffer.from('ffffffffffffffff', 'hex') }))
  t.is(ft.find(), -1)
  ft.stagePacket(pkt(udp4({ dport: 80 })))
  t.is(ft.find(), -1)
  ft.stagePacket(pkt(tcp4({ sport: 40001 })))
  t.is(ft.find(), -1)
  t.truthy(EP_BYTES)
})

test('same address both ends: ports decide the canonical order', (t) => {
  const { ft } = table()
  const inner = tcp4({ src: '10.0.0.1', dst: '10.0.0.1', sport: 5, dport: 6 })
  const i = add(ft, pkt(inner))
  ft.stagePacket(pkt(rev(inner)))
  t.is(ft.find(), i)
  t.is(ft.direction(i), 1)
})

test('stored Geneve header follows the latest packet; long headers go to the side map', (t) => {
  const { ft } = table()
  const p1 = pkt(tcp4(), { cookie: 1 })
  const i = add(ft, p1)
  ft.setGeneve(i, p1.buf, 0, p1.geneveLen)
  const out = Buffer.alloc(300)
  t.is(ft.copyGeneve(i, out, 0), 40)
  t.deepEqual(out.subarray(0, 40), p1.buf.subarray(0, 40))
  const p2 = pkt(tcp4(), { cookie: 2 })
  ft.setGeneve(i, p2.buf, 0, p2.geneveLen)
  ft.copyGeneve(i, out, 0)
  t.deepEqual(out.subarray(0, 40), p2.buf.subarray(0, 40))
  const p3 = pkt(tcp4(), { extra: Buffer.alloc(16) })
  ft.setGeneve(i, p3.buf, 0, p3.geneveLen)
  t.is(ft.copyGeneve(i, out, 0), 56)
  t.deepEqual(out.subarray(0, 56), p3.buf.subarray(0, 56))
  ft.setGeneve(i, p1.buf, 0, 40)
  t.is(ft.copyGeneve(i, out, 0), 40)
  t.deepEqual(out.subarray(0, 40), p1.buf.subarray(0, 40))
})

test('idle timeouts: TCP 350 s, others 120 s; shortened after FIN both ways and after RST', (t) => {
  const { ft } = table({ capacity: 16 })
  const tcp = add(ft, pkt(tcp4({ flags: 0x02 })))
  const udp = add(ft, pkt(udp4()))
  const finA = add(ft, pkt(tcp4({ sport: 1, flags: 0x11 })))
  add(ft, pkt(rev(tcp4({ sport: 1, flags: 0x11 }))))
  const finOne = add(ft, pkt(tcp4({ sport: 2, flags: 0x11 })))
  const rst = add(ft, pkt(tcp4({ sport: 3, flags: 0x04 })))
  t.is(ft.idleTimeout(tcp), 350_000)
  t.is(ft.idleTimeout(udp), 120_000)
  t.is(ft.idleTimeout(finA), 30_000)
  t.is(ft.idleTimeout(finOne), 350_000, 'half-closed connections may live on')
  t.is(ft.idleTimeout(rst), 10_000)
  t.is(ft.sweep(9_999), 0)
  t.is(ft.sweep(10_000), 1)
  t.is(ft.sweep(30_000), 1)
  t.is(ft.sweep(119_999), 0)
  t.is(ft.sweep(120_000), 1)
  t.is(ft.sweep(349_999), 0)
  t.is(ft.sweep(350_000), 2)
  t.is(ft.size, 0)
  t.is(ft.stats.expired, 5)
})

test('configurable timeouts', (t) => {
  const { ft } = table({ tcpIdleMs: 6_000_000, otherIdleMs: 5 })
  t.is(ft.idleTimeout(add(ft, pkt(tcp4()))), 6_000_000)
  t.is(ft.idleTimeout(add(ft, pkt(udp4()))), 5)
})

test('a full table evicts closing, then unreplied flows, and protects recently active two-way flows', (t) => {
  const { ft } = table({ capacity: 4, evictionSample: 4, protectActiveMs: 1000 })
  const estab = (n: number) => {
    const i = add(ft, pkt(tcp4({ sport: n })), 0)
    add(ft, pkt(rev(tcp4({ sport: n }))), 0)
    return i
  }
  const e1 = estab(1)
  const e2 = estab(2)
  const half = add(ft, pkt(tcp4({ sport: 3, flags: 0x02 })), 0)
  const e4 = estab(4)
  t.is(ft.flowClass(half), FlowClass.unreplied)
  t.is(ft.flowClass(e1), FlowClass.assured)
  // A new flow evicts the half-open one, not an established one.
  const n1 = add(ft, pkt(tcp4({ sport: 5, flags: 0x02 })), 10)
  t.true(n1 >= 0)
  ft.stagePacket(pkt(tcp4({ sport: 3 })))
  t.is(ft.find(), -1, 'the half-open flow was evicted')
  t.is(ft.stats.evicted, 1)
  // Closing flows go before unreplied ones.
  add(ft, pkt(tcp4({ sport: 4, flags: 0x04 })), 10)
  t.is(ft.flowClass(e4), FlowClass.closing)
  add(ft, pkt(tcp4({ sport: 6, flags: 0x02 })), 20)
  ft.stagePacket(pkt(tcp4({ sport: 4 })))
  t.is(ft.find(), -1, 'the reset flow was evicted')
  ft.stagePacket(pkt(tcp4({ sport: 5 })))
  t.not(ft.find(), -1, 'the newer unreplied flow is still there')
  // Now: e1, e2 established, two unreplied. Make the unreplied ones two-way and recent: no victim at all.
  add(ft, pkt(rev(tcp4({ sport: 5 }))), 30)
  add(ft, pkt(rev(tcp4({ sport: 6 }))), 30)
  add(ft, pkt(rev(tcp4({ sport: 1 }))), 30)
  add(ft, pkt(rev(tcp4({ sport: 2 }))), 30)
  t.is(add(ft, pkt(tcp4({ sport: 7, flags: 0x02 })), 40), -1)
  t.is(ft.stats.refused, 1)
  // Once they have been idle past protectActiveMs, the least recently active one goes.
  add(ft, pkt(tcp4({ sport: 1 })), 1500)
  add(ft, pkt(tcp4({ sport: 5 })), 1500)
  add(ft, pkt(tcp4({ sport: 6 })), 1500)
  t.true(add(ft, pkt(tcp4({ sport: 7, flags: 0x02 })), 1600) >= 0)
  ft.stagePacket(pkt(tcp4({ sport: 2 })))
  t.is(ft.find(), -1, 'e2 was the least recently active')
  t.truthy(e2)
})

test('expired flows are reclaimed before anything is evicted', (t) => {
  const { ft } = table({ capacity: 2, otherIdleMs: 100 })
  add(ft, pkt(udp4({ sport: 1 })), 0)
  add(ft, pkt(udp4({ sport: 2 })), 50)
  t.true(add(ft, pkt(udp4({ sport: 3 })), 120) >= 0)
  t.is(ft.stats.expired, 1)
  t.is(ft.stats.evicted, 0)
})

test('random inserts and removals agree with a Map (probe chains survive backward-shift deletion)', (t) => {
  const cap = 512
  const ft = new FlowTable({ capacity: cap, seed: 42, now: () => 0 })
  const oracle = new Map<number, number>()
  const packets = Array.from({ length: 700 }, (_, k) => pkt(udp4({ sport: 1000 + k })))
  let s = 12345
  const rnd = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return s / 2 ** 32
  }
  for (let step = 0; step < 20_000; step++) {
    const k = Math.floor(rnd() * packets.length)
    ft.stagePacket(packets[k]!)
    const found = ft.find()
    t.is(found, oracle.get(k) ?? -1)
    if (found >= 0 && rnd() < 0.5) {
      ft.remove(found)
      oracle.delete(k)
    } else if (found < 0 && oracle.size < cap) {
      const i = ft.insert(0)
      t.true(i >= 0)
      oracle.set(k, i)
    }
  }
  t.is(ft.size, oracle.size)
  t.is([...ft.live()].length, oracle.size)
})

test('entry generation changes on reuse', (t) => {
  const { ft } = table({ capacity: 1 })
  const i = add(ft, pkt(udp4()))
  const g = ft.gen[i]
  ft.remove(i)
  t.false(ft.isLive(i))
  const j = add(ft, pkt(udp4({ sport: 9 })))
  t.is(j, i)
  t.not(ft.gen[j], g)
})

test('IPv6 fragments are matched on (src, dst, id) even when the next header differs', async (t) => {
  const { FragmentCache } = await import('../../appliance/src/flow/fragments.ts')
  const fc = new FragmentCache(64)
  const frag = (off: number, m: boolean) => {
    const body = Buffer.alloc(8)
    body.writeUInt16BE(off | (m ? 1 : 0), 2)
    body.writeUInt32BE(77, 4)
    return { type: 44, body }
  }
  const first = pkt({
    src: 'fd00::1',
    dst: 'fd00::2',
    proto: 17,
    sport: 1,
    dport: 2,
    ext: [frag(0, true), { type: 60, body: Buffer.from([0, 0, 1, 4, 0, 0, 0, 0]) }],
  })
  t.is(first.protocol, 17)
  fc.remember(first, 5, 9, 0)
  const later = pkt({
    src: 'fd00::1',
    dst: 'fd00::2',
    proto: 17,
    fragOffset: 64,
    ext: [frag(64, false)],
    payload: Buffer.alloc(8),
  })
  t.is(fc.lookup(later, 10), 5)
  t.is(fc.lookupGen, 9)
  t.is(fc.lookup(later, 70_000), -1, 'expired after 60 s')
})
