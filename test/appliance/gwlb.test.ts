// The real appliance (`flowgate appliance`, the process users run) behind the GWLB stand-in, with real
// peers on both sides: curl, openssl, socat and ping in the client namespace; Node HTTP, openssl s_server
// and socat in the server namespace. The stand-in checks the GWLB contract on every returned packet.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { deterministicBytes, sha256 } from '../support/netns/http-server.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])
const example = (name: string) =>
  readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), 'utf8')

const E2E_POLICIES = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: e2e-deny-8081
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["8081"] }
  defaultAction: Deny
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: e2e-sni
spec:
  priority: 20
  match: { protocols: [TCP], ports: ["8443"] }
  rules:
    - name: allowed
      when: { sni: ["allowed.example"] }
      action: Allow
  defaultAction: Deny
---
${example('udp-censor')}---
${example('icmp-every-fifth')}`

netTest(
  'HTTP passes through byte-exact; a denied port is reset at once; the stand-in sees no violation',
  async (t) => {
    const report = await withAppliance(
      t,
      { policies: E2E_POLICIES },
      async ({ appliance, client, metric }) => {
        const health = await fetch(`${appliance.url}/healthz`)
        t.is(health.status, 200, await health.text())
        const hello = await client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:8080/`])
        t.is(hello.code, 0, hello.stderr.toString())
        t.is(hello.stdout.toString(), 'hello from the server\n')
        const size = 12_000_000
        const big = await client(
          'curl',
          ['-sS', '--max-time', '60', `http://${LAB.server4}:8080/bytes/${size}/9`],
          70_000,
        )
        t.is(big.code, 0, big.stderr.toString())
        t.is(sha256(big.stdout), sha256(deterministicBytes(size, 9)))

        const start = Date.now()
        const denied = await client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:8081/`])
        const ms = Date.now() - start
        t.not(denied.code, 0)
        // A RST answering a SYN is what curl reports as "Couldn't connect" (ECONNREFUSED).
        t.regex(denied.stderr.toString(), /Couldn't connect|reset|refused/i, 'curl saw a RST')
        t.true(ms < 3000, `curl failed in ${ms} ms, not by timeout`)

        const v6 = await client(
          'curl',
          ['-sS', '--max-time', '30', `http://[${LAB.server6}]:8080/bytes/2000000/4`],
          40_000,
        )
        t.is(v6.code, 0, v6.stderr.toString())
        t.is(sha256(v6.stdout), sha256(deterministicBytes(2_000_000, 4)))

        t.is((await metric('flowgate_drops_total{reason="policy_deny"}')).length, 1, 'the deny was counted')
      },
    )
    t.is(report.violations, 0, JSON.stringify(report.samples))
  },
)

netTest('SNI allow and deny with real TLS clients, without terminating TLS', async (t) => {
  const report = await withAppliance(t, { policies: E2E_POLICIES }, async ({ client, metric, dir }) => {
    // The client namespace can read the certificate: namespaces share the file system.
    const curlTls = (name: string) =>
      client('curl', [
        '-sS',
        '--max-time',
        '10',
        '--cacert',
        join(dir, 'server.crt'),
        '--resolve',
        `${name}:8443:${LAB.server4}`,
        `https://${name}:8443/`,
      ])
    const ok = await curlTls('allowed.example')
    t.is(ok.code, 0, ok.stderr.toString())
    t.regex(ok.stdout.toString(), /s_server/)
    const start = Date.now()
    const no = await curlTls('denied.example')
    t.not(no.code, 0)
    t.regex(no.stderr.toString(), /reset|SSL_ERROR_SYSCALL|connection/i)
    t.true(Date.now() - start < 3000, 'refused at once')
    const s = await client('sh', [
      '-c',
      `echo Q | openssl s_client -connect ${LAB.server4}:8443 -servername allowed.example -CAfile ${join(dir, 'server.crt')} -verify_return_error`,
    ])
    t.is(s.code, 0, s.stderr.toString())
    t.regex(s.stdout.toString(), /Verify return code: 0/)
    t.is((await metric('flowgate_peeks_total{result="tls"}')).length, 1)
  })
  t.is(report.violations, 0, JSON.stringify(report.samples))
})

netTest('the Form3 examples: UDP censor drops and rewrites, every 5th ICMP packet is dropped', async (t) => {
  const report = await withAppliance(t, { policies: E2E_POLICIES }, async ({ client }) => {
    const udp = (text: string) =>
      client('sh', ['-c', `printf '%s' '${text}' | socat -t1 - UDP4:${LAB.server4}:3000`], 10_000)
    const plain = await udp('hello there')
    t.is(plain.stdout.toString(), 'hello there')
    const dropped = await udp('please drop me now')
    t.is(dropped.stdout.toString(), '', 'the datagram never reached the echo server')
    const rewritten = await udp('TypeScript is weakly typed')
    t.is(rewritten.stdout.toString(), 'TypeScript is strongly typed')
    // One ICMP flow, both directions counted: requests 3, 6, 9, … of 20 are lost (packets 5, 10, 15, …).
    const ping = await client('ping', ['-c', '20', '-i', '0.05', '-W', '1', LAB.server4], 20_000)
    t.regex(ping.stdout.toString(), /20 packets transmitted, 14 received, 30% packet loss/)
  })
  t.is(report.violations, 0, JSON.stringify(report.samples))
})

netTest('an invalid policy reload keeps the last good policy; SIGTERM drains, then exits 0', async (t) => {
  await withAppliance(
    t,
    { policies: E2E_POLICIES, applianceArgs: ['--drain-seconds', '3'] },
    async ({ appliance: a, client, metric, dir }) => {
      const policies = join(dir, 'policies.yaml')
      const before = await metric('flowgate_policy_info')
      writeFileSync(
        policies,
        `${E2E_POLICIES}---\napiVersion: flowgate.io/v1alpha1\nkind: FlowPolicy\nmetadata: {name: broken}\nspec: {mode: sometimes}\n`,
      )
      a.child.kill('SIGHUP')
      const deadline = Date.now() + 5000
      while (!(await metric('flowgate_policy_reloads_total{result="rejected"}')).length) {
        if (Date.now() > deadline) throw new Error('reload was not rejected')
        await new Promise((r) => setTimeout(r, 50))
      }
      t.deepEqual(await metric('flowgate_policy_info'), before, 'the policy in force did not change')
      t.regex(a.output(), /spec\.mode: \\"sometimes\\" is not one of Enforce, Audit/)
      const denied = await client('curl', ['-sS', '--max-time', '5', `http://${LAB.server4}:8081/`])
      t.not(denied.code, 0, 'the old policy still denies')

      // A download in flight keeps going through the drain; health fails at once.
      const size = 8_000_000
      const download = client(
        'curl',
        ['-sS', '--limit-rate', '4M', '--max-time', '30', `http://${LAB.server4}:8080/bytes/${size}/2`],
        40_000,
      )
      await new Promise((r) => setTimeout(r, 300))
      const exited = new Promise<number | null>((r) => a.child.once('exit', (code) => r(code)))
      a.child.kill('SIGTERM')
      await new Promise((r) => setTimeout(r, 200))
      const health = await fetch(`${a.url}/healthz`)
      t.is(health.status, 503)
      t.deepEqual(((await health.json()) as { reasons: string[] }).reasons, ['draining'])
      const live = await fetch(`${a.url}/livez`)
      t.is(live.status, 200, 'liveness holds while draining')
      const r = await download
      t.is(r.code, 0, r.stderr.toString())
      t.is(sha256(r.stdout), sha256(deterministicBytes(size, 2)))
      t.is(await exited, 0)
    },
  )
})
