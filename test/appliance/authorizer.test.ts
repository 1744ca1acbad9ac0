// The authorizer webhook on the packet path: a real HTTPS authorizer (in this process, reachable from
// the appliance namespace), the real appliance, curl through the GWLB stand-in.
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { join } from 'node:path'
import { selfSignedCert } from '../support/certs.ts'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])
const AUTHZ_PORT = 8600

interface Call {
  endpoint: string
  protocol: string
  source: { address: string; port: number }
  destination: { address: string; port: number }
  policy: string
  rule: string | null
}

netTest(
  'Authorize: one webhook call per new connection, cached; allow, deny and timeout (onError Deny)',
  async (t) => {
    const calls: Call[] = []
    let server: Server | undefined
    try {
      const report = await withAppliance(
        t,
        {
          httpPorts: [8080, 8081, 8082],
          policies: (lab) => `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: authz
spec:
  match: { protocols: [TCP], ports: ["8080-8082"] }
  rules:
    - name: ask
      action: Authorize
  authorizer:
    url: https://${lab.gwlbAddr}:${AUTHZ_PORT}/decide
    timeoutMs: 200
    onError: Deny
    cacheSeconds: 30
`,
          before: async (lab, dir) => {
            selfSignedCert(dir, 'authz', '/CN=authorizer', `IP:${lab.gwlbAddr}`)
            const tlsOptions = {
              cert: readFileSync(join(dir, 'authz.crt')),
              key: readFileSync(join(dir, 'authz.key')),
            }
            server = createServer(tlsOptions, (req, res) => {
              let body = ''
              req.on('data', (c) => {
                body += c
              })
              req.on('end', () => {
                const facts = JSON.parse(body) as Call
                calls.push(facts)
                const answer = (v: unknown) =>
                  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v))
                const port = facts.destination.port
                if (port === 8080) answer({ allow: true, ttlSeconds: 60 })
                else if (port === 8081) answer({ allow: false, reason: 'not this one' })
                else setTimeout(() => answer({ allow: true }), 1000) // slower than timeoutMs
              })
            })
            await new Promise<void>((r) => server!.listen(AUTHZ_PORT, lab.gwlbAddr, r))
          },
          // The authorizer's certificate is trusted explicitly; nothing is ever accepted unverified.
          applianceArgs: (dir) => ['--upstream-ca', join(dir, 'authz.crt')],
        },
        async ({ client, metric }) => {
          const curl = (port: number) =>
            client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:${port}/`])
          const first = await curl(8080)
          t.is(first.code, 0, first.stderr.toString())
          t.is(first.stdout.toString(), 'hello from the server\n')
          const second = await curl(8080)
          t.is(second.code, 0, 'the cached answer allows the next connection too')
          t.is(
            calls.filter((c) => c.destination.port === 8080).length,
            1,
            'the second connection was served from the cache',
          )
          const c = calls[0]!
          t.like(c, { protocol: 'TCP', policy: 'authz', rule: 'ask' })
          t.deepEqual(c.destination, { address: LAB.server4, port: 8080 })
          t.is(c.source.address, LAB.client4)
          t.true(c.source.port > 1024)
          t.regex(c.endpoint, /^vpce-0[0-9a-f]{16}$/)

          let start = Date.now()
          const denied = await curl(8081)
          t.not(denied.code, 0)
          t.true(Date.now() - start < 3000, 'denied at once, by a RST')
          start = Date.now()
          const slow = await curl(8082)
          t.not(slow.code, 0, 'onError Deny applied when the authorizer is too slow')
          t.true(Date.now() - start < 3000)
          t.truthy((await metric('flowgate_authorizer_decisions_total{result="timeout"}'))[0])
          t.truthy((await metric('flowgate_authorizer_decisions_total{result="cached"}'))[0])
          t.truthy((await metric('flowgate_authorizer_decisions_total{result="deny"}'))[0])
        },
      )
      t.is(report.violations, 0, JSON.stringify(report.samples))
    } finally {
      server?.close()
    }
  },
)
