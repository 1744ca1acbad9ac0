// The out-of-order queue must copy what it holds even when handed a Buffer (whose slice() is a view): the
// payload of an inbound segment is a view over a receive ring the packet I/O reuses.
import test from 'ava'
import { Reassembly } from '../../appliance/src/tcp/reassembly.ts'
import type { Seq } from '../../appliance/src/tcp/seq.ts'

test('held bytes survive the reuse of the datagram buffer they came from', (t) => {
  const ring = Buffer.alloc(64, 0xaa)
  const q = new Reassembly(1 << 16)
  t.true(q.insert(1010 as Seq, ring.subarray(8, 24)))
  ring.fill(0x55) // the next recvmmsg overwrites the ring
  const out = Buffer.concat([...q.take(1010 as Seq)])
  t.is(out.length, 16)
  t.true(
    out.every((b) => b === 0xaa),
    out.toString('hex'),
  )
})
