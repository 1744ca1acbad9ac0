// buildTcpSegment: every datagram it writes parses back with the same fields and valid checksums.
import test from 'ava'
import { buildTcpSegment, type TcpSegmentFields } from '../../appliance/src/wire/build.ts'
import { fold, sum16 } from '../../appliance/src/wire/checksum.ts'
import { l4ChecksumOk, ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { geneveHeader } from './packets.ts'

const out = Buffer.alloc(70_000)
const src4 = Uint8Array.of(10, 0, 0, 1)
const dst4 = Uint8Array.of(203, 0, 113, 9)
const src6 = Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x20 : i === 1 ? 0x01 : i))
const dst6 = Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0xfd : 255 - i))

function parse(n: number): ParsedPacket {
  const p = new ParsedPacket()
  const r = parsePacket(Buffer.from(out.subarray(0, n)), n, p)
  if (r !== 0) throw new Error(`built segment does not parse: ${r}`)
  return p
}

function seg(o: Partial<TcpSegmentFields>): TcpSegmentFields {
  return {
    srcPort: 40000,
    dstPort: 8080,
    seq: 1,
    ack: 0,
    flags: 0x02,
    window: 65535,
    payload: new Uint8Array(0),
    ...o,
  }
}

for (const family of [4, 6] as const) {
  const [src, dst] = family === 4 ? [src4, dst4] : [src6, dst6]
  const g = geneveHeader({ cookie: 1234, v6: family === 6 })

  test(`IPv${family} SYN with MSS, SACK-permitted, timestamps and window scale`, (t) => {
    const n = buildTcpSegment(
      g,
      family,
      src,
      dst,
      seg({
        seq: 0xfffffff0,
        mss: 8440,
        sackPermitted: true,
        windowScale: 7,
        timestamp: { val: 0xdeadbeef, ecr: 0 },
      }),
      out,
    )
    t.true(n > 0)
    t.deepEqual(out.subarray(0, g.length), g, 'the flow Geneve header, byte for byte')
    const p = parse(n)
    t.is(p.family, family)
    t.deepEqual([...p.src()], [...src])
    t.deepEqual([...p.dst()], [...dst])
    t.is(p.srcPort, 40000)
    t.is(p.dstPort, 8080)
    t.is(p.tcpSeq, 0xfffffff0)
    t.is(p.tcpFlags, 0x02)
    t.is(p.tcpWindow, 65535)
    t.is(p.tcpOptions.mss, 8440)
    t.is(p.tcpOptions.windowScale, 7)
    t.true(p.tcpOptions.sackPermitted)
    t.is(p.tcpOptions.tsVal, 0xdeadbeef)
    t.is(p.tcpOptions.tsEcr, 0)
    t.is(p.payloadLen, 0)
    t.true(l4ChecksumOk(p), 'TCP checksum')
    if (family === 4) t.is(fold(sum16(out, g.length, 20)), 0xffff, 'IPv4 header checksum')
  })

  test(`IPv${family} data segment with timestamps, 3 SACK blocks and an odd-length payload`, (t) => {
    const payload = Uint8Array.from({ length: 8001 }, (_, i) => (i * 7) & 0xff)
    const sack = [
      { left: 100, right: 200 },
      { left: 300, right: 400 },
      { left: 0xfffffff0, right: 16 },
      { left: 500, right: 600 }, // a fourth does not fit beside timestamps: left out
    ]
    const n = buildTcpSegment(
      g,
      family,
      src,
      dst,
      seg({ flags: 0x18, seq: 5, ack: 77, window: 1234, timestamp: { val: 1, ecr: 2 }, sack, payload }),
      out,
    )
    const p = parse(n)
    t.is(p.tcpFlags, 0x18)
    t.is(p.tcpAck, 77)
    t.is(p.tcpWindow, 1234)
    t.is(p.tcpOptions.tsVal, 1)
    t.is(p.tcpOptions.tsEcr, 2)
    t.is(p.tcpOptions.sackBlocks, 3)
    t.deepEqual([...p.tcpOptions.sack.subarray(0, 6)], [100, 200, 300, 400, 0xfffffff0, 16])
    t.is(p.payloadLen, payload.length)
    t.deepEqual(new Uint8Array(p.buf.subarray(p.payloadOff, p.payloadOff + p.payloadLen)), payload)
    t.true(l4ChecksumOk(p))
  })

  test(`IPv${family} plain segment: no options, 20-byte header; 4 SACK blocks without timestamps`, (t) => {
    let p = parse(buildTcpSegment(g, family, src, dst, seg({ flags: 0x11, seq: 9, ack: 10 }), out))
    t.is(p.payloadOff - p.l4Off, 20)
    t.is(p.tcpOptions.mss, -1)
    t.is(p.tcpOptions.tsVal, -1)
    t.true(l4ChecksumOk(p))
    const sack = [1, 2, 3, 4].map((k) => ({ left: k * 100, right: k * 100 + 50 }))
    p = parse(buildTcpSegment(g, family, src, dst, seg({ flags: 0x10, sack }), out))
    t.is(p.tcpOptions.sackBlocks, 4)
    t.true(l4ChecksumOk(p))
  })
}

test('0 when the segment does not fit the buffer', (t) => {
  const small = Buffer.alloc(100)
  t.is(buildTcpSegment(geneveHeader({}), 4, src4, dst4, seg({ payload: new Uint8Array(200) }), small), 0)
})

test('built in place at an offset (a send-ring slot): the same bytes as at 0, nothing written outside the slot', (t) => {
  const g = geneveHeader({ cookie: 99 })
  const s = seg({
    flags: 0x18,
    seq: 7,
    ack: 8,
    timestamp: { val: 3, ecr: 4 },
    payload: Uint8Array.of(1, 2, 3),
  })
  const alone = Buffer.alloc(2000)
  const n = buildTcpSegment(g, 4, src4, dst4, s, alone)
  const ring = Buffer.alloc(3 * 1000, 0xee)
  const m = buildTcpSegment(g, 4, src4, dst4, s, ring, 1000, 2000)
  t.is(m, n)
  t.deepEqual(ring.subarray(1000, 1000 + m), alone.subarray(0, n))
  t.true(ring.subarray(0, 1000).every((b) => b === 0xee) && ring.subarray(1000 + m).every((b) => b === 0xee))
  t.is(
    buildTcpSegment(g, 4, src4, dst4, seg({ payload: new Uint8Array(950) }), ring, 1000, 2000),
    0,
    'too big',
  )
})
