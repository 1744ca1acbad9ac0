// The HTTP layer's per-exchange observer (InterceptOptions.onExchange) driven by real peers: curl over
// HTTP/1.1 and HTTP/2 through the loopback TLS stand-in to real origins, observed by the data plane's own
// observer (visibility/exchanges.ts) into a live HAR export. Each exchange must come out as one valid HAR
// entry with what the client sent and got — bodies cut to the policy's limit, local answers (Deny)
// included, an origin that dies mid-body marked incomplete — and SigV4-signed requests must be counted
// by account and noted for the flow.
import type http from 'node:http'
import type http2 from 'node:http2'
import test from 'ava'
import type { ExchangeObserver, ExchangeStart } from '../../appliance/src/http/index.ts'
import { AwsApiRequests } from '../../appliance/src/visibility/aws-requests.ts'
import { type ObservedDecision, observeExchanges } from '../../appliance/src/visibility/exchanges.ts'
import type { HarEntry } from '../../appliance/src/visibility/har.ts'
import { HarHub } from '../../appliance/src/visibility/har-hub.ts'
import { harProblems } from '../support/har.ts'
import { curl, curlTls, makePki, startH2Origin, startHttpsOrigin, startInterceptor } from './harness.ts'

const pki = makePki()
test.after.always(() => pki.cleanup())

const SIGV4 =
  'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/20261121/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7'
const BIG = 'x'.repeat(5000)

/** The data plane's observer over a HAR hub with one live export; decisions as the data plane makes them. */
async function observed(t: { teardown(fn: () => unknown): void }, originPort: number) {
  const hub = new HarHub()
  const aws = new AwsApiRequests()
  const accounts: string[] = []
  const session = hub.open({ seconds: 60, maxEntries: 1000 })!
  const chunks: Buffer[] = []
  session.stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)))
  const starts: ExchangeStart[] = []
  const observe = observeExchanges(
    { aws, har: hub, noteAccount: (a) => accounts.push(a) },
    {
      scheme: 'https',
      authority: 'origin.test',
      serverIp: '127.0.0.1',
      endpoint: 'vpce-0123456789abcdef0',
      client: '127.0.0.1:1',
    },
  )
  const proxy = await startInterceptor({
    originPort,
    pki,
    decide: (f): ObservedDecision => {
      const base: ObservedDecision = {
        action: f.path === '/denied' ? 'Deny' : 'Allow',
        policy: 'p',
        rule: 'r',
      }
      // Only this path's policy asks for HAR: the rest are observed for AWS accounts alone.
      return f.path === '/not-recorded' ? base : { ...base, har: { maxBodyBytes: 100, redactHeaders: [] } }
    },
    onExchange: (x): ExchangeObserver | undefined => {
      starts.push(x)
      return observe(x)
    },
  })
  t.teardown(() => proxy.close())
  const har = async (): Promise<{ log: { entries: HarEntry[] } }> => {
    await proxy.settled()
    session.finish('closed')
    return JSON.parse(Buffer.concat(chunks).toString())
  }
  return { proxy, hub, aws, accounts, starts, har }
}

function checks(t: import('ava').ExecutionContext, entries: HarEntry[], version: string, port: number) {
  const by = (path: string) => entries.find((e) => new URL(e.request.url).pathname === path)!
  t.is(entries.length, 4, entries.map((e) => e.request.url).join(' '))
  const big = by('/big')
  t.like(big.request, { method: 'GET', httpVersion: version, url: `https://origin.test:${port}/big?n=5000` })
  t.is(big.response.status, 200)
  t.is(big.response.content.size, 5000)
  t.is(big.response.content.text, 'x'.repeat(100))
  t.true(big.response.content._truncated)
  t.true(big._flowgate.complete)
  t.is(big._flowgate.awsAccountId, '609629065308')
  t.is(big.request.headers.find((h) => h.name === 'authorization')!.value, 'AWS4-HMAC-SHA256 [redacted]')
  const post = by('/echo')
  t.like(post.request.postData, { mimeType: 'text/plain', text: 'hello body' })
  t.is(post.request.bodySize, 10)
  t.is(post.response.content.text, 'hello body')
  const denied = by('/denied')
  t.is(denied.response.status, 403)
  t.is(denied.response.content.text, 'Forbidden by policy.\n')
  t.is(denied._flowgate.action, 'Deny')
  const cut = by('/die')
  t.false(cut._flowgate.complete)
  t.true(cut.response.status === 200 || cut.response.status === 0)
  for (const e of entries) t.true(e.time >= 0 && e.timings.send >= 0 && e.timings.wait >= 0)
}

test('HTTP/1.1 through interception: one valid HAR entry per exchange, AWS account counted', async (t) => {
  const origin = await startHttpsOrigin(pki, (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.url === '/die') {
        res.writeHead(200, { 'content-length': '1000' })
        res.write('partial')
        setTimeout(() => res.destroy(), 50)
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(req.url === '/echo' ? Buffer.concat(chunks) : BIG)
    })
  })
  t.teardown(() => origin.close())
  const o = await observed(t, origin.port)
  const base = ['--http1.1', ...curlTls(pki, o.proxy.port)]
  const u = `https://origin.test:${o.proxy.port}`
  const ok = await curl([
    ...base,
    '-H',
    `Authorization: ${SIGV4}`,
    `${u}/big?n=5000`,
    '--next',
    ...base,
    '-H',
    'Content-Type: text/plain',
    '--data-binary',
    'hello body',
    `${u}/echo`,
    '--next',
    ...base,
    `${u}/denied`,
    '--next',
    ...base,
    `${u}/not-recorded`,
  ])
  t.is(ok.code, 0, ok.stderr)
  t.regex(ok.stdout, /hello body/)
  await curl([...base, `${u}/die`])
  const har = await o.har()
  t.deepEqual(harProblems(har), [])
  checks(t, har.log.entries, 'HTTP/1.1', o.proxy.port)
  t.deepEqual(o.aws.snapshot(), [{ account: '609629065308', service: 'sts', requests: 1 }])
  t.deepEqual(o.accounts, ['609629065308'])
  t.is(o.starts.length, 5, 'every decided exchange is offered to the observer')
})

test('HTTP/2 through interception: the same, streams observed one by one', async (t) => {
  const origin = await startH2Origin(pki, (stream: http2.ServerHttp2Stream, headers) => {
    stream.on('error', () => {})
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => {
      const path = String(headers[':path'])
      if (path === '/die') {
        stream.respond({ ':status': 200, 'content-length': '1000' })
        stream.write('partial')
        setTimeout(() => stream.close(http2Cancel), 50)
        return
      }
      stream.respond({ ':status': 200, 'content-type': 'text/plain' })
      stream.end(path === '/echo' ? Buffer.concat(chunks) : BIG)
    })
  })
  t.teardown(() => origin.close())
  const o = await observed(t, origin.port)
  const base = ['--http2', ...curlTls(pki, o.proxy.port)]
  const u = `https://origin.test:${o.proxy.port}`
  const ok = await curl([
    ...base,
    '-H',
    `Authorization: ${SIGV4}`,
    `${u}/big?n=5000`,
    '--next',
    ...base,
    '-H',
    'Content-Type: text/plain',
    '--data-binary',
    'hello body',
    `${u}/echo`,
    '--next',
    ...base,
    `${u}/denied`,
    '--next',
    ...base,
    `${u}/not-recorded`,
  ])
  t.is(ok.code, 0, ok.stderr)
  await curl([...base, `${u}/die`])
  const har = await o.har()
  t.deepEqual(harProblems(har), [])
  checks(t, har.log.entries, 'HTTP/2.0', o.proxy.port)
  t.deepEqual(o.aws.snapshot(), [{ account: '609629065308', service: 'sts', requests: 1 }])
})

test('without a HAR sink nothing is recorded; the AWS account is still counted', async (t) => {
  const origin = await startHttpsOrigin(pki, (_req, res) => res.end('ok'))
  t.teardown(() => origin.close())
  const hub = new HarHub()
  const aws = new AwsApiRequests()
  const observe = observeExchanges(
    { aws, har: hub, noteAccount: () => undefined },
    { scheme: 'https', authority: 'origin.test', serverIp: '127.0.0.1', endpoint: '', client: '' },
  )
  const returned: (ExchangeObserver | undefined)[] = []
  const proxy = await startInterceptor({
    originPort: origin.port,
    pki,
    decide: (): ObservedDecision => ({ action: 'Allow', har: { maxBodyBytes: 100, redactHeaders: [] } }),
    onExchange: (x) => {
      const w = observe(x)
      returned.push(w)
      return w
    },
  })
  t.teardown(() => proxy.close())
  const r = await curl([
    ...curlTls(pki, proxy.port),
    '-H',
    `Authorization: ${SIGV4}`,
    `https://origin.test:${proxy.port}/`,
  ])
  t.is(r.stdout, 'ok')
  await proxy.settled()
  t.deepEqual(returned, [undefined])
  t.is(hub.counts[0], 0)
  t.is(aws.snapshot()[0]!.requests, 1)
})

const http2Cancel = 8 // NGHTTP2_CANCEL
