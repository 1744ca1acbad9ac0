// The HTTP hook sandbox: cost per call of the youtube example's onRequest on a realistic event, cold
// compile, memory per compiled script, the CPU-limit mechanism, and whether a loop and a memory bomb are
// stopped — beside the unsandboxed floor measured in the same run (a `new Function` call, with and without
// the JSON deep copy the sandbox makes), as ratios (these machines are noisy; compare the ratios).
//
// isolated-vm is measured too when ISOLATED_VM names its package directory (it is not a dependency: the
// choice and its figures are in appliance/src/http/script/README.md):
//   ISOLATED_VM=/path/to/node_modules/isolated-vm npm run bench -- script-sandbox
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import variant from '@jitl/quickjs-wasmfile-release-sync'
import { newQuickJSWASMModuleFromVariant, type QuickJSSyncVariant } from 'quickjs-emscripten-core'
import { parse } from 'yaml'
import { type CfEvent, ScriptEngine, toCfRequest } from '../appliance/src/http/script/index.ts'
import { Sandbox } from '../appliance/src/http/script/sandbox.ts'

const CALLS = Number(process.env.CALLS ?? 20_000)
const COLD = Number(process.env.COLD ?? 200)

const policy = parse(readFileSync(new URL('../examples/youtube-one-video.yaml', import.meta.url), 'utf8'))
const onRequest: string = policy.spec.rules[0].http.onRequest

/** A request as a browser sends it to www.youtube.com (headers, cookies, query). */
function event(v: string): CfEvent {
  return {
    version: '1.0',
    context: {
      eventType: 'viewer-request',
      requestId: 'b9f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
      policy: 'youtube-one-video',
      rule: 'youtube-one-video',
    },
    viewer: { ip: '10.0.12.34' },
    request: toCfRequest('GET', `/watch?v=${v}&list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs&index=3&t=42s`, [
      ['Host', 'www.youtube.com'],
      [
        'User-Agent',
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
      ],
      ['Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8'],
      ['Accept-Language', 'en-GB,en;q=0.9'],
      ['Accept-Encoding', 'gzip, deflate, br, zstd'],
      ['Referer', 'https://www.youtube.com/'],
      ['Sec-Fetch-Dest', 'document'],
      ['Sec-Fetch-Mode', 'navigate'],
      ['Upgrade-Insecure-Requests', '1'],
      [
        'Cookie',
        'VISITOR_INFO1_LIVE=Xy2aBcDeFgH; YSC=abc123DEF45; PREF=f6=40000000&tz=Europe.London; SOCS=CAISEwgDEgk2',
      ],
    ]),
  }
}
const allowed = event('dQw4w9WgXcQ')
const other = event('9bZkp7q19f0')

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}
type Row = { label: string; p50: number; p99: number }
const rows: Row[] = []
function measure(label: string, n: number, op: (i: number) => unknown): Row {
  for (let i = 0; i < Math.min(500, n); i++) op(i) // warm-up
  const lat: number[] = []
  for (let i = 0; i < n; i++) {
    const a = performance.now()
    op(i)
    lat.push(performance.now() - a)
  }
  const r = { label, p50: pct(lat, 50) * 1000, p99: pct(lat, 99) * 1000 }
  rows.push(r)
  return r
}
const cpuUs = () => {
  const u = process.threadCpuUsage()
  return u.user + u.system
}

// --- the floor: the same function called directly
const direct = new Function(`${onRequest}\nreturn onRequest`)() as (e: CfEvent) => unknown
const floor = measure('floor: new Function call', CALLS, (i) => direct(i & 1 ? allowed : other))
const floorCopy = measure('floor + JSON deep copy of event and result', CALLS, (i) =>
  JSON.parse(JSON.stringify(direct(JSON.parse(JSON.stringify(i & 1 ? allowed : other))))),
)
let t0 = performance.now()
for (let i = 0; i < COLD; i++) new Function(`${onRequest}\n//${i}\nreturn onRequest`)()
const floorCompileUs = ((performance.now() - t0) / COLD) * 1000

// --- ours: the ScriptEngine the HTTP layer calls (JSON copy in, QuickJS, JSON out, result checks)
t0 = performance.now()
const engine = await ScriptEngine.create()
const createMs = performance.now() - t0
const oursAllowed = measure('flowgate ScriptEngine, allowed video', CALLS, () =>
  engine.runOnRequest(onRequest, allowed),
)
const oursOther = measure('flowgate ScriptEngine, redirect', CALLS, () =>
  engine.runOnRequest(onRequest, other),
)
t0 = performance.now()
for (let i = 0; i < COLD; i++) engine.runOnRequest(`${onRequest}\n//cold ${i}`, allowed)
const coldUs = ((performance.now() - t0) / COLD) * 1000

// Memory per compiled script: QuickJS's own accounting of its heap before and after compiling COLD more.
const sandbox = await Sandbox.load(16 * 1024 * 1024)
const heap0 = sandbox.heapBytes()
const wasm0 = sandbox.memoryBytes
const compiled = Array.from({ length: COLD }, (_, i) =>
  sandbox.compile(`${onRequest}\n//mem ${i}`, 'onRequest'),
)
const perScriptBytes = (sandbox.heapBytes() - heap0) / COLD
for (const c of compiled) if (c.ok === true) sandbox.release(c.factory)
const realmBytes = heap0

// The CPU-limit mechanism: a CPU-bound script with and without the interrupt handler (raw QuickJS), and
// the thread-CPU clock read every call makes.
const Q = await newQuickJSWASMModuleFromVariant(
  ((variant as unknown as { default?: QuickJSSyncVariant }).default ?? variant) as QuickJSSyncVariant,
)
const rt = Q.newRuntime()
const ctx = rt.newContext()
const busy = ctx.unwrapResult(
  ctx.evalCode('(function () { var s = 0; for (var i = 0; i < 200000; i++) s += i % 7; return s })'),
)
const busyRun = () => ctx.unwrapResult(ctx.callFunction(busy, ctx.undefined)).dispose()
// Interleaved, and each side first half the time, so drift and order hit both alike.
let deadline = Number.POSITIVE_INFINITY
const plain: number[] = []
const guarded: number[] = []
const timed = (out: number[]) => {
  const a = performance.now()
  busyRun()
  out.push(performance.now() - a)
}
for (let i = 0; i < 400; i++) {
  for (const handler of i & 1 ? [true, false] : [false, true]) {
    if (handler) {
      rt.setInterruptHandler(() => cpuUs() > deadline)
      deadline = cpuUs() + 1e9
      timed(guarded)
    } else {
      rt.removeInterruptHandler()
      timed(plain)
    }
  }
}
const noHandler = {
  label: 'QuickJS busy loop (200k), no interrupt handler',
  p50: pct(plain, 50) * 1000,
  p99: pct(plain, 99) * 1000,
}
const withHandler = {
  label: 'QuickJS busy loop (200k), thread-CPU handler',
  p50: pct(guarded, 50) * 1000,
  p99: pct(guarded, 99) * 1000,
}
rows.push(noHandler, withHandler)
const clock = measure('process.threadCpuUsage() (once per call)', CALLS, cpuUs)
// A fresh context per call instead of the reused, locked realm (what isolation would cost that way).
const freshSrc = `${onRequest}\nonRequest(JSON.parse(json))`
const fresh = measure('QuickJS, a fresh context per call (no lockdown)', 500, () => {
  const c = rt.newContext()
  c.setProp(c.global, 'json', c.newString(JSON.stringify(allowed)))
  c.unwrapResult(c.evalCode(freshSrc)).dispose()
  c.dispose()
})
busy.dispose()
ctx.dispose()
rt.dispose()

// Runaway scripts.
const stop = (src: string, e: ScriptEngine) => {
  const c = cpuUs()
  const w = performance.now()
  const r = e.runOnRequest(src, allowed)
  return { r, cpuMs: (cpuUs() - c) / 1000, wallMs: performance.now() - w }
}
const loops = Array.from({ length: 20 }, () => stop('function onRequest(e) { while (true) {} }', engine))
const bombEngine = await ScriptEngine.create({ cpuMs: 5000 })
const bomb = stop(
  'function onRequest(e) { var a = []; for (;;) a.push(new Array(100000).fill(1)) }',
  bombEngine,
)

// --- isolated-vm, when given
let ivm: Record<string, number | string> | null = null
if (process.env.ISOLATED_VM) {
  const mod = await import(pathToFileURL(`${process.env.ISOLATED_VM}/isolated-vm.js`).href)
  const IVM = mod.default ?? mod
  t0 = performance.now()
  const iso = new IVM.Isolate({ memoryLimit: 16 })
  const isolateMs = performance.now() - t0
  const context = iso.createContextSync()
  const wrap = (s: string) =>
    `(function (factory) { return function (json) { return JSON.stringify(factory()(JSON.parse(json))) } })(function () { ${s}\n;return onRequest })`
  const driver = context.evalSync(wrap(onRequest), { reference: true })
  const ivmCall = measure('isolated-vm, reused context, timeout 5 ms', CALLS, (i) =>
    JSON.parse(driver.applySync(undefined, [JSON.stringify(i & 1 ? allowed : other)], { timeout: 5 })),
  )
  const ivmNoTimeout = measure('isolated-vm, reused context, no timeout', CALLS, (i) =>
    JSON.parse(driver.applySync(undefined, [JSON.stringify(i & 1 ? allowed : other)])),
  )
  t0 = performance.now()
  const h0 = iso.getHeapStatisticsSync().used_heap_size
  const refs = []
  for (let i = 0; i < COLD; i++)
    refs.push(context.evalSync(wrap(`${onRequest}\n//${i}`), { reference: true }))
  const ivmCold = ((performance.now() - t0) / COLD) * 1000
  const ivmPerScript = (iso.getHeapStatisticsSync().used_heap_size - h0) / COLD
  const ivmFresh = measure('isolated-vm, a fresh context per call', 500, () => {
    const c = iso.createContextSync()
    const d = c.evalSync(wrap(onRequest), { reference: true })
    d.applySync(undefined, [JSON.stringify(allowed)])
    d.release()
    c.release()
  })
  const w = performance.now()
  let loopMsg = ''
  try {
    context.evalSync('while (true) {}', { timeout: 5 })
  } catch (e) {
    loopMsg = (e as Error).message
  }
  const ivmLoopMs = performance.now() - w
  const bombIso = new IVM.Isolate({ memoryLimit: 16 })
  const bw = performance.now()
  let bombMsg = ''
  try {
    bombIso
      .createContextSync()
      .evalSync('var a = []; for (;;) a.push(new Array(100000).fill(1))', { timeout: 5000 })
  } catch (e) {
    bombMsg = (e as Error).message
  }
  ivm = {
    isolateMs,
    p50: ivmCall.p50,
    p99: ivmCall.p99,
    timeoutCost: ivmCall.p50 - ivmNoTimeout.p50,
    coldUs: ivmCold,
    perScriptBytes: ivmPerScript,
    freshP50: ivmFresh.p50,
    loop: `${loopMsg} after ${ivmLoopMs.toFixed(1)} ms wall`,
    bomb: `${bombMsg} after ${(performance.now() - bw).toFixed(0)} ms (isolate disposed: ${bombIso.isDisposed})`,
  }
}

// --- report
const f = (us: number) => `${us.toFixed(1).padStart(8)} µs`
console.log(`per call over ${CALLS} calls (p50 / p99, ratio of p50 to the floor + copy):`)
for (const r of rows) {
  console.log(`  ${r.label.padEnd(52)} ${f(r.p50)} ${f(r.p99)}   ×${(r.p50 / floorCopy.p50).toFixed(1)}`)
}
console.log(
  `flowgate / floor (no copy):  allowed ×${(oursAllowed.p50 / floor.p50).toFixed(1)}, redirect ×${(oursOther.p50 / floor.p50).toFixed(1)}`,
)
console.log(`engine create (QuickJS instance + locked realm): ${createMs.toFixed(1)} ms`)
console.log(
  `cold compile (first call of a new script): ${coldUs.toFixed(0)} µs   (new Function: ${floorCompileUs.toFixed(1)} µs, ×${(coldUs / floorCompileUs).toFixed(0)})`,
)
console.log(
  `memory: realm ${(realmBytes / 1024).toFixed(0)} KiB (QuickJS accounting), per compiled script ${(perScriptBytes / 1024).toFixed(1)} KiB; WebAssembly memory ${(wasm0 / 1048576).toFixed(0)} MiB at start, cap 16 MiB + memoryBytes`,
)
console.log(
  `CPU limit: a busy loop with the thread-CPU interrupt handler runs ×${(withHandler.p50 / noHandler.p50).toFixed(2)} the time without; ${clock.p50.toFixed(2)} µs clock read per call`,
)
const lw = loops.map((l) => l.wallMs)
// Wall time: the loops run back to back on an idle thread, and thread CPU time moves in scheduler ticks.
console.log(
  `while(true) at cpuMs 5: ${loops.every((l) => !l.r.ok && l.r.reason === 'timeout') ? 'stopped' : 'NOT STOPPED'}, after ${pct(lw, 50).toFixed(2)} ms (p50), ${pct(lw, 100).toFixed(2)} ms (max) over ${loops.length} runs`,
)
console.log(
  `memory bomb (arrays of 100k): ${!bomb.r.ok ? `${bomb.r.reason}: ${bomb.r.message}` : 'NOT STOPPED'} after ${bomb.wallMs.toFixed(0)} ms`,
)
console.log(
  `fresh context per call instead of the locked realm: ×${(fresh.p50 / oursAllowed.p50).toFixed(1)} the per-call cost`,
)
if (ivm) {
  console.log('isolated-vm (same run):')
  console.log(
    `  new Isolate ${Number(ivm.isolateMs).toFixed(1)} ms; per call ${f(Number(ivm.p50))} ${f(Number(ivm.p99))}  ×${(Number(ivm.p50) / floorCopy.p50).toFixed(1)} of the floor + copy, flowgate/isolated-vm ×${(oursAllowed.p50 / Number(ivm.p50)).toFixed(1)}`,
  )
  console.log(
    `  timeout option costs ${Number(ivm.timeoutCost).toFixed(2)} µs per call; cold compile ${Number(ivm.coldUs).toFixed(0)} µs; per script ${(Number(ivm.perScriptBytes) / 1024).toFixed(1)} KiB of V8 heap; fresh context per call ${Number(ivm.freshP50).toFixed(0)} µs`,
  )
  console.log(`  while(true): ${ivm.loop}`)
  console.log(`  memory bomb: ${ivm.bomb}`)
} else console.log('isolated-vm: not measured (set ISOLATED_VM to its package directory)')
engine.dispose()
bombEngine.dispose()
sandbox.dispose()
