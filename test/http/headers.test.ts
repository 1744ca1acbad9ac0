import test from 'ava'
import {
  contentLength,
  fieldsFromRaw,
  isMisdirected,
  isValidHost,
  objectFromFields,
  parseTarget,
  stripHopByHop,
  stripHopByHopRaw,
} from '../../appliance/src/http/headers.ts'
import { classifyPreface } from '../../appliance/src/http/preface.ts'
import { SeededRandom } from '../../appliance/src/tcp/clock.ts'

test('fieldsFromRaw lower-cases names and keeps order and repeats', (t) => {
  t.deepEqual(fieldsFromRaw(['Host', 'a', 'Set-Cookie', '1', 'set-cookie', '2']), [
    ['host', 'a'],
    ['set-cookie', '1'],
    ['set-cookie', '2'],
  ])
})

test('stripHopByHop drops RFC 9110 §7.6.1 fields and those Connection names', (t) => {
  const f = fieldsFromRaw([
    'Connection',
    'keep-alive, X-Private',
    'Keep-Alive',
    'timeout=5',
    'X-Private',
    'secret',
    'Proxy-Connection',
    'keep-alive',
    'TE',
    'trailers',
    'Upgrade',
    'h2c',
    'HTTP2-Settings',
    'AAMAAABkAAQAAP__',
    'Transfer-Encoding',
    'chunked',
    'Accept',
    '*/*',
  ])
  t.deepEqual(stripHopByHop(f), [['accept', '*/*']])
  t.deepEqual(stripHopByHop(f, { transferEncoding: 'keep' }), [
    ['transfer-encoding', 'chunked'],
    ['accept', '*/*'],
  ])
  t.deepEqual(stripHopByHop(f, { keepTeTrailers: true }), [
    ['te', 'trailers'],
    ['accept', '*/*'],
  ])
  // A plain chunked response is re-framed by Node; other codings stay.
  t.deepEqual(stripHopByHop([['transfer-encoding', 'chunked']], { transferEncoding: 'codings' }), [])
  t.deepEqual(stripHopByHop([['transfer-encoding', 'gzip, chunked']], { transferEncoding: 'codings' }), [
    ['transfer-encoding', 'gzip, chunked'],
  ])
  t.deepEqual(
    stripHopByHop(
      [
        ['upgrade', 'websocket'],
        ['connection', 'Upgrade'],
      ],
      { keepUpgrade: true },
    ),
    [
      ['upgrade', 'websocket'],
      ['connection', 'Upgrade'],
    ],
  )
})

test('stripHopByHopRaw gives what stripHopByHop gives, over flat arrays (seeded field lists)', (t) => {
  const names = [
    'Connection',
    'connection',
    'Keep-Alive',
    'TE',
    'Transfer-Encoding',
    'Upgrade',
    'HTTP2-Settings',
    'Proxy-Connection',
    'X-Private',
    'x-other',
    'Content-Length',
    'Set-Cookie',
    'Accept',
  ]
  const values = [
    'close',
    'keep-alive, X-Private',
    'x-other,  ,TE',
    'chunked',
    'gzip, chunked',
    'trailers',
    '1',
    '',
  ]
  const options = [
    {},
    { transferEncoding: 'keep' as const },
    { transferEncoding: 'codings' as const },
    { keepTeTrailers: true },
    { keepUpgrade: true, transferEncoding: 'keep' as const },
  ]
  const r = new SeededRandom(0x4e4f)
  for (let i = 0; i < 500; i++) {
    const raw: string[] = []
    for (let n = r.int(0, 8); n > 0; n--)
      raw.push(names[r.int(0, names.length - 1)]!, values[r.int(0, values.length - 1)]!)
    for (const o of options) {
      const pairs = stripHopByHop(fieldsFromRaw(raw), o)
      t.deepEqual(stripHopByHopRaw(raw, o), pairs.flat(), JSON.stringify({ raw, o }))
    }
  }
})

test('parseTarget: origin, absolute and asterisk forms; junk is null', (t) => {
  t.deepEqual(parseTarget('/watch?v=1'), { path: '/watch', authority: null })
  t.deepEqual(parseTarget('/'), { path: '/', authority: null })
  t.deepEqual(parseTarget('*'), { path: '*', authority: null })
  t.deepEqual(parseTarget('http://Example.com:8080/a/b?c'), { path: '/a/b', authority: 'Example.com:8080' })
  t.deepEqual(parseTarget('https://example.com'), { path: '/', authority: 'example.com' })
  t.is(parseTarget(''), null)
  t.is(parseTarget('watch'), null)
  t.is(parseTarget('http://user@evil.test/'), null)
})

test('isValidHost: RFC 3986 host[:port]', (t) => {
  for (const ok of ['example.com', 'example.com:443', '[::1]', '[::1]:8443', '10.0.0.1', 'a-b.c_d'])
    t.true(isValidHost(ok), ok)
  for (const bad of ['', 'a b', 'a/b', 'user@host', 'host:po', '[::1', 'é.com'])
    t.false(isValidHost(bad), bad)
})

test('isMisdirected: exact compare after case, port and trailing dot; no SNI, no check', (t) => {
  t.false(isMisdirected('origin.test', ['origin.test']))
  t.false(isMisdirected('origin.test', ['ORIGIN.test:443']))
  t.false(isMisdirected('origin.test', ['origin.test.']))
  t.false(isMisdirected('origin.test', [null, undefined]))
  t.true(isMisdirected('origin.test', ['other.test']))
  t.true(isMisdirected('origin.test', ['origin.test', 'other.test']))
  // A wildcard-free compare: a subdomain is another host.
  t.true(isMisdirected('origin.test', ['a.origin.test']))
  t.false(isMisdirected(null, ['anything.test']))
})

test('contentLength and objectFromFields', (t) => {
  t.is(contentLength([['content-length', ' 42 ']]), 42)
  t.is(contentLength([['content-length', '4a']]), null)
  t.is(contentLength([]), null)
  t.deepEqual(
    {
      ...objectFromFields([
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ]),
    },
    { a: ['1', '3'], b: '2' },
  )
})

test('classifyPreface tells h2c prior knowledge from HTTP/1 at the first differing byte', (t) => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  t.is(classifyPreface(preface), 'h2')
  t.is(classifyPreface(Buffer.concat([preface, Buffer.from([0, 0, 0])])), 'h2')
  t.is(classifyPreface(preface.subarray(0, 10)), 'more')
  t.is(classifyPreface(Buffer.alloc(0)), 'more')
  t.is(classifyPreface(Buffer.from('GET / HTTP/1.1\r\n')), 'http1')
  t.is(classifyPreface(Buffer.from('PRX')), 'http1')
})
