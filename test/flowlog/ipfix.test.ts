// IPFIX export decoded by a real decoder: flows through the real fast path, flow table and flow log, their
// records exported over UDP on loopback to a collector socket while tshark captures them; tshark's cflow
// dissector must show the addresses, ports, counters and times of the flows we made.
import { createSocket, type Socket } from 'node:dgram'
import test, { type ExecutionContext } from 'ava'
import { FastPath, FastPathResult } from '../../appliance/src/fastpath/fastpath.ts'
import { FlowTable } from '../../appliance/src/flow/table.ts'
import { FlowLog, IPFIX_COUNTS, IpfixExporter, parseIpfixTarget } from '../../appliance/src/flowlog/index.ts'
import { IpfixEncoder, TEMPLATE_V4 } from '../../appliance/src/flowlog/ipfix.ts'
import { compile } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'
import { missingTool } from '../peek/capture.ts'
import { canCapture, captureIpfix, enterpriseStrings, flowsOf } from '../support/tshark.ts'
import { datagram, EP, type Inner, tcp4, udp6 } from '../wire/packets.ts'

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec,
})
const POLICIES = [
  doc('web', {
    priority: 10,
    match: { protocols: ['TCP'] },
    rules: [{ name: 'http', when: { ports: ['80'] }, action: 'Allow' }],
    defaultAction: 'Deny',
  }),
]
const T0 = 1_700_000_000_000
const rev = (i: Inner): Inner => ({ ...i, src: i.dst, dst: i.src, sport: i.dport, dport: i.sport })

/** A UDP socket standing in for the collector (so nothing answers port unreachable); counts datagrams. */
async function collector(): Promise<{ sock: Socket; port: number; got: Buffer[] }> {
  const sock = createSocket('udp4')
  const got: Buffer[] = []
  sock.on('message', (m) => got.push(m))
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r))
  return { sock, port: sock.address().port, got }
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function flowSetup(exporter: IpfixExporter) {
  const c = compile(POLICIES, { fleetDefault: 'Allow' })
  let fp: FastPath | undefined
  const log = new FlowLog({ decisionOf: (i) => fp!.decisionOf(i) })
  log.addSink(exporter)
  const flows = new FlowTable({ capacity: 64, seed: 1, now: () => 0, onRemove: (i, r) => log.onRemove(i, r) })
  log.attach(flows)
  fp = new FastPath({ flows, engine: new PolicyEngine(c.policies, 'Allow') })
  const r = new FastPathResult()
  const send = (i: Inner, now: number) => {
    const d = datagram(i)
    fp!.processDatagram(d, d.length, 0x0a000001, 60000, now, r)
    return r.flow
  }
  return { log, send, flows }
}

const tsharkTest = (title: string, fn: (t: ExecutionContext) => Promise<void>) =>
  test(title, async (t) => {
    if (missingTool(t, 'tshark (and root, to capture on lo)', canCapture)) return
    await fn(t)
  })

tsharkTest(
  'tshark decodes our IPFIX: a closed TCP flow and an IPv6 UDP flow, with counters, times and flowgate fields',
  async (t) => {
    const col = await collector()
    t.teardown(() => col.sock.close())
    const exporter = new IpfixExporter({ target: { host: '127.0.0.1', port: col.port } })
    const { log, send, flows: table } = flowSetup(exporter)
    const messages = await captureIpfix(col.port, async () => {
      const c = tcp4({ dport: 80 })
      const flow = send({ ...c, flags: 0x02 }, T0) // SYN
      send(rev({ ...c, flags: 0x12 }), T0 + 1) // SYN-ACK
      send({ ...c, flags: 0x10 }, T0 + 2)
      send({ ...c, flags: 0x18, payload: new Uint8Array(100) }, T0 + 3)
      send(rev({ ...c, flags: 0x18, payload: new Uint8Array(300) }), T0 + 4)
      send({ ...c, flags: 0x11 }, T0 + 5) // FIN
      send(rev({ ...c, flags: 0x11 }), T0 + 6)
      send({ ...c, flags: 0x10 }, T0 + 7)
      log.noteL7(flow, { sni: 'www.example.com', host: 'www.example.com' })
      log.noteAwsAccount(flow, table.gen[flow]!, '609629065308')
      log.noteAwsAccount(flow, table.gen[flow]!, '171436882533')
      log.tick(T0 + 2000) // closed and quiet for a second: its final record
      send(udp6({ payload: new Uint8Array(10) }), T0 + 2500)
      await log.close() // the UDP flow still open: 'removed'
      await until(() => col.got.length >= 1, 'the collector to receive the export')
    })
    t.is(exporter.counts[IPFIX_COUNTS.exported], 2)
    t.is(exporter.counts[IPFIX_COUNTS.dropped], 0)
    t.true(messages.length >= 1)
    t.is(messages[0]!['cflow.version'], '10')
    t.is(messages[0]!['cflow.sequence'], '0')
    const flows = flowsOf(messages)
    t.is(flows.length, 2, JSON.stringify(messages).slice(0, 2000))
    const tcp = flows.find((f) => f['cflow.protocol'] === '6')!
    t.like(tcp, {
      template: TEMPLATE_V4,
      'cflow.srcaddr': '10.0.0.1',
      'cflow.dstaddr': '203.0.113.9',
      'cflow.srcport': '40000',
      'cflow.dstport': '80',
      'cflow.packets': ['5', '3'], // forward (initiator → responder), then RFC 5103 reverse
      // inner IP bytes: SYN, ACK, 100 bytes of data, FIN, ACK (40+40+140+40+40); SYN-ACK, 300 bytes, FIN
      'cflow.octets': ['300', '420'],
      'cflow.tcpflags': '0x0013', // FIN, SYN, ACK (the SYN-ACK)
      'cflow.flow_end_reason': '3', // end of flow detected
      'cflow.biflow_direction': '1',
    })
    t.is(tcp['cflow.timedelta_tree']['cflow.abstimestart'], 'Nov 14, 2023 22:13:20.000000000 UTC')
    t.is(tcp['cflow.timedelta_tree']['cflow.abstimeend'], 'Nov 14, 2023 22:13:20.007000000 UTC')
    t.is(tcp['Forwarding Status']['cflow.forwarding_status'], '1') // forwarded
    t.is(tcp['cflow.http_request_host'], 'www.example.com')
    t.deepEqual(enterpriseStrings(tcp), [
      EP,
      'web',
      'http',
      'Enforce',
      'Allow',
      'www.example.com',
      '\u0002',
      'closed',
      '609629065308', // awsAccountId (13)
      '609629065308,171436882533', // awsAccountIds (14)
    ])

    const udp = flows.find((f) => f['cflow.protocol'] === '17')!
    t.like(udp, {
      'cflow.srcaddrv6': 'fd00::1',
      'cflow.dstaddrv6': '2001:db8::9',
      'cflow.srcport': '40000',
      'cflow.dstport': '3000',
      'cflow.packets': ['1', '0'],
      'cflow.octets': ['58', '0'],
      'cflow.flow_end_reason': '4', // forced end: the appliance shut down
    })
    t.deepEqual(
      enterpriseStrings(udp),
      [EP, 'Allow', '\u0002', 'removed'],
      'fleet default: no policy or rule',
    )
  },
)

tsharkTest(
  'several messages: sequence numbers count the records before each; templates again after the refresh interval',
  async (t) => {
    const col = await collector()
    t.teardown(() => col.sock.close())
    let now = T0
    const exporter = new IpfixExporter({
      target: { host: '127.0.0.1', port: col.port },
      maxMessageBytes: 400, // about three records a message
      templateRefreshMs: 60_000,
      now: () => now,
    })
    const { log, send } = flowSetup(exporter)
    const messages = await captureIpfix(col.port, async () => {
      for (let n = 0; n < 10; n++) send(tcp4({ sport: 1000 + n, dport: 80, flags: 0x02 }), T0)
      log.tick(T0 + 400_000) // idle past the TCP timeout: ten 'expired' records
      await until(() => exporter.counts[IPFIX_COUNTS.exported] === 10, 'ten records exported')
      now = T0 + 61_000 // past the template refresh
      send(tcp4({ sport: 2000, dport: 80, flags: 0x02 }), T0 + 500_000)
      await log.close()
      await until(() => exporter.counts[IPFIX_COUNTS.exported] === 11, 'the last record')
      await until(() => col.got.length === exporter.counts[IPFIX_COUNTS.messages], 'every message received')
    })
    t.true(messages.length >= 5, `${messages.length} messages`)
    let seq = 0
    const seqAt: number[] = []
    for (const m of messages) {
      t.is(Number(m['cflow.sequence']), seq, 'records sent before this message')
      seqAt.push(seq)
      seq += flowsOf([m]).length
    }
    t.is(seq, 11)
    const withTemplates = messages.map((m) => Object.keys(m).some((k) => /\[id=2\]/.test(k)))
    t.true(withTemplates[0], 'the first message carries the templates')
    t.false(withTemplates[1]!, 'not every message')
    // the refresh: templates again in front of the eleventh record (alone in their message when both
    // would not fit the 400-byte bound)
    const again = withTemplates.lastIndexOf(true)
    t.true(again > 0, `templates again once the refresh interval passed: ${withTemplates}`)
    t.is(seqAt[again], 10)
    t.deepEqual(
      flowsOf(messages).map((f) => f['cflow.flow_end_reason']),
      [...Array(10).fill('1'), '4'], // idle timeout ×10, then forced end
    )
  },
)

test('the queue is bounded: past maxQueued records are dropped and counted, never queued', async (t) => {
  // a name that cannot resolve (RFC 6761 .invalid): nothing is sent, records wait, then drop
  const errors: string[] = []
  const exporter = new IpfixExporter({
    target: { host: 'collector.invalid', port: 4739 },
    maxQueued: 3,
    retryResolveMs: 60_000,
    onError: (e) => errors.push(e.message),
  })
  const { log, send } = flowSetup(exporter)
  for (let n = 0; n < 5; n++) send(tcp4({ sport: 3000 + n, dport: 80, flags: 0x02 }), T0)
  await log.close()
  t.is(exporter.counts[IPFIX_COUNTS.exported], 0)
  t.is(exporter.counts[IPFIX_COUNTS.dropped], 5, '2 past the bound, 3 never sent')
  await until(() => errors.length > 0, 'the resolution error to be told')
  t.regex(errors[0]!, /collector\.invalid/)
})

test('a collector that is down: send errors are counted, the exporter keeps going', async (t) => {
  // a port nothing listens on: the kernel answers port unreachable, which a connected socket reports
  const probe = createSocket('udp4')
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r))
  const port = probe.address().port
  await new Promise<void>((r) => probe.close(() => r()))
  const exporter = new IpfixExporter({ target: { host: '127.0.0.1', port } })
  const { log, send } = flowSetup(exporter)
  for (let n = 0; n < 20; n++) {
    send(tcp4({ sport: 4000 + n, dport: 80, flags: 0x02 }), T0 + n)
    log.tick(T0 + 400_000 + n * 1000)
    await new Promise((r) => setTimeout(r, 10))
  }
  await log.close()
  const c = exporter.counts
  t.is(c[IPFIX_COUNTS.exported]! + c[IPFIX_COUNTS.dropped]!, 20, 'every record accounted for')
  t.true(c[IPFIX_COUNTS.sendErrors]! > 0, 'the unreachable collector was noticed')
})

test('--ipfix targets: HOST:PORT, [IPv6]:PORT, a bare host takes 4739; nonsense is a clear error', (t) => {
  t.deepEqual(parseIpfixTarget('10.0.0.5:2055'), { host: '10.0.0.5', port: 2055 })
  t.deepEqual(parseIpfixTarget('collector.example'), { host: 'collector.example', port: 4739 })
  t.deepEqual(parseIpfixTarget('[fd00::5]:4739'), { host: 'fd00::5', port: 4739 })
  t.deepEqual(parseIpfixTarget('fd00::5'), { host: 'fd00::5', port: 4739 })
  for (const bad of ['', ':4739', 'host:0', 'host:65536', 'host:x', '[nope]:1', 'a b:1'])
    t.throws(() => parseIpfixTarget(bad), { message: /--ipfix/ }, bad)
})

test('encoder: strings are cut at 255 bytes on a character boundary', (t) => {
  const enc = new IpfixEncoder()
  const long = 'é'.repeat(200) // 400 bytes of UTF-8
  const [m] = enc.encode(
    [
      {
        record: {
          srcport: 1,
          dstport: 2,
          protocol: 6,
          host: long,
          'endpoint-id': EP,
          policy: null,
          rule: null,
          mode: null,
          verdict: 'Allow',
          'audit-policy': null,
          'audit-rule': null,
          'audit-action': null,
          sni: null,
          'tls-version': null,
          intercepted: false,
          'record-reason': 'closed',
          action: 'ACCEPT',
        } as never,
        input: {
          key: {
            endpointId: new Uint8Array(8),
            family: 4,
            protocol: 6,
            src: Uint8Array.of(10, 0, 0, 1),
            dst: Uint8Array.of(10, 0, 0, 2),
            srcPort: 1,
            dstPort: 2,
          },
          startMs: T0,
          endMs: T0,
          packets: [1, 0],
          bytes: [40, 0],
          tcpFlags: 2,
          decision: undefined,
          reason: 'closed',
        },
      },
    ],
    T0,
    false,
  )
  const b = m!.bytes
  // header 16, set header 4, addresses 8, ports 4, protocol 1, counters 6×8, flags 2, 3 one-byte fields
  const hostAt = 16 + 4 + 8 + 4 + 1 + 48 + 2 + 3
  t.is(b[hostAt], 254, '127 two-byte characters')
  t.is(b.subarray(hostAt + 1, hostAt + 1 + 254).toString('utf8'), 'é'.repeat(127))
})

test('flowgate appliance --ipfix: parsed into the options; alone it needs no --flow-log', async (t) => {
  const { parseApplianceArgs } = await import('../../appliance/src/options.ts')
  const o = parseApplianceArgs([
    '--policies',
    'p.yaml',
    '--ipfix',
    '[::1]:2055',
    '--flow-log-interval-seconds',
    '30',
  ])
  t.deepEqual(o.ipfix, { host: '::1', port: 2055 })
  t.is(o.flowLog, undefined)
  t.is(o.flowLogIntervalSeconds, 30)
  t.throws(() => parseApplianceArgs(['--policies', 'p.yaml', '--ipfix', 'host:99999']), {
    message: /--ipfix: "host:99999" is not HOST:PORT/,
  })
})
