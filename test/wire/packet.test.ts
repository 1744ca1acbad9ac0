import test from 'ava'
import { M, malformedReason } from '../../appliance/src/wire/counters.ts'
import { Frag } from '../../appliance/src/wire/ipv4.ts'
import { l4ChecksumOk, ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { datagram, EP, type Inner, tcp4, tcp6, udp4, udp6 } from './packets.ts'

const p = new ParsedPacket()
const parse = (b: Buffer, len = b.length): string => malformedReason(parsePacket(b, len, p))

const tcpOpts = Buffer.from([
  2,
  4,
  0x05,
  0xb4, // MSS 1460
  1,
  3,
  3,
  7, // NOP, WS 7
  4,
  2, // SACK permitted
  8,
  10,
  0,
  0,
  0,
  1,
  0,
  0,
  0,
  2, // timestamps
  1,
  1,
  1,
  1, // pad to 24 bytes
])

test('IPv4/TCP: every field lands where it should', (t) => {
  const d = datagram(
    tcp4({ flags: 0x02, seq: 0xfffffff0, ack: 7, tcpOptions: tcpOpts, payload: Buffer.from('hi') }),
  )
  t.is(parse(d), 'ok')
  t.is(p.endpointId(), EP)
  t.is(p.family, 4)
  t.is(p.ipOff, 40)
  t.is(p.ipEnd, d.length)
  t.is(p.protocol, 6)
  t.deepEqual([...p.src()], [10, 0, 0, 1])
  t.deepEqual([...p.dst()], [203, 0, 113, 9])
  t.is(p.srcPort, 40000)
  t.is(p.dstPort, 80)
  t.is(p.tcpSeq, 0xfffffff0)
  t.is(p.tcpAck, 7)
  t.is(p.tcpFlags, 0x02)
  t.is(p.tcpOptions.mss, 1460)
  t.is(p.tcpOptions.windowScale, 7)
  t.true(p.tcpOptions.sackPermitted)
  t.is(p.tcpOptions.tsVal, 1)
  t.is(p.tcpOptions.tsEcr, 2)
  t.is(p.payloadLen, 2)
  t.is(d.toString('latin1', p.payloadOff, p.payloadOff + 2), 'hi')
  t.is(p.fragment, Frag.none)
  t.true(l4ChecksumOk(p))
  t.is(p.cookie(), 0xc00c1e)
})

test('TCP SACK blocks are read', (t) => {
  const sack = Buffer.from([1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40])
  t.is(parse(datagram(tcp4({ tcpOptions: sack }))), 'ok')
  t.is(p.tcpOptions.sackBlocks, 2)
  t.deepEqual([...p.tcpOptions.sack.subarray(0, 4)], [10, 20, 30, 40])
})

test('IPv6/UDP and ICMPv6 echo', (t) => {
  t.is(parse(datagram(udp6({ payload: Buffer.from('x'.repeat(100)) }))), 'ok')
  t.is(p.family, 6)
  t.is(p.protocol, 17)
  t.is(p.payloadLen, 100)
  t.true(l4ChecksumOk(p))
  t.is(parse(datagram({ src: 'fd00::1', dst: 'fd00::2', proto: 58, icmpType: 128, icmpId: 99 })), 'ok')
  t.is(p.icmpType, 128)
  t.is(p.srcPort, 99)
  t.is(p.dstPort, 99)
  t.true(l4ChecksumOk(p))
})

test('ICMPv4 echo uses the identifier as both ports; other messages have none', (t) => {
  t.is(parse(datagram({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, icmpId: 0x4444 })), 'ok')
  t.is(p.srcPort, 0x4444)
  t.true(l4ChecksumOk(p))
  t.is(parse(datagram({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 3, icmpCode: 3 })), 'ok')
  t.is(p.srcPort, 0)
})

test('IPv4 options are walked; trailing link padding is ignored', (t) => {
  const ra = Buffer.from([0x94, 4, 0, 0]) // router alert
  t.is(parse(datagram(udp4({ ipOptions: ra }))), 'ok')
  t.is(p.l4Off, 40 + 24)
  const d = Buffer.concat([datagram(udp4()), Buffer.alloc(6)])
  t.is(parse(d), 'ok')
  t.is(p.ipEnd, d.length - 6)
  t.is(parse(datagram(udp4({ ipOptions: Buffer.from([1, 1, 1, 0]) }))), 'ok')
})

test('IPv4 fragments: first carries ports, later ones none', (t) => {
  t.is(parse(datagram(udp4({ mf: true, payload: Buffer.alloc(64) }))), 'ok')
  t.is(p.fragment, Frag.first)
  t.is(p.dstPort, 3000)
  t.is(parse(datagram(udp4({ fragOffset: 72, payload: Buffer.alloc(32) }))), 'ok')
  t.is(p.fragment, Frag.later)
  t.false(p.hasL4)
  t.is(p.fragOffset, 72)
  t.is(p.fragId, 0x4242)
  t.is(parse(datagram(tcp4({ fragOffset: 8, payload: Buffer.alloc(32) }))), 'ipv4_fragment_overlap')
})

const frag6 = (offset: number, m: boolean, id = 77) => {
  const body = Buffer.alloc(8)
  body.writeUInt16BE(offset | (m ? 1 : 0), 2)
  body.writeUInt32BE(id, 4)
  return { type: 44, body }
}
const opts6 = (type: number, len8 = 0) => ({
  type,
  body: Buffer.concat([Buffer.from([0, len8, 1, 4]), Buffer.alloc(4 + len8 * 8)]),
})

test('IPv6 extension headers: HBH, dest opts, routing, fragment, AH walked to the upper layer', (t) => {
  const ah = { type: 51, body: Buffer.concat([Buffer.from([0, 4]), Buffer.alloc(22)]) }
  t.is(parse(datagram(tcp6({ ext: [opts6(0), opts6(60, 1), opts6(43), ah] }))), 'ok')
  t.is(p.protocol, 6)
  t.is(p.dstPort, 443)
  t.true(l4ChecksumOk(p))
  t.is(parse(datagram(udp6({ ext: [frag6(0, true)] }))), 'ok')
  t.is(p.fragment, Frag.first)
  t.is(p.fragId, 77)
  t.is(parse(datagram(udp6({ ext: [frag6(0, false)] }))), 'ok')
  t.is(p.fragment, Frag.none, 'atomic fragment (RFC 6946)')
  t.is(
    parse(datagram({ ...udp6(), ext: [frag6(1280, false)], fragOffset: 1280, payload: Buffer.alloc(16) })),
    'ok',
  )
  t.is(p.fragment, Frag.later)
  t.false(p.hasL4)
})

test('IPv6 extension header abuse: order, loops/long chains, overruns, duplicates', (t) => {
  t.is(parse(datagram(tcp6({ ext: [opts6(60), opts6(0)] }))), 'ipv6_ext_order')
  t.is(parse(datagram(tcp6({ ext: Array.from({ length: 9 }, () => opts6(60)) }))), 'ipv6_ext_limit')
  t.is(parse(datagram(tcp6({ ext: Array.from({ length: 8 }, () => opts6(60)) }))), 'ok')
  t.is(parse(datagram(tcp6({ ext: [frag6(0, true), frag6(0, true)] }))), 'ipv6_ext_order')
  // a Destination Options header claiming 255*8 bytes
  const d = datagram(tcp6({ ext: [opts6(60)] }))
  d[40 + 40 + 1] = 255
  t.is(parse(d), 'ipv6_ext_header')
  // chain that ends exactly at the payload end with no upper layer
  const only = datagram({ src: 'fd00::1', dst: 'fd00::2', proto: 59, ext: [opts6(60)] })
  t.is(parse(only), 'ok')
  t.is(p.protocol, 59)
})

// Malformed inner packets: [name, inner, mutate(datagram), expected reason]
const G = 40
const bad: [string, Inner, (d: Buffer) => Buffer, string][] = [
  [
    'v4 header version 6 under 0x0800',
    udp4(),
    (d) => {
      d[G] = 0x65
      return d
    },
    'ipv4_version',
  ],
  [
    'v4 IHL 4',
    udp4(),
    (d) => {
      d[G] = 0x44
      return d
    },
    'ipv4_header_length',
  ],
  [
    'v4 IHL beyond packet',
    udp4(),
    (d) => {
      d[G] = 0x4f
      return d.subarray(0, G + 30)
    },
    'ipv4_truncated',
  ],
  [
    'v4 total length short of header',
    udp4(),
    (d) => {
      d.writeUInt16BE(10, G + 2)
      return d
    },
    'ipv4_total_length',
  ],
  [
    'v4 total length beyond datagram',
    udp4(),
    (d) => {
      d.writeUInt16BE(d.length, G + 2)
      return d
    },
    'ipv4_total_length',
  ],
  [
    'v4 header checksum',
    udp4(),
    (d) => {
      d[G + 10]! ^= 1
      return d
    },
    'ipv4_checksum',
  ],
  ['v4 option length 1', udp4({ ipOptions: Buffer.from([0x94, 1, 0, 0]) }), (d) => d, 'ipv4_option'],
  ['v4 option overruns header', udp4({ ipOptions: Buffer.from([0x94, 9, 0, 0]) }), (d) => d, 'ipv4_option'],
  [
    'v4 option length byte missing',
    udp4({ ipOptions: Buffer.from([1, 1, 1, 0x94]) }),
    (d) => d,
    'ipv4_option',
  ],
  [
    'v6 version 4 under 0x86dd',
    udp6(),
    (d) => {
      d[G] = 0x40
      return d
    },
    'ipv6_version',
  ],
  [
    'v6 payload length beyond datagram',
    udp6(),
    (d) => {
      d.writeUInt16BE(9000, G + 4)
      return d
    },
    'ipv6_payload_length',
  ],
  [
    'v6 jumbogram',
    udp6({ ext: [opts6(0)] }),
    (d) => {
      d.writeUInt16BE(0, G + 4)
      return d
    },
    'ipv6_jumbo',
  ],
  ['v6 truncated fixed header', udp6(), (d) => d.subarray(0, G + 39), 'ipv6_truncated'],
  [
    'tcp data offset 4',
    tcp4(),
    (d) => {
      d[G + 20 + 12] = 0x40
      return d
    },
    'tcp_data_offset',
  ],
  [
    'tcp data offset beyond segment',
    tcp4(),
    (d) => {
      d[G + 20 + 12] = 0xf0
      return d
    },
    'tcp_data_offset',
  ],
  [
    'tcp truncated header',
    tcp4(),
    (d) => {
      d.writeUInt16BE(30, G + 2)
      d.writeUInt16BE(0, G + 10)
      d.writeUInt16BE(fix(d), G + 10)
      return d
    },
    'tcp_truncated',
  ],
  ['tcp MSS length 5', tcp4({ tcpOptions: Buffer.from([2, 5, 0, 0, 0, 0, 0, 0]) }), (d) => d, 'tcp_option'],
  ['tcp option length 0', tcp4({ tcpOptions: Buffer.from([1, 1, 99, 0]) }), (d) => d, 'tcp_option'],
  ['tcp option overruns', tcp4({ tcpOptions: Buffer.from([1, 1, 99, 9]) }), (d) => d, 'tcp_option'],
  ['tcp option kind at last byte', tcp4({ tcpOptions: Buffer.from([1, 1, 1, 2]) }), (d) => d, 'tcp_option'],
  ['tcp SACK with no blocks', tcp4({ tcpOptions: Buffer.from([5, 2, 1, 1]) }), (d) => d, 'tcp_option'],
  [
    'tcp SACK odd length',
    tcp4({ tcpOptions: Buffer.concat([Buffer.from([5, 12]), Buffer.alloc(10)]) }),
    (d) => d,
    'tcp_option',
  ],
  ['tcp WS length 4', tcp4({ tcpOptions: Buffer.from([3, 4, 7, 0]) }), (d) => d, 'tcp_option'],
  [
    'tcp timestamps length 8',
    tcp4({ tcpOptions: Buffer.from([8, 8, 0, 0, 0, 0, 0, 0]) }),
    (d) => d,
    'tcp_option',
  ],
  [
    'udp length 7',
    udp4(),
    (d) => {
      d.writeUInt16BE(7, G + 24)
      return d
    },
    'udp_length',
  ],
  [
    'udp length beyond packet',
    udp4(),
    (d) => {
      d.writeUInt16BE(500, G + 24)
      return d
    },
    'udp_length',
  ],
  [
    'udp zero checksum over IPv6',
    udp6(),
    (d) => {
      d.writeUInt16BE(0, G + 46)
      return d
    },
    'udp_zero_checksum_v6',
  ],
  [
    'icmp 7 bytes',
    { src: '10.0.0.1', dst: '10.0.0.2', proto: 1 },
    (d) => {
      d.writeUInt16BE(27, G + 2)
      d.writeUInt16BE(0, G + 10)
      d.writeUInt16BE(fix(d), G + 10)
      return d.subarray(0, G + 27)
    },
    'icmp_truncated',
  ],
]

function fix(d: Buffer): number {
  let s = 0
  for (let i = G; i < G + 20; i += 2) s += d.readUInt16BE(i)
  while (s >> 16) s = (s & 0xffff) + (s >> 16)
  return ~s & 0xffff
}

for (const [name, inner, mutate, want] of bad) {
  test(`malformed: ${name} → ${want}`, (t) => t.is(parse(mutate(datagram(inner))), want))
}

test('UDP over IPv4 with checksum 0 is accepted (RFC 768: no checksum)', (t) => {
  t.is(parse(datagram(udp4({ noUdpChecksum: true }))), 'ok')
  t.true(l4ChecksumOk(p))
})

test('truncation at every offset of valid packets: an error or a shorter valid packet, never a throw', (t) => {
  const samples = [
    datagram(tcp4({ tcpOptions: tcpOpts, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') })),
    datagram(tcp6({ ext: [opts6(0), frag6(0, true)], payload: Buffer.alloc(40) })),
    datagram(udp4({ ipOptions: Buffer.from([0x94, 4, 0, 0]), payload: Buffer.alloc(10) })),
    datagram({ src: 'fd00::1', dst: 'fd00::2', proto: 58, icmpType: 128 }),
  ]
  let errors = 0
  for (const d of samples) {
    for (let n = 0; n < d.length; n++) {
      const r = parsePacket(d, n, p)
      if (r !== M.ok) errors++
      // A prefix is never OK: every length field points to the full packet.
      t.not(r, M.ok, `prefix ${n} of ${d.length}`)
    }
    t.is(parsePacket(d, d.length, p), M.ok)
  }
  t.true(errors > 0)
})

test('a len larger than the buffer is clamped, not read past; nonsense lengths are truncations', (t) => {
  const d = datagram(udp4())
  t.is(parse(d, d.length + 100), 'ok')
  t.is(parse(d, -1), 'geneve_truncated')
  t.is(parse(d, Number.NaN), 'geneve_truncated')
  t.is(parse(Buffer.alloc(0), 100), 'geneve_truncated')
})

test('inner packets up to GWLB’s 8,500 bytes parse (IPv4 and IPv6) with valid checksums', (t) => {
  t.is(parse(datagram(udp4({ payload: Buffer.alloc(8500 - 28, 1) }))), 'ok')
  t.is(p.innerLen, 8500)
  t.true(l4ChecksumOk(p))
  t.is(parse(datagram(tcp6({ payload: Buffer.alloc(8500 - 60, 2) }))), 'ok')
  t.is(p.innerLen, 8500)
  t.true(l4ChecksumOk(p))
})

test('IPv6 type 0 routing header with segments left is refused (RFC 5095); other routing types pass', (t) => {
  const rh = (type: number, left: number) => ({
    type: 43,
    body: Buffer.concat([Buffer.from([0, 2, type, left]), Buffer.alloc(4), Buffer.alloc(16)]),
  })
  t.is(parse(datagram(udp6({ ext: [rh(0, 1)] }))), 'ipv6_routing_type0')
  t.is(parse(datagram(udp6({ ext: [rh(0, 0)] }))), 'ok')
  t.is(parse(datagram(udp6({ ext: [rh(4, 1)] }))), 'ok')
})
