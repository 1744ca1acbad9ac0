// The stand-in's own oracle helpers: if these were wrong, every namespace test would be judged wrongly.
import test from 'ava'
import {
  GENEVE_LEN,
  gwlbGeneveHeader,
  innerChecksumError,
  innerInfo,
  ipv4Udp,
  seeded,
} from '../support/netns/packets.ts'

test('GWLB Geneve header: 40 bytes, three class-0x0108 options in GWLB’s layout', (t) => {
  const h = gwlbGeneveHeader(0x86dd, {
    endpointId: Buffer.from('0102030405060708', 'hex'),
    attachmentId: Buffer.alloc(8),
    cookie: 0xdeadbeef,
  })
  t.is(h.length, GENEVE_LEN)
  t.is(
    h.toString('hex'),
    // ver/optlen=8 words, flags, proto 86dd, VNI 0 | 0108 01 02 <8> | 0108 02 02 <8> | 0108 03 01 <4>
    '080086dd00000000' +
      '01080102' +
      '0102030405060708' +
      '01080202' +
      '0000000000000000' +
      '01080301' +
      'deadbeef',
  )
})

test('inner checksums: a valid packet passes, any flipped byte is caught', (t) => {
  const p = ipv4Udp('10.0.1.2', '10.0.2.2', 40000, 53, Buffer.from('payload!'))
  t.is(innerChecksumError(p), null)
  for (const [at, reason] of [
    [8, 'ipv4-header-checksum'], // TTL
    [30, 'ipv4-udp-checksum'], // payload
  ] as const) {
    const q = Buffer.from(p)
    q[at]! ^= 0x40
    t.is(innerChecksumError(q), reason)
  }
  const short = Buffer.from(p.subarray(0, p.length - 1))
  t.is(innerChecksumError(short), 'ipv4-total-length')
})

test('flow keys are direction-independent; ICMP echo id keys the flow', (t) => {
  const a = innerInfo(ipv4Udp('10.0.1.2', '10.0.2.2', 40000, 53, Buffer.alloc(0)))
  const b = innerInfo(ipv4Udp('10.0.2.2', '10.0.1.2', 53, 40000, Buffer.alloc(0)))
  const c = innerInfo(ipv4Udp('10.0.1.2', '10.0.2.2', 40001, 53, Buffer.alloc(0)))
  if (typeof a === 'string' || typeof b === 'string' || typeof c === 'string') return t.fail('parse')
  t.is(a.flowKey, b.flowKey)
  t.not(a.flowKey, c.flowKey)
  t.is(innerInfo(Buffer.from([0x45, 0])), 'ipv4-truncated')
  t.is(innerInfo(Buffer.from([0x10])), 'not-ip')
})

test('seeded PRNG replays', (t) => {
  const x = seeded(42)
  const y = seeded(42)
  const xs = Array.from({ length: 5 }, x)
  t.deepEqual(xs, Array.from({ length: 5 }, y))
  t.true(xs.every((v) => v >= 0 && v < 1))
})
