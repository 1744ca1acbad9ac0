// Issue 5, items 2 and 5: TLS interception through the GWLB stand-in with real peers. curl and
// `openssl s_client` in the client namespace trust only our root (--cacert); Node TLS origins in the server
// namespace present certificates from a test "public" CA that the appliance trusts through --upstream-ca
// (plus an untrusted, an expired and a wrong-name one). The appliance runs with a local CA key read from a
// pipe, so the test's root key never lands on disk either.
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { StandInCa } from '../../standin/src/origin-pki.ts'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { deterministicBytes, sha256 } from '../support/netns/http-server.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { interceptionArgs, setUpInterception } from './interception.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])

const POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: tls
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["443", "9444-9447"] }
  rules:
    - name: denied
      when: { sni: ["denied.example.test"] }
      action: Deny
    - name: passthrough
      when: { sni: ["pass.example.test"] }
      action: Allow
    - name: no-admin
      when: { sni: ["*.example.test"], paths: ["/admin/*"] }
      action: Deny
    - name: broken
      when: { sni: ["broken.example.test"] }
      action: Inspect
      http:
        onRequest: |
          function onRequest(event) { throw new Error('broken on purpose') }
    - name: inspect
      when: { sni: ["*.example.test"] }
      action: Inspect
      http:
        onRequest: |
          function onRequest(event) {
            var request = event.request;
            if (request.uri !== '/watch') return request;
            var v = request.querystring.v;
            if (v && v.value === 'allowed') return request;
            return { statusCode: 302, statusDescription: 'Found',
                     headers: { location: { value: '/watch?v=allowed' } } };
          }
        onResponse: |
          function onResponse(event) {
            var response = event.response;
            response.headers['x-flowgate'] = { value: 'inspected' };
            if (event.request.uri === '/bytes/64/1' && response.body) {
              response.body = { encoding: 'text', data: 'rewritten by flowgate' };
            }
            return response;
          }
  defaultAction: Allow
`

const NAMES = [
  'www.example.test',
  'h1.example.test',
  'pass.example.test',
  'denied.example.test',
  'broken.example.test',
]

/** PEM certificates in s_client -showcerts output, leaf first. */
function pemsOf(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}

netTest(
  'Inspect: TLS intercepted with a minted chain, upstream verified, ALPN carried, failures refused',
  async (t) => {
    t.timeout(180_000)
    let rootPem = ''
    const report = await withAppliance(
      t,
      {
        policies: POLICY,
        httpPorts: [8080],
        before: async (lab, dir) => {
          const now = Date.now()
          const setup = await setUpInterception(lab, dir, {
            names: NAMES,
            // The origins' certificates: good ones from the public CA the appliance trusts, and three that must
            // fail its verification.
            origins: async (pub) => [
              { port: 443, mode: 'h2' },
              { port: 9447, mode: 'h1' },
              {
                port: 9444,
                mode: 'h2',
                cert: await (await StandInCa.create('CN=Rogue CA')).issue(['untrusted.example.test']),
              },
              {
                port: 9445,
                mode: 'h2',
                cert: await pub.issue(['expired.example.test'], {
                  notBefore: new Date(now - 10 * 86_400_000),
                  notAfter: new Date(now - 86_400_000),
                }),
              },
              { port: 9446, mode: 'h2', cert: await pub.issue(['someone-else.example.test']) },
            ],
          })
          rootPem = setup.rootPem
        },
        applianceArgs: interceptionArgs,
      },
      async ({ client, dir, metric }) => {
        const server = LAB.server4
        const curl = (name: string, port: number, path: string, extra: string[] = []) =>
          client('curl', [
            '-sS',
            '--max-time',
            '15',
            '--resolve',
            `${name}:${port}:${server}`,
            ...extra,
            `https://${name}:${port}${path}`,
          ])
        const root = join(dir, 'root.pem')

        // HTTP/2 end to end: curl offers h2, the origin accepts it, the client gets h2 from us.
        const h2 = await curl('www.example.test', 443, '/', ['--cacert', root, '-w', '%{http_version}'])
        t.is(h2.code, 0, h2.stderr.toString())
        t.is(h2.stdout.toString(), 'hello from the origin over HTTP/2.0 to www.example.test\n2')

        // HTTP/1.1-only origin: ALPN settles on http/1.1 on both sides.
        const h1 = await curl('h1.example.test', 9447, '/', ['--cacert', root, '-w', '%{http_version}'])
        t.is(h1.code, 0, h1.stderr.toString())
        t.is(h1.stdout.toString(), 'hello from the origin over HTTP/1.1 to h1.example.test\n1.1')

        // The chain the client sees: a leaf for the SNI ← our per-start intermediate ← our root.
        const sc = await client(
          'sh',
          [
            '-c',
            `openssl s_client -connect ${server}:443 -servername www.example.test -showcerts -CAfile ${root} </dev/null`,
          ],
          20_000,
        )
        const out = sc.stdout.toString()
        t.regex(out, /Verify return code: 0 \(ok\)/)
        const [leafPem, interPem] = pemsOf(out)
        t.truthy(leafPem && interPem, out)
        const leaf = new X509Certificate(leafPem!)
        const inter = new X509Certificate(interPem!)
        const rootCert = new X509Certificate(rootPem)
        t.is(leaf.subjectAltName, 'DNS:www.example.test')
        t.true(leaf.checkIssued(inter) && leaf.verify(inter.publicKey))
        t.true(inter.checkIssued(rootCert) && inter.verify(rootCert.publicKey))
        writeFileSync(join(dir, 'leaf.pem'), leafPem!)
        writeFileSync(join(dir, 'inter.pem'), interPem!)
        const verify = execFileSync('openssl', [
          'verify',
          '-CAfile',
          root,
          '-untrusted',
          join(dir, 'inter.pem'),
          join(dir, 'leaf.pem'),
        ]).toString()
        t.regex(verify, /leaf\.pem: OK/)

        // Byte-exact through interception (HTTP/2 and HTTP/1.1).
        for (const [name, port] of [
          ['www.example.test', 443],
          ['h1.example.test', 9447],
        ] as const) {
          const big = await curl(name, port, '/bytes/3000000/7', ['--cacert', root])
          t.is(big.code, 0, big.stderr.toString())
          t.is(sha256(big.stdout), sha256(deterministicBytes(3_000_000, 7)), `${name} byte-exact`)
        }

        // The HTTP layer on intercepted flows: scripts in the CloudFront Functions event model, per-request
        // rules, domain fronting.
        const head = await curl('www.example.test', 443, '/', [
          '--cacert',
          root,
          '-D',
          '-',
          '-o',
          '/dev/null',
        ])
        t.is(head.code, 0, head.stderr.toString())
        t.regex(head.stdout.toString(), /^x-flowgate: inspected\r$/m, 'onResponse added a header (h2)')
        const rewritten = await curl('h1.example.test', 9447, '/bytes/64/1', ['--cacert', root])
        t.is(rewritten.stdout.toString(), 'rewritten by flowgate', 'onResponse rewrote the body (HTTP/1.1)')
        const watch = await curl('www.example.test', 443, '/watch?v=other', [
          '--cacert',
          root,
          '-w',
          '%{http_code} %{redirect_url}',
          '-o',
          '/dev/null',
        ])
        t.is(
          watch.stdout.toString(),
          '302 https://www.example.test:443/watch?v=allowed',
          'onRequest short-circuit',
        )
        const allowed = await curl('www.example.test', 443, '/watch?v=allowed', [
          '--cacert',
          root,
          '-w',
          ' %{http_code}',
        ])
        t.regex(allowed.stdout.toString(), / 200$/, 'the allowed video reaches the origin')
        const admin = await curl('www.example.test', 443, '/admin/users', [
          '--cacert',
          root,
          '-w',
          '%{http_code}',
          '-o',
          '/dev/null',
        ])
        t.is(admin.stdout.toString(), '403', 'a Deny rule on the path, decided per request')
        const fronted = await curl('www.example.test', 443, '/', [
          '--cacert',
          root,
          '-H',
          'Host: pass.example.test',
          '-w',
          '%{http_code}',
          '-o',
          '/dev/null',
        ])
        t.is(
          fronted.stdout.toString(),
          '421',
          'a Host that disagrees with the SNI is refused (domain fronting)',
        )
        const broken = await curl('broken.example.test', 443, '/', [
          '--cacert',
          root,
          '-w',
          '%{http_code}',
          '-o',
          '/dev/null',
        ])
        t.is(broken.stdout.toString(), '502', 'a script that throws fails closed')

        // A client that does not trust our root refuses the handshake (as a pinning client would); counted.
        const distrust = await curl('www.example.test', 443, '/')
        t.is(distrust.code, 60, `curl: certificate problem: ${distrust.stderr}`)

        // Upstream certificates that do not verify: the client's handshake fails, it never gets a response.
        for (const [name, port] of [
          ['untrusted.example.test', 9444],
          ['expired.example.test', 9445],
          ['wrong.example.test', 9446],
        ] as const) {
          const r = await curl(name, port, '/', ['--cacert', root])
          t.is(r.code, 35, `${name}: ${r.stderr}`) // CURLE_SSL_CONNECT_ERROR
          t.regex(r.stderr.toString(), /handshake failure|alert/i, name)
          t.is(r.stdout.length, 0)
        }

        // Allowed on SNI: not intercepted, the client sees the origin's own certificate.
        const pass = await curl('pass.example.test', 443, '/', [
          '--cacert',
          join(dir, 'origin-ca.pem'),
          '-w',
          '%{http_version}',
        ])
        t.is(pass.code, 0, pass.stderr.toString())
        t.is(pass.stdout.toString(), 'hello from the origin over HTTP/2.0 to pass.example.test\n2')

        // Denied on SNI: reset.
        const denied = await curl('denied.example.test', 443, '/', ['--cacert', root])
        t.not(denied.code, 0)
        t.is(denied.stdout.length, 0)

        const counts = Object.fromEntries(
          (await metric('flowgate_l7_flows_total')).map((l) => {
            const m = /result="([^"]+)"\} (\d+)/.exec(l)
            return [m?.[1], Number(m?.[2])]
          }),
        )
        t.log(counts)
        t.is(counts.intercepted, 12, 'two curls, s_client, two downloads, seven HTTP-layer checks')
        const http = await metric('flowgate_http_')
        t.log(http.join('\n'))
        const has = (re: RegExp) =>
          t.true(
            http.some((l) => re.test(l)),
            String(re),
          )
        has(/^flowgate_http_local_responses_total\{reason="misdirected"\} 1$/)
        has(/^flowgate_http_local_responses_total\{reason="deny"\} 1$/)
        has(/^flowgate_http_local_responses_total\{reason="script_response"\} 1$/)
        has(/^flowgate_http_script_failures_total\{reason="threw"\} 1$/)
        // Rule usage: flows decided on their first bytes count once, intercepted ones once per request.
        const hits = await metric('flowgate_rule_hits_total{policy="tls"')
        t.log(hits.join('\n'))
        const hit = (rule: string, n: number) =>
          t.true(hits.includes(`flowgate_rule_hits_total{policy="tls",rule="${rule}"} ${n}`), `${rule} ${n}`)
        hit('denied', 1)
        hit('passthrough', 1)
        hit('no-admin', 1)
        hit('broken', 1)
        t.true(counts.client_rejected_cert! >= 1, 'client_rejected_cert')
        t.is(counts.upstream_cert_rejected, 3)
        t.true(counts.relayed! >= 1, 'relayed (allowed on SNI)')
        t.true(counts.denied! >= 1, 'denied')
      },
    )
    t.is(report.violations, 0, JSON.stringify(report.samples))
  },
)
