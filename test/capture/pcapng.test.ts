// The pcapng encoder against real decoders (tshark, capinfos): blocks they parse, interface names, µs
// timestamps, directions, and — the point of a DSB — a TLS session decrypted from the secrets in the file.
// The session is real TLS (Node client and server over an in-memory pair) cut into IPv4/TCP packets.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import {
  decryptionSecrets,
  EPB_INBOUND,
  EPB_OUTBOUND,
  enhancedPacketSize,
  interfaceDescription,
  interfaceStatistics,
  LINKTYPE_RAW,
  sectionHeader,
  writeEnhancedPacket,
} from '../../appliance/src/capture/pcapng.ts'
import { selfSignedCert } from '../support/certs.ts'
import { tsharkTest } from '../support/tshark.ts'
import { type TlsTrace, tlsTrace } from './tls-trace.ts'

const dir = mkdtempSync(join(tmpdir(), 'flowgate-pcapng-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))
const files = selfSignedCert(dir, 'origin', '/CN=capture.example.test', 'DNS:capture.example.test')
const tlsFiles = { cert: readFileSync(files.cert), key: readFileSync(files.key) }
const ENDS = { client: [10, 0, 1, 2], server: [10, 0, 2, 2], clientPort: 40000, serverPort: 443 } as const
const T0 = 1_700_000_000_000_000 // µs

// tshark and capinfos are the decoders: without them these tests cannot say anything.
const decoderTest = tsharkTest('pcapng decoder tests')

let n = 0
function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}
function file(blocks: Buffer[]): string {
  const f = join(dir, `t${n++}.pcapng`)
  writeFileSync(f, Buffer.concat(blocks))
  return f
}
function epb(iface: number, micros: number, flags: number, packet: Buffer): Buffer {
  const out = Buffer.alloc(enhancedPacketSize(packet.length) + 8, 0xee) // dirty, as a reused chunk is
  const end = writeEnhancedPacket(out, 4, iface, micros, flags, packet, 0, packet.length)
  return out.subarray(4, end)
}
const packetsOf = (trace: TlsTrace, iface = 0, t0 = T0) =>
  trace.packets.map((p, i) => epb(iface, t0 + i * 1000, p.fromClient ? EPB_INBOUND : EPB_OUTBOUND, p.bytes))

const head = (...ifaces: string[]) => [
  sectionHeader({ application: 'flowgate test', comment: 'pcapng.test.ts' }),
  ...ifaces.map((name) =>
    interfaceDescription({
      linkType: LINKTYPE_RAW,
      name,
      description: `the ${name} side`,
      filter: 'port 443',
    }),
  ),
]

const trace = (path: string, isn?: { client: number; server: number }) =>
  tlsTrace(ENDS, tlsFiles, `GET ${path} HTTP/1.1\r\nhost: capture.example.test\r\n\r\n`, isn)

decoderTest('tshark decrypts a TLS session with the secrets of a Decryption Secrets Block', async (t) => {
  const tls = await trace('/decrypt-me')
  t.is(tls.response.split('\r\n\r\n')[1], 'hello')
  t.true(tls.keylog.length >= 5, 'TLS 1.3 secrets from both ends')
  const withKeys = file([...head('client'), decryptionSecrets(Buffer.concat(tls.keylog)), ...packetsOf(tls)])
  const out = run('tshark', [
    '-r',
    withKeys,
    '-Y',
    'http',
    '-T',
    'fields',
    '-e',
    'http.request.method',
    '-e',
    'http.request.uri',
    '-e',
    'http.request.version',
    '-e',
    'http.response.code',
  ])
  t.deepEqual(out.trim().split('\n'), ['GET\t/decrypt-me\tHTTP/1.1\t', '\t\t\t200'])
  // The same packets without the block: nothing to decrypt with, so no HTTP (the DSB is what did it).
  const without = file([...head('client'), ...packetsOf(tls)])
  t.is(run('tshark', ['-r', without, '-Y', 'http']).trim(), '')
  // Secrets after the packets do not help a reader either: order in the file matters (session.ts holds
  // packets so that secrets can go first).
  const late = file([...head('client'), ...packetsOf(tls), decryptionSecrets(Buffer.concat(tls.keylog))])
  t.is(run('tshark', ['-r', late, '-Y', 'http']).trim(), '')
})

decoderTest(
  'capinfos and tshark read the blocks: interfaces, µs timestamps, directions, secrets, statistics',
  async (t) => {
    const tls = await trace('/x')
    const f = file([
      ...head('client', 'server'),
      decryptionSecrets(Buffer.concat(tls.keylog)),
      ...packetsOf(tls, 1, T0 + 123),
      interfaceStatistics({ interfaceId: 1, start: T0, end: T0 + 60_000_000, received: 20, dropped: 3 }),
    ])
    const info = run('capinfos', ['-M', f])
    t.regex(info, /Number of interfaces in file: 2/)
    t.regex(info, /Name = client/)
    t.regex(info, /Name = server/)
    t.regex(info, /Description = the server side/)
    t.regex(info, /Encapsulation = Raw IP/)
    t.regex(info, /Capture application: flowgate test/)
    t.regex(info, /Number of decryption secrets in file: 1/)
    t.regex(info, new RegExp(`Number of packets:\\s+${tls.packets.length}\\b`))
    t.regex(info, /Filter string = port 443/)
    t.regex(
      info,
      /Number of stat entries = 1\s+Number of packets = \d+\s*$/m,
      'the ISB belongs to interface 1',
    )
    const rows = run('tshark', [
      '-r',
      f,
      '-T',
      'fields',
      '-E',
      'separator=,',
      '-e',
      'frame.interface_name',
      '-e',
      'frame.time_epoch',
      '-e',
      'frame.packet_flags_direction',
      '-e',
      'ip.src',
      '-e',
      'tcp.srcport',
    ])
      .trim()
      .split('\n')
    t.is(rows.length, tls.packets.length)
    t.is(rows[0], 'server,1700000000.000123000,0x00000001,10.0.1.2,40000')
    t.is(rows[1], 'server,1700000000.001123000,0x00000002,10.0.2.2,443')
  },
)

test('block layout: lengths at both ends, 32-bit padding, little-endian', (t) => {
  const odd = Buffer.from([0x45, 1, 2, 3, 4])
  const b = epb(0, 2 ** 40 + 5, EPB_INBOUND, odd)
  t.is(b.length, 28 + 8 + 12 + 4)
  t.is(b.readUInt32LE(0), 6)
  t.is(b.readUInt32LE(4), b.length)
  t.is(b.readUInt32LE(b.length - 4), b.length)
  t.is(b.readUInt32LE(12), 2 ** 8, 'timestamp high word')
  t.is(b.readUInt32LE(16), 5, 'timestamp low word')
  t.is(b.readUInt32LE(20), 5, 'captured length without padding')
  t.deepEqual([...b.subarray(33, 36)], [0, 0, 0], 'padding cleared in a dirty buffer')
  const dsb = decryptionSecrets(Buffer.from('CLIENT_RANDOM x y\n'))
  t.is(dsb.readUInt32LE(0), 0x0a)
  t.is(dsb.readUInt32LE(8), 0x544c534b)
  t.is(dsb.readUInt32LE(12), 18)
  t.is(dsb.length % 4, 0)
  const shb = sectionHeader()
  t.is(shb.readUInt32LE(8), 0x1a2b3c4d)
  t.is(shb.readBigInt64LE(16), -1n)
})
