import test from 'ava'
import { M, malformedReason } from '../../appliance/src/wire/counters.ts'
import {
  formatEndpointId,
  parseEndpointId,
  parseGeneve,
  writeGeneve,
} from '../../appliance/src/wire/geneve.ts'
import { ParsedPacket } from '../../appliance/src/wire/packet.ts'
import { EP, EP_BYTES, geneveHeader } from './packets.ts'

const parse = (b: Buffer) => {
  const p = new ParsedPacket()
  const r = parseGeneve(b, b.length, p)
  return { r: malformedReason(r) as string, p }
}

test('GWLB header: 40 bytes, options found by class/type', (t) => {
  const h = geneveHeader({ cookie: 0xdeadbeef })
  t.is(h.length, 40)
  const { r, p } = parse(h)
  t.is(r, 'ok')
  t.is(p.geneveLen, 40)
  t.is(p.protocolType, 0x0800)
  t.is(formatEndpointId(h, p.endpointOff), EP)
  t.is(h.readUInt32BE(p.cookieOff), 0xdeadbeef)
  t.is(p.attachmentOff, 24)
})

test('options are found in any order, unknown non-critical options are skipped', (t) => {
  const unknown = Buffer.from([0x01, 0x08, 0x09, 0x01, 1, 2, 3, 4, 0xab, 0xcd, 0x05, 0x00])
  const h = geneveHeader({ order: [3, 2, 1], extra: unknown })
  const { r, p } = parse(h)
  t.is(r, 'ok')
  t.is(p.geneveLen, 52)
  t.deepEqual(Buffer.from(h.subarray(p.endpointOff, p.endpointOff + 8)), EP_BYTES)
  t.is(p.cookieOff, 12)
})

test('endpoint id formatting: vpce- + 17 hex digits, round trip', (t) => {
  t.is(formatEndpointId(EP_BYTES, 0), 'vpce-01234567890abcdef')
  t.is(EP.length, 22)
  t.deepEqual(parseEndpointId(EP), Uint8Array.from(EP_BYTES))
  t.is(parseEndpointId('vpce-11234567890abcdef'), undefined)
  t.is(parseEndpointId('vpce-0123'), undefined)
})

test('writeGeneve produces what the hand-assembled header is', (t) => {
  const b = Buffer.alloc(64)
  const n = writeGeneve(b, 0, { protocolType: 0x0800, endpointId: EP, cookie: 0xc00c1e })
  t.deepEqual(b.subarray(0, n), geneveHeader())
  t.throws(() => writeGeneve(b, 0, { protocolType: 0x0800, endpointId: 'nope', cookie: 1 }))
})

const base = () => geneveHeader()
const cases: [string, () => Buffer, string][] = [
  ['empty', () => Buffer.alloc(0), 'geneve_truncated'],
  ['7 bytes', () => base().subarray(0, 7), 'geneve_truncated'],
  [
    'version 1',
    () => {
      const b = base()
      b[0]! |= 0x40
      return b
    },
    'geneve_version',
  ],
  ['opt len beyond datagram', () => base().subarray(0, 39), 'geneve_options_length'],
  [
    'O bit (control)',
    () => {
      const b = base()
      b[1] = 0x80
      return b
    },
    'geneve_oam',
  ],
  [
    'protocol type ethernet',
    () => {
      const b = base()
      b.writeUInt16BE(0x6558, 2)
      return b
    },
    'geneve_protocol',
  ],
  [
    'option overruns header',
    () => {
      const b = base()
      b[11] = 9
      return b
    },
    'geneve_option_length',
  ],
  [
    'endpoint option 4 bytes',
    () =>
      Buffer.concat([
        Buffer.from([7, 0, 8, 0, 0, 0, 0, 0]),
        Buffer.from([1, 8, 1, 1, 0, 0, 0, 0]),
        Buffer.from([1, 8, 3, 1, 0, 0, 0, 1]),
        Buffer.from([1, 8, 2, 2]),
        Buffer.alloc(8),
      ]),
    'geneve_aws_option_length',
  ],
  [
    'cookie option 8 bytes',
    () => {
      const b = base()
      b[35] = 2
      b[0] = 9
      return Buffer.concat([b, Buffer.alloc(4)])
    },
    'geneve_aws_option_length',
  ],
  [
    'critical unknown option',
    () => geneveHeader({ extra: Buffer.from([0x12, 0x34, 0x85, 0]) }),
    'geneve_critical_option',
  ],
  [
    'critical unknown AWS type',
    () => geneveHeader({ extra: Buffer.from([0x01, 0x08, 0x84, 0]) }),
    'geneve_critical_option',
  ],
  ['no endpoint option', () => geneveHeader({ order: [2, 3] }), 'geneve_no_endpoint'],
  [
    '3 bytes of option header',
    () => {
      const b = Buffer.from([1, 0, 8, 0, 0, 0, 0, 0, 1, 8, 9, 0])
      return b
    },
    'geneve_no_endpoint',
  ],
]
for (const [name, make, want] of cases) {
  test(`malformed Geneve: ${name} → ${want}`, (t) => t.is(parse(make()).r, want))
}

test('every truncation of a GWLB header is rejected, never throws', (t) => {
  const h = base()
  for (let n = 0; n < h.length; n++) t.not(parse(h.subarray(0, n)).r, 'ok', `len ${n}`)
  t.is(M.ok, 0)
})
