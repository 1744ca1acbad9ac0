// HAR 1.2 entries of intercepted exchanges: what an entry holds, what is redacted, how bodies are kept and
// cut; the recorder's bounds (per body, and the memory budget shared by exchanges in flight); the live
// export's document and queue bound; the --har-dir files (a whole document after every write, rotation,
// pruning, the queue bound). Every document is checked with the HAR 1.2 validator in test/support/har.ts.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { ExchangeStart } from '../../appliance/src/http/index.ts'
import {
  buildHarEntry,
  HAR_TAIL,
  type HarEntry,
  type HarExchange,
  harHead,
  REDACTED,
} from '../../appliance/src/visibility/har.ts'
import { HarFiles } from '../../appliance/src/visibility/har-files.ts'
import { HAR_COUNTS, HAR_CREATOR, HarHub } from '../../appliance/src/visibility/har-hub.ts'
import { BodyBudget, HarRecorder, type RecorderContext } from '../../appliance/src/visibility/har-recorder.ts'
import { harProblems } from '../support/har.ts'

const doc = (entries: HarEntry[]) => ({ log: { version: '1.2', creator: HAR_CREATOR, entries } })

function exchange(over: Partial<HarExchange> = {}): HarExchange {
  return {
    startedMs: Date.UTC(2026, 10, 21, 12, 0, 0, 250),
    requestEndAt: 1.5,
    responseAt: 10.25,
    endAt: 12.5,
    complete: true,
    scheme: 'https',
    authority: 'sts.us-east-1.amazonaws.com',
    method: 'POST',
    target: '/?Action=GetCallerIdentity&Version=2011-06-15',
    httpVersion: '1.1',
    requestFields: [
      ['host', 'sts.us-east-1.amazonaws.com'],
      ['content-type', 'application/x-www-form-urlencoded'],
      [
        'authorization',
        'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/20261121/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=abc',
      ],
      ['x-amz-security-token', 'FwoGZXIvYXdzE-session-token'],
      ['cookie', 'session=s3cret; theme=dark'],
      ['x-api-key', 'k-123'],
    ],
    requestBody: { size: 11, kept: Buffer.from('a=1&b=two&c') },
    response: {
      status: 200,
      statusMessage: 'OK',
      fields: [
        ['content-type', 'text/xml'],
        [
          'set-cookie',
          'sid=abc123; Path=/; Domain=example.test; Secure; HttpOnly; Expires=Wed, 21 Oct 2026 07:28:00 GMT',
        ],
        ['location', '/next'],
      ],
    },
    responseBody: { size: 20, kept: Buffer.from('<ok>609629065308</ok') },
    serverIp: '10.0.2.2',
    flowgate: {
      policy: 'aws',
      rule: 'sts',
      action: 'Inspect',
      endpoint: 'vpce-0123456789abcdef0',
      client: '10.0.1.2:40000',
      awsAccountId: '609629065308',
    },
    ...over,
  }
}

test('an entry: heads, query, bodies, timings summing to time, flowgate facts; valid HAR 1.2', (t) => {
  const e = buildHarEntry(exchange(), { maxBodyBytes: 65_536 })
  t.deepEqual(harProblems(doc([e])), [])
  t.is(e.startedDateTime, '2026-11-21T12:00:00.250Z')
  t.is(e.request.url, 'https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15')
  t.is(e.request.httpVersion, 'HTTP/1.1')
  t.deepEqual(e.request.queryString, [
    { name: 'Action', value: 'GetCallerIdentity' },
    { name: 'Version', value: '2011-06-15' },
  ])
  t.deepEqual(e.request.postData, {
    mimeType: 'application/x-www-form-urlencoded',
    params: [],
    text: 'a=1&b=two&c',
  })
  t.is(e.request.bodySize, 11)
  t.is(e.response.status, 200)
  t.is(e.response.redirectURL, '/next')
  t.deepEqual(e.response.content, { size: 20, mimeType: 'text/xml', text: '<ok>609629065308</ok' })
  t.deepEqual(e.timings, { blocked: -1, dns: -1, connect: -1, ssl: -1, send: 1.5, wait: 8.75, receive: 2.25 })
  t.is(e.time, 12.5)
  t.is(e.serverIPAddress, '10.0.2.2')
  t.is(e.connection, '10.0.1.2:40000')
  t.deepEqual(e._flowgate, {
    policy: 'aws',
    rule: 'sts',
    action: 'Inspect',
    endpoint: 'vpce-0123456789abcdef0',
    client: '10.0.1.2:40000',
    awsAccountId: '609629065308',
    complete: true,
  })
})

test('redaction: authorization keeps its scheme; cookies, set-cookie, session tokens and policy-named headers are gone', (t) => {
  const e = buildHarEntry(exchange(), { maxBodyBytes: 65_536, redactHeaders: ['x-api-key'] })
  const h = Object.fromEntries(e.request.headers.map((x) => [x.name, x.value]))
  t.is(h.authorization, `AWS4-HMAC-SHA256 ${REDACTED}`)
  t.is(h['x-amz-security-token'], REDACTED)
  t.is(h.cookie, REDACTED)
  t.is(h['x-api-key'], REDACTED)
  t.is(h.host, 'sts.us-east-1.amazonaws.com')
  t.deepEqual(e.request.cookies, [
    { name: 'session', value: REDACTED },
    { name: 'theme', value: REDACTED },
  ])
  t.is(e.response.headers.find((x) => x.name === 'set-cookie')!.value, REDACTED)
  t.deepEqual(e.response.cookies, [
    {
      name: 'sid',
      value: REDACTED,
      path: '/',
      domain: 'example.test',
      secure: true,
      httpOnly: true,
      expires: '2026-10-21T07:28:00.000Z',
    },
  ])
  const text = JSON.stringify(e)
  for (const secret of [
    'Signature=abc',
    'session-token',
    's3cret',
    'abc123',
    'k-123',
    'ASIAY34FZKBOKMUTVV7A',
  ])
    t.false(text.includes(secret), secret)
  // Not named by the policy: kept.
  const plain = buildHarEntry(exchange(), { maxBodyBytes: 65_536 })
  t.is(plain.request.headers.find((x) => x.name === 'x-api-key')!.value, 'k-123')
})

test('a presigned URL: the signature and session token are redacted in the url and the query list', (t) => {
  const target =
    '/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAY34FZKBOKMUTVV7A%2F20261121%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token=tok%2Fen&X-Amz-Signature=deadbeef&x=a+b'
  const e = buildHarEntry(
    exchange({ method: 'GET', target, requestBody: { size: 0, kept: Buffer.alloc(0) } }),
    {
      maxBodyBytes: 10,
    },
  )
  t.deepEqual(harProblems(doc([e])), [])
  t.is(
    e.request.url,
    'https://sts.us-east-1.amazonaws.com/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAY34FZKBOKMUTVV7A%2F20261121%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token=%5Bredacted%5D&X-Amz-Signature=%5Bredacted%5D&x=a+b',
  )
  t.deepEqual(
    e.request.queryString.map((q) => `${q.name}=${q.value}`),
    [
      'X-Amz-Algorithm=AWS4-HMAC-SHA256',
      'X-Amz-Credential=ASIAY34FZKBOKMUTVV7A/20261121/us-east-1/s3/aws4_request',
      `X-Amz-Security-Token=${REDACTED}`,
      `X-Amz-Signature=${REDACTED}`,
      'x=a b',
    ],
  )
  t.is(e.request.postData, undefined)
  t.is(e.request.bodySize, 0)
})

test('bodies: binary as base64, cut bodies say so, a cut inside a UTF-8 character drops the partial character', (t) => {
  const binary = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01])
  const bin = buildHarEntry(exchange({ responseBody: { size: 6, kept: binary } }), { maxBodyBytes: 64 })
  t.deepEqual(bin.response.content, {
    size: 6,
    mimeType: 'text/xml',
    text: binary.toString('base64'),
    encoding: 'base64',
  })
  // "héllo wörld" cut after 3 bytes: h + the 2-byte é is whole; after 2: the é's first byte is dropped.
  const word = Buffer.from('héllo wörld')
  const cut3 = buildHarEntry(exchange({ responseBody: { size: word.length, kept: word.subarray(0, 3) } }), {
    maxBodyBytes: 3,
  })
  t.is(cut3.response.content.text, 'hé')
  t.is(cut3.response.content.size, word.length)
  t.is(cut3.response.bodySize, word.length)
  t.true(cut3.response.content._truncated)
  t.is(cut3.response.content.comment, `truncated: 3 of ${word.length} bytes kept`)
  const cut2 = buildHarEntry(exchange({ responseBody: { size: word.length, kept: word.subarray(0, 2) } }), {
    maxBodyBytes: 2,
  })
  t.is(cut2.response.content.text, 'h')
  // Bytes kept under the policy's limit: the memory bound cut it.
  const bound = buildHarEntry(exchange({ responseBody: { size: 100, kept: Buffer.from('abc') } }), {
    maxBodyBytes: 50,
  })
  t.is(bound.response.content.comment, 'truncated: 3 of 100 bytes kept (memory bound)')
  // A request body cut to nothing (maxBodyBytes 0): sizes only.
  const none = buildHarEntry(exchange({ requestBody: { size: 11, kept: Buffer.alloc(0) } }), {
    maxBodyBytes: 0,
  })
  t.like(none.request.postData, { text: '', _truncated: true, comment: 'truncated: 0 of 11 bytes kept' })
  t.is(none.request.bodySize, 11)
  // Content-Encoding is not undone, and the entry says so.
  const gz = buildHarEntry(
    exchange({
      response: { status: 200, statusMessage: 'OK', fields: [['content-encoding', 'gzip']] },
      responseBody: { size: 3, kept: Buffer.from([0x1f, 0x8b, 0x00]) },
    }),
    { maxBodyBytes: 64 },
  )
  t.like(gz.response.content, { encoding: 'base64', mimeType: 'x-unknown', comment: 'as sent: gzip-encoded' })
  for (const e of [bin, cut3, cut2, bound, none, gz]) t.deepEqual(harProblems(doc([e])), [])
})

test('never answered, and cut short: status 0 or a comment, complete false; still valid', (t) => {
  const lost = buildHarEntry(
    exchange({
      response: undefined,
      responseAt: undefined,
      complete: false,
      responseBody: { size: 0, kept: Buffer.alloc(0) },
    }),
    { maxBodyBytes: 64 },
  )
  t.is(lost.response.status, 0)
  t.is(lost.response.bodySize, -1)
  t.false(lost._flowgate.complete)
  t.is(lost.timings.receive, 0)
  const cut = buildHarEntry(exchange({ complete: false }), { maxBodyBytes: 64 })
  t.regex(cut.response.comment!, /cut short/)
  t.deepEqual(harProblems(doc([lost, cut])), [])
})

test('URLs: h2 over TLS, cleartext without Host (the flow authority), absolute-form, asterisk', (t) => {
  const noHost = exchange({ scheme: 'http', authority: '10.0.2.2', requestFields: [], target: '/x' })
  t.is(buildHarEntry(noHost, { maxBodyBytes: 1 }).request.url, 'http://10.0.2.2/x')
  const abs = exchange({ target: 'http://other.test/y?q=1' })
  t.is(buildHarEntry(abs, { maxBodyBytes: 1 }).request.url, 'http://other.test/y?q=1')
  const star = exchange({ method: 'OPTIONS', target: '*' })
  t.is(buildHarEntry(star, { maxBodyBytes: 1 }).request.url, 'https://sts.us-east-1.amazonaws.com')
  t.is(buildHarEntry(exchange({ httpVersion: '2.0' }), { maxBodyBytes: 1 }).response.httpVersion, 'HTTP/2.0')
})

test('the validator is not a rubber stamp: it refuses what HAR 1.2 does not allow', (t) => {
  const e = buildHarEntry(exchange(), { maxBodyBytes: 64 })
  // biome-ignore lint/suspicious/noExplicitAny: mutating a parsed document
  const bad = (mutate: (x: Record<string, any>) => void) => {
    const copy = JSON.parse(JSON.stringify(e))
    mutate(copy)
    return harProblems(doc([copy]))
  }
  t.not(bad((x) => delete x.request.cookies).length, 0)
  t.not(bad((x) => (x.response.status = '200')).length, 0)
  t.not(bad((x) => (x.extra = 1)).length, 0)
  t.not(bad((x) => (x.time = 99)).length, 0)
  t.not(bad((x) => (x.startedDateTime = 'yesterday')).length, 0)
  t.not(bad((x) => delete x.timings.wait).length, 0)
  t.deepEqual(
    bad((x) => (x._mine = 1)),
    [],
  )
})

// The recorder as the HTTP layer drives it.
function recorder(over: Partial<RecorderContext> = {}, start: Partial<ExchangeStart> = {}) {
  const entries: HarEntry[] = []
  let clock = 100
  const c: RecorderContext = {
    scheme: 'https',
    authority: 'api.example.test',
    serverIp: '10.0.2.2',
    endpoint: 'vpce-0123456789abcdef0',
    client: '10.0.1.2:40000',
    policy: 'p',
    rule: 'r',
    awsAccountId: null,
    options: { maxBodyBytes: 8 },
    budget: new BodyBudget(1024),
    now: () => clock,
    wallNow: () => Date.UTC(2026, 0, 1),
    emit: (e) => entries.push(e),
    ...over,
  }
  const r = new HarRecorder(
    {
      method: 'PUT',
      target: '/items/1',
      fields: [['host', 'api.example.test']],
      httpVersion: '2.0',
      decision: { action: 'Inspect', policy: 'p', rule: 'r' },
      ...start,
    },
    c,
  )
  return { r, entries, c, tick: (ms: number) => (clock += ms) }
}

test('recorder: bodies kept up to the limit across chunks, sizes whole; times from its clock; one entry per exchange', (t) => {
  const { r, entries, c, tick } = recorder()
  const chunk = Buffer.from('12345')
  r.requestBody(chunk)
  chunk.fill(0x41) // the HTTP layer's buffer is reused: the recorder kept a copy
  r.requestBody(Buffer.from('67890'))
  tick(2)
  r.requestEnd()
  tick(3)
  r.response(201, 'Created', [['content-type', 'text/plain']])
  r.response(500, 'ignored', []) // the first head counts
  r.responseBody(Buffer.from('created!!!'))
  t.is(c.budget.used, 16)
  tick(1)
  r.end(true)
  r.end(false) // a second end is ignored
  t.is(entries.length, 1)
  t.is(c.budget.used, 0, 'the budget is given back')
  const e = entries[0]!
  t.like(e.request.postData, { text: '12345678', _truncated: true })
  t.is(e.request.bodySize, 10)
  t.is(e.response.status, 201)
  t.like(e.response.content, { size: 10, text: 'created!', _truncated: true })
  t.deepEqual([e.timings.send, e.timings.wait, e.timings.receive, e.time], [2, 3, 1, 6])
  t.is(e.request.httpVersion, 'HTTP/2.0')
  t.deepEqual(harProblems(doc(entries)), [])
})

test('recorder: the shared budget cuts bodies (counted) instead of holding more; freed when exchanges end', (t) => {
  const budget = new BodyBudget(10)
  const a = recorder({ budget, options: { maxBodyBytes: 8 } })
  const b = recorder({ budget, options: { maxBodyBytes: 8 } })
  a.r.responseBody(Buffer.from('aaaaaaaa')) // 8 of 10
  b.r.responseBody(Buffer.from('bbbbbbbb')) // 2 left
  t.is(budget.used, 10)
  t.is(budget.cut, 1)
  b.r.responseBody(Buffer.from('bb')) // nothing more for a cut body
  a.r.response(200, 'OK', [])
  b.r.response(200, 'OK', [])
  a.r.end(true)
  b.r.end(true)
  t.is(budget.used, 0)
  t.is(a.entries[0]!.response.content.text, 'aaaaaaaa')
  t.is(b.entries[0]!.response.content.text, 'bb')
  t.is(b.entries[0]!.response.content.size, 10)
  t.regex(b.entries[0]!.response.content.comment!, /memory bound/)
})

test('the hub: inactive without sinks; a live export is a HAR document with its tail; bounded queue drops and counts', async (t) => {
  const hub = new HarHub({ maxSessions: 2 })
  t.false(hub.active)
  const entry = buildHarEntry(exchange(), { maxBodyBytes: 64 })
  hub.emit(entry) // nobody listens: recorded, not written
  const s = hub.open({ seconds: 60, maxEntries: 3, maxQueueBytes: 6000 })!
  t.true(hub.active)
  t.truthy(hub.open({ seconds: 60, maxEntries: 1 }))
  t.is(hub.open({ seconds: 60, maxEntries: 1 }), undefined, 'past maxSessions')
  const chunks: Buffer[] = []
  // Nobody reads yet: the queue fills and the rest is dropped.
  for (let i = 0; i < 10 && s.entries < 3; i++) hub.emit(entry)
  t.true(s.dropped > 0 || s.entries === 3)
  const done = new Promise<void>((resolve) => s.stream.on('end', resolve))
  s.stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)))
  while (!s.ended) {
    hub.emit(entry)
    await new Promise((r) => setImmediate(r))
  }
  await done
  const har = JSON.parse(Buffer.concat(chunks).toString())
  t.deepEqual(harProblems(har), [])
  t.is(har.log.entries.length, 3)
  t.deepEqual(har.log._flowgate, { dropped: s.dropped, ended: 'entries' })
  t.is(hub.size, 0, 'a finished export leaves the hub')
  t.is(hub.counts[HAR_COUNTS.written], 3 + 1) // three into s, one into the one-entry export
  t.true(hub.counts[HAR_COUNTS.recorded]! >= 4)
  t.false(hub.active)
  await hub.close()
})

test('a live export ends on its timer and when its reader goes away', async (t) => {
  const hub = new HarHub()
  const s = hub.open({ seconds: 1, maxEntries: 100 })!
  const text: string[] = []
  s.stream.on('data', (c: Buffer) => text.push(c.toString()))
  // The export's timer is unref'd (a server keeps the process up): this one keeps the test's up.
  const hold = setTimeout(() => undefined, 5000)
  await new Promise<void>((r) => s.stream.on('end', r))
  clearTimeout(hold)
  t.is(s.ended, 'seconds')
  t.deepEqual(JSON.parse(text.join('')).log.entries, [])
  const gone = hub.open({ seconds: 60, maxEntries: 100 })!
  t.is(hub.size, 1)
  gone.stream.destroy()
  await new Promise((r) => setImmediate(r))
  t.is(gone.ended, 'closed')
  t.is(hub.size, 0)
})

test('--har-dir files: a whole HAR document after every write, rotated past the size, oldest pruned', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fg-har-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let now = Date.UTC(2026, 10, 21, 12, 0, 0)
  const files = new HarFiles({ dir, maxFileBytes: 6000, keepFiles: 2, now: () => now })
  const entry = JSON.stringify(buildHarEntry(exchange(), { maxBodyBytes: 64 }))
  t.true(files.push(entry))
  await new Promise((r) => setTimeout(r, 50))
  const first = readdirSync(dir)
  t.deepEqual(first, ['flowgate-20261121T120000Z-0000.har'])
  const one = JSON.parse(readFileSync(join(dir, first[0]!), 'utf8'))
  t.deepEqual(harProblems(one), [])
  t.is(one.log.entries.length, 1)
  t.is(statSync(join(dir, first[0]!)).mode & 0o777, 0o600)
  for (let i = 0; i < 12; i++) {
    now += 1000
    t.true(files.push(entry))
    await new Promise((r) => setTimeout(r, 10))
  }
  await files.close()
  const names = readdirSync(dir).sort()
  t.is(names.length, 2, names.join(' '))
  t.true(files.written.length > 2, 'rotated more than keepFiles times')
  let total = 0
  for (const n of names) {
    const har = JSON.parse(readFileSync(join(dir, n), 'utf8'))
    t.deepEqual(harProblems(har), [], n)
    total += har.log.entries.length
  }
  t.true(total >= 2)
  t.false(files.push(entry), 'closed')
})

test('--har-dir files: the queue is bounded while the disk is busy', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fg-har-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const files = new HarFiles({ dir, maxQueueBytes: 10_000 })
  const entry = JSON.stringify(buildHarEntry(exchange(), { maxBodyBytes: 64 }))
  let taken = 0
  for (let i = 0; i < 100; i++) if (files.push(entry)) taken++
  t.true(taken > 0 && taken < 100, String(taken))
  return files.close()
})

test('harHead + entries + HAR_TAIL is the document', (t) => {
  const e = buildHarEntry(exchange(), { maxBodyBytes: 64 })
  const text = `${harHead(HAR_CREATOR, 'x')}${JSON.stringify(e)},${JSON.stringify(e)}${HAR_TAIL}`
  const har = JSON.parse(text)
  t.is(har.log.comment, 'x')
  t.is(har.log.entries.length, 2)
  t.deepEqual(harProblems(har), [])
})
