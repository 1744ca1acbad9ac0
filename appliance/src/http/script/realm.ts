// The JavaScript that prepares the one QuickJS realm all scripts run in, and the two functions the host
// calls in it. It runs once, before any script is compiled; nothing here is reachable from scripts.
//
// Why one reused realm is safe (README.md, "Isolation between calls"):
//  - a script's top-level code runs inside a fresh function activation per call (its vars, functions and
//    let/const are new each time), and the event arrives as a JSON string parsed inside the call;
//  - every object reachable from the global object, plus the intrinsics only syntax reaches (generator,
//    async and iterator prototypes, %ThrowTypeError%), is frozen, and the global's own properties are
//    locked, so no call can leave state on a built-in;
//  - the global object stays extensible (sloppy scripts assign to undeclared names), and after every call
//    `sweep` deletes what the call added; a call that made that impossible (a non-configurable global,
//    a non-extensible global, a new global prototype) is reported and the host rebuilds the realm;
//  - eval and the Function constructors are gone (CloudFront Functions has neither): compiled code could
//    declare global lexical bindings, which outlive a call and which no sweep can see or delete;
//  - WeakRef and FinalizationRegistry are gone: their callbacks would run during some later call.
// Frozen built-ins bring the "override mistake" (assigning obj.toString on an ordinary object fails);
// the usual targets (Object.prototype's methods, Error name/message) are turned into accessors that
// define the property on the object assigned to, as SES does.

/** How the per-call factory starts; the script follows on the same line (see wrapSource). */
const WRAP_PREFIX = '(function () {'

export const REALM_SETUP = String.raw`(function () {
  'use strict'
  var G = globalThis
  var freeze = Object.freeze, getProto = Object.getPrototypeOf, gopd = Object.getOwnPropertyDescriptor
  var defProp = Object.defineProperty, isExtensible = Object.isExtensible
  var ownKeys = Reflect.ownKeys, apply = Reflect.apply, deleteProperty = Reflect.deleteProperty
  var jsonParse = JSON.parse, jsonStringify = JSON.stringify
  var ErrorCtor = Error, StringCtor = String, SetCtor = Set

  var noop = function () {}
  defProp(G, 'console', {
    value: { log: noop, info: noop, warn: noop, error: noop, debug: noop, trace: noop },
    writable: true, enumerable: false, configurable: true
  })

  function noCodeFromStrings() {
    throw new TypeError('code generation from strings is not available to flowgate scripts')
  }
  noCodeFromStrings.prototype = Function.prototype
  var functionPrototypes = [
    Function.prototype, getProto(function* () {}), getProto(async function () {}), getProto(async function* () {})
  ]
  for (var i = 0; i < functionPrototypes.length; i++) {
    defProp(functionPrototypes[i], 'constructor', { value: noCodeFromStrings, writable: true, enumerable: false, configurable: true })
  }
  defProp(G, 'Function', { value: noCodeFromStrings, writable: true, enumerable: false, configurable: true })
  delete G.eval
  delete G.WeakRef
  delete G.FinalizationRegistry

  function tame(obj, name) {
    var d = gopd(obj, name)
    if (!d || !('value' in d) || !d.configurable) return
    var value = d.value
    defProp(obj, name, {
      get: function () { return value },
      set: function (v) {
        if (this === obj) throw new TypeError('cannot assign to ' + StringCtor(name) + ' of a built-in prototype')
        defProp(this, name, { value: v, writable: true, enumerable: true, configurable: true })
      },
      enumerable: d.enumerable, configurable: false
    })
  }
  var objectKeys = ownKeys(Object.prototype)
  for (var i = 0; i < objectKeys.length; i++) if (typeof objectKeys[i] === 'string') tame(Object.prototype, objectKeys[i])
  var errors = [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError]
  if (typeof InternalError === 'function') errors.push(InternalError)
  for (var i = 0; i < errors.length; i++) {
    tame(errors[i].prototype, 'name')
    tame(errors[i].prototype, 'message')
    tame(errors[i].prototype, 'constructor')
    tame(errors[i].prototype, 'toString')
  }
  tame(Function.prototype, 'toString')
  for (var i = 0; i < functionPrototypes.length; i++) tame(functionPrototypes[i], 'constructor')

  // Intrinsics that no property path from the global object reaches.
  var hidden = [
    getProto(function* () {}), getProto(async function () {}), getProto(async function* () {}),
    getProto([][Symbol.iterator]()), getProto(new Map().entries()), getProto(new Set().values()),
    getProto(''[Symbol.iterator]()), getProto(/a/g[Symbol.matchAll]('')),
    gopd((function () { 'use strict'; return arguments })(), 'callee').get
  ]
  if (typeof Iterator === 'function') {
    hidden.push(getProto(Iterator.from({ next: function () { return { done: true, value: undefined } } })))
    hidden.push(getProto([].values().map(function (x) { return x })))
    if (typeof Iterator.concat === 'function') hidden.push(getProto(Iterator.concat([])))
  }

  var seen = new SetCtor([G])
  var stack = hidden.slice()
  function visit(o) {
    var keys = ownKeys(o)
    stack.push(getProto(o))
    for (var k = 0; k < keys.length; k++) {
      var d = gopd(o, keys[k])
      if ('value' in d) stack.push(d.value)
      else stack.push(d.get, d.set)
    }
  }
  visit(G)
  while (stack.length) {
    var o = stack.pop()
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue
    seen.add(o)
    freeze(o)
    visit(o)
  }
  var globalKeys = ownKeys(G)
  for (var i = 0; i < globalKeys.length; i++) {
    var d = gopd(G, globalKeys[i])
    if ('value' in d) d.writable = false
    d.configurable = false
    defProp(G, globalKeys[i], d)
  }
  var baseline = new SetCtor(globalKeys), baselineSize = globalKeys.length, globalProto = getProto(G)

  function sweep() {
    if (!isExtensible(G) || getProto(G) !== globalProto) return false
    var keys = ownKeys(G)
    if (keys.length === baselineSize) return true
    for (var i = 0; i < keys.length; i++) {
      if (!baseline.has(keys[i]) && !deleteProperty(G, keys[i])) return false
    }
    return ownKeys(G).length === baselineSize
  }

  function describe(e) {
    try {
      if (e instanceof ErrorCtor) {
        var at = typeof e.stack === 'string' ? /(on(?:Request|Response)\.js):(\d+):(\d+)/.exec(e.stack) : null
        // Line 1 of a script follows the wrapper's opening on the same line: give its own column.
        var col = at ? (at[2] === '1' ? at[3] - ${WRAP_PREFIX.length} : at[3]) : 0
        return StringCtor(e.name) + ': ' + StringCtor(e.message) + (at ? ' (' + at[1] + ':' + at[2] + ':' + col + ')' : '')
      }
      if (typeof e === 'object' && e !== null) return 'threw a non-Error object'
      if (typeof e === 'function') return 'threw a function'
      return 'threw ' + (typeof e === 'string' ? jsonStringify(e.length > 200 ? e.slice(0, 200) : e) : StringCtor(e))
    } catch (e2) {
      return 'an exception that could not be described'
    }
  }

  function kindOf(v) {
    if (v === undefined) return 'undefined'
    return typeof v === 'function' ? 'a function' : 'a ' + typeof v
  }

  // One call. The first character says whether the sweep succeeded ('.' yes, '!' no); the second what
  // happened: R + JSON result, T + what was thrown, I + why the result is unusable, C + a missing function.
  function run(factory, name, json) {
    var event = jsonParse(json)
    var out
    try {
      var fn = apply(factory, G, [])
      if (typeof fn !== 'function') out = 'Cscript does not define function ' + name + '(event)'
      else {
        var result = fn(event)
        var text
        try {
          text = jsonStringify(result)
          out = text === undefined ? 'I' + name + ' returned ' + kindOf(result) : 'R' + text
        } catch (e) {
          out = 'Ithe value ' + name + ' returned cannot be copied out (' + describe(e) + ')'
        }
      }
    } catch (e) {
      out = 'T' + describe(e)
    }
    return (sweep() ? '.' : '!') + out
  }

  function seal(factory) {
    freeze(factory)
    if (factory.prototype) freeze(factory.prototype)
    return true
  }

  return { run: run, sweep: sweep, seal: seal }
})()`

/**
 * The script's source becomes the body of a function the realm calls once per call, so its top-level
 * declarations are new each time. Only sources QuickJS compiled as a Script on their own get here, and a
 * valid Script parses the same way as a function body (it cannot close the wrapper's brace). The source
 * starts on the wrapper's first line so error locations keep the script's own line numbers.
 */
export function wrapSource(source: string, functionName: string): string {
  return `${WRAP_PREFIX}${source}\n;return typeof ${functionName} === 'function' ? ${functionName} : undefined\n})`
}
