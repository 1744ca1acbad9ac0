// HTTP messages ⇄ CloudFront Functions events (AWS CloudFront Developer Guide, "CloudFront Functions event
// structure"): the documented example, raw query encoding, duplicates, cookies, bodies, and a round trip
// through real HTTP peers (curl → Node server → event → Node client → Node server).
import { execFile, spawnSync } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import test from 'ava'
import {
  bodyOf,
  fromCfRequest,
  fromCfResponse,
  toCfRequest,
  toCfResponse,
} from '../../../appliance/src/http/script/index.ts'

const pairs = (raw: string[]): [string, string][] => {
  const out: [string, string][] = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}

test('the documented example event: query, headers and cookies with multiValue', (t) => {
  const r = toCfRequest(
    'GET',
    '/media/index.mpd?ID=42&Exp=1619740800&TTL=1440&NoValue=&querymv=val1&querymv=val2,val3',
    [
      ['Host', 'video.example.com'],
      ['Accept', 'application/json'],
      ['Accept', 'application/xml'],
      ['Accept', 'text/html'],
      ['Cookie', 'Cookie1=value1; Cookie2=value2; cookie_consent=true; cookiemv=value3'],
      ['Cookie', 'cookiemv=value4'],
    ],
  )
  t.deepEqual(r, {
    method: 'GET',
    uri: '/media/index.mpd',
    querystring: {
      ID: { value: '42' },
      Exp: { value: '1619740800' },
      TTL: { value: '1440' },
      NoValue: { value: '' },
      querymv: { value: 'val1', multiValue: [{ value: 'val1' }, { value: 'val2,val3' }] },
    },
    headers: {
      host: { value: 'video.example.com' },
      accept: {
        value: 'application/json',
        multiValue: [{ value: 'application/json' }, { value: 'application/xml' }, { value: 'text/html' }],
      },
    },
    cookies: {
      Cookie1: { value: 'value1' },
      Cookie2: { value: 'value2' },
      cookie_consent: { value: 'true' },
      cookiemv: { value: 'value3', multiValue: [{ value: 'value3' }, { value: 'value4' }] },
    },
  })
})

test('query names and values stay as received: percent-encoding, "+", "=" in values, bare names', (t) => {
  const url = '/search?q=%E5%AE%B6&sp=a+b&sig=ab%2Fcd==&flag&empty=&q=2'
  const r = toCfRequest('GET', url, [])
  t.deepEqual(r.querystring, {
    q: { value: '%E5%AE%B6', multiValue: [{ value: '%E5%AE%B6' }, { value: '2' }] },
    sp: { value: 'a+b' },
    sig: { value: 'ab%2Fcd==' },
    flag: { value: '' },
    empty: { value: '' },
  })
  // Duplicates come out grouped by name (as CloudFront does); otherwise byte for byte.
  t.is(fromCfRequest(r).url, '/search?q=%E5%AE%B6&q=2&sp=a+b&sig=ab%2Fcd==&flag&empty')
  const single = '/p?a=1&b=%20x%2B&c=%25'
  t.is(fromCfRequest(toCfRequest('GET', single, [])).url, single)
  t.is(fromCfRequest(toCfRequest('GET', '/p?', [])).url, '/p', 'an empty query drops the "?"')
  t.deepEqual(toCfRequest('GET', '/p?a=1&&b=2&', []).querystring, { a: { value: '1' }, b: { value: '2' } })
})

test('values a script sets are encoded only where they would change the request line', (t) => {
  const r = toCfRequest('GET', '/p', [])
  r.querystring = {
    q: { value: 'two words & more#frag' },
    'a=b': { value: 'x=y' },
    city: { value: 'Zürich' },
    keep: { value: "%41-_.~!$'()*+,;:@/?" },
  }
  t.is(
    fromCfRequest(r).url,
    "/p?q=two%20words%20%26%20more%23frag&a%3Db=x=y&city=Z%C3%BCrich&keep=%41-_.~!$'()*+,;:@/?",
  )
})

test('target forms: absolute-form gives its path, "*" stays, a missing path is "/"', (t) => {
  t.is(toCfRequest('GET', 'http://h.example:81/a/b?x=1', []).uri, '/a/b')
  t.deepEqual(toCfRequest('GET', 'http://h.example:81/a/b?x=1', []).querystring, { x: { value: '1' } })
  t.is(toCfRequest('GET', 'http://h.example', []).uri, '/')
  t.is(toCfRequest('GET', 'http://h.example?x=1', []).uri, '/')
  t.is(toCfRequest('OPTIONS', '*', []).uri, '*')
})

test('header names are lower-cased, order and duplicates kept; cookies leave the headers', (t) => {
  const r = toCfRequest('POST', '/x', [
    ['Content-Type', 'text/plain'],
    ['X-Trace', 'a'],
    ['cookie', 'sid=1'],
    ['x-trace', 'b'],
    ['COOKIE', 'theme=dark; =nameless; bare'],
  ])
  t.deepEqual(Object.keys(r.headers), ['content-type', 'x-trace'])
  t.deepEqual(r.headers['x-trace'], { value: 'a', multiValue: [{ value: 'a' }, { value: 'b' }] })
  t.deepEqual(r.cookies, {
    sid: { value: '1' },
    theme: { value: 'dark' },
    '': { value: 'nameless', multiValue: [{ value: 'nameless' }, { value: 'bare' }] },
  })
  const back = fromCfRequest(r)
  t.deepEqual(back.headers, [
    ['content-type', 'text/plain'],
    ['x-trace', 'a'],
    ['x-trace', 'b'],
    ['cookie', 'sid=1; theme=dark; nameless; bare'],
  ])
})

test('"__proto__" and other Object.prototype names are ordinary fields', (t) => {
  const r = toCfRequest('GET', '/p?__proto__=1&constructor=2', [
    ['__proto__', 'h'],
    ['Cookie', '__proto__=c; toString=t'],
  ])
  t.deepEqual(Object.keys(r.querystring), ['__proto__', 'constructor'])
  const own = (m: object, k: string) => Object.getOwnPropertyDescriptor(m, k)?.value?.value
  t.is(own(r.querystring, '__proto__'), '1')
  t.is(Object.getPrototypeOf(r.headers), Object.prototype, 'the map itself was not re-prototyped')
  t.is(own(r.headers, '__proto__'), 'h')
  t.is(own(r.cookies, 'toString'), 't')
  const back = fromCfRequest(r)
  t.is(back.url, '/p?__proto__=1&constructor=2')
  t.deepEqual(back.headers, [
    ['__proto__', 'h'],
    ['cookie', '__proto__=c; toString=t'],
  ])
})

test('responses: Set-Cookie becomes cookies with attributes (multiValue), and back', (t) => {
  const r = toCfResponse(200, 'OK', [
    ['Content-Type', 'application/json'],
    ['Set-Cookie', 'ID=id1234; Expires=Wed, 05 Apr 2021 07:28:00 GMT'],
    ['Set-Cookie', 'Cookie1=val1; Secure; Path=/; Domain=example.com'],
    ['Set-Cookie', 'Cookie1=val2; Path=/cat'],
    ['set-cookie', 'plain=1'],
  ])
  t.deepEqual(r, {
    statusCode: 200,
    statusDescription: 'OK',
    headers: { 'content-type': { value: 'application/json' } },
    cookies: {
      ID: { value: 'id1234', attributes: 'Expires=Wed, 05 Apr 2021 07:28:00 GMT' },
      Cookie1: {
        value: 'val1',
        attributes: 'Secure; Path=/; Domain=example.com',
        multiValue: [
          { value: 'val1', attributes: 'Secure; Path=/; Domain=example.com' },
          { value: 'val2', attributes: 'Path=/cat' },
        ],
      },
      plain: { value: '1' },
    },
  })
  const back = fromCfResponse(r)
  t.is(back.statusCode, 200)
  t.is(back.statusMessage, 'OK')
  t.deepEqual(back.headers, [
    ['content-type', 'application/json'],
    ['set-cookie', 'ID=id1234; Expires=Wed, 05 Apr 2021 07:28:00 GMT'],
    ['set-cookie', 'Cookie1=val1; Secure; Path=/; Domain=example.com'],
    ['set-cookie', 'Cookie1=val2; Path=/cat'],
    ['set-cookie', 'plain=1'],
  ])
  t.is(back.body, undefined)
  t.is(fromCfResponse({ statusCode: 404, headers: {} }).statusMessage, 'Not Found', 'default reason phrase')
  t.is(toCfResponse(204, '', []).statusDescription, undefined, 'HTTP/2 has no reason phrase')
})

test('bodies: UTF-8 as text, anything else as base64, byte for byte both ways', (t) => {
  const text = Buffer.from('\uFEFFhéllo ☃\n', 'utf8')
  t.deepEqual(bodyOf(text), { encoding: 'text', data: '\uFEFFhéllo ☃\n' })
  const binary = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0xc3])
  t.deepEqual(bodyOf(binary), { encoding: 'base64', data: binary.toString('base64') })
  for (const b of [text, binary, Buffer.alloc(0)]) {
    const r = toCfResponse(200, 'OK', [], b)
    t.true(fromCfResponse(r).body!.equals(b))
  }
})

/** A Node server that records what arrived, raw. */
async function recorder() {
  const seen: { method: string; url: string; raw: string[] }[] = []
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, raw: req.rawHeaders })
    res.writeHead(200, [
      'Content-Type',
      'text/plain',
      'Set-Cookie',
      'a=1; Path=/',
      'Set-Cookie',
      'b=2; HttpOnly; SameSite=Lax',
      'X-Multi',
      'one',
      'X-Multi',
      'two',
    ])
    res.end('ok')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { seen, port: (server.address() as AddressInfo).port, close: () => server.close() }
}

test('round trip through real peers: curl → event → Node client arrives as sent', async (t) => {
  if (spawnSync('curl', ['--version']).status !== 0) {
    if (process.env.CI) t.fail('curl is missing (CI installs it)')
    else t.log('skipped: curl is not installed')
    return t.pass()
  }
  const first = await recorder()
  const second = await recorder()
  t.teardown(() => {
    first.close()
    second.close()
  })
  const target = '/watch?v=dQw4w9WgXcQ&list=%E5%AE%B6&t=1&t=2&raw=a+b'
  // Asynchronous: the recording servers run on this event loop.
  await promisify(execFile)(
    'curl',
    [
      '-sS',
      '--max-time',
      '10',
      '-H',
      'Accept: text/html',
      '-H',
      'X-Dup: 1',
      '-H',
      'X-Dup: 2',
      '-b',
      'sid=abc; theme=dark',
      `http://127.0.0.1:${first.port}${target}`,
    ],
    { timeout: 15_000 },
  )
  const got = first.seen[0]!
  const event = toCfRequest(got.method, got.url, pairs(got.raw))
  t.is(event.uri, '/watch')
  t.is(event.querystring.list?.value, '%E5%AE%B6')
  t.deepEqual(event.querystring.t?.multiValue, [{ value: '1' }, { value: '2' }])
  t.deepEqual(event.cookies, { sid: { value: 'abc' }, theme: { value: 'dark' } })
  t.deepEqual(event.headers['x-dup']?.multiValue, [{ value: '1' }, { value: '2' }])

  const out = fromCfRequest(event)
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: second.port, method: out.method, path: out.url })
    for (const [n, v] of Object.entries(groupHeaders(out.headers))) req.setHeader(n, v)
    req.on('response', resolve).on('error', reject).end()
  })
  res.resume()
  const again = second.seen[0]!
  t.is(again.url, target, 'this query was already grouped, so it is byte-exact')
  const resent = toCfRequest(again.method, again.url, pairs(again.raw))
  t.deepEqual(
    { ...resent.headers, host: undefined, connection: undefined },
    {
      ...event.headers,
      host: undefined,
      connection: undefined,
    },
  )
  t.deepEqual(resent.cookies, event.cookies)

  // The response side: what the Node client received, as an event and back.
  const resp = toCfResponse(res.statusCode!, res.statusMessage!, pairs(res.rawHeaders), Buffer.from('ok'))
  t.deepEqual(resp.cookies, {
    a: { value: '1', attributes: 'Path=/' },
    b: { value: '2', attributes: 'HttpOnly; SameSite=Lax' },
  })
  t.deepEqual(resp.headers['x-multi'], { value: 'one', multiValue: [{ value: 'one' }, { value: 'two' }] })
  const lines = fromCfResponse(resp).headers.filter(([n]) => n === 'set-cookie' || n === 'x-multi')
  t.deepEqual(lines, [
    ['x-multi', 'one'],
    ['x-multi', 'two'],
    ['set-cookie', 'a=1; Path=/'],
    ['set-cookie', 'b=2; HttpOnly; SameSite=Lax'],
  ])
})

function groupHeaders(lines: [string, string][]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [n, v] of lines) {
    out[n] ??= []
    out[n].push(v)
  }
  return out
}
