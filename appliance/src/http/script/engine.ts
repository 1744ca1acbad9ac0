// ScriptEngine: what the HTTP layer calls for every intercepted request and response. Compiles each
// distinct script once (bounded LRU), runs it in the sandbox (sandbox.ts) with a deep JSON copy of the
// event, checks what it returned (result.ts) and counts every failure by reason. A failure is an answer,
// never an exception: the caller fails closed (502).

import { bodySize } from './convert.ts'
import { checkRequestResult, checkResponseResult } from './result.ts'
import { type HookName, Sandbox } from './sandbox.ts'
import {
  type CfEvent,
  FAILURE_REASONS,
  type RequestHookResult,
  type ResponseHookResult,
  type ScriptFailure,
  type ScriptFailureReason,
  type ScriptLimits,
} from './types.ts'

export const DEFAULT_SCRIPT_LIMITS: Readonly<ScriptLimits> = {
  cpuMs: 5,
  memoryBytes: 16 * 1024 * 1024,
  maxBodyBytes: 1024 * 1024,
  maxScripts: 256,
}
/** Scripts disabled for crashing or corrupting the sandbox, remembered by source. */
const MAX_QUARANTINED = 1024

type Compiled =
  | { ok: true; factory: Parameters<Sandbox['release']>[0] }
  | { ok: false; failure: ScriptFailure }

export interface ScriptStats {
  calls: number
  failures: Record<ScriptFailureReason, number>
  /** scripts compiled (cache misses, compile errors included) */
  compiles: number
  /** realms rebuilt or WebAssembly instances replaced after a script broke one */
  restarts: number
}

export class ScriptEngine {
  readonly limits: Readonly<ScriptLimits>
  readonly stats: ScriptStats
  #sandbox: Sandbox | null = null
  #loading: Promise<void> | null = null
  #scripts = new Map<string, Compiled>()
  #quarantine = new Map<string, ScriptFailure>()
  #disposed = false

  private constructor(limits: ScriptLimits) {
    this.limits = Object.freeze(limits)
    this.stats = {
      calls: 0,
      failures: Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<ScriptFailureReason, number>,
      compiles: 0,
      restarts: 0,
    }
  }

  /** Loads QuickJS and prepares the sandbox's realm once (tens of milliseconds). */
  static async create(limits: Partial<ScriptLimits> = {}): Promise<ScriptEngine> {
    const engine = new ScriptEngine(resolveLimits(limits))
    await engine.#load()
    if (!engine.#sandbox) throw new Error('script sandbox failed to load')
    return engine
  }

  /** onRequest: the request (changed or not), or a response that short-circuits the origin. */
  runOnRequest(source: string, event: CfEvent): RequestHookResult {
    const r = this.#run('onRequest', source, event)
    if (!r.ok) return r
    const checked = checkRequestResult(r.value, event.request, this.limits)
    if (!checked.ok) return this.#fail('invalid-result', checked.message)
    const out = checked.value
    return out.kind === 'request' ? { ok: true, request: out.request } : { ok: true, response: out.response }
  }

  /**
   * onResponse: the response, changed or not. A body in event.response larger than maxBodyBytes is not
   * shown to the script (as if the origin's body were streaming); it still goes through unless replaced.
   */
  runOnResponse(source: string, event: CfEvent): ResponseHookResult {
    const original = event.response
    if (!original) throw new TypeError('runOnResponse needs event.response')
    let shown = event
    if (original.body && bodySize(original.body) > this.limits.maxBodyBytes) {
      const { body: _hidden, ...rest } = original
      shown = { ...event, response: rest }
    }
    const r = this.#run('onResponse', source, shown)
    if (!r.ok) return r
    const checked = checkResponseResult(r.value, shown.response!, this.limits)
    if (!checked.ok) return this.#fail('invalid-result', checked.message)
    return { ok: true, response: checked.value }
  }

  /** Resolves once a sandbox is loaded (it is after create(); again shortly after a sandbox crash). */
  async ready(): Promise<void> {
    if (!this.#sandbox && !this.#disposed) this.#load()
    await this.#loading
  }

  dispose(): void {
    this.#disposed = true
    this.#dropScripts()
    this.#sandbox?.dispose()
    this.#sandbox = null
  }

  #run(name: HookName, source: string, event: CfEvent): { ok: true; value: unknown } | ScriptFailure {
    this.stats.calls++
    if (this.#disposed) return this.#fail('compile', 'the script engine was disposed')
    const key = `${name}\0${source}`
    const q = this.#quarantine.get(key)
    if (q) return this.#fail(q.reason, q.message)
    const sandbox = this.#sandbox
    if (!sandbox) {
      this.#load()
      return this.#fail('memory', 'the script sandbox is restarting after a script crashed it')
    }
    let compiled = this.#scripts.get(key)
    if (compiled) {
      this.#scripts.delete(key)
      this.#scripts.set(key, compiled)
    } else {
      this.stats.compiles++
      const c = sandbox.compile(source, name)
      if (c.ok === 'trap')
        return this.#crashed(key, 'compile', `the script crashed the compiler (${c.message})`)
      compiled = c.ok
        ? { ok: true, factory: c.factory }
        : { ok: false, failure: failure('compile', c.message) }
      this.#remember(key, compiled)
    }
    if (!compiled.ok) return this.#fail(compiled.failure.reason, compiled.failure.message)
    const out = sandbox.call(compiled.factory, name, JSON.stringify(event), this.limits.cpuMs)
    if (out.kind === 'trap')
      return this.#crashed(key, 'memory', `the script crashed the sandbox (${out.message})`)
    if (!out.clean) this.#dirty(key)
    if (out.kind === 'failure') return this.#fail(out.reason, out.message)
    if (!out.clean) {
      return this.#fail('threw', 'the script changed the global object in a way calls must not (disabled)')
    }
    return { ok: true, value: JSON.parse(out.json) }
  }

  #remember(key: string, c: Compiled): void {
    this.#scripts.set(key, c)
    while (this.#scripts.size > this.limits.maxScripts) {
      const [oldest, evicted] = this.#scripts.entries().next().value!
      this.#scripts.delete(oldest)
      if (evicted.ok) this.#sandbox?.release(evicted.factory)
    }
  }

  /**
   * A call left the realm in a state the sweep cannot undo (a non-configurable or non-extensible global,
   * a replaced global prototype, endless promise jobs). That script is disabled and the realm rebuilt on
   * the same instance, so no later call sees what it did.
   */
  #dirty(key: string): void {
    this.#quarantined(
      key,
      failure('threw', 'the script changed the global object in a way calls must not (disabled)'),
    )
    this.stats.restarts++
    const old = this.#sandbox
    this.#dropScripts()
    this.#sandbox = old?.renew() ?? null
    if (!this.#sandbox) this.#load()
  }

  /**
   * A host exception came out of the WebAssembly instance (a V8 stack overflow under QuickJS's own
   * check, an Emscripten abort): the instance may be inconsistent anywhere, so it is dropped whole and a
   * new one loaded. Calls fail closed until it is ready; the script that did it stays disabled.
   */
  #crashed(key: string, reason: ScriptFailureReason, message: string): ScriptFailure {
    this.#quarantined(key, failure(reason, `${message}; disabled until its source changes`))
    this.stats.restarts++
    this.#scripts.clear()
    this.#sandbox?.dispose()
    this.#sandbox = null
    this.#load()
    return this.#fail(reason, message)
  }

  #quarantined(key: string, f: ScriptFailure): void {
    this.#quarantine.set(key, f)
    if (this.#quarantine.size > MAX_QUARANTINED)
      this.#quarantine.delete(this.#quarantine.keys().next().value!)
  }

  #dropScripts(): void {
    for (const c of this.#scripts.values()) if (c.ok) this.#sandbox?.release(c.factory)
    this.#scripts.clear()
  }

  #load(): Promise<void> {
    this.#loading ??= Sandbox.load(this.limits.memoryBytes).then(
      (s) => {
        this.#loading = null
        if (this.#disposed) s.dispose()
        else this.#sandbox = s
      },
      () => {
        // Left without a sandbox: every call fails closed and asks for another load.
        this.#loading = null
      },
    )
    return this.#loading
  }

  #fail(reason: ScriptFailureReason, message: string): ScriptFailure {
    this.stats.failures[reason]++
    return failure(reason, message)
  }
}

function failure(reason: ScriptFailureReason, message: string): ScriptFailure {
  return { ok: false, reason, message }
}

function resolveLimits(l: Partial<ScriptLimits>): ScriptLimits {
  const out = { ...DEFAULT_SCRIPT_LIMITS }
  for (const k of Object.keys(DEFAULT_SCRIPT_LIMITS) as (keyof ScriptLimits)[]) {
    const v = l[k]
    if (v === undefined) continue
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new RangeError(`script limits: ${k} must be a positive number, got ${String(v)}`)
    }
    out[k] = k === 'cpuMs' ? v : Math.floor(v)
  }
  return out
}
