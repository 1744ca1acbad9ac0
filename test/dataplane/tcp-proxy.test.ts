// The TCP proxy's handshake (issue 4 item 2) driven with hand-built GWLB datagrams: upstream first, the
// client's SYN answered only after the server's SYN-ACK; refused → RST to the client; silence → silence and
// the flow's state goes. Segments in and out go through the real wire codec (buildTcpSegment/parsePacket).
import test from 'ava'
import { type ProxiedFlow, TcpProxy } from '../../appliance/src/dataplane/tcp-proxy.ts'
import type { TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { Flag } from '../../appliance/src/tcp/segment.ts'
import { buildTcpSegment, type TcpSegmentFields } from '../../appliance/src/wire/build.ts'
import { ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { geneveHeader } from '../wire/packets.ts'

const CLIENT = Uint8Array.of(10, 0, 1, 2)
const SERVER = Uint8Array.of(10, 0, 2, 2)
const G = geneveHeader({ cookie: 99 })
const buf = Buffer.alloc(70_000)

interface Sent {
  towardClient: boolean
  seg: TcpRepr
  flow: ProxiedFlow
}

function packet(fromClient: boolean, s: Partial<TcpSegmentFields>): ParsedPacket {
  const seg: TcpSegmentFields = {
    srcPort: fromClient ? 43000 : 8080,
    dstPort: fromClient ? 8080 : 43000,
    seq: 0,
    ack: 0,
    flags: 0,
    window: 65535,
    payload: new Uint8Array(0),
    ...s,
  }
  const n = buildTcpSegment(G, 4, fromClient ? CLIENT : SERVER, fromClient ? SERVER : CLIENT, seg, buf)
  const p = new ParsedPacket()
  if (parsePacket(Buffer.from(buf.subarray(0, n)), n, p) !== 0) throw new Error('bad datagram')
  return p
}

function proxy(config = {}) {
  const sent: Sent[] = []
  const px = new TcpProxy({
    send: (flow, towardClient, seg) => sent.push({ flow, towardClient, seg: { ...seg } }),
    config: { rto: { initialRto: 40, minRto: 40, maxRto: 1000, granularity: 1 }, ...config },
  })
  return { px, sent }
}

const SYN = {
  seq: 1000,
  flags: Flag.SYN,
  mss: 1460,
  windowScale: 7,
  sackPermitted: true,
  timestamp: { val: 5, ecr: 0 },
}
const flush = () => new Promise((r) => setTimeout(r, 5))

test('upstream first: the client is answered as the server only after the server accepted', async (t) => {
  const { px, sent } = proxy()
  px.input(packet(true, SYN), 7, 1, true, 0)
  await flush()
  t.is(sent.length, 1)
  const syn = sent[0]!
  t.false(syn.towardClient, 'the SYN goes to the server')
  t.is(syn.seg.flags, Flag.SYN)
  t.is(syn.seg.srcPort, 43000, 'as the client: its port')
  t.is(syn.seg.dstPort, 8080)
  // A retransmitted client SYN while the upstream connects gets nothing.
  px.input(packet(true, SYN), 7, 1, true, 0)
  await flush()
  t.is(sent.length, 1)
  // The server's SYN-ACK: ACK to the server, SYN-ACK to the client from the server's port.
  px.input(
    packet(false, {
      seq: 500,
      ack: (syn.seg.seq + 1) >>> 0,
      flags: Flag.SYN | Flag.ACK,
      mss: 1460,
      timestamp: { val: 9, ecr: 1 },
    }),
    7,
    1,
    false,
    0,
  )
  await flush()
  const toClient = sent.filter((s) => s.towardClient)
  t.is(toClient.length, 1)
  t.is(toClient[0]!.seg.flags, Flag.SYN | Flag.ACK)
  t.is(Number(toClient[0]!.seg.ack), 1001)
  t.is(toClient[0]!.seg.srcPort, 8080)
  t.is(toClient[0]!.seg.dstPort, 43000)
  // The client's ACK and data reach the server through the relay.
  const synAck = toClient[0]!.seg
  px.input(
    packet(true, { seq: 1001, ack: (synAck.seq + 1) >>> 0, flags: Flag.ACK, timestamp: { val: 6, ecr: 1 } }),
    7,
    1,
    true,
    0,
  )
  px.input(
    packet(true, {
      seq: 1001,
      ack: (synAck.seq + 1) >>> 0,
      flags: Flag.ACK | Flag.PSH,
      timestamp: { val: 6, ecr: 1 },
      payload: Buffer.from('hello'),
    }),
    7,
    1,
    true,
    0,
  )
  for (let k = 0; k < 50 && !sent.some((s) => !s.towardClient && s.seg.payload.length > 0); k++) await flush()
  const data = sent.find((s) => !s.towardClient && s.seg.payload.length > 0)
  t.is(Buffer.from(data!.seg.payload).toString(), 'hello')
  t.is(px.results[0], 1, 'relayed')
  px.close()
})

test('refused upstream: the client gets a RST answering its SYN', async (t) => {
  const { px, sent } = proxy()
  px.input(packet(true, SYN), 3, 2, true, 0)
  await flush()
  const syn = sent[0]!.seg
  px.input(packet(false, { seq: 0, ack: (syn.seq + 1) >>> 0, flags: Flag.RST | Flag.ACK }), 3, 2, false, 0)
  await flush()
  const rst = sent.filter((s) => s.towardClient)
  t.is(rst.length, 1)
  t.is(rst[0]!.seg.flags, Flag.RST | Flag.ACK)
  t.is(Number(rst[0]!.seg.ack), 1001)
  t.is(rst[0]!.seg.srcPort, 8080)
  t.is(px.results[1], 1, 'refused')
  t.is(px.size, 0, 'nothing left of the flow')
})

test('silent upstream: the client sees nothing, and the flow is cleaned up when the SYNs run out', async (t) => {
  const { px, sent } = proxy({ synRetries: 1 })
  px.input(packet(true, SYN), 4, 1, true, 0)
  for (let k = 0; k < 200 && px.size > 0; k++) await flush()
  t.is(px.size, 0)
  t.is(sent.filter((s) => s.towardClient).length, 0, 'nothing toward the client')
  t.is(
    sent.filter((s) => !s.towardClient && s.seg.flags === Flag.SYN).length,
    2,
    'SYN and one retransmission',
  )
  t.is(px.results[2], 1, 'upstream_failed')
})

test('a segment that is not a SYN opens nothing and is left to the caller to forward', async (t) => {
  const { px, sent } = proxy()
  t.false(px.input(packet(true, { seq: 1, ack: 1, flags: Flag.ACK }), 5, 1, true, 0), 'not ours: forwarded')
  t.false(px.input(packet(false, { seq: 1, ack: 1, flags: Flag.SYN | Flag.ACK }), 5, 1, false, 0))
  await flush()
  t.is(sent.length, 0)
  t.is(px.size, 0)
})
