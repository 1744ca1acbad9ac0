// Inspect rules' scripts through interception, on HTTP/1.1 and HTTP/2: the examples' policies compiled
// and decided by the real policy engine, run by the real script sandbox, against a real origin that
// speaks both versions.
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import type net from 'node:net'
import test from 'ava'
import { parse } from 'yaml'
import type { HttpRequestFacts, RequestDecision } from '../../appliance/src/http/index.ts'
import { ScriptEngine } from '../../appliance/src/http/script/index.ts'
import { compile } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'
import { closeServer, curl, curlTls, makePki, startInterceptor } from './harness.ts'

const pki = makePki()
test.after.always(() => pki.cleanup())
// Tests must be declared synchronously: the engine (one per file, ~75 ms to start) is awaited in each.
const engine = ScriptEngine.create()

/** The real engine over FlowPolicy documents, asked as the data plane would for an intercepted flow. */
function decideWith(docs: unknown[], sni: string) {
  const c = compile(docs, { fleetDefault: 'Allow' })
  for (const r of c.results) if (!r.ok) throw new Error(JSON.stringify(r.errors))
  const engine = new PolicyEngine(c.policies, 'Allow')
  return (f: HttpRequestFacts): RequestDecision => {
    const d = engine.decide({
      endpoint: 'vpce-01234567890abcdef',
      family: 4,
      src: Uint8Array.of(10, 1, 2, 3),
      dst: Uint8Array.of(203, 0, 113, 9),
      protocol: 6,
      dstPort: 443,
      sni,
      host: f.host,
      method: f.method,
      path: f.path,
      headers: f.headers,
    })
    const out: RequestDecision = { action: d.action }
    if (d.entry) out.policy = d.entry.policy.name
    if (d.entry?.rule) out.rule = d.entry.rule.name
    if (d.entry?.http) out.hooks = d.entry.http
    return out
  }
}

const inspect = (name: string, http: { onRequest?: string; onResponse?: string }) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec: {
    priority: 100,
    match: { protocols: ['TCP'], ports: ['443'] },
    rules: [{ name: 'all', when: { sni: ['origin.test', 'www.youtube.com'] }, action: 'Inspect', http }],
  },
})

/** One origin for both versions (ALPN h2 or http/1.1), through the compatibility API. */
async function origin(t: { teardown(fn: () => unknown): void }) {
  const seen: { path: string; headers: http2.IncomingHttpHeaders }[] = []
  const server = http2.createSecureServer({ cert: pki.cert, key: pki.key, allowHTTP1: true }, (req, res) => {
    seen.push({ path: req.url, headers: req.headers })
    const path = req.url.split('?')[0]
    res.setHeader('server', 'origin/1.0')
    if (path === '/big') {
      const body = 'x'.repeat(5000)
      res.setHeader('content-length', body.length)
      return res.end(body)
    }
    if (path === '/stream') {
      // No Content-Length: the hook sees headers only.
      res.write('hello ')
      return setTimeout(() => res.end('world'), 20)
    }
    const body = `hello world from ${path}`
    res.setHeader('content-type', 'text/plain')
    res.setHeader('content-length', Buffer.byteLength(body))
    res.end(body)
  })
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => sessions.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(async () => {
    for (const s of sessions) s.destroy()
    await closeServer(server)
  })
  return { port: (server.address() as net.AddressInfo).port, seen }
}

const VERSIONS = [
  ['HTTP/1.1', '--http1.1', 'HTTP/1.1'],
  ['HTTP/2', '--http2', 'HTTP/2'],
] as const

for (const [name, flag, line] of VERSIONS) {
  test(`${name}: the youtube-one-video example redirects another video and passes the allowed one`, async (t) => {
    const docs = [parse(readFileSync('examples/youtube-one-video.yaml', 'utf8'))]
    const o = await origin(t)
    const proxy = await startInterceptor({
      originPort: o.port,
      pki,
      scripts: await engine,
      decide: decideWith(docs, 'www.youtube.com'),
    })
    t.teardown(() => proxy.close())
    const base = `https://www.youtube.com:${proxy.port}`
    const other = await curl([flag, ...curlTls(pki, proxy.port), '-D', '-', `${base}/watch?v=somethingElse`])
    t.is(other.code, 0, other.stderr)
    t.true(other.stdout.startsWith(`${line} 302`), other.stdout)
    t.regex(other.stdout, /location: https:\/\/www\.youtube\.com\/watch\?v=dQw4w9WgXcQ\r\n/i)
    const allowed = await curl([
      flag,
      ...curlTls(pki, proxy.port),
      '-D',
      '-',
      `${base}/watch?v=dQw4w9WgXcQ&t=42`,
    ])
    t.true(allowed.stdout.startsWith(`${line} 200`), allowed.stdout)
    t.regex(allowed.stdout, /x-flowgate: inspected\r\n/i)
    t.true(allowed.stdout.endsWith('hello world from /watch'))
    // The redirected request never reached the origin; the allowed one did, query intact.
    t.deepEqual(
      o.seen.map((s) => s.path),
      ['/watch?v=dQw4w9WgXcQ&t=42'],
    )
    t.is(proxy.stats.requests.inspect, 2)
    t.is(proxy.stats.scriptRuns.on_request, 2)
    t.is(proxy.stats.scriptRuns.on_response, 1)
    t.is(proxy.stats.localResponses.script_response, 1)
  })

  test(`${name}: onResponse rewrites status, headers and a body of declared length`, async (t) => {
    const o = await origin(t)
    const docs = [
      inspect('rewrite', {
        onResponse: `function onResponse(event) {
          var r = event.response
          r.statusCode = 203
          r.statusDescription = 'Rewritten'
          r.headers['cache-control'] = { value: 'no-store' }
          delete r.headers['server']
          if (r.body) r.body = { encoding: 'text', data: r.body.data.replace('world', 'flowgate') }
          return r
        }`,
      }),
    ]
    const proxy = await startInterceptor({
      originPort: o.port,
      pki,
      scripts: await engine,
      decide: decideWith(docs, 'origin.test'),
      limits: { maxResponseBodyBytes: 1000 },
    })
    t.teardown(() => proxy.close())
    const u = (p: string) => `https://origin.test:${proxy.port}${p}`
    const r = await curl([flag, ...curlTls(pki, proxy.port), '-D', '-', u('/page')])
    t.true(r.stdout.startsWith(`${line} 203`), r.stdout)
    t.regex(r.stdout, /cache-control: no-store\r\n/i)
    t.notRegex(r.stdout, /^server:/im)
    const body = 'hello flowgate from /page'
    t.regex(r.stdout, new RegExp(`content-length: ${body.length}\\r\\n`, 'i'))
    t.true(r.stdout.endsWith(`\r\n\r\n${body}`), r.stdout)
    // Over the limit, and of undeclared length: headers only, the body untouched.
    const big = await curl([flag, ...curlTls(pki, proxy.port), '-D', '-', u('/big')])
    t.regex(big.stdout, /cache-control: no-store\r\n/i)
    t.true(big.stdout.endsWith('x'.repeat(5000)))
    const streamed = await curl([flag, ...curlTls(pki, proxy.port), '-D', '-', u('/stream')])
    t.true(streamed.stdout.startsWith(`${line} 203`), streamed.stdout)
    t.true(streamed.stdout.endsWith('hello world'))
    t.is(proxy.stats.responseBodies.offered, 1)
    t.is(proxy.stats.responseBodies.rewritten, 1)
    t.is(proxy.stats.responseBodies.headers_only, 2)
  })

  test(`${name}: onRequest changes the request the origin gets`, async (t) => {
    const o = await origin(t)
    const docs = [
      inspect('modify', {
        onRequest: `function onRequest(event) {
          var r = event.request
          r.uri = '/rewritten' + r.uri
          r.headers['x-inspected-by'] = { value: 'flowgate' }
          r.querystring.added = { value: '1' }
          return r
        }`,
      }),
    ]
    const proxy = await startInterceptor({
      originPort: o.port,
      pki,
      scripts: await engine,
      decide: decideWith(docs, 'origin.test'),
    })
    t.teardown(() => proxy.close())
    const r = await curl([flag, ...curlTls(pki, proxy.port), `https://origin.test:${proxy.port}/a?b=c`])
    t.is(r.stdout, 'hello world from /rewritten/a')
    t.is(o.seen[0]!.path, '/rewritten/a?b=c&added=1')
    t.is(o.seen[0]!.headers['x-inspected-by'], 'flowgate')
  })

  test(`${name}: a script that throws or times out fails closed with a 502, counted and logged`, async (t) => {
    const o = await origin(t)
    const docs = [
      {
        ...inspect('failing', {}),
        spec: {
          priority: 100,
          match: { protocols: ['TCP'], ports: ['443'] },
          rules: [
            {
              name: 'throws',
              when: { paths: ['/throw'] },
              action: 'Inspect',
              http: { onRequest: 'function onRequest(event) { throw new Error("nope") }' },
            },
            {
              name: 'spins',
              when: { paths: ['/spin'] },
              action: 'Inspect',
              http: { onRequest: 'function onRequest(event) { while (true) {} }' },
            },
            {
              name: 'bad-response',
              when: { paths: ['/late'] },
              action: 'Inspect',
              http: { onResponse: 'function onResponse(event) { return 42 }' },
            },
          ],
        },
      },
    ]
    const warnings: object[] = []
    const proxy = await startInterceptor({
      originPort: o.port,
      pki,
      scripts: await engine,
      decide: decideWith(docs, 'origin.test'),
      log: { warn: (obj) => warnings.push(obj) },
    })
    t.teardown(() => proxy.close())
    const u = (p: string) => `https://origin.test:${proxy.port}${p}`
    const r = await curl([
      flag,
      ...curlTls(pki, proxy.port),
      '-w',
      '%{http_code} %{num_connects}\\n',
      '-o',
      '/dev/null',
      u('/throw'),
      '-o',
      '/dev/null',
      u('/spin'),
      '-o',
      '/dev/null',
      u('/late'),
      '-o',
      '/dev/null',
      u('/fine'),
    ])
    // Each failure is one request's 502; the connection carries on.
    t.deepEqual(r.stdout.trim().split('\n'), ['502 1', '502 0', '502 0', '200 0'])
    t.is(proxy.stats.scriptFailures.threw, 1)
    t.is(proxy.stats.scriptFailures.timeout, 1)
    t.is(proxy.stats.scriptFailures.invalid_result, 1)
    t.is(proxy.stats.localResponses.script_failure, 3)
    t.deepEqual(
      warnings.map((w) => [(w as { rule: string }).rule, (w as { reason: string }).reason]),
      [
        ['throws', 'threw'],
        ['spins', 'timeout'],
        ['bad-response', 'invalid-result'],
      ],
    )
    // Only the requests whose failure came after the origin's answer reached it.
    t.deepEqual(
      o.seen.map((s) => s.path),
      ['/late', '/fine'],
    )
  })
}
