// Flow records from the real appliance behind the GWLB stand-in: real curl and ping through it, and the
// records read back from the --flow-log file as they appear. Measures how long after a flow ends its
// record is written (the bound: 5 s).
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FlowRecord } from '../../appliance/src/flowlog/index.ts'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])

const POLICIES = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: tls
spec:
  priority: 5
  match: { protocols: [TCP], ports: ["8443"] }
  rules:
    - name: allowed
      when: { sni: ["allowed.example"] }
      action: Allow
  defaultAction: Deny
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: web
spec:
  priority: 10
  match: { protocols: [TCP] }
  rules:
    - name: http
      when: { ports: ["8080"] }
      action: Allow
  defaultAction: Deny
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: pings
spec:
  priority: 20
  rules:
    - name: echo
      when: { protocols: [ICMP] }
      action: Allow
`

netTest(
  'flow records: a page, a denied port, a TLS flow by SNI and a ping, each within 5 s of its end; open flows at shutdown',
  async (t) => {
    await withAppliance(
      t,
      {
        policies: POLICIES,
        // 10 s, the shortest idle timeout, ends the ping's flow; TCP flows end by their close or reset.
        applianceArgs: (dir) => [
          '--flow-log',
          join(dir, 'flows.jsonl'),
          '--idle-seconds',
          '10',
          '--drain-seconds',
          '0',
        ],
      },
      async ({ client, dir, metric, appliance }) => {
        const file = join(dir, 'flows.jsonl')
        const records = (): FlowRecord[] =>
          existsSync(file)
            ? readFileSync(file, 'utf8')
                .split('\n')
                .filter((l) => l.trim())
                .map((l) => JSON.parse(l) as FlowRecord)
            : []
        /** the first record matching, polled every 50 ms until `ms` has passed; with when it was seen */
        const waitFor = async (match: (r: FlowRecord) => boolean, ms: number) => {
          const deadline = Date.now() + ms
          for (;;) {
            const r = records().find(match)
            if (r) return { r, at: Date.now() }
            if (Date.now() > deadline) return undefined
            await new Promise((res) => setTimeout(res, 50))
          }
        }

        // Each flow's record is awaited right after the flow ends, so the latency measured is its own.
        const page = await client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:8080/`])
        t.is(page.code, 0, page.stderr.toString())
        const pageEnd = Date.now() // curl has closed: FIN both ways
        const http = await waitFor((r) => r.dstport === 8080 && r.protocol === 6, 5000)
        t.truthy(http, 'the page’s record')

        const denied = await client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:8081/`])
        t.not(denied.code, 0, 'port 8081 is denied')
        const deniedEnd = Date.now()
        const rej = await waitFor((r) => r.dstport === 8081, 5000)
        t.truthy(rej, 'the denied flow’s record')

        // A TLS flow decided on its SNI: the peek's facts reach the record.
        const tls = await client('curl', [
          '-sS',
          '--max-time',
          '10',
          '--cacert',
          join(dir, 'server.crt'),
          '--resolve',
          `allowed.example:8443:${LAB.server4}`,
          'https://allowed.example:8443/',
        ])
        t.is(tls.code, 0, tls.stderr.toString())
        const tlsEnd = Date.now()
        const sni = await waitFor((r) => r.dstport === 8443, 5000)
        t.truthy(sni, 'the TLS flow’s record')

        const ping = await client('ping', ['-c', '3', '-i', '0.2', '-W', '1', LAB.server4], 10_000)
        t.is(ping.code, 0, ping.stdout.toString())
        const pingEnd = Date.now()
        // The ping's flow ends when it has been idle for the 10 s timeout.
        const icmp = await waitFor((r) => r.protocol === 1, 15_000)
        t.truthy(icmp, 'the ping’s record')
        if (!http || !rej || !icmp || !sni) return
        t.log(`sample: ${JSON.stringify(http.r)}`)
        t.log(
          `record after flow end: page ${http.at - pageEnd} ms, denied ${rej.at - deniedEnd} ms, tls ${sni.at - tlsEnd} ms, ping ${icmp.at - pingEnd - 10_000} ms after its 10 s idle timeout`,
        )

        t.like(http.r, {
          version: 5,
          srcaddr: LAB.client4,
          dstaddr: LAB.server4,
          dstport: 8080,
          protocol: 6,
          action: 'ACCEPT',
          'log-status': 'OK',
          policy: 'web',
          rule: 'http',
          mode: 'Enforce',
          verdict: 'Allow',
          intercepted: false,
          'record-reason': 'closed',
        })
        t.true(http.r.srcport > 1023, 'the client’s ephemeral port')
        t.true(http.r['orig-packets'] > 0 && http.r['reply-packets'] > 0, 'both directions counted')
        t.true(http.r['reply-bytes'] > 'hello from the server\n'.length, 'the response’s bytes')
        t.is(http.r.packets, http.r['orig-packets'] + http.r['reply-packets'])
        t.is(http.r['tcp-flags'] & 0x13, 0x13, 'SYN, SYN-ACK and FIN seen')
        t.regex(http.r['endpoint-id'], /^vpce-0[0-9a-f]{16}$/)
        t.true(http.r.start <= http.r.end && Math.abs(http.r.end * 1000 - pageEnd) < 3000)

        t.like(rej.r, {
          srcaddr: LAB.client4,
          dstaddr: LAB.server4,
          protocol: 6,
          action: 'REJECT',
          policy: 'web',
          rule: null,
          verdict: 'Deny',
          'reply-packets': 0,
        })
        t.true(rej.r.packets > 0 && rej.r.bytes > 0)
        t.is(rej.r['tcp-flags'] & 0x02, 0x02, 'the SYN')

        t.like(sni.r, {
          action: 'ACCEPT',
          policy: 'tls',
          rule: 'allowed',
          sni: 'allowed.example',
          host: 'allowed.example',
          'tls-version': null,
          intercepted: false,
        })
        t.true(sni.r['reply-bytes'] > 1000, 'the server’s certificate and page')
        t.log(`TLS sample: ${JSON.stringify(sni.r)}`)
        t.log(`denied sample: ${JSON.stringify(rej.r)}`)
        t.log(`ping sample: ${JSON.stringify(icmp.r)}`)

        t.like(icmp.r, {
          srcaddr: LAB.client4,
          dstaddr: LAB.server4,
          srcport: 0,
          dstport: 0,
          protocol: 1,
          action: 'ACCEPT',
          policy: 'pings',
          rule: 'echo',
          'orig-packets': 3,
          'reply-packets': 3,
          'record-reason': 'expired',
        })

        t.true(http.at - pageEnd < 5000 && rej.at - deniedEnd < 5000 && sni.at - tlsEnd < 5000)
        t.true(icmp.at - pingEnd < 10_000 + 5000)
        const written = await metric('flowgate_flow_records_total{result="written"}')
        t.is(written.length, 1)
        t.true(Number(written[0]!.split(' ')[1]) >= 3)

        // A flow still open at shutdown gets its record before the appliance exits.
        const udp = await client(
          'sh',
          ['-c', `printf 'still here' | socat -t1 - UDP4:${LAB.server4}:3000`],
          10_000,
        )
        t.is(udp.stdout.toString(), 'still here', 'the echo came back')
        t.falsy(
          records().find((r) => r.protocol === 17),
          'no record while the flow is open',
        )
        const exited = new Promise<number | null>((r) => appliance.child.once('exit', (code) => r(code)))
        appliance.child.kill('SIGTERM')
        t.is(await exited, 0)
        t.like(
          records().find((r) => r.protocol === 17),
          { dstport: 3000, 'orig-packets': 1, 'reply-packets': 1, 'record-reason': 'removed' },
          'written on shutdown',
        )
      },
    )
  },
)
