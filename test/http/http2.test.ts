// HTTP/2 through interception: curl --http2 and Node's http2 client → loopback TLS stand-in (ALPN h2 on
// both sides) → interceptHttp → an http2.createSecureServer origin.
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import { join } from 'node:path'
import test from 'ava'
import { curl, curlTls, makePki, startH2Origin, startInterceptor } from './harness.ts'

const pki = makePki()
test.after.always(() => pki.cleanup())
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** dns.lookup stand-in: every name is 127.0.0.1 (both callback shapes net may ask for). */
const loopback = ((_host: string, o: { all?: boolean }, cb: (...a: unknown[]) => void): void => {
  if (o.all) cb(null, [{ address: '127.0.0.1', family: 4 }])
  else cb(null, '127.0.0.1', 4)
}) as unknown as typeof import('node:dns').lookup

async function setup(
  t: { teardown(fn: () => unknown): void },
  extra: Partial<Parameters<typeof startInterceptor>[0]> = {},
) {
  const seen: { path: string; authority: string; scheme: string; body: Buffer }[] = []
  let active = 0
  let maxActive = 0
  const origin = await startH2Origin(pki, (stream, headers) => {
    active++
    maxActive = Math.max(maxActive, active)
    stream.on('close', () => active--)
    stream.on('error', () => {})
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => {
      const path = String(headers[':path'])
      const body = Buffer.concat(chunks)
      seen.push({ path, authority: String(headers[':authority']), scheme: String(headers[':scheme']), body })
      if (path.startsWith('/slow')) {
        // Held long enough that parallel requests overlap; never answered if reset first.
        const timer = setTimeout(() => reply(), 300)
        stream.on('close', () => clearTimeout(timer))
        return
      }
      if (path === '/reset') return void stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
      if (path === '/trailers') {
        stream.respond({ ':status': 200 }, { waitForTrailers: true })
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
        return void stream.end('with trailers')
      }
      if (path === '/upload') {
        stream.respond({ ':status': 200 })
        return void stream.end(`${sha(body)} ${body.length}`)
      }
      reply()
      function reply() {
        if (stream.destroyed) return
        stream.respond({ ':status': 200, 'content-type': 'text/plain' })
        stream.end(`h2 ${path}`)
      }
    })
  })
  const proxy = await startInterceptor({ originPort: origin.port, pki, ...extra })
  t.teardown(async () => {
    await proxy.close()
    await origin.close()
  })
  const url = (p: string) => `https://origin.test:${proxy.port}${p}`
  const curlArgs = (...a: string[]) => curl(['--http2', ...curlTls(pki, proxy.port), ...a])
  const connect = () => {
    const s = http2.connect(url('/'), { ca: pki.caPem, lookup: loopback })
    s.on('error', () => {})
    t.teardown(() => s.destroy())
    return s
  }
  return { origin, proxy, seen, url, curlArgs, connect, maxActive: () => maxActive }
}

test('curl --http2: parallel requests multiplexed on one connection, one upstream session', async (t) => {
  const { origin, proxy, seen, url, curlArgs, maxActive } = await setup(t)
  const urls = [1, 2, 3, 4, 5, 6].flatMap((i) => ['-o', '/dev/null', url(`/slow/${i}`)])
  const r = await curlArgs(
    '--parallel',
    '--parallel-max',
    '6',
    '-w',
    '%{http_version} %{http_code}\\n',
    ...urls,
  )
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.stdout.trim().split('\n'), Array(6).fill('2 200'))
  t.is(proxy.flows.started, 1)
  t.deepEqual(proxy.flows.alpn, ['h2'])
  t.is(proxy.stats.flows.h2, 1)
  t.is(origin.sessions(), 1)
  t.is(seen.length, 6)
  t.true(maxActive() >= 2, `streams overlapped at the origin (max ${maxActive()})`)
  t.is(seen[0]!.authority, `origin.test:${proxy.port}`)
  t.is(seen[0]!.scheme, 'https')
})

test('h2 request body byte-exact', async (t) => {
  const { curlArgs, url } = await setup(t)
  const file = join(pki.dir, 'h2-upload.bin')
  const data = randomBytes(1024 * 1024 + 3)
  writeFileSync(file, data)
  const r = await curlArgs('--data-binary', `@${file}`, url('/upload'))
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, `${sha(data)} ${data.length}`)
})

test('h2: Deny → 403 on its stream while the connection serves others; Reject closes it; fronting → 421', async (t) => {
  const { proxy, seen, url, curlArgs } = await setup(t, {
    decide: (f) => ({ action: f.path === '/denied' ? 'Deny' : f.path === '/rejected' ? 'Reject' : 'Allow' }),
  })
  const r = await curlArgs(
    '-w',
    '%{http_code} %{num_connects}\\n',
    '-o',
    '/dev/null',
    url('/denied'),
    '-o',
    '/dev/null',
    url('/ok'),
  )
  t.deepEqual(r.stdout.trim().split('\n'), ['403 1', '200 0'])
  // Reject: the 403, then GOAWAY; the next request needs a new connection.
  const rej = await curlArgs(
    '-w',
    '%{http_code} %{num_connects}\\n',
    '-o',
    '/dev/null',
    url('/rejected'),
    '-o',
    '/dev/null',
    url('/ok'),
  )
  t.deepEqual(rej.stdout.trim().split('\n'), ['403 1', '200 1'])
  const f = await curlArgs('-w', '%{http_code}', '-o', '/dev/null', '-H', 'Host: other.test', url('/fronted'))
  t.is(f.stdout, '421')
  t.deepEqual(
    seen.map((s) => s.path),
    ['/ok', '/ok'],
  )
  t.is(proxy.stats.localResponses.reject, 1)
  t.is(proxy.stats.localResponses.deny, 1)
  t.is(proxy.stats.localResponses.misdirected, 1)
})

test('h2 resets pass both ways: a client cancel reaches the origin, an origin reset reaches the client', async (t) => {
  const { proxy, connect } = await setup(t)
  const s = connect()
  const slow = s.request({ ':path': '/slow/cancel' })
  slow.on('error', () => {})
  await new Promise((r) => setTimeout(r, 100))
  slow.close(http2.constants.NGHTTP2_CANCEL)
  const reset = s.request({ ':path': '/reset' })
  reset.on('error', () => {})
  await new Promise((r) => reset.on('close', r))
  t.is(reset.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
  const deadline = Date.now() + 3000
  while (proxy.stats.h2Resets.client === 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20))
  t.is(proxy.stats.h2Resets.client, 1)
  t.is(proxy.stats.h2Resets.upstream, 1)
  // The session is still usable.
  const ok = s.request({ ':path': '/after' })
  let body = ''
  ok.on('data', (c: Buffer) => {
    body += c
  })
  await new Promise((r) => ok.on('end', r))
  t.is(body, 'h2 /after')
})

test('h2 trailers from the origin reach the client', async (t) => {
  const { connect } = await setup(t)
  const s = connect()
  const req = s.request({ ':path': '/trailers' })
  let body = ''
  req.on('data', (c: Buffer) => {
    body += c
  })
  let trailers: http2.IncomingHttpHeaders = {}
  req.on('trailers', (h) => {
    trailers = h
  })
  await new Promise((r) => req.on('end', r))
  t.is(body, 'with trailers')
  t.is(trailers['grpc-status'], '0')
})

test('an origin GOAWAY closes the client session gracefully after its streams', async (t) => {
  const { origin, proxy, connect, maxActive } = await setup(t)
  const s = connect()
  const first = s.request({ ':path': '/slow/before-goaway' })
  let body = ''
  first.on('data', (c: Buffer) => {
    body += c
  })
  const ended = new Promise((r) => first.on('end', r))
  // Once the origin has the stream, it says it is going away (graceful: in-flight streams finish).
  const deadline = Date.now() + 5000
  while (maxActive() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  for (const sess of origin.live) sess.close()
  const goaway = new Promise((r) => s.once('goaway', r))
  await ended
  t.is(body, 'h2 /slow/before-goaway')
  await goaway
  await proxy.settled()
  t.is(proxy.stats.h2Goaways.upstream, 1)
  t.is(proxy.flows.finished, 1)
})
