// Issue 4, test 4c: real Linux TCP terminated by the appliance's user-space stack (an Allow rule with
// tcpProxy) through the GWLB stand-in, which injects loss and reordering and checks the GWLB contract.
// Peers are real: curl in the client namespace; Node HTTP servers in the server namespace (the lab's
// /bytes server and an upload/whoami/barrier server written here).
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { deterministicBytes, sha256 } from '../support/netns/http-server.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])

const PROXY_POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: relay
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["8080", "8082", "8083", "8090"] }
  rules:
    - name: relayed
      action: Allow
      tcpProxy: true
  defaultAction: Deny
`

// POST /upload → "<bytes> <sha256>"; GET /whoami → "<address> <port>" as the server's socket sees the peer;
// GET /barrier/N → answers once N such requests are open at the same time (503 after 20 s): proof of N
// concurrent connections.
const SERVER = `import { createServer } from 'node:http'
import { createHash } from 'node:crypto'
const waiting = []
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/upload') {
    const h = createHash('sha256')
    let n = 0
    req.on('data', (d) => { n += d.length; h.update(d) })
    req.on('end', () => res.end(n + ' ' + h.digest('hex')))
    return
  }
  if (req.url === '/whoami') {
    res.end(req.socket.remoteAddress + ' ' + req.socket.remotePort)
    return
  }
  const m = /^\\/barrier\\/(\\d+)$/.exec(req.url ?? '')
  if (m) {
    const n = Number(m[1])
    const timer = setTimeout(() => { res.statusCode = 503; res.end('timeout') }, 20000)
    waiting.push({ res, timer })
    if (waiting.length >= n) {
      for (const w of waiting.splice(0)) { clearTimeout(w.timer); w.res.end('ok') }
    }
    return
  }
  res.statusCode = 404
  res.end()
})
server.listen(8082, '::', () => console.log('listening 8082'))
process.once('SIGTERM', () => process.exit(0))
`

const DOWNLOAD = 50_000_000
const UPLOAD = 50_000_000
const CONCURRENT = 200

netTest(
  'tcpProxy: curl through the appliance TCP stack with 2% loss and reordering: byte-exact, concurrent, real client address, refused upstream',
  async (t) => {
    // ~60–90 s on an idle machine; every step below is bounded by its own curl --max-time.
    t.timeout(300_000)
    const report = await withAppliance(
      t,
      {
        policies: PROXY_POLICY,
        httpPorts: [8080],
        seed: 4,
        loss: 0.02,
        reorder: 0.02,
        before: async (lab, dir) => {
          const script = join(dir, 'upload-server.mjs')
          writeFileSync(script, SERVER)
          await lab.ns.spawn(lab.server, process.execPath, [script], /listening/)
          // Half-close: answers the hash of everything once the client has shut down its sending side.
          await lab.ns.spawn(lab.server, 'socat', ['TCP4-LISTEN:8083,fork,reuseaddr', 'EXEC:sha256sum'])
        },
      },
      async ({ client, dir, metric }) => {
        const base = `http://${LAB.server4}`

        // Refused upstream: the server's RST reaches curl at once, as without the appliance.
        let start = Date.now()
        const refused = await client('curl', ['-sS', '--max-time', '10', `${base}:8090/`])
        const refusedMs = Date.now() - start
        t.not(refused.code, 0)
        t.regex(refused.stderr.toString(), /Couldn't connect|refused/i, 'curl saw connection refused')
        t.true(refusedMs < 3000, `refused in ${refusedMs} ms, not by timeout`)

        // The server sees the client's own address and port.
        const who = await client('curl', [
          '-sS',
          '--max-time',
          '10',
          '-w',
          ' %{local_ip} %{local_port}',
          `${base}:8082/whoami`,
        ])
        t.is(who.code, 0, who.stderr.toString())
        const [addr, port, localIp, localPort] = who.stdout.toString().trim().split(' ')
        t.is(addr?.replace(/^::ffff:/, ''), LAB.client4)
        t.is(localIp, LAB.client4)
        t.is(port, localPort, 'the same client port on both sides')

        // Half-close: the client shuts down its side (FIN) and still reads the server's answer to it.
        const half = join(dir, 'half.bin')
        const halfData = deterministicBytes(300_000, 5)
        writeFileSync(half, halfData)
        const hc = await client(
          'sh',
          ['-c', `socat -t 20 -T 30 - TCP4:${LAB.server4}:8083 < ${half}`],
          40_000,
        )
        t.is(hc.code, 0, hc.stderr.toString())
        t.is(hc.stdout.toString().split(' ')[0], createHash('sha256').update(halfData).digest('hex'))

        // IPv6 through the relay: byte-exact, and the server sees the client's IPv6 address.
        const v6 = await client(
          'curl',
          ['-sS', '--max-time', '30', `http://[${LAB.server6}]:8080/bytes/3000000/3`],
          40_000,
        )
        t.is(v6.code, 0, v6.stderr.toString())
        t.is(sha256(v6.stdout), sha256(deterministicBytes(3_000_000, 3)))
        const who6 = await client('curl', ['-sS', '--max-time', '10', `http://[${LAB.server6}]:8082/whoami`])
        t.is(who6.code, 0, who6.stderr.toString())
        t.is(who6.stdout.toString().split(' ')[0], LAB.client6)

        // Download, byte-exact.
        start = Date.now()
        const big = await client(
          'curl',
          ['-sS', '--max-time', '90', `${base}:8080/bytes/${DOWNLOAD}/7`],
          100_000,
        )
        const downMs = Date.now() - start
        t.is(big.code, 0, big.stderr.toString())
        t.is(big.stdout.length, DOWNLOAD)
        t.is(sha256(big.stdout), sha256(deterministicBytes(DOWNLOAD, 7)))
        t.log(
          `download ${DOWNLOAD} bytes in ${downMs} ms (${(DOWNLOAD / 1e6 / (downMs / 1000)).toFixed(1)} MB/s)`,
        )

        // Upload, byte-exact.
        const file = join(dir, 'upload.bin')
        const data = deterministicBytes(UPLOAD, 11)
        writeFileSync(file, data)
        start = Date.now()
        const up = await client(
          'curl',
          ['-sS', '--max-time', '90', '--data-binary', `@${file}`, `${base}:8082/upload`],
          100_000,
        )
        const upMs = Date.now() - start
        t.is(up.code, 0, up.stderr.toString())
        t.is(up.stdout.toString(), `${UPLOAD} ${createHash('sha256').update(data).digest('hex')}`)
        t.log(`upload ${UPLOAD} bytes in ${upMs} ms`)

        // CONCURRENT connections open at once: the barrier answers only when all are there.
        const urls: string[] = []
        for (let k = 0; k < CONCURRENT; k++) urls.push(`${base}:8082/barrier/${CONCURRENT}`)
        start = Date.now()
        const many = await client(
          'curl',
          [
            '-sS',
            '--parallel',
            '--parallel-immediate',
            '--parallel-max',
            String(CONCURRENT),
            '--max-time',
            '40',
            '-w',
            '%{http_code}\\n',
            '-o',
            '/dev/null',
            ...urls.flatMap((u, k) => (k === 0 ? [u] : ['-o', '/dev/null', u])),
          ],
          60_000,
        )
        const manyMs = Date.now() - start
        t.is(many.code, 0, many.stderr.toString())
        const codes = many.stdout.toString().trim().split('\n')
        t.is(codes.length, CONCURRENT)
        t.true(
          codes.every((c) => c === '200'),
          codes.join(','),
        )
        t.log(`${CONCURRENT} concurrent connections in ${manyMs} ms`)

        // The stack's and the relay's metrics are scraped: every relayed flow counted, the refusal too,
        // and the injected loss made the stack retransmit.
        const value = async (name: string) => {
          const lines = await metric(name)
          t.is(lines.length, 1, `${name}: ${lines.join('; ')}`)
          return Number(lines[0]?.split(' ').at(-1))
        }
        t.is(await value('flowgate_tcp_proxy_flows_total{result="refused"}'), 1)
        t.true((await value('flowgate_tcp_proxy_flows_total{result="relayed"}')) >= CONCURRENT + 6)
        t.true((await value('flowgate_tcp_retransmitted_segments_total')) > 0)
        t.true((await value('flowgate_tcp_connections_opened_total')) >= 2 * (CONCURRENT + 6))
      },
    )
    t.is(report.violations, 0, JSON.stringify(report.samples))
  },
)

const SILENT_POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: relayed
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["8090", "8093"] }
  rules:
    - name: relayed
      action: Allow
      tcpProxy: true
  defaultAction: Deny
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: direct
spec:
  priority: 20
  match: { protocols: [TCP], ports: ["8091", "8094"] }
  rules:
    - name: direct
      action: Allow
  defaultAction: Deny
`

netTest(
  'tcpProxy: an unreachable upstream looks to the client as it does without the appliance (silence, then curl gives up), and the flow is cleaned up; a refused one too (RST at once)',
  async (t) => {
    // The upstream attempt stops a few seconds after the client's SYNs stop (tcp-proxy.ts CLIENT_GAVE_UP_MS),
    // not after the stack's own ~127 s of retries.
    t.timeout(120_000)
    const report = await withAppliance(
      t,
      { policies: SILENT_POLICY, httpPorts: [8080] },
      async ({ client, metric }) => {
        // fd00:2::99 is routed to the server namespace, which is not that address and does not forward:
        // nothing answers, with or without the appliance in the middle.
        const silent = `http://[fd00:2::99]`
        const attempt = async (url: string) => {
          const start = Date.now()
          const r = await client('curl', ['-sS', '--connect-timeout', '3', '--max-time', '10', url], 20_000)
          return { code: r.code, ms: Date.now() - start, stderr: r.stderr.toString() }
        }
        const [relayed, direct] = await Promise.all([attempt(`${silent}:8090/`), attempt(`${silent}:8091/`)])
        t.is(direct.code, 28, `plain Allow: curl's connect timeout (${direct.stderr})`)
        t.is(relayed.code, direct.code, `tcpProxy: the same exit code (${relayed.stderr})`)
        for (const r of [relayed, direct])
          t.true(r.ms >= 2900 && r.ms < 6000, `timed out at ~3 s, not refused (${r.ms} ms)`)

        // Refused: the server's RST reaches curl at once either way.
        const refused = `http://[${LAB.server6}]`
        const [relayedRst, directRst] = await Promise.all([
          attempt(`${refused}:8093/`),
          attempt(`${refused}:8094/`),
        ])
        t.is(directRst.code, 7, `plain Allow: connection refused (${directRst.stderr})`)
        t.is(relayedRst.code, directRst.code, `tcpProxy: the same (${relayedRst.stderr})`)
        for (const r of [relayedRst, directRst]) t.true(r.ms < 2000, `refused at once (${r.ms} ms)`)

        // The unanswered upstream gives up once the client has, and its flow goes: counted as
        // upstream_failed, no connection left in SYN-SENT. Polled, bounded: curl's last SYN left by ~3 s.
        const value = async (name: string) => Number((await metric(name))[0]?.split(' ').at(-1) ?? 0)
        const gaveUp = Date.now()
        const deadline = gaveUp + 30_000
        let failed = 0
        let synSent = -1
        while (Date.now() < deadline) {
          failed = await value('flowgate_tcp_proxy_flows_total{result="upstream_failed"}')
          synSent = await value('flowgate_tcp_connections{state="SYN-SENT"}')
          if (failed >= 1 && synSent === 0) break
          await new Promise((r) => setTimeout(r, 500))
        }
        t.is(failed, 1, 'the silent upstream counted as failed')
        t.true(
          Date.now() - gaveUp < 15_000,
          'stopped soon after the client, not after two minutes of retries',
        )
        t.is(synSent, 0, 'no upstream connection left trying')
        t.is(await value('flowgate_tcp_proxy_flows_total{result="refused"}'), 1)
        t.is(await value('flowgate_tcp_proxy_flows_total{result="relayed"}'), 0)
      },
    )
    t.is(report.violations, 0, JSON.stringify(report.samples))
  },
)
