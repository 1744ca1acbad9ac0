import { randomBytes } from 'node:crypto'
import test from 'ava'
import { closeFrame, rsvMaskFor, WsFrameParser, WsOpcode } from '../../appliance/src/http/ws-frames.ts'

/** An RFC 6455 §5.2 frame, masked when `mask` is given. */
function frame(
  opcode: number,
  payload: Buffer,
  o: { fin?: boolean; mask?: Buffer; rsv?: number } = {},
): Buffer {
  const fin = o.fin ?? true
  const b0 = (fin ? 0x80 : 0) | (o.rsv ?? 0) | opcode
  const m = o.mask ? 0x80 : 0
  let head: Buffer
  if (payload.length < 126) head = Buffer.from([b0, m | payload.length])
  else if (payload.length < 65536) {
    head = Buffer.alloc(4)
    head[0] = b0
    head[1] = m | 126
    head.writeUInt16BE(payload.length, 2)
  } else {
    head = Buffer.alloc(10)
    head[0] = b0
    head[1] = m | 127
    head.writeBigUInt64BE(BigInt(payload.length), 2)
  }
  if (!o.mask) return Buffer.concat([head, payload])
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i]! ^= o.mask[i & 3]!
  return Buffer.concat([head, o.mask, body])
}

const KEY = Buffer.from([1, 2, 3, 4])

function parser(masked: boolean, maxFrameBytes = 1 << 20, rsvMask = 0) {
  const frames: [number, boolean, number][] = []
  let messages = 0
  const p = new WsFrameParser({
    masked,
    maxFrameBytes,
    rsvMask,
    onFrame: (op, fin, len) => frames.push([op, fin, len]),
    onMessage: () => messages++,
  })
  return { p, frames, messages: () => messages }
}

/** Feeds `bytes` in pieces of `step` bytes; returns what was forwarded and the error, if any. */
function feed(p: WsFrameParser, bytes: Buffer, step: number) {
  const out: Buffer[] = []
  for (let i = 0; i < bytes.length; i += step) {
    const r = p.push(bytes.subarray(i, i + step))
    out.push(r.forward)
    if (r.error) return { forwarded: Buffer.concat(out), error: r.error }
  }
  return { forwarded: Buffer.concat(out), error: undefined }
}

test('valid client frames pass byte for byte, whatever the chunking', (t) => {
  const stream = Buffer.concat([
    frame(WsOpcode.text, Buffer.from('hello'), { mask: KEY }),
    frame(WsOpcode.binary, randomBytes(300), { mask: KEY, fin: false }),
    frame(WsOpcode.ping, Buffer.from('p'), { mask: KEY }),
    frame(WsOpcode.continuation, randomBytes(70_000), { mask: KEY, fin: true }),
    frame(WsOpcode.close, Buffer.from([0x03, 0xe8]), { mask: KEY }),
  ])
  for (const step of [1, 2, 3, 7, 13, 1000, stream.length]) {
    const { p, frames, messages } = parser(true)
    const r = feed(p, stream, step)
    t.is(r.error, undefined, `step ${step}`)
    t.true(r.forwarded.equals(stream), `step ${step}`)
    t.deepEqual(
      frames.map((f) => f[0]),
      [1, 2, 9, 0, 8],
    )
    t.is(messages(), 2)
    t.true(p.atBoundary)
    t.true(p.closeSeen)
  }
})

test('server frames: unmasked ones pass, a masked one is a 1002', (t) => {
  const { p } = parser(false)
  t.is(feed(p, frame(WsOpcode.text, Buffer.from('x')), 5).error, undefined)
  const r = parser(false).p.push(frame(WsOpcode.text, Buffer.from('x'), { mask: KEY }))
  t.is(r.error?.code, 1002)
  t.is(r.forward.length, 0)
})

const bad: [string, Buffer, 1002 | 1009, RegExp][] = [
  ['unmasked client frame', frame(WsOpcode.text, Buffer.from('a')), 1002, /unmasked/],
  ['reserved opcode 3', frame(3, Buffer.alloc(0), { mask: KEY }), 1002, /reserved opcode/],
  ['reserved opcode 0xB', frame(0xb, Buffer.alloc(0), { mask: KEY }), 1002, /reserved opcode/],
  ['RSV1 without an extension', frame(1, Buffer.from('a'), { mask: KEY, rsv: 0x40 }), 1002, /reserved bits/],
  ['fragmented ping', frame(9, Buffer.alloc(0), { mask: KEY, fin: false }), 1002, /fragmented control/],
  ['ping over 125 bytes', frame(9, Buffer.alloc(126), { mask: KEY }), 1002, /125/],
  ['1-byte Close body', frame(8, Buffer.alloc(1), { mask: KEY }), 1002, /1-byte/],
  ['continuation first', frame(0, Buffer.from('a'), { mask: KEY }), 1002, /continuation outside/],
  [
    'new message inside a fragmented one',
    Buffer.concat([
      frame(1, Buffer.from('a'), { mask: KEY, fin: false }),
      frame(2, Buffer.from('b'), { mask: KEY }),
    ]),
    1002,
    /inside a fragmented/,
  ],
  [
    'frame after Close',
    Buffer.concat([frame(8, Buffer.alloc(0), { mask: KEY }), frame(1, Buffer.from('a'), { mask: KEY })]),
    1002,
    /after Close/,
  ],
  ['frame over the limit', frame(2, Buffer.alloc(2000), { mask: KEY }), 1009, /limit/],
  [
    '64-bit length with the high bit',
    Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
    1002,
    /high bit/,
  ],
]

for (const [name, bytes, code, why] of bad) {
  test(`protocol error: ${name} → ${code}, nothing of the bad frame forwarded`, (t) => {
    for (const step of [1, 3, bytes.length]) {
      const { p } = parser(true, 1024)
      const r = feed(p, bytes, step)
      t.is(r.error?.code, code, `step ${step}`)
      t.regex(r.error!.reason, why)
      // Only whole, valid frames before the offending header went out.
      const good = name === 'new message inside a fragmented one' || name === 'frame after Close'
      t.true(good ? r.forwarded.length > 0 && r.forwarded.length < bytes.length : r.forwarded.length === 0)
      t.true(p.atBoundary)
      t.is(p.push(Buffer.from([0x81, 0x80])).forward.length, 0, 'dead after an error')
    }
  })
}

test('permessage-deflate allows RSV1 on a first data frame only', (t) => {
  const mask = rsvMaskFor('permessage-deflate; client_max_window_bits')
  t.is(mask, 0x40)
  const ok = parser(true, 1024, mask)
  t.is(ok.p.push(frame(1, Buffer.from('a'), { mask: KEY, rsv: 0x40 })).error, undefined)
  const ctl = parser(true, 1024, mask)
  t.is(ctl.p.push(frame(9, Buffer.alloc(0), { mask: KEY, rsv: 0x40 })).error?.code, 1002)
  t.is(rsvMaskFor(undefined), 0)
  t.is(rsvMaskFor('x-unknown-ext'), 0x70)
})

test('a payload split across chunks leaves the stream mid-frame until it is whole', (t) => {
  const { p } = parser(true)
  const f = frame(2, Buffer.alloc(1000, 7), { mask: KEY })
  t.is(p.push(f.subarray(0, 500)).forward.length, 500)
  t.false(p.atBoundary)
  t.is(p.push(f.subarray(500)).forward.length, f.length - 500)
  t.true(p.atBoundary)
})

test('closeFrame: masked toward the server, plain toward the client, parseable by our parser', (t) => {
  const toClient = closeFrame(1002, 'bad', false)
  t.deepEqual([...toClient.subarray(0, 4)], [0x88, 5, 0x03, 0xea])
  const toServer = closeFrame(1009, 'big', true)
  t.is(toServer[1]! & 0x80, 0x80)
  const key = toServer.subarray(2, 6)
  const body = Buffer.from(toServer.subarray(6))
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!
  t.is(body.readUInt16BE(0), 1009)
  t.is(body.subarray(2).toString(), 'big')
  t.is(parser(true).p.push(toServer).error, undefined)
  t.is(parser(false).p.push(toClient).error, undefined)
})
