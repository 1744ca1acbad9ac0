// `flowgate appliance --ipfix` as a process (dgram I/O on loopback, no privileges for the packet path):
// Geneve datagrams of a flow in, SIGTERM, and the flow's record — written at shutdown — decoded by tshark
// from the appliance's IPFIX export; the rule's hit in /metrics before that.
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { missingTool } from '../peek/capture.ts'
import { canCapture, captureIpfix, enterpriseStrings, flowsOf } from '../support/tshark.ts'
import { datagram, udp4 } from '../wire/packets.ts'

const bin = new URL('../../bin/flowgate.js', import.meta.url).pathname

const POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: dns
spec:
  priority: 10
  rules:
    - name: udp-53
      when: { protocols: [UDP], ports: ["53"] }
      action: Allow
`

/** Free UDP/TCP ports on loopback, found by binding port 0 (then released for the appliance). */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  const p = s.address().port
  await new Promise<void>((r) => s.close(() => r()))
  return p
}

test('flowgate appliance --ipfix: a UDP flow through the appliance, exported and decoded by tshark', async (t) => {
  if (missingTool(t, 'tshark (and root, to capture on lo)', canCapture)) return
  t.timeout(90_000)
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-ipfix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const collector = createSocket('udp4')
  await new Promise<void>((r) => collector.bind(0, '127.0.0.1', r))
  t.teardown(() => collector.close())
  const ipfixPort = collector.address().port
  const genevePort = await freeUdpPort()
  const httpPort = await freeUdpPort() // a UDP port number free now; TCP on it is very likely free too
  const messages = await captureIpfix(ipfixPort, async () => {
    const child = spawn(
      process.execPath,
      [
        bin,
        'appliance',
        '--policies',
        join(dir, 'policy.yaml'),
        '--io',
        'dgram',
        '--bind',
        '127.0.0.1',
        '--geneve-port',
        String(genevePort),
        '--http-port',
        String(httpPort),
        '--drain-seconds',
        '0',
        '--ipfix',
        `127.0.0.1:${ipfixPort}`,
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr.on('data', (d) => {
      stderr += d
    })
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    const kill = setTimeout(() => child.kill('SIGKILL'), 60_000)
    try {
      // healthy = policy loaded and the packet loop running (bounded wait)
      let healthy = false
      for (let i = 0; i < 300 && !healthy; i++) {
        healthy = await fetch(`http://127.0.0.1:${httpPort}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
        if (!healthy) await new Promise((r) => setTimeout(r, 100))
      }
      t.true(healthy, `the appliance came up: ${stderr}`)
      // GWLB's side from another loopback address: the appliance returns packets to the sender's address
      // on the Geneve port, which from 127.0.0.1 would be the appliance itself (a loop)
      const sock = createSocket('udp4')
      await new Promise<void>((r) => sock.bind(0, '127.0.0.2', r))
      for (let n = 0; n < 3; n++) {
        const d = datagram(
          udp4({ src: '10.1.2.3', dst: '10.9.8.7', sport: 5353, dport: 53, payload: new Uint8Array(20) }),
        )
        await new Promise<void>((r, j) => sock.send(d, genevePort, '127.0.0.1', (e) => (e ? j(e) : r())))
      }
      sock.close()
      // the three packets went through the fast path: one flow, one hit of its rule (bounded poll)
      let metrics = ''
      for (let i = 0; i < 100; i++) {
        metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
        if (/^flowgate_rule_hits_total\{policy="dns",rule="udp-53"\} 1$/m.test(metrics)) break
        await new Promise((r) => setTimeout(r, 50))
      }
      t.regex(metrics, /^flowgate_rule_hits_total\{policy="dns",rule="udp-53"\} 1$/m)
      child.kill('SIGTERM') // drain 0: the flow log closes, the open flow gets its record
      t.is(await exited, 0, stderr)
    } finally {
      clearTimeout(kill)
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })
  const flows = flowsOf(messages)
  t.is(flows.length, 1, JSON.stringify(messages).slice(0, 1500))
  const f = flows[0]!
  t.like(f, {
    'cflow.srcaddr': '10.1.2.3',
    'cflow.dstaddr': '10.9.8.7',
    'cflow.srcport': '5353',
    'cflow.dstport': '53',
    'cflow.protocol': '17',
    'cflow.packets': ['3', '0'],
    'cflow.octets': ['144', '0'], // 3 × (20 IP + 8 UDP + 20 payload)
    'cflow.flow_end_reason': '4',
  })
  t.deepEqual(enterpriseStrings(f).slice(1, 5), ['dns', 'udp-53', 'Enforce', 'Allow'])
})
