// Captures through the tap, read back by tshark: secrets that arrive after their packets still land before
// them (the hold), filters, the bounded queue that drops and counts, the time and byte bounds, the limit
// on captures at once, and the tap going idle again.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { parseFilter } from '../../appliance/src/capture/filter.ts'
import { CaptureTap, CLIENT_SIDE, flowKey, SERVER_SIDE } from '../../appliance/src/capture/tap.ts'
import { ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { selfSignedCert } from '../support/certs.ts'
import { tsharkTest } from '../support/tshark.ts'
import { addr, geneveHeader } from '../wire/packets.ts'
import { type TlsTrace, tlsTrace } from './tls-trace.ts'

const dir = mkdtempSync(join(tmpdir(), 'flowgate-capture-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))
const files = selfSignedCert(dir, 'origin', '/CN=capture.example.test', 'DNS:capture.example.test')
const tls = { cert: readFileSync(files.cert), key: readFileSync(files.key) }
const ENDS = { client: [10, 0, 1, 2], server: [10, 0, 2, 2], clientPort: 40000, serverPort: 443 } as const
const KEY = flowKey({
  family: 4,
  client: addr('10.0.1.2'),
  server: addr('10.0.2.2'),
  clientPort: 40000,
  serverPort: 443,
  protocol: 6,
  endpoint: Buffer.from('1234567890abcdef', 'hex'),
})

const decoderTest = tsharkTest('capture decoder tests')

/** An inner IPv4 packet as the loop has it: parsed from a GWLB datagram. */
function parsed(ip: Buffer): ParsedPacket {
  const b = Buffer.concat([geneveHeader(), ip])
  const p = new ParsedPacket()
  if (parsePacket(b, b.length, p) !== 0) throw new Error('did not parse')
  return p
}

function feed(tap: CaptureTap, trace: TlsTrace, side = CLIENT_SIDE): void {
  for (const pkt of trace.packets) {
    const p = parsed(pkt.bytes)
    tap.packet(p, side, !pkt.fromClient, p.buf, p.ipOff, p.ipEnd)
  }
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of stream) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

let n = 0
function tshark(pcapng: Buffer, ...args: string[]): string {
  const f = join(dir, `c${n++}.pcapng`)
  writeFileSync(f, pcapng)
  const r = spawnSync('tshark', ['-r', f, ...args], { encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`tshark: ${r.stderr}`)
  return r.stdout.trim()
}

const request = (path: string) => `GET ${path} HTTP/1.1\r\nhost: capture.example.test\r\n\r\n`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

decoderTest('secrets that come after their packets are written before them (held packets)', async (t) => {
  const trace = await tlsTrace(ENDS, tls, request('/held'))
  for (const holdMs of [1000, 0]) {
    const tap = new CaptureTap()
    const s = tap.open(parseFilter('port 443'), { seconds: 2, holdMs })!
    const out = collect(s.stream)
    const sink = () => tap.keylogFor(KEY, SERVER_SIDE)
    feed(tap, trace, SERVER_SIDE)
    // As in the appliance: the TLS stack derives the keys while it processes packets already captured
    // (a hold of 1 s leaves a loaded machine plenty of margin over these 60 ms).
    await sleep(60)
    const keylog = sink()
    t.truthy(keylog, 'the capture takes the flow')
    for (const line of trace.keylog) keylog!(line)
    const http = tshark(await out, '-Y', 'http', '-T', 'fields', '-e', 'http.request.uri')
    if (holdMs > 0) t.is(http, '/held', 'decrypted in one pass: the DSB went ahead of the packets')
    else t.is(http, '', 'without the hold the secrets trail the packets and nothing decrypts')
    t.is(s.secrets, trace.keylog.length)
    t.is(s.ended, 'time')
  }
})

decoderTest('only what the filter takes, on the interface of its side, with its direction', async (t) => {
  const trace = await tlsTrace(ENDS, tls, request('/x'))
  const tap = new CaptureTap()
  const s = tap.open(parseFilter('side server and src host 10.0.2.2'), { seconds: 1, holdMs: 10 })!
  const out = collect(s.stream)
  feed(tap, trace, CLIENT_SIDE)
  feed(tap, trace, SERVER_SIDE)
  t.is(tap.keylogFor(KEY, CLIENT_SIDE), undefined, 'no capture takes the client side: keys stay off')
  const rows = tshark(
    await out,
    '-T',
    'fields',
    '-e',
    'frame.interface_name',
    '-e',
    'ip.src',
    '-e',
    'frame.packet_flags_direction',
  ).split('\n')
  const fromServer = trace.packets.filter((p) => !p.fromClient).length
  t.is(rows.length, fromServer)
  t.true(
    rows.every((r) => r === 'server\t10.0.2.2\t0x00000002'),
    rows.join('\n'),
  )
  t.deepEqual(s.received, [0, fromServer])
})

decoderTest('a full queue drops and counts; what was queued is still a valid file', async (t) => {
  const trace = await tlsTrace(ENDS, tls, request('/x'))
  const tap = new CaptureTap()
  // Packets are held for 10 s, far beyond the test, so they stay in the 8 KiB queue.
  const s = tap.open(parseFilter(''), { seconds: 60, holdMs: 10_000, queueBytes: 8 * 1024 })!
  const out = collect(s.stream)
  for (let k = 0; k < 20; k++) feed(tap, trace)
  const offered = 20 * trace.packets.length
  t.true(s.dropped[0]! > 0, 'dropped')
  t.is(s.received[0], offered)
  t.is(tap.counts[0]! + tap.counts[1]!, offered, 'captured + dropped, for metrics')
  s.finish('shutdown', true)
  const file = await out
  const captured = Number(tshark(file, '-T', 'fields', '-e', 'frame.number').split('\n').length)
  t.is(captured, offered - s.dropped[0]!)
  t.is(captured, tap.counts[0]!)
  t.false(tap.active)
})

decoderTest('the byte bound ends the capture with whole blocks', async (t) => {
  const trace = await tlsTrace(ENDS, tls, request('/x'))
  const tap = new CaptureTap()
  const s = tap.open(parseFilter(''), { seconds: 60, maxBytes: 4096, holdMs: 10 })!
  const out = collect(s.stream)
  for (let k = 0; k < 10; k++) feed(tap, trace)
  const file = await out
  t.is(s.ended, 'bytes')
  t.true(file.length <= 4096, `${file.length} bytes`)
  t.true(Number(tshark(file, '-T', 'fields', '-e', 'frame.number').split('\n').length) > 0)
  t.false(tap.active)
})

test('captures at once are bounded; the tap is idle (active false) once they end', async (t) => {
  const tap = new CaptureTap({ maxCaptures: 2 })
  t.false(tap.active)
  t.is(tap.keylogFor(KEY, SERVER_SIDE), undefined)
  const a = tap.open(parseFilter(''), { seconds: 60 })!
  const b = tap.open(parseFilter('udp'), { seconds: 60 })!
  t.true(tap.active)
  t.is(tap.open(parseFilter(''), { seconds: 60 }), undefined)
  t.truthy(tap.keylogFor(KEY, SERVER_SIDE), 'a takes the flow')
  a.stream.destroy() // the caller went away
  await new Promise((r) => a.stream.once('close', r))
  t.is(a.ended, 'closed')
  t.is(tap.keylogFor(KEY, SERVER_SIDE), undefined, 'b (udp) does not take a TCP flow')
  b.finish('shutdown', true)
  t.false(tap.active)
  t.is(tap.size, 0)
})
