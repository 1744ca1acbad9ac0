// Our own list-and-watch over @kubernetes/client-node's `Watch` (OPERATOR.md: the library's informer
// stops for good on any error but 410). One loop per resource:
//   list (paginated) → watch from the list's resourceVersion → on 410 Gone relist; on any other end of
//   the watch re-watch from the last resourceVersion seen, backing off with jitter after errors; a watch
//   silent for longer than `silenceMs` is aborted and restarted (half-open TCP, a stuck proxy); every
//   `relistMs` the loop relists anyway, to catch anything a watch may have missed.
// The cache is keyed by namespace/name; handlers only get told which keys changed (they enqueue).
import type { Watch } from '@kubernetes/client-node'
import { errorMessage, httpStatusOf } from '../errors.ts'
import { Backoff, sleep, withTimeout } from './backoff.ts'

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata?: {
    name?: string
    namespace?: string
    resourceVersion?: string
    generation?: number
    uid?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
    deletionTimestamp?: Date | string
  }
}

export interface ListPage<T> {
  items: T[]
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string }
}

export type ListFn<T> = (opts: { limit: number; continue?: string }) => Promise<ListPage<T>>

export type InformerEvent = 'added' | 'modified' | 'deleted'

export interface InformerOptions<T extends KubeObject> {
  name: string
  watch: Watch
  /** API path to watch, e.g. /apis/flowgate.io/v1alpha1/flowpolicies */
  path: string
  /** query parameters shared by list and watch (labelSelector, fieldSelector) */
  query?: Record<string, string>
  list: ListFn<T>
  onChange: (event: InformerEvent, obj: T, old: T | undefined) => void
  /** page size of the list calls */
  pageSize?: number
  /** restart a watch that has delivered nothing (not even a bookmark) for this long */
  silenceMs?: number
  /** relist this often regardless */
  relistMs?: number
  /** give up on a list page after this long */
  requestTimeoutMs?: number
  /** asked of the server: end the watch after this many seconds (it then restarts cleanly) */
  watchTimeoutSeconds?: number
  backoffBaseMs?: number
  backoffMaxMs?: number
  random?: () => number
  log?: (msg: string, fields?: Record<string, unknown>) => void
  /** counts restarts by reason: gone, error, silent, closed, relist */
  onRestart?: (reason: string) => void
}

export function objectKey(o: KubeObject): string {
  const m = o.metadata ?? {}
  return m.namespace ? `${m.namespace}/${m.name}` : (m.name ?? '')
}

export class Informer<T extends KubeObject> {
  readonly store = new Map<string, T>()
  readonly #o: InformerOptions<T>
  #abort = new AbortController()
  #resourceVersion = ''
  #synced = false
  #syncedWaiters: (() => void)[] = []
  #loop: Promise<void> | undefined

  constructor(o: InformerOptions<T>) {
    this.#o = o
  }

  get hasSynced(): boolean {
    return this.#synced
  }

  list(): T[] {
    return [...this.store.values()]
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    await this.#loop
  }

  /** Resolves once the first list has filled the cache (or the informer stops). */
  waitForSync(): Promise<void> {
    if (this.#synced || this.#abort.signal.aborted) return Promise.resolve()
    return new Promise((r) => this.#syncedWaiters.push(r))
  }

  async #run(): Promise<void> {
    const o = this.#o
    const signal = this.#abort.signal
    const backoff = new Backoff({
      baseMs: o.backoffBaseMs ?? 200,
      maxMs: o.backoffMaxMs ?? 30_000,
      ...(o.random ? { random: o.random } : {}),
    })
    let needList = true
    let listedAt = 0
    while (!signal.aborted) {
      try {
        if (needList || Date.now() - listedAt >= (o.relistMs ?? 300_000)) {
          if (!needList) o.onRestart?.('relist')
          await this.#relist()
          needList = false
          listedAt = Date.now()
          backoff.reset()
        }
        const opened = Date.now()
        const end = await this.#watchOnce(listedAt)
        if (signal.aborted) break
        o.onRestart?.(end)
        // A watch that worked for a while before failing resets the backoff: the failures are not
        // consecutive.
        if (Date.now() - opened > 10_000) backoff.reset()
        if (end === 'gone') needList = true
        else if (end === 'error') await sleep(backoff.next(), signal)
        // A server (or proxy) that closes every watch at once would otherwise make this a hot loop.
        else if (end === 'closed' && Date.now() - opened < 1000) await sleep(backoff.next(), signal)
        else if (end !== 'relist') backoff.reset()
      } catch (err) {
        if (signal.aborted) break
        const delay = backoff.next()
        o.log?.('list failed; backing off', { informer: o.name, error: errorMessage(err), delayMs: delay })
        o.onRestart?.('error')
        needList = true
        await sleep(delay, signal)
      }
    }
    for (const w of this.#syncedWaiters.splice(0)) w()
  }

  async #relist(): Promise<void> {
    const o = this.#o
    const seen = new Map<string, T>()
    let cont: string | undefined
    let rv = ''
    // Bounded: a list of more than 10,000 pages means a server bug, not a big cluster.
    for (let page = 0; page < 10_000; page++) {
      const r = await withTimeout(
        o.list({ limit: o.pageSize ?? 500, ...(cont ? { continue: cont } : {}) }),
        o.requestTimeoutMs ?? 60_000,
        `list ${o.name}`,
      )
      for (const item of r.items) seen.set(objectKey(item), item)
      if (page === 0) rv = r.metadata?.resourceVersion ?? ''
      cont = r.metadata?._continue ?? r.metadata?.continue
      if (!cont) break
    }
    if (this.#abort.signal.aborted) return
    // Replace the cache and tell the handler what changed since the last time we knew.
    for (const [key, old] of this.store) {
      if (!seen.has(key)) {
        this.store.delete(key)
        o.onChange('deleted', old, old)
      }
    }
    for (const [key, obj] of seen) {
      const old = this.store.get(key)
      this.store.set(key, obj)
      if (!old) o.onChange('added', obj, undefined)
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        o.onChange('modified', obj, old)
    }
    this.#resourceVersion = rv
    if (!this.#synced) {
      this.#synced = true
      for (const w of this.#syncedWaiters.splice(0)) w()
    }
  }

  /** Runs one watch to its end; says why it ended. */
  #watchOnce(listedAt: number): Promise<'gone' | 'error' | 'silent' | 'closed' | 'relist'> {
    const o = this.#o
    const silenceMs = o.silenceMs ?? 60_000
    const relistMs = o.relistMs ?? 300_000
    return new Promise((resolve) => {
      let ended = false
      let outcome: 'gone' | 'error' | 'silent' | 'closed' | 'relist' = 'closed'
      let controller: AbortController | undefined
      const finish = (why: typeof outcome) => {
        if (ended) return
        ended = true
        clearTimeout(silence)
        clearTimeout(relist)
        this.#abort.signal.removeEventListener('abort', onStop)
        controller?.abort()
        resolve(why)
      }
      const onStop = () => finish('closed')
      this.#abort.signal.addEventListener('abort', onStop, { once: true })
      let silence = setTimeout(() => finish('silent'), silenceMs)
      const relist = setTimeout(() => finish('relist'), Math.max(0, listedAt + relistMs - Date.now()))
      const alive = () => {
        clearTimeout(silence)
        silence = setTimeout(() => finish('silent'), silenceMs)
      }
      const query: Record<string, string | number | boolean> = {
        ...o.query,
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: o.watchTimeoutSeconds ?? 300,
      }
      o.watch
        .watch(
          o.path,
          query,
          (type: string, obj: T & { code?: number; metadata?: { resourceVersion?: string } }) => {
            if (ended) return
            alive()
            if (type === 'ERROR') {
              // The API server reports an expired resourceVersion as an ERROR event carrying a Status.
              outcome = (obj as { code?: number }).code === 410 ? 'gone' : 'error'
              finish(outcome)
              return
            }
            const rv = obj?.metadata?.resourceVersion
            if (rv) this.#resourceVersion = rv
            if (type === 'BOOKMARK') return
            const key = objectKey(obj)
            const old = this.store.get(key)
            if (type === 'DELETED') {
              this.store.delete(key)
              o.onChange('deleted', obj, old)
            } else if (type === 'ADDED' || type === 'MODIFIED') {
              this.store.set(key, obj)
              o.onChange(old ? 'modified' : 'added', obj, old)
            }
          },
          (err: unknown) => {
            if (!err) return finish(outcome)
            // @kubernetes/client-node 2.0 aborts a watch after 30 s without data (its own inactivity
            // timer): that is a quiet resource, not a failure, so it is re-watched without backing off.
            if ((err as { name?: string }).name === 'TimeoutError') return finish('silent')
            const status = httpStatusOf(err)
            finish(status === 410 ? 'gone' : this.#abort.signal.aborted ? 'closed' : 'error')
          },
        )
        .then(
          (c) => {
            controller = c
            if (ended) c.abort()
          },
          () => finish('error'),
        )
    })
  }
}
