// One call never sees state another call left (appliance/src/http/script/realm.ts explains how). Each
// test lets a script try to leave something behind, then looks for it from a later call, of the same
// script and of another one.
import test from 'ava'
import { type CfEvent, ScriptEngine, toCfRequest } from '../../../appliance/src/http/script/index.ts'

const engine = await ScriptEngine.create()
test.after.always(() => engine.dispose())

const event = (): CfEvent => ({
  version: '1.0',
  context: { eventType: 'viewer-request', requestId: 'r' },
  viewer: { ip: '192.0.2.1' },
  request: toCfRequest('GET', '/', [['Host', 'h']]),
})

/** Runs a script body as onRequest and returns the string it computes (or the failure). */
function run(body: string, e: ScriptEngine = engine): string {
  const r = e.runOnRequest(
    `function onRequest(event) { var out = (function () { ${body} })(); return { statusCode: 200, headers: { v: { value: String(out) } } } }`,
    event(),
  )
  if (!r.ok) return `${r.reason}: ${r.message}`
  return 'response' in r ? (r.response.headers.v?.value ?? '') : 'request'
}

/** Sloppy top-level code, as policies write it: the script is the body itself. */
function runScript(source: string, e: ScriptEngine = engine): string {
  const r = e.runOnRequest(source, event())
  if (!r.ok) return `${r.reason}: ${r.message}`
  return 'response' in r ? (r.response.headers.v?.value ?? '') : 'request'
}

const reply = (expr: string) => `return { statusCode: 200, headers: { v: { value: String(${expr}) } } }`

test('a global set in one call is absent in the next (same script and another)', (t) => {
  const writer = `counter = (typeof counter === 'number' ? counter : 0) + 1
    globalThis.viaGlobalThis = 'x'
    this.viaThis = 'y'
    var topVar = 'z'
    function topFunction() {}
    function onRequest(event) { implicitInCall = event.request.uri; ${reply("counter + '/' + typeof implicitInCall")} }`
  t.is(runScript(writer), '1/string')
  t.is(runScript(writer), '1/string', 'the counter starts again: nothing survived the first call')
  t.is(
    run(
      "return [typeof counter, typeof viaGlobalThis, typeof viaThis, typeof topVar, typeof implicitInCall, typeof topFunction].join(',')",
    ),
    'undefined,undefined,undefined,undefined,undefined,undefined',
  )
})

test('built-ins cannot carry state: prototypes, statics, hidden intrinsics, symbols', (t) => {
  const attempts = [
    'Array.prototype.evil = 1',
    'Object.prototype.polluted = 1',
    'Object.prototype.toString = function () { return "owned" }',
    'String.prototype.trim = function () { return "owned" }',
    'JSON.parse = function () { return "owned" }',
    'Math.secret = 42',
    'Math.max = Math.min',
    'Array[Symbol.for("state")] = 1',
    'Object.getPrototypeOf(function* () {}).evil = 1',
    'Object.getPrototypeOf(function* () {}).prototype.next = function () { return { done: true, value: "owned" } }',
    'Object.getPrototypeOf([][Symbol.iterator]()).next = function () { return { done: true } }',
    'Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())).evil = 1',
    'Object.getPrototypeOf(async function () {}).evil = 1',
    'Object.getPrototypeOf(Int8Array).prototype.evil = 1',
    'Promise.prototype.then = function () { return "owned" }',
    'Error.prototype.name = "Owned"',
    'Error.stackTraceLimit = 0',
    'RegExp.prototype.exec = function () { return null }',
    'Date.now = function () { return 0 }',
    'Symbol.iterator.evil = 1',
    'console.log = function () { throw new Error("owned") }',
    'Reflect.defineProperty(Object.prototype, "viaReflect", { value: 1 })',
    'Object.defineProperty(Array.prototype, "viaDefine", { value: 1 })',
    'Object.setPrototypeOf(Array.prototype, null)',
    'delete Array.prototype.map',
    'undefined = 1; NaN = 2; Infinity = 3',
    'arguments.callee.evil = 1',
  ]
  for (const a of attempts) {
    // Strict code gets a TypeError, sloppy code is silently ignored; neither may change a thing.
    run(`try { ${a} } catch (e) {} return 'tried'`)
    runScript(`try { ${a} } catch (e) {}\nfunction onRequest(e) { ${reply("'tried'")} }`)
  }
  const after = run(`var out = []
    out.push([].evil, ({}).polluted, ({}).toString(), ' a '.trim(), JSON.parse('1'), Math.secret, Math.max(1, 2))
    out.push(Array[Symbol.for('state')], Object.getPrototypeOf(function* () {}).evil)
    out.push([...(function* () { yield 1 })()].length, [...[1, 2]].length)
    out.push(Object.getPrototypeOf(async function () {}).evil, new Int8Array(1).evil)
    out.push(typeof Promise.resolve(1).then(function () {}), new Error('m').name, /a/.exec('a')[0])
    out.push(Date.now() > 0, Symbol.iterator.evil, ({}).viaReflect, [].viaDefine, typeof [].map)
    out.push(undefined, NaN, Infinity)
    out.push(typeof console.log(), Object.getPrototypeOf(Array.prototype) === Object.prototype)
    return JSON.stringify(out)`)
  t.is(
    after,
    JSON.stringify([
      undefined,
      undefined,
      '[object Object]',
      'a',
      1,
      undefined,
      2,
      undefined,
      undefined,
      1,
      2,
      undefined,
      undefined,
      'object',
      'Error',
      'a',
      true,
      undefined,
      undefined,
      undefined,
      'function',
      undefined,
      null,
      null,
      'undefined',
      true,
    ]),
  )
})

test('a script that makes the global object unsweepable is disabled and the realm rebuilt', async (t) => {
  const e = await ScriptEngine.create()
  t.teardown(() => e.dispose())
  const attempts: [string, string][] = [
    ['Object.defineProperty(globalThis, "sticky", { value: 1, configurable: false })', 'typeof sticky'],
    [
      'Object.preventExtensions(globalThis)',
      "(implicit = 1, typeof implicit) + '/' + Object.isExtensible(globalThis)",
    ],
    ['Object.setPrototypeOf(globalThis, { inherited: 1 })', 'typeof inherited'],
    ['Object.freeze(globalThis)', 'Object.isFrozen(globalThis)'],
  ]
  let restarts = 0
  for (const [attack, check] of attempts) {
    const src = `${attack}\nfunction onRequest(e) { ${reply("'ran'")} }`
    t.is(
      runScript(src, e),
      'threw: the script changed the global object in a way calls must not (disabled)',
      attack,
    )
    t.is(e.stats.restarts, ++restarts)
    t.is(
      runScript(src, e),
      'threw: the script changed the global object in a way calls must not (disabled)',
      'still disabled',
    )
    t.is(e.stats.restarts, restarts, 'without another rebuild')
    t.not(run(`return ${check}`, e), 'true')
  }
  t.is(
    run('return typeof sticky + "/" + typeof inherited + "/" + Object.isExtensible(globalThis)', e),
    'undefined/undefined/true',
  )
  t.is(run('implicit = 2; return typeof implicit', e), 'number', 'sloppy assignments to new names still work')
})

test('promise jobs run within their call and what they leave is swept', (t) => {
  const src = `function onRequest(e) {
    Promise.resolve().then(function () { late = 'left'; globalThis.late2 = 'left' })
    ${reply('typeof late')}
  }`
  t.is(runScript(src), 'undefined', 'the job runs after the result is taken')
  t.is(run('return typeof late + "/" + typeof late2'), 'undefined/undefined')
  t.is(run('var p = Promise.resolve(1); return typeof p.then'), 'function')
})

test('functions and objects a call makes are new each call', (t) => {
  const src = `var cache = cache || {}
    function helper() { helper.calls = (helper.calls || 0) + 1; return helper.calls }
    var re = /a/g
    function onRequest(e) {
      cache.hits = (cache.hits || 0) + 1
      re.test('aaa')
      ${reply("cache.hits + '/' + helper() + '/' + re.lastIndex")}
    }`
  t.is(runScript(src), '1/1/1')
  t.is(runScript(src), '1/1/1')
})

test('ordinary code still works on frozen built-ins (the override mistake is tamed)', (t) => {
  t.is(
    runScript(`'use strict'
      class NotFound extends Error { constructor(m) { super(m); this.name = 'NotFound' } }
      function onRequest(e) {
        var o = {}
        o.toString = function () { return 'custom' }
        o.constructor = 'c'
        o.hasOwnProperty = 1
        var err = new NotFound('x')
        var plain = new Error('p')
        plain.message = 'changed'
        plain.name = 'Renamed'
        ${reply("String(o) + '/' + o.constructor + '/' + o.hasOwnProperty + '/' + err.name + ':' + err.message + '/' + plain.name + ':' + plain.message + '/' + (err instanceof Error)")}
      }`),
    'custom/c/1/NotFound:x/Renamed:changed/true',
  )
  t.is(
    run("try { Object.prototype.toString = null; return 'assigned' } catch (e) { return e.name }"),
    'TypeError',
    'the shared prototype itself stays as it was',
  )
  t.is(run('return ({}).toString()'), '[object Object]')
  t.is(run('return Object.keys({ a: 1, toString: 2 }).join()'), 'a,toString')
})

test('scripts in one engine do not see each other', (t) => {
  const a = `secretA = 'from A'\nfunction onRequest(e) { ${reply('typeof secretA')} }`
  const b = `function onRequest(e) { ${reply("typeof secretA + '/' + typeof onRequestA")} }`
  t.is(runScript(a), 'string')
  t.is(runScript(b), 'undefined/undefined')
})
