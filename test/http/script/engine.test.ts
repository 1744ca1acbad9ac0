// ScriptEngine end to end: the shipped example scripts, rewrites, every failure reason, the limits, and
// recovery after a script crashes the sandbox. Real QuickJS, real events (toCfRequest/toCfResponse).
import { readFileSync } from 'node:fs'
import test from 'ava'
import { parse } from 'yaml'
import {
  type CfEvent,
  type CfRequest,
  fromCfRequest,
  fromCfResponse,
  ScriptEngine,
  toCfRequest,
  toCfResponse,
} from '../../../appliance/src/http/script/index.ts'

const engine = await ScriptEngine.create()
test.after.always(() => engine.dispose())

function requestEvent(url: string, headers: [string, string][] = [['Host', 'www.youtube.com']]): CfEvent {
  return {
    version: '1.0',
    context: { eventType: 'viewer-request', requestId: 'req-1', policy: 'p', rule: 'r' },
    viewer: { ip: '198.51.100.11' },
    request: toCfRequest('GET', url, headers),
  }
}

function responseEvent(body?: Buffer, headers: [string, string][] = []): CfEvent {
  return {
    ...requestEvent('/'),
    context: { eventType: 'viewer-response', requestId: 'req-1' },
    response: toCfResponse(200, 'OK', [['Content-Type', 'text/plain'], ...headers], body),
  }
}

/** Every hook script of an example policy, by rule name. */
function hooks(file: string): Record<string, { onRequest?: string; onResponse?: string }> {
  const doc = parse(readFileSync(new URL(`../../../examples/${file}`, import.meta.url), 'utf8'))
  const out: Record<string, { onRequest?: string; onResponse?: string }> = {}
  for (const r of doc.spec.rules) if (r.http) out[r.name] = r.http
  return out
}

test('youtube example: the allowed video passes unchanged, any other is redirected', (t) => {
  const { onRequest, onResponse } = hooks('youtube-one-video.yaml')['youtube-one-video']!
  const allowed = requestEvent('/watch?v=dQw4w9WgXcQ&t=42s', [
    ['Host', 'www.youtube.com'],
    ['Cookie', 'PREF=f6=40000000; VISITOR_INFO1_LIVE=x'],
  ])
  t.deepEqual(engine.runOnRequest(onRequest!, allowed), { ok: true, request: allowed.request })
  t.deepEqual(engine.runOnRequest(onRequest!, requestEvent('/results?search_query=cats')), {
    ok: true,
    request: requestEvent('/results?search_query=cats').request,
  })
  const other = engine.runOnRequest(onRequest!, requestEvent('/watch?v=9bZkp7q19f0'))
  t.deepEqual(other, {
    ok: true,
    response: {
      statusCode: 302,
      statusDescription: 'Found',
      headers: { location: { value: 'https://www.youtube.com/watch?v=dQw4w9WgXcQ' } },
      cookies: {},
    },
  })
  if (other.ok && 'response' in other) {
    t.deepEqual(fromCfResponse(other.response), {
      statusCode: 302,
      statusMessage: 'Found',
      headers: [['location', 'https://www.youtube.com/watch?v=dQw4w9WgXcQ']],
    })
  }
  const res = engine.runOnResponse(onResponse!, responseEvent(Buffer.from('<html>')))
  t.true(res.ok)
  if (res.ok) t.deepEqual(res.response.headers['x-flowgate'], { value: 'inspected' })
})

test('http-rules example: onResponse sets cache-control', (t) => {
  const { onResponse } = hooks('http-rules.yaml').deploys!
  const res = engine.runOnResponse(onResponse!, responseEvent(undefined, [['Cache-Control', 'max-age=60']]))
  t.true(res.ok)
  if (res.ok) t.deepEqual(res.response.headers['cache-control'], { value: 'no-store' })
})

test('a header added by onRequest reaches the forwarded request', (t) => {
  const src = `function onRequest(event) {
    var r = event.request
    r.headers['x-viewer'] = { value: event.viewer.ip }
    r.headers['x-rule'] = { value: event.context.policy + '/' + event.context.rule }
    r.querystring.added = { value: 'a b' }
    r.cookies.seen = { value: '1' }
    return r
  }`
  const r = engine.runOnRequest(src, requestEvent('/p?x=1'))
  t.true(r.ok && 'request' in r)
  if (r.ok && 'request' in r) {
    t.deepEqual(fromCfRequest(r.request), {
      method: 'GET',
      url: '/p?x=1&added=a%20b',
      headers: [
        ['host', 'www.youtube.com'],
        ['x-viewer', '198.51.100.11'],
        ['x-rule', 'p/r'],
        ['cookie', 'seen=1'],
      ],
    })
  }
})

test('onResponse rewrites a body it was given, within the limit', (t) => {
  const src = `function onResponse(event) {
    var res = event.response
    res.body = { encoding: 'text', data: res.body.data.toUpperCase() + ' (' + res.body.encoding + ')' }
    res.headers['content-type'] = { value: 'text/plain; charset=utf-8' }
    return res
  }`
  const r = engine.runOnResponse(src, responseEvent(Buffer.from('hello wörld')))
  t.true(r.ok)
  if (r.ok) t.is(fromCfResponse(r.response).body?.toString(), 'HELLO WÖRLD (text)')
  const binary = `function onResponse(event) {
    var res = event.response
    res.body = { encoding: 'base64', data: res.body.data.split('').reverse().join('') === '' ? '' : 'AAEC' }
    return res
  }`
  const b = engine.runOnResponse(binary, responseEvent(Buffer.from([0xff, 0xfe, 0x00])))
  t.true(b.ok)
  if (b.ok) t.deepEqual([...fromCfResponse(b.response).body!], [0, 1, 2])
})

test('beyond the limit: a large body is not shown, a large body set is refused', async (t) => {
  const small = await ScriptEngine.create({ maxBodyBytes: 16 })
  t.teardown(() => small.dispose())
  const sees = `function onResponse(event) {
    event.response.headers['x-saw-body'] = { value: String(event.response.body !== undefined) }
    return event.response
  }`
  const within = small.runOnResponse(sees, responseEvent(Buffer.alloc(16, 0x61)))
  t.true(within.ok && within.response.headers['x-saw-body']?.value === 'true')
  const beyond = small.runOnResponse(sees, responseEvent(Buffer.alloc(17, 0x61)))
  t.true(beyond.ok && beyond.response.headers['x-saw-body']?.value === 'false')
  if (beyond.ok) t.is(beyond.response.body, undefined, 'no body in the result: the origin body goes through')
  const sets = `function onResponse(event) { event.response.body = 'x'.repeat(17); return event.response }`
  t.deepEqual(small.runOnResponse(sets, responseEvent()), {
    ok: false,
    reason: 'invalid-result',
    message: 'response.body.data: 17 bytes exceed the 16-byte limit',
  })
  const fits = `function onResponse(event) { event.response.body = 'x'.repeat(16); return event.response }`
  t.true(small.runOnResponse(fits, responseEvent()).ok)
})

test('failure: a syntax error is "compile" with its line', (t) => {
  t.deepEqual(
    engine.runOnRequest('var a = 1\nfunction onRequest(e) {\n  return e.request +;\n}', requestEvent('/')),
    {
      ok: false,
      reason: 'compile',
      message: "SyntaxError: unexpected token in expression: ';' (onRequest.js:3:21)",
    },
  )
  t.deepEqual(engine.runOnRequest('function handler(e) { return e.request }', requestEvent('/')), {
    ok: false,
    reason: 'compile',
    message: 'script does not define function onRequest(event)',
  })
})

test('failure: what a script throws is "threw", with the message and where', (t) => {
  const cases: [string, string][] = [
    [
      'function onRequest(e) {\n  throw new TypeError("no video")\n}',
      'TypeError: no video (onRequest.js:2:22)',
    ],
    [
      'function onRequest(e) { return e.request.headers.nope.value }',
      "TypeError: cannot read property 'value' of undefined (onRequest.js:1:54)",
    ],
    ['function onRequest(e) { throw "plain" }', 'threw "plain"'],
    ['function onRequest(e) { throw null }', 'threw null'],
    ['function onRequest(e) { throw { code: 1 } }', 'threw a non-Error object'],
    [
      'class E extends Error { constructor(m) { super(m); this.name = "Custom" } }\nfunction onRequest(e) { throw new E("x") }',
      'Custom: x (onRequest.js:1:47)',
    ],
    ['function onRequest(e) { return onRequest(e) }', 'InternalError: stack overflow (onRequest.js:1:25)'],
  ]
  for (const [src, message] of cases) {
    t.deepEqual(engine.runOnRequest(src, requestEvent('/')), { ok: false, reason: 'threw', message }, src)
  }
})

/** Thread CPU time and wall time of f, ms. */
function measure<T>(f: () => T): { value: T; cpuMs: number; wallMs: number } {
  const c0 = process.threadCpuUsage()
  const w0 = performance.now()
  const value = f()
  const c1 = process.threadCpuUsage()
  return { value, cpuMs: (c1.user + c1.system - c0.user - c0.system) / 1000, wallMs: performance.now() - w0 }
}

test('failure: while(true){} and a catastrophic regexp are stopped within a few cpuMs', (t) => {
  for (const src of [
    'function onRequest(e) { while (true) {} }',
    'function onRequest(e) { for (;;) { e.request.uri.length } }',
    'function onRequest(e) { /(a+)+$/.test("a".repeat(40) + "b"); return e.request }',
    'function onRequest(e) { Promise.resolve().then(function spin() { for (;;) {} }); return e.request }',
  ]) {
    const m = measure(() => engine.runOnRequest(src, requestEvent('/')))
    t.like(m.value, { ok: false, reason: 'timeout' }, src)
    // cpuMs is 5: QuickJS polls its interrupt handler every ~10k operations, so a few ms past it.
    t.true(m.cpuMs < 5 * 6, `${src}: ${m.cpuMs.toFixed(1)} ms of CPU`)
  }
  const one = measure(() =>
    engine.runOnRequest('function onRequest(e) { while (true) {} }', requestEvent('/')),
  )
  t.log(
    `while(true): stopped after ${one.cpuMs.toFixed(2)} ms CPU, ${one.wallMs.toFixed(2)} ms wall (limit 5)`,
  )
  t.true(
    engine.runOnRequest('function onRequest(e) { return e.request }', requestEvent('/')).ok,
    'the next call runs',
  )
})

test('failure: a memory bomb is "memory", stopped at the cap, and the sandbox carries on', async (t) => {
  // A long CPU limit so memory, not time, is what stops these.
  const e = await ScriptEngine.create({ cpuMs: 5000, memoryBytes: 8 * 1024 * 1024 })
  t.teardown(() => e.dispose())
  const rss0 = process.memoryUsage().rss
  for (const src of [
    'function onRequest(e) { var a = []; for (;;) a.push(new Array(100000).fill(1)) }',
    'function onRequest(e) { var s = "x"; var keep = []; for (;;) { s += s; keep.push(s.slice(1)) } }',
    // Small objects: QuickJS cannot even allocate the error at the cap and throws null.
    'function onRequest(e) { var a = []; for (;;) a.push({ a: 1, b: [1, 2, 3] }) }',
    // Caught and rethrown as something else: still memory.
    'function onRequest(e) { try { var a = []; for (;;) a.push(new Array(1e5).fill(0)) } catch (x) { throw new Error("gave up") } }',
  ]) {
    const r = e.runOnRequest(src, requestEvent('/'))
    t.like(r, { ok: false, reason: 'memory' }, src)
    t.true(
      e.runOnRequest('function onRequest(e) { return e.request }', requestEvent('/')).ok,
      'and the next call runs',
    )
  }
  const grown = (process.memoryUsage().rss - rss0) / 1048576
  t.log(`process RSS grew ${grown.toFixed(1)} MiB (cap: 16 MiB base + 8 MiB)`)
  t.true(grown < 64, `grew ${grown.toFixed(1)} MiB`)
  t.deepEqual(
    e.runOnRequest('function onRequest(e) { throw new InternalError("out of memory") }', requestEvent('/')),
    {
      ok: false,
      reason: 'threw',
      message: 'InternalError: out of memory (onRequest.js:1:48)',
    },
    'the same text thrown by a script is not a memory failure',
  )
})

test('failure: junk results and header injection are "invalid-result", naming the field', (t) => {
  const cases: [string, string][] = [
    ['function onRequest(e) {}', 'onRequest returned undefined'],
    ['function onRequest(e) { return function () {} }', 'onRequest returned a function'],
    ['function onRequest(e) { return 42 }', 'onRequest returned 42; return the request or a response object'],
    [
      'function onRequest(e) { var o = {}; o.o = o; return o }',
      'the value onRequest returned cannot be copied out (TypeError: circular reference)',
    ],
    [
      'function onRequest(e) { return { statusCode: 10n } }',
      'the value onRequest returned cannot be copied out (TypeError: Do not know how to serialize a BigInt)',
    ],
    [
      'function onRequest(e) { e.request.headers["x-a"] = { value: "1\\r\\nx-injected: 1" }; return e.request }',
      'request.headers.x-a.value: contains CR, LF or NUL (header injection)',
    ],
    [
      'function onRequest(e) { return { statusCode: 302, headers: { location: { value: 5 } } } }',
      'response.headers.location.value: not a string',
    ],
    [
      'function onRequest(e) { e.request.method = "DELETE"; return e.request }',
      'request.method: read-only (was "GET", got "DELETE")',
    ],
  ]
  for (const [src, message] of cases) {
    const r = engine.runOnRequest(src, requestEvent('/'))
    t.like(r, { ok: false, reason: 'invalid-result' }, src)
    if (!r.ok) t.true(r.message.startsWith(message), `${r.message} / ${message}`)
  }
})

test('no Node or host APIs inside: process, require, fetch, timers, eval, Function, import()', (t) => {
  const src = `function onRequest(event) {
    var names = ['process', 'require', 'module', 'exports', 'Buffer', 'fetch', 'setTimeout', 'setInterval',
      'setImmediate', 'queueMicrotask', 'WebAssembly', 'eval', 'WeakRef', 'FinalizationRegistry', 'std', 'os',
      '__filename', 'global', 'Deno', 'Bun', 'XMLHttpRequest', 'SharedArrayBuffer', 'Atomics']
    var out = {}
    for (var i = 0; i < names.length; i++) out[names[i].toLowerCase()] = { value: typeof globalThis[names[i]] }
    function attempt(f) { try { f(); return 'ran' } catch (e) { return e.name } }
    out['fn-ctor'] = { value: attempt(function () { Function('return 1') }) }
    out['fn-proto-ctor'] = { value: attempt(function () { (function () {}).constructor('return 1') }) }
    out['gen-ctor'] = { value: attempt(function () { (function* () {}).constructor('yield 1') }) }
    out['async-ctor'] = { value: attempt(function () { (async function () {}).constructor('return 1') }) }
    out['console'] = { value: attempt(function () { console.log('x', event); console.error(new Error('y')) }) }
    var p = import('node:fs')
    out['import'] = { value: typeof p }
    return { statusCode: 200, headers: out }
  }`
  const r = engine.runOnRequest(src, requestEvent('/'))
  t.true(r.ok && 'response' in r, JSON.stringify(r))
  if (!r.ok || !('response' in r)) return
  const got = Object.fromEntries(Object.entries(r.response.headers).map(([k, v]) => [k, v.value]))
  for (const name of [
    'process',
    'require',
    'module',
    'exports',
    'Buffer',
    'fetch',
    'setTimeout',
    'setInterval',
    'setImmediate',
    'queueMicrotask',
    'WebAssembly',
    'eval',
    'WeakRef',
    'FinalizationRegistry',
    'std',
    'os',
    '__filename',
    'global',
    'Deno',
    'Bun',
    'XMLHttpRequest',
    'Atomics',
  ]) {
    t.is(got[name.toLowerCase()], 'undefined', name)
  }
  t.is(got['fn-ctor'], 'TypeError')
  t.is(got['fn-proto-ctor'], 'TypeError')
  t.is(got['gen-ctor'], 'TypeError')
  t.is(got['async-ctor'], 'TypeError')
  t.is(got.console, 'ran', 'console.log exists and drops its output')
  t.is(got.import, 'object', 'import() only returns a promise, which never settles into a module')
})

test('the event is a deep copy: what a script changes never reaches the caller’s objects', (t) => {
  const event = requestEvent('/p?q=1', [
    ['Host', 'h'],
    ['Accept', 'a'],
  ])
  const before = JSON.stringify(event)
  const src = `function onRequest(event) {
    event.request.headers.accept.value = 'changed'
    event.viewer.ip = '0.0.0.0'
    delete event.request.querystring.q
    return { statusCode: 403, headers: { 'x-type': { value: typeof event.request.headers.accept.toString } } }
  }`
  t.true(engine.runOnRequest(src, event).ok)
  t.is(JSON.stringify(event), before)
  const r = engine.runOnRequest(`function onRequest(e) { return e.request }`, event)
  t.true(
    r.ok && 'request' in r && r.request !== event.request,
    'a new object comes back, not the one passed in',
  )
})

test('a script that crashes the compiler is disabled; the sandbox is replaced and other scripts run', async (t) => {
  const e = await ScriptEngine.create()
  t.teardown(() => e.dispose())
  const ok = 'function onRequest(e) { return e.request }'
  t.true(e.runOnRequest(ok, requestEvent('/')).ok)
  // Parser recursion uses little of QuickJS's own stack but much of V8's: ~680 levels overflow it.
  const deep = `function onRequest(e) { return e.request }\nvar x = ${'('.repeat(5000)}1${')'.repeat(5000)}`
  const r = e.runOnRequest(deep, requestEvent('/'))
  t.like(r, { ok: false, reason: 'compile' })
  if (!r.ok)
    t.regex(r.message, /^the script crashed the compiler \(RangeError: Maximum call stack size exceeded\)$/)
  t.is(e.stats.restarts, 1)
  await e.ready()
  t.true(e.runOnRequest(ok, requestEvent('/')).ok, 'a new instance serves the other scripts')
  const compiles = e.stats.compiles
  const again = e.runOnRequest(deep, requestEvent('/'))
  t.like(again, { ok: false, reason: 'compile' })
  if (!again.ok) t.regex(again.message, /disabled until its source changes$/)
  t.is(e.stats.compiles, compiles, 'not compiled again')
  t.is(e.stats.restarts, 1, 'and no second restart')
})

test('deep recursion stays inside QuickJS, even called from a deep host stack', async (t) => {
  const scripts = [
    'function onRequest(e) { JSON.parse("[".repeat(100000) + "]".repeat(100000)); return e.request }',
    'function onRequest(e) { var o = {}; for (var i = 0; i < 20000; i++) o = [o]; JSON.stringify(o); return e.request }',
    'function onRequest(e) { var p = {}; for (var i = 0; i < 20000; i++) p = new Proxy(p, {}); return p.x }',
    'function onRequest(e) { new RegExp("(?:".repeat(30000) + "a" + ")".repeat(30000)); return e.request }',
  ]
  // CPU is not what stops these: building 20k proxies alone takes a few ms.
  const e = await ScriptEngine.create({ cpuMs: 2000 })
  t.teardown(() => e.dispose())
  const deep = (d: number, src: string): ReturnType<ScriptEngine['runOnRequest']> =>
    d === 0 ? e.runOnRequest(src, requestEvent('/')) : deep(d - 1, src)
  for (const src of scripts) {
    for (const depth of [0, 2000]) {
      const r = deep(depth, src)
      t.like(r, { ok: false, reason: 'threw' }, src)
      if (!r.ok) t.regex(r.message, /stack overflow/)
    }
  }
  t.is(e.stats.restarts, 0, 'no trap')
})

test('compiled scripts are cached, bounded, and counted', async (t) => {
  const e = await ScriptEngine.create({ maxScripts: 2 })
  t.teardown(() => e.dispose())
  const src = (n: number) =>
    `function onRequest(e) { e.request.headers['x-n'] = { value: '${n}' }; return e.request }`
  const n = (r: ReturnType<ScriptEngine['runOnRequest']>) =>
    r.ok && 'request' in r ? r.request.headers['x-n']?.value : r
  t.is(n(e.runOnRequest(src(1), requestEvent('/'))), '1')
  t.is(n(e.runOnRequest(src(1), requestEvent('/'))), '1')
  t.is(e.stats.compiles, 1)
  t.is(n(e.runOnRequest(src(2), requestEvent('/'))), '2')
  t.is(n(e.runOnRequest(src(1), requestEvent('/'))), '1', '1 is now the most recent')
  t.is(n(e.runOnRequest(src(3), requestEvent('/'))), '3', 'evicts 2')
  t.is(e.stats.compiles, 3)
  t.is(n(e.runOnRequest(src(1), requestEvent('/'))), '1')
  t.is(e.stats.compiles, 3, '1 was kept')
  t.is(n(e.runOnRequest(src(2), requestEvent('/'))), '2')
  t.is(e.stats.compiles, 4, '2 was compiled again')
  // A compile error is cached too, and the same source under the other hook is another script.
  e.runOnRequest('syntax error here', requestEvent('/'))
  e.runOnRequest('syntax error here', requestEvent('/'))
  t.is(e.stats.compiles, 5)
  t.is(e.stats.calls, 9)
  t.is(e.stats.failures.compile, 2)
})

test('limits are checked; a disposed engine fails closed', async (t) => {
  await t.throwsAsync(ScriptEngine.create({ cpuMs: 0 }), {
    message: 'script limits: cpuMs must be a positive number, got 0',
  })
  await t.throwsAsync(ScriptEngine.create({ memoryBytes: Number.NaN }), { instanceOf: RangeError })
  const e = await ScriptEngine.create({ cpuMs: 2.5 })
  t.is(e.limits.cpuMs, 2.5)
  t.is(e.limits.maxBodyBytes, 1024 * 1024)
  e.dispose()
  t.deepEqual(e.runOnRequest('function onRequest(e) { return e.request }', requestEvent('/')), {
    ok: false,
    reason: 'compile',
    message: 'the script engine was disposed',
  })
  t.throws(() => engine.runOnResponse('function onResponse(e) {}', requestEvent('/')), {
    instanceOf: TypeError,
  })
})

test('stats count calls and failures by reason', async (t) => {
  const e = await ScriptEngine.create()
  t.teardown(() => e.dispose())
  const req: CfRequest = requestEvent('/').request
  e.runOnRequest('function onRequest(e) { return e.request }', requestEvent('/'))
  e.runOnRequest('function onRequest(e) { throw 1 }', requestEvent('/'))
  e.runOnRequest('function onRequest(e) { while (1) {} }', requestEvent('/'))
  e.runOnRequest('function onRequest(e) { return 1 }', requestEvent('/'))
  e.runOnRequest('(', requestEvent('/'))
  t.like(e.stats, {
    calls: 5,
    failures: { compile: 1, threw: 1, timeout: 1, memory: 0, 'invalid-result': 1 },
  })
  t.truthy(req)
})
