// One QuickJS (WebAssembly) instance with the locked realm of realm.ts: compiles scripts into it and runs
// one call at a time under a CPU deadline and a memory cap. Knows nothing of HTTP; engine.ts does.
//
// Limits, and why they are built this way (README.md has the measurements):
//  - CPU: QuickJS polls an interrupt handler every few thousand operations (loop back-edges, calls,
//    regexp steps); ours compares this thread's CPU time (process.threadCpuUsage) with the call's
//    deadline, so a busy machine does not time out a script that did not run.
//  - Memory: QuickJS's own limit does not count bytes under Emscripten (malloc_usable_size is 0 there,
//    quickjs.c js_def_malloc_usable_size), so a "16 MiB" runtime limit let an array bomb reach 2 GiB. We
//    hand Emscripten a WebAssembly.Memory whose maximum is QuickJS's initial 16 MiB plus memoryBytes:
//    past it malloc fails and QuickJS throws "out of memory". Our grow() records the refusal, so an
//    out-of-memory is told apart from a script throwing the same error text (or null, which QuickJS
//    throws when it cannot even allocate the error object).
//  - Stack: QuickJS checks its own C stack (Emscripten's shadow stack), not the V8 stack that WebAssembly
//    frames use; at its default 1 MiB a deep JSON.parse overflows V8's stack first (a host RangeError out
//    of the WebAssembly call). At 64 KiB every recursion we tried fails inside QuickJS with "stack
//    overflow" (JSON, stringify, proxies, getters, regexp, generators; 128 KiB already let stringify
//    through). A host exception out of the module anyway is a "trap": the instance may be inconsistent,
//    so the engine drops it and loads a new one.

import releaseSyncImport from '@jitl/quickjs-wasmfile-release-sync'
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSSyncVariant,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core'
import { REALM_SETUP, wrapSource } from './realm.ts'

// The variant's types resolve through its CommonJS declaration (a namespace holding `default`); at run
// time the ESM build is loaded and its default export is the variant itself.
const releaseSync = ((releaseSyncImport as unknown as { default?: QuickJSSyncVariant }).default ??
  releaseSyncImport) as QuickJSSyncVariant

// The WebAssembly global, typed here: the project's libs (es2024, @types/node) do not declare it.
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}
const Wasm = (
  globalThis as unknown as {
    WebAssembly: {
      Memory: { new (d: { initial: number; maximum: number }): WasmMemory; prototype: WasmMemory }
    }
  }
).WebAssembly

const PAGE = 64 * 1024
/** The module's declared minimum memory: its ~5 MiB C stack, static data and the first heap. */
const BASE_PAGES = 256
export const MAX_STACK_BYTES = 64 * 1024
/** Setting up the realm and compiling a script are not a script's call: a fixed, generous CPU budget. */
const SETUP_CPU_MS = 2000

export type HookName = 'onRequest' | 'onResponse'

export type CallOutcome =
  | { kind: 'result'; json: string; clean: boolean }
  | {
      kind: 'failure'
      reason: 'compile' | 'threw' | 'timeout' | 'memory' | 'invalid-result'
      message: string
      clean: boolean
    }
  | { kind: 'trap'; message: string }

export type CompileOutcome =
  | { ok: true; factory: QuickJSHandle }
  | { ok: false; message: string }
  | { ok: 'trap'; message: string }

function threadCpuUs(): number {
  const u = process.threadCpuUsage()
  return u.user + u.system
}

/** The instance's memory and how often it refused to grow (shared by the realms built on it). */
interface Instance {
  module: QuickJSWASMModule
  memory: WasmMemory
  growRefused: number
}

export class Sandbox {
  readonly #instance: Instance
  #runtime: QuickJSRuntime
  #context: QuickJSContext
  #run: QuickJSHandle
  #sweep: QuickJSHandle
  #seal: QuickJSHandle
  /** CPU deadline of the work in progress, µs of thread CPU time */
  #deadline = Number.POSITIVE_INFINITY
  #interrupted = false
  #broken = false
  #disposedCleanly = false

  private constructor(instance: Instance) {
    this.#instance = instance
    const runtime = instance.module.newRuntime()
    const context = runtime.newContext()
    this.#runtime = runtime
    this.#context = context
    runtime.setMaxStackSize(MAX_STACK_BYTES)
    runtime.setInterruptHandler(() => {
      if (threadCpuUs() < this.#deadline) return false
      this.#interrupted = true
      return true
    })
    this.#deadline = threadCpuUs() + SETUP_CPU_MS * 1000
    const r = context.evalCode(REALM_SETUP, 'flowgate-realm.js', { type: 'global', strict: true })
    if (r.error) {
      const message = JSON.stringify(context.dump(r.error))
      r.error.dispose()
      throw new Error(`script sandbox: realm setup failed: ${message}`)
    }
    const drivers = r.value
    this.#run = context.getProp(drivers, 'run')
    this.#sweep = context.getProp(drivers, 'sweep')
    this.#seal = context.getProp(drivers, 'seal')
    drivers.dispose()
    this.#deadline = Number.POSITIVE_INFINITY
  }

  /** Instantiates QuickJS in its own capped memory and prepares the realm (~10-40 ms, once per engine). */
  static async load(memoryBytes: number): Promise<Sandbox> {
    const memory = new Wasm.Memory({
      initial: BASE_PAGES,
      maximum: BASE_PAGES + Math.ceil(memoryBytes / PAGE),
    })
    const instance = { memory, growRefused: 0 } as Instance
    // An own grow() on this one Memory (Emscripten's heap growth calls it): no global is patched.
    Object.defineProperty(memory, 'grow', {
      value(pages: number) {
        try {
          return Wasm.Memory.prototype.grow.call(this as WasmMemory, pages)
        } catch (e) {
          instance.growRefused++
          throw e
        }
      },
    })
    instance.module = await newQuickJSWASMModuleFromVariant(newVariant(releaseSync, { wasmMemory: memory }))
    return new Sandbox(instance)
  }

  /**
   * A new realm on the same instance (synchronous, the realm setup's cost) after a call left the old one
   * in a state the sweep could not undo. Handles compiled in this realm must have been released.
   */
  renew(): Sandbox | null {
    if (this.#broken) return null
    this.dispose()
    if (this.#broken && !this.#disposedCleanly) return null
    try {
      return new Sandbox(this.#instance)
    } catch {
      return null
    }
  }

  /** QuickJS's count of the bytes its objects, strings, shapes and bytecode hold (for measurements). */
  heapBytes(): number {
    const h = this.#runtime.computeMemoryUsage()
    try {
      return (this.#context.dump(h) as { memory_used_size: number }).memory_used_size
    } finally {
      h.dispose()
    }
  }

  /** Bytes of WebAssembly memory the instance holds now (it grows up to its cap and never shrinks). */
  get memoryBytes(): number {
    return this.#instance.memory.buffer.byteLength
  }

  get broken(): boolean {
    return this.#broken
  }

  /**
   * Compiles `source` as a Script first (its syntax errors name its own lines), then as the body of the
   * per-call factory, and freezes the factory. Runs no script code.
   */
  compile(source: string, name: HookName): CompileOutcome {
    return this.#guard<CompileOutcome>(
      () => {
        const ctx = this.#context
        this.#deadline = threadCpuUs() + SETUP_CPU_MS * 1000
        try {
          const check = ctx.evalCode(source, `${name}.js`, { type: 'global', compileOnly: true })
          if (check.error) return { ok: false, message: this.#errorText(check.error) }
          check.value.dispose()
          const made = ctx.evalCode(wrapSource(source, name), `${name}.js`, { type: 'global' })
          if (made.error) return { ok: false, message: this.#errorText(made.error) }
          const sealed = ctx.callFunction(this.#seal, ctx.undefined, made.value)
          if (sealed.error) {
            made.value.dispose()
            return { ok: false, message: this.#errorText(sealed.error) }
          }
          sealed.value.dispose()
          return { ok: true, factory: made.value }
        } finally {
          this.#deadline = Number.POSITIVE_INFINITY
        }
      },
      (message) => ({ ok: 'trap', message }),
    )
  }

  /** Runs one hook call: the event goes in as JSON text, the result comes out as JSON text. */
  call(factory: QuickJSHandle, name: HookName, eventJson: string, cpuMs: number): CallOutcome {
    return this.#guard<CallOutcome>(
      () => {
        const ctx = this.#context
        this.#interrupted = false
        const refusedBefore = this.#instance.growRefused
        this.#deadline = threadCpuUs() + cpuMs * 1000
        try {
          const nameArg = ctx.newString(name)
          const jsonArg = ctx.newString(eventJson)
          const r = ctx.callFunction(this.#run, ctx.undefined, factory, nameArg, jsonArg)
          nameArg.dispose()
          jsonArg.dispose()
          let outcome: CallOutcome
          let needSweep = false
          if (r.error) {
            outcome = this.#failure(r.error, refusedBefore)
            needSweep = true
          } else {
            const text = ctx.getString(r.value)
            r.value.dispose()
            outcome = this.#decode(text, refusedBefore)
          }
          // Promise jobs a call queued are part of that call: they run now, under its deadline (each job
          // polls the interrupt handler), and cannot change its result, already copied out; but a call
          // whose jobs ran out of time or memory has failed.
          if (this.#runtime.hasPendingJob()) {
            needSweep = true
            for (let i = 0; i < 1000 && this.#runtime.hasPendingJob(); i++) {
              this.#runtime.executePendingJobs(-1).dispose()
            }
            if (outcome.kind === 'result' && this.#interrupted) {
              outcome = {
                kind: 'failure',
                reason: 'timeout',
                message: 'CPU time limit exceeded (in promise jobs)',
                clean: true,
              }
            } else if (outcome.kind === 'result' && this.#instance.growRefused > refusedBefore) {
              outcome = {
                kind: 'failure',
                reason: 'memory',
                message: 'out of memory (in promise jobs)',
                clean: true,
              }
            }
            if (this.#runtime.hasPendingJob()) return { ...outcome, clean: false }
          }
          if (needSweep && outcome.kind !== 'trap') outcome = { ...outcome, clean: this.#sweepNow() }
          return outcome
        } finally {
          this.#deadline = Number.POSITIVE_INFINITY
        }
      },
      (message) => ({ kind: 'trap', message }),
    )
  }

  release(factory: QuickJSHandle): void {
    if (this.#broken || !factory.alive) return
    try {
      factory.dispose()
    } catch {
      this.#broken = true
    }
  }

  /** Frees the realm; a broken instance is left to the garbage collector (freeing it may abort). */
  dispose(): void {
    if (this.#broken) return
    this.#broken = true
    try {
      for (const h of [this.#run, this.#sweep, this.#seal]) h.dispose()
      this.#context.dispose()
      this.#runtime.dispose()
      this.#disposedCleanly = true
    } catch {
      // Emscripten aborts on QuickJS assertions (objects still alive); the instance is garbage anyway.
    }
  }

  /** The sweep after a call that did not finish its own (thrown past `run`, or jobs ran afterwards). */
  #sweepNow(): boolean {
    const ctx = this.#context
    this.#interrupted = false
    this.#deadline = threadCpuUs() + SETUP_CPU_MS * 1000
    const r = ctx.callFunction(this.#sweep, ctx.undefined)
    if (r.error) {
      r.error.dispose()
      return false
    }
    const ok = ctx.dump(r.value) === true
    r.value.dispose()
    return ok
  }

  #decode(text: string, refusedBefore: number): CallOutcome {
    const clean = text[0] === '.'
    const kind = text[1]
    const rest = text.slice(2)
    const memory = this.#instance.growRefused > refusedBefore
    switch (kind) {
      case 'R':
        return { kind: 'result', json: rest, clean }
      case 'C':
        return { kind: 'failure', reason: 'compile', message: rest, clean }
      case 'I':
        return { kind: 'failure', reason: memory ? 'memory' : 'invalid-result', message: clip(rest), clean }
      default:
        return memory
          ? { kind: 'failure', reason: 'memory', message: `out of memory (${clip(rest)})`, clean }
          : { kind: 'failure', reason: 'threw', message: clip(rest), clean }
    }
  }

  /** An exception that escaped `run` itself: the interrupt, or memory running out inside the driver. */
  #failure(error: QuickJSHandle, refusedBefore: number): CallOutcome {
    const text = this.#errorText(error)
    if (this.#interrupted)
      return { kind: 'failure', reason: 'timeout', message: 'CPU time limit exceeded', clean: true }
    if (this.#instance.growRefused > refusedBefore || /out of memory/.test(text)) {
      return { kind: 'failure', reason: 'memory', message: 'out of memory', clean: true }
    }
    return { kind: 'failure', reason: 'threw', message: clip(text), clean: true }
  }

  #errorText(error: QuickJSHandle): string {
    try {
      const d = this.#context.dump(error) as unknown
      if (d && typeof d === 'object' && 'message' in d) {
        const e = d as { name?: unknown; message?: unknown; stack?: unknown }
        const where =
          typeof e.stack === 'string' ? /(on(?:Request|Response)\.js:\d+:\d+)/.exec(e.stack)?.[1] : undefined
        return `${String(e.name ?? 'Error')}: ${String(e.message)}${where ? ` (${where})` : ''}`
      }
      return String(d)
    } finally {
      error.dispose()
    }
  }

  /** Any host exception out of QuickJS marks the instance broken; `onTrap` turns it into an outcome. */
  #guard<T>(f: () => T, onTrap: (message: string) => T): T {
    if (this.#broken) return onTrap('sandbox is being replaced')
    try {
      return f()
    } catch (e) {
      this.#broken = true
      return onTrap(e instanceof Error ? `${e.name}: ${e.message}` : String(e))
    }
  }
}

function clip(s: string): string {
  return s.length > 500 ? `${s.slice(0, 500)}…` : s
}
