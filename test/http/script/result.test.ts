// What a hook returns, checked and normalised (appliance/src/http/script/result.ts): the CloudFront
// Functions multiValue rules, and every rejection naming its field.
import test from 'ava'
import { toCfRequest, toCfResponse } from '../../../appliance/src/http/script/index.ts'
import {
  checkRequestResult,
  checkResponseResult,
  MAX_FIELD_BYTES,
} from '../../../appliance/src/http/script/result.ts'
import type { CfRequest, CfResponse } from '../../../appliance/src/http/script/types.ts'

const limits = { maxBodyBytes: 1024 }
const original = (): CfRequest =>
  toCfRequest('POST', '/api/items?x=1&x=2', [
    ['Host', 'api.example'],
    ['Accept', 'a/json'],
    ['Accept', 'a/xml'],
    ['Content-Length', '5'],
    ['Cookie', 'sid=1; sid=2'],
  ])
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v))
// biome-ignore lint/suspicious/noExplicitAny: the tests reshape script results freely, as scripts do
type Loose = Record<string, any>

function request(mutate: (r: Loose) => unknown) {
  const r = copy(original()) as Loose
  const v = mutate(r)
  return checkRequestResult(v === undefined ? r : v, original(), limits)
}

test('the request as given comes back unchanged', (t) => {
  const out = checkRequestResult(copy(original()), original(), limits)
  t.deepEqual(out, { ok: true, value: { kind: 'request', request: original() } })
})

test('rejections name the field', (t) => {
  const cases: [string, (r: Loose) => unknown, string][] = [
    [
      'method',
      (r) => {
        r.method = 'GET'
      },
      'request.method: read-only (was "POST", got "GET")',
    ],
    [
      'uri missing',
      (r) => {
        delete r.uri
      },
      'request.uri: missing',
    ],
    [
      'uri type',
      (r) => {
        r.uri = 5
      },
      'request.uri: not a string',
    ],
    [
      'uri relative',
      (r) => {
        r.uri = 'x/y'
      },
      'request.uri: must start with "/"',
    ],
    [
      'uri space',
      (r) => {
        r.uri = '/a b'
      },
      'request.uri: contains a space at 2',
    ],
    [
      'uri CRLF',
      (r) => {
        r.uri = '/a\r\nX: y'
      },
      'request.uri: contains control character 0x0d at 2',
    ],
    [
      'uri query',
      (r) => {
        r.uri = '/a?b=1'
      },
      'request.uri: contains "?"; put the query in request.querystring',
    ],
    [
      'uri non-ASCII',
      (r) => {
        r.uri = '/café'
      },
      'request.uri: contains a non-ASCII character at 4; percent-encode it',
    ],
    [
      'headers missing',
      (r) => {
        delete r.headers
      },
      'request.headers: missing',
    ],
    [
      'headers array',
      (r) => {
        r.headers = []
      },
      'request.headers: not an object',
    ],
    [
      'header not object',
      (r) => {
        r.headers.x = 'v'
      },
      'request.headers.x: not an object with a value',
    ],
    [
      'header value type',
      (r) => {
        r.headers.x = { value: 1 }
      },
      'request.headers.x.value: not a string',
    ],
    [
      'header upper case',
      (r) => {
        r.headers['X-Foo'] = { value: 'v' }
      },
      'request.headers.X-Foo: header names must be lower case',
    ],
    [
      'header bad name',
      (r) => {
        r.headers['a b'] = { value: 'v' }
      },
      'request.headers["a b"]: not a valid header name (RFC 9110 token)',
    ],
    [
      'header CRLF',
      (r) => {
        r.headers.x = { value: 'v\r\nset-cookie: evil=1' }
      },
      'request.headers.x.value: contains CR, LF or NUL (header injection)',
    ],
    [
      'header NUL',
      (r) => {
        r.headers.x = { value: 'v\u0000' }
      },
      'request.headers.x.value: contains CR, LF or NUL (header injection)',
    ],
    [
      'header control',
      (r) => {
        r.headers.x = { value: 'v\u0007' }
      },
      'request.headers.x.value: contains control character 0x07',
    ],
    [
      'header wide',
      (r) => {
        r.headers.x = { value: 'snow ☃' }
      },
      'request.headers.x.value: contains a character above U+00FF at 5',
    ],
    [
      'multiValue element',
      (r) => {
        r.headers.accept.multiValue[1] = { value: 'ok\n' }
      },
      'request.headers.accept.multiValue[1].value: contains CR, LF or NUL (header injection)',
    ],
    [
      'multiValue empty',
      (r) => {
        r.headers.accept.multiValue = []
      },
      'request.headers.accept.multiValue: empty (delete the field to remove it)',
    ],
    [
      'cookie header',
      (r) => {
        r.headers.cookie = { value: 'a=1' }
      },
      'request.headers.cookie: cookies go in request.cookies',
    ],
    [
      'content-length',
      (r) => {
        r.headers['content-length'] = { value: '0' }
      },
      'request.headers.content-length: read-only (the request body is forwarded as received)',
    ],
    [
      'content-length removed',
      (r) => {
        delete r.headers['content-length']
      },
      'request.headers.content-length: read-only (the request body is forwarded as received)',
    ],
    [
      'transfer-encoding',
      (r) => {
        r.headers['transfer-encoding'] = { value: 'chunked' }
      },
      'request.headers.transfer-encoding: read-only (the request body is forwarded as received)',
    ],
    [
      'cookie injection',
      (r) => {
        r.cookies.sid = { value: '1; admin=1' }
      },
      'request.cookies.sid.value: contains ";" (it would start another cookie)',
    ],
    [
      'cookie name',
      (r) => {
        r.cookies['a=b'] = { value: '1' }
      },
      'request.cookies["a=b"]: cookie names cannot contain "="',
    ],
    [
      'cookies missing',
      (r) => {
        delete r.cookies
      },
      'request.cookies: missing',
    ],
    [
      'querystring type',
      (r) => {
        r.querystring = 5
      },
      'request.querystring: not an object',
    ],
    ['undefined', () => null, 'onRequest returned null; return the request or a response object'],
    ['array', () => [], 'onRequest returned an array; return the request or a response object'],
    ['string', () => 'ok', 'onRequest returned "ok"; return the request or a response object'],
  ]
  for (const [label, mutate, message] of cases) {
    t.deepEqual(request(mutate), { ok: false, message }, label)
  }
})

test('CloudFront multiValue rules: a changed list wins, a changed value replaces only the first', (t) => {
  const out = (mutate: (r: Loose) => unknown) => {
    const r = request(mutate)
    if (!r.ok || r.value.kind !== 'request') throw new Error(JSON.stringify(r))
    return r.value.request
  }
  // Only `value` changed: the first occurrence is replaced, the rest stay (rule 2).
  t.deepEqual(
    out((r) => {
      r.headers.accept.value = 'text/html'
    }).headers.accept,
    {
      value: 'text/html',
      multiValue: [{ value: 'text/html' }, { value: 'a/xml' }],
    },
  )
  // The same when the script replaced the whole field without a list.
  t.deepEqual(
    out((r) => {
      r.querystring.x = { value: '9' }
    }).querystring.x,
    {
      value: '9',
      multiValue: [{ value: '9' }, { value: '2' }],
    },
  )
  // A changed list is applied whole and `value` ignored (rule 1).
  t.deepEqual(
    out((r) => {
      r.headers.accept.value = 'ignored'
      r.headers.accept.multiValue = [{ value: 'b' }, { value: 'c' }, { value: 'd' }]
    }).headers.accept,
    { value: 'b', multiValue: [{ value: 'b' }, { value: 'c' }, { value: 'd' }] },
  )
  // A one-element list removes the duplicates.
  t.deepEqual(
    out((r) => {
      r.cookies.sid.multiValue = [{ value: '7' }]
    }).cookies.sid,
    { value: '7' },
  )
  // New fields, deleted fields.
  const changed = out((r) => {
    r.headers['x-new'] = { value: 'n', multiValue: [{ value: 'n' }, { value: 'm' }] }
    delete r.headers.accept
  })
  t.deepEqual(changed.headers['x-new'], { value: 'n', multiValue: [{ value: 'n' }, { value: 'm' }] })
  t.false('accept' in changed.headers)
})

test('querystring may be set as a string (CloudFront Functions 2.0)', (t) => {
  const r = request((r) => {
    r.querystring = 'b=2&a=1&a=3'
  })
  t.true(r.ok)
  if (r.ok && r.value.kind === 'request') {
    t.deepEqual(r.value.request.querystring, {
      b: { value: '2' },
      a: { value: '1', multiValue: [{ value: '1' }, { value: '3' }] },
    })
  }
  const q = request((r) => {
    r.querystring = '?z=1'
  })
  t.true(q.ok && q.value.kind === 'request' && q.value.request.querystring.z?.value === '1')
})

test('a response short-circuits; its fields are checked the same way', (t) => {
  const ok = checkRequestResult(
    {
      statusCode: 302,
      statusDescription: 'Found',
      headers: { location: { value: 'https://example.com/' } },
      cookies: { s: { value: '1', attributes: 'Path=/; HttpOnly' } },
      body: 'moved',
    },
    original(),
    limits,
  )
  t.deepEqual(ok, {
    ok: true,
    value: {
      kind: 'response',
      response: {
        statusCode: 302,
        statusDescription: 'Found',
        headers: { location: { value: 'https://example.com/' } },
        cookies: { s: { value: '1', attributes: 'Path=/; HttpOnly' } },
        body: { encoding: 'text', data: 'moved' },
      },
    },
  })
  t.deepEqual(checkRequestResult({ statusCode: 403 }, original(), limits), {
    ok: true,
    value: { kind: 'response', response: { statusCode: 403, headers: {}, cookies: {} } },
  })
  const bad: [unknown, string][] = [
    [{ statusCode: '302' }, 'response.statusCode: "302" is not an integer 200-599'],
    [{ statusCode: 302.5 }, 'response.statusCode: 302.5 is not an integer 200-599'],
    [{ statusCode: 101 }, 'response.statusCode: 101 is not an integer 200-599'],
    [{ statusCode: 600 }, 'response.statusCode: 600 is not an integer 200-599'],
    [
      { statusCode: 302, headers: { location: { value: 5 } } },
      'response.headers.location.value: not a string',
    ],
    [
      { statusCode: 302, headers: { location: { value: '/\r\nx: 1' } } },
      'response.headers.location.value: contains CR, LF or NUL (header injection)',
    ],
    [
      { statusCode: 200, statusDescription: 'OK\r\n' },
      'response.statusDescription: contains CR, LF or NUL (header injection)',
    ],
    [
      { statusCode: 200, headers: { 'set-cookie': { value: 'a=1' } } },
      'response.headers.set-cookie: cookies go in response.cookies',
    ],
    [
      { statusCode: 200, cookies: { a: { value: '1', attributes: 'Path=/\nX' } } },
      'response.cookies.a.attributes: contains CR, LF or NUL (header injection)',
    ],
    [
      { statusCode: 200, body: { encoding: 'gzip', data: '' } },
      'response.body.encoding: must be "text" or "base64"',
    ],
    [{ statusCode: 200, body: { encoding: 'base64', data: 'abc' } }, 'response.body.data: not valid base64'],
    [{ statusCode: 200, body: { encoding: 'base64', data: 'ab$=' } }, 'response.body.data: not valid base64'],
    [{ statusCode: 200, body: { encoding: 'text' } }, 'response.body.data: not a string'],
    [{ statusCode: 200, body: 5 }, 'response.body: not a string or an object'],
    [
      { statusCode: 200, body: 'x'.repeat(1025) },
      'response.body.data: 1025 bytes exceed the 1024-byte limit',
    ],
    [{ statusCode: 200, body: '☃'.repeat(342) }, 'response.body.data: 1026 bytes exceed the 1024-byte limit'],
    [{ statusCode: 204, body: 'x' }, 'response.body: a 204 response has no body'],
    [
      { statusCode: 200, headers: { 'transfer-encoding': { value: 'chunked' } } },
      'response.headers.transfer-encoding: read-only (the proxy frames the body)',
    ],
  ]
  for (const [v, message] of bad)
    t.deepEqual(checkRequestResult(v, original(), limits), { ok: false, message })
  const b64 = Buffer.alloc(1024, 7).toString('base64')
  t.true(
    checkRequestResult({ statusCode: 200, body: { encoding: 'base64', data: b64 } }, original(), limits).ok,
  )
})

test('onResponse: framing stays unless the body is replaced', (t) => {
  const resp = (): CfResponse =>
    toCfResponse(200, 'OK', [
      ['Content-Type', 'text/plain'],
      ['Content-Length', '5'],
    ])
  const check = (mutate: (r: Loose) => void, offered?: string) => {
    const o = resp()
    if (offered !== undefined) o.body = { encoding: 'text', data: offered }
    const r = copy(o) as Loose
    mutate(r)
    return checkResponseResult(r, o, limits)
  }
  t.true(check(() => {}).ok)
  t.deepEqual(
    check((r) => {
      r.headers['content-length'] = { value: '9' }
    }),
    {
      ok: false,
      message:
        "response.headers.content-length: read-only unless the body is replaced (the origin's body goes through)",
    },
  )
  t.true(
    check((r) => {
      r.body = 'new body'
      r.headers['content-length'] = { value: '8' }
    }).ok,
    'a replaced body is sent with a length the proxy computes',
  )
  t.false(
    check((r) => {
      r.headers['content-length'] = { value: '9' }
    }, 'hello').ok,
    'handing the offered body back unchanged is not a replacement',
  )
  t.true(
    check((r) => {
      r.body = { encoding: 'base64', data: Buffer.from('hello').toString('base64') }
    }, 'hello').ok,
  )
  t.deepEqual(
    check((r) => {
      r.headers['transfer-encoding'] = { value: 'chunked' }
    }),
    {
      ok: false,
      message: 'response.headers.transfer-encoding: read-only (the proxy frames the body)',
    },
  )
  t.deepEqual(checkResponseResult(undefined, resp(), limits), {
    ok: false,
    message: 'onResponse returned undefined; return the response object',
  })
})

test('fields of one message are bounded in total', (t) => {
  const r = request((r) => {
    for (let i = 0; i < 70; i++) r.headers[`x-${i}`] = { value: 'v'.repeat(1000) }
  })
  t.false(r.ok)
  if (!r.ok)
    t.regex(r.message, new RegExp(`^request: \\d+ bytes of fields exceed the ${MAX_FIELD_BYTES}-byte limit$`))
})
