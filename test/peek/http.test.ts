import test from 'ava'
import { HttpRequestInfo, peekHttpRequest } from '../../appliance/src/peek/http.ts'
import { Peek } from '../../appliance/src/peek/status.ts'
import { curlFirstBytes, hasCurl, missingTool, nodeHttpRequest } from './capture.ts'

const info = new HttpRequestInfo()
const peek = (s: string | Buffer, max?: number) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s
  return peekHttpRequest(b, 0, b.length, info, max)
}

test('request line, Host and fields; every shorter prefix needs more', (t) => {
  const req =
    'GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\nAccept: text/html\r\n\r\nbody'
  t.is(peek(req), Peek.complete)
  t.is(info.method, 'GET')
  t.is(info.target, '/a/b?x=1')
  t.is(info.path, '/a/b')
  t.is(info.host, 'Example.com:8080')
  t.is(info.version, 'HTTP/1.1')
  t.deepEqual(info.headers.get('accept'), ['*/*', 'text/html'])
  t.deepEqual(info.headers.get('user-agent'), ['curl/8'])
  t.is(info.consumed, req.length - 4)
  for (let n = 0; n < req.length - 4; n++) t.is(peek(req.slice(0, n)), Peek.needMore, `prefix ${n}`)
})

test('a real Node http request', async (t) => {
  const b = await nodeHttpRequest('/upload?q=1', { 'X-Trace': 'abc' })
  t.is(peek(b), Peek.complete)
  t.is(info.method, 'POST')
  t.is(info.path, '/upload')
  t.true(info.host?.startsWith('127.0.0.1:'))
  t.deepEqual(info.headers.get('x-trace'), ['abc'])
})

test('target forms: absolute (authority wins over Host), authority (CONNECT), asterisk', (t) => {
  t.is(peek('GET http://user@h.example:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n'), Peek.complete)
  t.is(info.host, 'h.example:81')
  t.is(info.path, '/p')
  t.is(peek('GET http://h.example HTTP/1.1\r\n\r\n'), Peek.complete)
  t.is(info.path, '/')
  t.is(peek('CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n'), Peek.complete)
  t.is(info.host, 'api.example:443')
  t.is(info.path, null)
  t.is(peek('OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n'), Peek.complete)
  t.is(info.path, '*')
})

test('HTTP/1.0 without Host, bare LF line ends, extension methods', (t) => {
  t.is(peek('GET / HTTP/1.0\n\n'), Peek.complete)
  t.is(info.host, null)
  t.is(info.version, 'HTTP/1.0')
  t.is(peek('PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n'), Peek.complete)
  t.is(info.method, 'PURGE')
  t.is(peek('GET / HTTP/1.1\r\nHost:\r\n\r\n'), Peek.complete)
  t.is(info.host, null)
})

test('not HTTP/1', (t) => {
  for (const s of [
    '\x16\x03\x01\x02\x00',
    'SSH-2.0-OpenSSH_9.6\r\n',
    'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    'get / HTTP/1.1\r\n\r\n'.replace('get', 'g\x00t'),
    'HELLO world\r\n',
    ' GET / HTTP/1.1\r\n',
    `${'A'.repeat(40)} / HTTP/1.1\r\n`,
    'GET /\r\n',
  ]) {
    t.is(peek(s), s.startsWith('GET') ? Peek.malformed : Peek.notMatched, JSON.stringify(s))
  }
  t.is(peek(''), Peek.needMore)
  t.is(peek('GE'), Peek.needMore)
})

const malformed: [string, string][] = [
  ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n'],
  ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
  ['no colon', 'GET / HTTP/1.1\r\nHost a\r\n\r\n'],
  ['control character in value', 'GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n'],
  ['target with a control character', 'GET /\x7f HTTP/1.1\r\n\r\n'],
  ['known method, broken version', 'GET / HTTP/x.1\r\n\r\n'],
  ['known method, missing target', 'GET  HTTP/1.1\r\n\r\n'],
  ['relative target that is not origin form', 'GET foo HTTP/1.1\r\n\r\n'],
]
for (const [name, s] of malformed) test(`malformed request: ${name}`, (t) => t.is(peek(s), Peek.malformed))

test('size bound: a head that does not end within maxBytes is malformed', (t) => {
  const s = `GET / HTTP/1.1\r\nX: ${'a'.repeat(200)}\r\n`
  t.is(peek(s, 100), Peek.malformed)
  t.is(peek(s, 1000), Peek.needMore)
  t.is(peek(`GET /${'a'.repeat(200)}`, 100), Peek.malformed)
  t.is(peek(`FOO /${'a'.repeat(200)}`, 100), Peek.notMatched)
})

test('curl’s request, with a Host that differs from the connection address', async (t) => {
  if (missingTool(t, 'curl', hasCurl())) return
  const b = await curlFirstBytes(
    (port) => `http://127.0.0.1:${port}/v1/items?id=3`,
    ['-H', 'Host: api.example.com', '-H', 'X-Tenant: blue'],
  )
  t.is(peek(b), Peek.complete)
  t.is(info.method, 'GET')
  t.is(info.path, '/v1/items')
  t.is(info.host, 'api.example.com')
  t.deepEqual(info.headers.get('x-tenant'), ['blue'])
  t.true(info.headers.get('user-agent')?.[0]?.startsWith('curl/'))
})
