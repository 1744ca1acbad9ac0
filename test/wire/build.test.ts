import test from 'ava'
import {
  buildReturnDatagram,
  buildRstToReceiver,
  buildRstToSender,
  buildUnreachable,
} from '../../appliance/src/wire/build.ts'
import { Unreachable } from '../../appliance/src/wire/icmp.ts'
import { l4ChecksumOk, ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { datagram, refChecksum, tcp4, tcp6, udp4, udp6 } from './packets.ts'

const out = Buffer.alloc(4096)
function parsed(d: Buffer) {
  const p = new ParsedPacket()
  if (parsePacket(d, d.length, p) !== 0) throw new Error('bad sample')
  return p
}
function reply(n: number) {
  const q = new ParsedPacket()
  const r = parsePacket(Buffer.from(out.subarray(0, n)), n, q)
  if (r !== 0) throw new Error(`built packet does not parse: ${r}`)
  return q
}

test('RST to a SYN (no ACK): seq 0, ack = SEG.SEQ + 1, RST|ACK, addresses and ports swapped', (t) => {
  const d = datagram(tcp4({ flags: 0x02, seq: 0xffffffff }), { cookie: 77 })
  const p = parsed(d)
  const n = buildRstToSender(p, out)
  t.true(n > 0)
  t.deepEqual(out.subarray(0, 40), d.subarray(0, 40), 'Geneve header byte for byte')
  const q = reply(n)
  t.deepEqual([...q.src()], [203, 0, 113, 9])
  t.deepEqual([...q.dst()], [10, 0, 0, 1])
  t.is(q.srcPort, 80)
  t.is(q.dstPort, 40000)
  t.is(q.tcpSeq, 0)
  t.is(q.tcpAck, 0, 'wraps: 0xffffffff + 1')
  t.is(q.tcpFlags, 0x14)
  t.true(l4ChecksumOk(q))
})

test('RST to a data segment with ACK: seq = SEG.ACK, no ACK bit (RFC 9293 §3.10.7.1)', (t) => {
  const p = parsed(datagram(tcp4({ flags: 0x18, seq: 1000, ack: 5000, payload: Buffer.alloc(100) })))
  const q = reply(buildRstToSender(p, out))
  t.is(q.tcpSeq, 5000)
  t.is(q.tcpFlags, 0x04)
  t.true(l4ChecksumOk(q))
})

test('RST to SYN+FIN+data counts SYN, FIN and data in the ack', (t) => {
  const p = parsed(datagram(tcp4({ flags: 0x03, seq: 10, payload: Buffer.alloc(5) })))
  t.is(reply(buildRstToSender(p, out)).tcpAck, 17)
})

test('never a RST in reply to a RST', (t) => {
  t.is(buildRstToSender(parsed(datagram(tcp4({ flags: 0x04 }))), out), 0)
  t.is(buildRstToReceiver(parsed(datagram(tcp4({ flags: 0x14 }))), out), 0)
  t.is(buildRstToSender(parsed(datagram(udp4())), out), 0)
})

test('RST to the receiver carries the withheld segment’s seq and the sender’s addresses (IPv6)', (t) => {
  const p = parsed(datagram(tcp6({ flags: 0x18, seq: 123456, ack: 99, payload: Buffer.from('hello') })))
  const q = reply(buildRstToReceiver(p, out))
  t.is(q.family, 6)
  t.deepEqual(Buffer.from(q.src()), Buffer.from(p.src()))
  t.is(q.srcPort, 40000)
  t.is(q.tcpSeq, 123456)
  t.is(q.tcpAck, 99)
  t.is(q.tcpFlags, 0x14)
  t.true(l4ChecksumOk(q))
})

test('ICMP port unreachable quotes the UDP datagram, from its destination to its source', (t) => {
  const d = datagram(udp4({ payload: Buffer.alloc(1000, 7) }))
  const p = parsed(d)
  const n = buildUnreachable(p, Unreachable.port, out)
  const q = reply(n)
  t.is(q.protocol, 1)
  t.is(q.icmpType, 3)
  t.is(q.icmpCode, 3)
  t.deepEqual([...q.src()], [203, 0, 113, 9])
  t.is(n - 40, 576, 'RFC 1812 §4.3.2.3: at most 576 bytes')
  t.deepEqual(out.subarray(40 + 28, n), d.subarray(40, 40 + 548))
  t.is(refChecksum(out.subarray(60, n)), 0)
  t.true(l4ChecksumOk(q))
  const admin = reply(buildUnreachable(p, Unreachable.adminProhibited, out))
  t.is(admin.icmpCode, 13)
})

test('ICMPv6 unreachable: codes 4 (port) and 1 (admin), quote bounded by 1280, checksum with pseudo-header', (t) => {
  const p = parsed(datagram(udp6({ payload: Buffer.alloc(3000, 1) })))
  const n = buildUnreachable(p, Unreachable.port, out)
  t.is(n - 40, 1280)
  const q = reply(n)
  t.is(q.protocol, 58)
  t.is(q.icmpType, 1)
  t.is(q.icmpCode, 4)
  t.true(l4ChecksumOk(q))
  t.is(reply(buildUnreachable(p, Unreachable.adminProhibited, out)).icmpCode, 1)
})

test('no ICMP error about ICMP errors, later fragments, multicast or broadcast (RFC 1122 §3.2.2)', (t) => {
  const none = (d: Buffer) => buildUnreachable(parsed(d), Unreachable.port, out)
  t.is(none(datagram({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 3, icmpCode: 1 })), 0)
  t.is(none(datagram({ src: 'fd00::1', dst: 'fd00::2', proto: 58, icmpType: 1 })), 0)
  t.is(none(datagram(udp4({ dst: '224.0.0.251' }))), 0)
  t.is(none(datagram(udp4({ dst: '255.255.255.255' }))), 0)
  t.is(none(datagram(udp4({ src: '0.0.0.0' }))), 0)
  t.is(none(datagram(udp6({ dst: 'ff02::1' }))), 0)
  t.is(none(datagram(udp4({ fragOffset: 64, payload: Buffer.alloc(8) }))), 0)
  t.true(
    none(datagram({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8 })) > 0,
    'an echo request may be refused',
  )
})

test('return datagram: stored header + inner packet', (t) => {
  const g = Buffer.from(datagram(udp4()).subarray(0, 40))
  const inner = Buffer.from('abcdef')
  const n = buildReturnDatagram(g, 40, inner, 1, 4, out)
  t.is(n, 44)
  t.deepEqual(out.subarray(0, 40), g)
  t.is(out.toString('latin1', 40, 44), 'bcde')
  t.is(buildReturnDatagram(g, 40, Buffer.alloc(5000), 0, 5000, out), 0)
})
