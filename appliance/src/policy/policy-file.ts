// Standalone mode: policies come from a local multi-document YAML file, reloaded when it changes and on
// SIGHUP. A reload is all or nothing: if any document is invalid the whole file is refused, its errors
// are logged, and the last good policy stays in force.
import { type FSWatcher, watch } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Logger } from 'pino'
import { compile } from '../../../policy/src/bundle.ts'
import { formatFieldError } from '../../../policy/src/errors.ts'
import { loadPolicyFile } from '../../../policy/src/load.ts'
import type { DefaultAction } from '../../../policy/src/schema.ts'
import type { PolicyStore } from './policy-store.ts'

export type ReloadResult = { ok: true; version: string; changed: boolean } | { ok: false; errors: string[] }

export class PolicyFile {
  private watcher: FSWatcher | undefined
  private timer: NodeJS.Timeout | undefined
  private reloading: Promise<ReloadResult> | undefined
  private again = false
  readonly path: string
  private readonly store: PolicyStore
  private readonly log: Logger
  private readonly onResult: (r: ReloadResult) => void
  private readonly fleetDefault: DefaultAction

  constructor(
    path: string,
    store: PolicyStore,
    log: Logger,
    onResult: (r: ReloadResult) => void = () => {},
    fleetDefault: DefaultAction = 'Allow',
  ) {
    this.path = path
    this.store = store
    this.log = log
    this.onResult = onResult
    this.fleetDefault = fleetDefault
  }

  /** Loads the file now; concurrent calls coalesce so the last write always wins. */
  reload(): Promise<ReloadResult> {
    if (this.reloading) {
      this.again = true
      return this.reloading
    }
    this.reloading = this.load().finally(() => {
      this.reloading = undefined
      if (this.again) {
        this.again = false
        void this.reload()
      }
    })
    return this.reloading
  }

  private async load(): Promise<ReloadResult> {
    let result: ReloadResult
    try {
      const loaded = await loadPolicyFile(this.path)
      const errors = loaded.errors.map((e) => `${this.path}:${e.line}: ${e.message}`)
      const values = loaded.docs.map((d) => d.value)
      const compiled = compile(values, { fleetDefault: this.fleetDefault })
      compiled.results.forEach((r, i) => {
        for (const e of r.errors)
          errors.push(`${this.path}:${loaded.docs[i]!.lineOf(e.path)}: ${formatFieldError(e)}`)
      })
      if (errors.length) result = { ok: false, errors }
      else {
        const previous = this.store.current?.bundle.version
        const next = this.store.apply(compiled.bundle, compiled.policies, this.path)
        result = { ok: true, version: next.bundle.version, changed: previous !== next.bundle.version }
      }
    } catch (err) {
      result = { ok: false, errors: [`${this.path}: ${(err as Error).message}`] }
    }
    if (result.ok) {
      if (result.changed) this.log.info({ version: result.version, file: this.path }, 'policy loaded')
    } else {
      const kept = this.store.current?.bundle.version ?? null
      this.log.error(
        { file: this.path, errors: result.errors, keptVersion: kept },
        'policy file rejected; keeping the last good policy',
      )
    }
    this.onResult(result)
    return result
  }

  /**
   * Watches the file's directory rather than the file: editors and Kubernetes ConfigMap updates replace
   * the file (rename), which a watch on the old inode would never see.
   */
  watch(debounceMs = 200): void {
    const name = basename(this.path)
    this.watcher = watch(dirname(this.path), (_event, file) => {
      if (file !== null && file !== name && !String(file).startsWith('..data')) return
      clearTimeout(this.timer)
      this.timer = setTimeout(() => void this.reload(), debounceMs)
    })
    this.watcher.on('error', (err) =>
      this.log.warn({ err }, 'policy file watch failed; SIGHUP still reloads'),
    )
  }

  close(): void {
    clearTimeout(this.timer)
    this.watcher?.close()
  }
}
