import test from 'ava'
import { Peek } from '../../appliance/src/peek/status.ts'
import { StreamPrefix } from '../../appliance/src/peek/stream.ts'
import { ClientHelloInfo, peekClientHello } from '../../appliance/src/peek/tls.ts'
import { nodeClientHello } from './capture.ts'

const b = (s: string) => Buffer.from(s, 'latin1')

test('in-order, out-of-order, retransmitted and overlapping segments rebuild the prefix', (t) => {
  const s = new StreamPrefix(64)
  s.setStart(1000)
  t.is(s.add(1005, b('FGHIJ'), 0, 5), 0, 'a gap: nothing contiguous yet')
  t.is(s.add(1000, b('ABCDE'), 0, 5), 10)
  t.is(s.add(1003, b('xxxxxxx'), 0, 7), 10, 'overlap: first copy wins')
  t.is(Buffer.from(s.bytes.subarray(0, 10)).toString('latin1'), 'ABCDEFGHIJ')
  t.is(s.add(998, b('??KL'), 0, 4), 10, 'bytes before the start are clipped')
  t.is(s.add(1010, b('KLMNOPQRSTUVWXYZ'), 0, 16), 26)
})

test('sequence numbers wrap modulo 2^32', (t) => {
  const s = new StreamPrefix(16)
  s.add(0xfffffffe, b('ab'), 0, 2)
  t.is(s.add(0, b('cd'), 0, 2), 4)
  t.is(Buffer.from(s.bytes.subarray(0, 4)).toString(), 'abcd')
})

test('bounded: bytes past max are ignored and full is reported', (t) => {
  const s = new StreamPrefix(8)
  t.is(s.add(1, b('0123456789'), 0, 10), 8)
  t.true(s.full)
  t.is(s.add(100, b('zz'), 0, 2), 8)
  s.reset()
  t.is(s.contiguous, 0)
  t.false(s.full)
})

test('a real ClientHello cut into shuffled segments is peeked once contiguous', async (t) => {
  const hello = await nodeClientHello({ servername: 'shuffled.example' })
  const segs: [number, number][] = []
  for (let o = 0; o < hello.length; o += 97) segs.push([o, Math.min(97, hello.length - o)])
  segs.reverse()
  const s = new StreamPrefix()
  s.setStart(5000)
  const info = new ClientHelloInfo()
  let status: number = Peek.needMore
  for (const [o, n] of segs) {
    s.add(5000 + o, hello, o, n)
    status = peekClientHello(s.bytes, 0, s.contiguous, info)
    if (status !== Peek.needMore) break
  }
  t.is(status, Peek.complete)
  t.is(info.sni, 'shuffled.example')
})
