import test from 'ava'
import { PeekHolds } from '../../appliance/src/dataplane/peek-hold.ts'
import type { ParsedPacket } from '../../appliance/src/wire/packet.ts'
import type { FlowFacts } from '../../policy/src/engine/index.ts'

const path = { localAddr: 1, remoteAddr: 2, remotePort: 60000 }
const l4 = (): FlowFacts => ({
  endpoint: 'vpce-00000000000000001',
  family: 4,
  src: new Uint8Array(4),
  dst: new Uint8Array(4),
  protocol: 6,
  dstPort: 80,
})

/** A client data segment as the parser describes it: 20 header bytes, then the payload. */
function segment(payload: string, seq: number): ParsedPacket {
  const body = Buffer.from(payload)
  const buf = Buffer.concat([Buffer.alloc(20), body])
  return {
    buf,
    ipEnd: buf.length,
    tcpSeq: seq,
    payloadOff: 20,
    payloadLen: body.length,
  } as unknown as ParsedPacket
}

test('an HTTP request split across segments is read once complete, with its facts', (t) => {
  const holds = new PeekHolds()
  const a = holds.clientData(segment('GET /watch?v=1 HT', 1000), 7, 1, path, 0, l4)
  t.is(a.kind, 'waiting')
  const b = holds.clientData(
    segment('TP/1.1\r\nHost: Example.com:8080\r\nX-T: 1\r\n\r\n', 1017),
    7,
    1,
    path,
    5,
    l4,
  )
  if (b.kind !== 'decide') return t.fail('not decided')
  t.is(b.result, 'http')
  t.like(b.facts, { sni: null, host: 'Example.com:8080', method: 'GET', path: '/watch' })
  t.deepEqual(b.facts.headers?.get('x-t'), ['1'])
  t.is(b.held.packets.length, 2, 'both segments are held for release')
  t.is(holds.size, 0)
  t.is(holds.bytes, 0, 'every held byte is accounted back')
})

test('a segment out of order is held but not read; the stream stays consistent', (t) => {
  const holds = new PeekHolds()
  holds.clientData(segment('GET / HTTP/1.1\r\n', 1), 3, 1, path, 0, l4)
  const dup = holds.clientData(segment('Host: x\r\n\r\n', 999), 3, 1, path, 0, l4)
  t.is(dup.kind, 'waiting', 'a gap: nothing new to read')
  const next = holds.clientData(segment('Host: a\r\n\r\n', 17), 3, 1, path, 0, l4)
  if (next.kind !== 'decide') return t.fail('not decided')
  t.is(next.facts.host, 'a')
  t.is(next.held.packets.length, 3)
})

test('bytes that are neither TLS nor HTTP decide at once with every fact absent', (t) => {
  const holds = new PeekHolds()
  const s = holds.clientData(segment('SSH-2.0-OpenSSH_9.2\r\n', 1), 1, 1, path, 0, l4)
  if (s.kind !== 'decide') return t.fail('not decided')
  t.is(s.result, 'unknown')
  t.deepEqual(s.facts, { sni: null, host: null, method: null, path: null, headers: null })
})

test('a flow that never completes its first bytes is decided when its wait is over', (t) => {
  const holds = new PeekHolds({ maxWaitMs: 100 })
  holds.clientData(segment('GET / HTTP/1.1\r\n', 1), 9, 4, path, 1000, l4)
  t.deepEqual(holds.expire(1099), [])
  const [s] = holds.expire(1100)
  if (s?.kind !== 'decide') return t.fail('not decided')
  t.is(s.result, 'timeout')
  t.is(s.held.gen, 4)
})

test('bounds: per flow, across flows and in number of flows, past which flows decide as overflow', (t) => {
  const perFlow = new PeekHolds({ maxHeldBytesPerFlow: 100 })
  let s = perFlow.clientData(segment('GET /'.padEnd(60, 'a'), 1), 1, 1, path, 0, l4)
  t.is(s.kind, 'waiting')
  s = perFlow.clientData(segment('b'.repeat(60), 61), 1, 1, path, 0, l4)
  t.is(s.kind === 'decide' && s.result, 'overflow')

  const total = new PeekHolds({ maxTotalBytes: 5000 })
  t.is(total.clientData(segment('GET /a', 1), 1, 1, path, 0, l4).kind, 'waiting')
  t.is(total.clientData(segment('GET /b', 1), 2, 1, path, 0, l4).kind, 'waiting')
  const third = total.clientData(segment('GET /c', 1), 3, 1, path, 0, l4)
  t.is(
    third.kind === 'decide' && third.result,
    'overflow',
    'the third flow\u2019s 2 KiB stream passes the 5,000-byte cap',
  )

  const few = new PeekHolds({ maxFlows: 1 })
  t.is(few.clientData(segment('GET /a', 1), 1, 1, path, 0, l4).kind, 'waiting')
  const over = few.clientData(segment('GET /b', 1), 2, 1, path, 0, l4)
  t.is(over.kind === 'decide' && over.result, 'overflow')
  t.is(few.size, 1)
})

test('a flow whose slot was reused (new generation) starts a new hold', (t) => {
  const holds = new PeekHolds()
  holds.clientData(segment('GET / HTTP/1.1\r\n', 1), 5, 1, path, 0, l4)
  t.truthy(holds.get(5, 1))
  t.is(holds.get(5, 2), undefined)
})

test('the server speaking first decides the flow as showing nothing', (t) => {
  const holds = new PeekHolds()
  const s = holds.serverFirst(4, 1, 0, l4)
  t.is(s.kind === 'decide' && s.result, 'server-first')
  t.is(holds.results[6], 1)
})
