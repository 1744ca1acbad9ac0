// An in-process Kubernetes API server for the operator's tests. It speaks the real REST and watch
// protocol that @kubernetes/client-node uses, for the resources the operator touches (FlowPolicies,
// Pods, Leases, events.k8s.io Events), with the semantics the operator relies on:
// - one cluster-wide resourceVersion counter; list returns it; pagination with limit/continue over a
//   snapshot taken at the first page;
// - watch streams (chunked, one JSON event per line) from a resourceVersion, replaying history, with
//   ERROR 410 Gone when that resourceVersion has been compacted away; BOOKMARK events on request;
//   timeoutSeconds honoured; label selectors (an object leaving the selector is DELETED for the watcher);
// - PUT with a stale metadata.resourceVersion → 409 Conflict; POST of an existing name → 409;
// - the status subresource: the main endpoint ignores status, /status ignores everything but status;
//   metadata.generation is bumped only when spec changes (custom resources);
// - PATCH with merge patch (RFC 7386) and JSON patch (RFC 6902); strategic merge patch on a custom
//   resource → 415, as the real server does;
// - Pod deletion is graceful: deletionTimestamp is set, the Pod stays for its grace period, then goes.
// Fault injection: fail or delay requests matching a predicate, drop or stall open watches, compact
// history so watches get 410.
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

interface ResourceDef {
  group: string
  version: string
  plural: string
  kind: string
  namespaced: boolean
  statusSubresource: boolean
  /** bump metadata.generation on spec changes (custom resources; Pods do not) */
  generation: boolean
  /** drop status on create (custom resources with a status subresource) */
  dropStatusOnCreate: boolean
}

const RESOURCES: ResourceDef[] = [
  {
    group: 'flowgate.io',
    version: 'v1alpha1',
    plural: 'flowpolicies',
    kind: 'FlowPolicy',
    namespaced: false,
    statusSubresource: true,
    generation: true,
    dropStatusOnCreate: true,
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    kind: 'Pod',
    namespaced: true,
    statusSubresource: true,
    generation: false,
    dropStatusOnCreate: false,
  },
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    kind: 'Lease',
    namespaced: true,
    statusSubresource: false,
    generation: false,
    dropStatusOnCreate: false,
  },
  {
    group: 'events.k8s.io',
    version: 'v1',
    plural: 'events',
    kind: 'Event',
    namespaced: true,
    statusSubresource: false,
    generation: false,
    dropStatusOnCreate: false,
  },
]

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON
export type Obj = Record<string, any>

interface HistoryEntry {
  rv: number
  plural: string
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  obj: Obj
  old: Obj | undefined
}

interface WatchConn {
  plural: string
  namespace: string | undefined
  selector: Selector
  res: http.ServerResponse
  stalled: boolean
  closed: boolean
}

export interface RequestInfo {
  method: string
  path: string
  plural: string
  name?: string
  subresource?: string
  watch: boolean
  /** the bearer token the client sent: tells clients apart (to partition one of them) */
  user: string
}

export interface Fault {
  match: (r: RequestInfo) => boolean
  /** answer with this status instead of serving */
  status?: number
  /** delay the answer this long first */
  delayMs?: number
  /** how many requests it applies to; Infinity for all */
  count: number
}

type Selector = (labels: Record<string, string> | undefined) => boolean

function parseSelector(s: string | null): Selector {
  if (!s) return () => true
  const terms = s.split(',').map((t) => t.trim())
  return (labels = {}) =>
    terms.every((t) => {
      const ne = t.split('!=')
      if (ne.length === 2) return labels[ne[0]!.trim()] !== ne[1]!.trim()
      const eq = t.split(/==?/)
      if (eq.length === 2) return labels[eq[0]!.trim()] === eq[1]!.trim()
      if (t.startsWith('!')) return !(t.slice(1) in labels)
      return t in labels
    })
}

function clone<T>(v: T): T {
  return structuredClone(v)
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** RFC 7386 JSON merge patch */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch)
  const out: Obj = isObj(target) ? { ...target } : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = mergePatch(out[k], v)
  }
  return out
}

function pointer(path: string): string[] {
  return path
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
}

/** RFC 6902 JSON patch (add, remove, replace, test) — enough for guarded finalizer edits. */
export function jsonPatch(doc: Obj, ops: Obj[]): Obj {
  const out = clone(doc)
  for (const op of ops) {
    const segs = pointer(op.path)
    const last = segs.pop()!
    let parent: Obj = out
    for (const s of segs) {
      parent = parent?.[Array.isArray(parent) ? Number(s) : s]
      if (parent === undefined) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`)
    }
    const idx = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : last
    switch (op.op) {
      case 'test':
        if (JSON.stringify(parent[idx as string]) !== JSON.stringify(op.value))
          throw new HttpError(422, 'Invalid', `test failed at ${op.path}`)
        break
      case 'remove':
        if (!(idx in parent)) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`)
        if (Array.isArray(parent)) parent.splice(idx as number, 1)
        else delete parent[idx as string]
        break
      case 'add':
        if (Array.isArray(parent)) parent.splice(idx as number, 0, op.value)
        else parent[idx as string] = op.value
        break
      case 'replace':
        if (!(idx in parent)) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`)
        parent[idx as string] = op.value
        break
      default:
        throw new HttpError(422, 'Invalid', `unsupported op ${op.op}`)
    }
  }
  return out
}

class HttpError extends Error {
  readonly status: number
  readonly reason: string
  constructor(status: number, reason: string, message: string) {
    super(message)
    this.status = status
    this.reason = reason
  }
}

/** What the API server's validation of events.k8s.io/v1 Events insists on. */
function validateEvent(e: Obj): void {
  const missing = ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason'].filter(
    (f) => !e[f],
  )
  if (missing.length)
    throw new HttpError(422, 'Invalid', missing.map((f) => `${f}: Required value`).join(', '))
  if (e.type !== 'Normal' && e.type !== 'Warning')
    throw new HttpError(422, 'Invalid', 'type: Unsupported value: must be Normal or Warning')
  if (typeof e.note === 'string' && Buffer.byteLength(e.note) > 1024)
    throw new HttpError(422, 'Invalid', 'note: Too long: may not be longer than 1024 bytes')
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(String(e.eventTime)))
    throw new HttpError(422, 'Invalid', 'eventTime: must be a MicroTime (RFC 3339 with microseconds)')
}

function statusBody(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }
}

export interface KubeApiServerOptions {
  /** how long a deleted Pod stays terminating before it is gone (stands in for terminationGracePeriodSeconds) */
  podTerminationMs?: number
  /** send a BOOKMARK on open watches that asked for them this often (0: never) */
  bookmarkMs?: number
}

export class KubeApiServer {
  readonly server: http.Server
  url = ''
  #rv = 1
  /** watches from a resourceVersion older than this get 410 Gone */
  #compactedRv = 0
  #store = new Map<string, Map<string, Obj>>()
  #history: HistoryEntry[] = []
  #watches = new Set<WatchConn>()
  #faults: Fault[] = []
  #snapshots = new Map<string, Obj[]>()
  #timers = new Set<NodeJS.Timeout>()
  readonly #o: KubeApiServerOptions
  /** every request served, for assertions (method, path, status) */
  readonly requests: { method: string; path: string; status: number; at: number; user: string }[] = []

  constructor(o: KubeApiServerOptions = {}) {
    this.#o = o
    for (const r of RESOURCES) this.#store.set(r.plural, new Map())
    this.server = http.createServer((req, res) => void this.#handle(req, res))
    this.server.keepAliveTimeout = 1000
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    if (this.#o.bookmarkMs) {
      const t = setInterval(() => this.#bookmark(), this.#o.bookmarkMs)
      this.#timers.add(t)
    }
    return this
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t)
    for (const w of this.#watches) w.res.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  /** A kubeconfig (for KubeConfig.loadFromOptions) pointing at this server. */
  kubeconfig(user = 'test-token'): Obj {
    return {
      clusters: [{ name: 'test', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test', token: user }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
      currentContext: 'test',
    }
  }

  get resourceVersion(): number {
    return this.#rv
  }

  // ---------------------------------------------------------------- fault injection

  /** Fail (status) or slow down (delayMs) the next `count` requests that match. */
  inject(f: Partial<Fault> & { match: Fault['match'] }): Fault {
    const fault = { count: 1, ...f }
    this.#faults.push(fault)
    return fault
  }

  clearFaults(): void {
    this.#faults = []
  }

  /** Cut every open watch connection abruptly (as a restarted API server or a dropped LB would). */
  dropWatches(): number {
    const n = this.#watches.size
    for (const w of this.#watches) {
      w.closed = true
      w.res.destroy()
    }
    this.#watches.clear()
    return n
  }

  /** Keep open watches connected but deliver nothing more on them (a half-open connection). */
  stallWatches(): number {
    for (const w of this.#watches) w.stalled = true
    return this.#watches.size
  }

  /** Forget history: watches from any older resourceVersion get 410; open watches are told so and end. */
  compact(): void {
    this.#compactedRv = this.#rv
    this.#history = []
    for (const w of this.#watches) {
      if (w.stalled) continue
      this.#send(w, { type: 'ERROR', object: statusBody(410, 'Expired', 'too old resource version') })
      w.closed = true
      w.res.end()
    }
    this.#watches.clear()
  }

  openWatches(plural?: string): number {
    return [...this.#watches].filter((w) => !w.stalled && (!plural || w.plural === plural)).length
  }

  // ---------------------------------------------------------------- direct access (the test acts as kubelet/kubectl)

  get(plural: string, name: string, namespace?: string): Obj | undefined {
    const o = this.#store.get(plural)!.get(this.#key(namespace, name))
    return o && clone(o)
  }

  list(plural: string, namespace?: string): Obj[] {
    return [...this.#store.get(plural)!.values()]
      .filter((o) => !namespace || o.metadata.namespace === namespace)
      .map(clone)
  }

  /** Creates or replaces an object as-is (status included), as a kubelet or a test fixture would. */
  put(plural: string, obj: Obj): Obj {
    const def = this.#def(plural)
    const ns = def.namespaced ? (obj.metadata.namespace ?? 'default') : undefined
    const key = this.#key(ns, obj.metadata.name)
    const old = this.#store.get(plural)!.get(key)
    const next = clone(obj)
    next.metadata = { ...(old?.metadata ?? {}), ...next.metadata }
    if (ns) next.metadata.namespace = ns
    if (!old) this.#initMeta(def, next)
    else if (def.generation && JSON.stringify(old.spec) !== JSON.stringify(next.spec))
      next.metadata.generation = (old.metadata.generation ?? 1) + 1
    return this.#commit(def, key, next, old)
  }

  /** Deletes as the API would: Pods go terminating first, the rest at once. */
  remove(plural: string, name: string, namespace?: string): void {
    this.#delete(this.#def(plural), namespace, name)
  }

  /** Removes a terminating Pod now (the kubelet saw its containers exit). */
  finalize(plural: string, name: string, namespace?: string): void {
    const def = this.#def(plural)
    const key = this.#key(namespace, name)
    const old = this.#store.get(plural)!.get(key)
    if (old) this.#commitDelete(def, key, old)
  }

  // ---------------------------------------------------------------- internals

  #def(plural: string): ResourceDef {
    const d = RESOURCES.find((r) => r.plural === plural)
    if (!d) throw new Error(`unknown resource ${plural}`)
    return d
  }

  #key(ns: string | undefined, name: string): string {
    return ns ? `${ns}/${name}` : name
  }

  #initMeta(def: ResourceDef, o: Obj): void {
    o.apiVersion = def.group ? `${def.group}/${def.version}` : def.version
    o.kind = def.kind
    o.metadata.uid ??= randomUUID()
    o.metadata.creationTimestamp ??= new Date().toISOString()
    if (def.generation) o.metadata.generation = 1
  }

  #commit(def: ResourceDef, key: string, obj: Obj, old: Obj | undefined): Obj {
    obj.metadata.resourceVersion = String(++this.#rv)
    this.#store.get(def.plural)!.set(key, obj)
    this.#publish({ rv: this.#rv, plural: def.plural, type: old ? 'MODIFIED' : 'ADDED', obj, old })
    return clone(obj)
  }

  #commitDelete(def: ResourceDef, key: string, old: Obj): Obj {
    this.#store.get(def.plural)!.delete(key)
    const gone = clone(old)
    gone.metadata.resourceVersion = String(++this.#rv)
    this.#publish({ rv: this.#rv, plural: def.plural, type: 'DELETED', obj: gone, old })
    return gone
  }

  #delete(def: ResourceDef, ns: string | undefined, name: string, graceSeconds?: number): Obj {
    const key = this.#key(ns, name)
    const old = this.#store.get(def.plural)!.get(key)
    if (!old) throw new HttpError(404, 'NotFound', `${def.plural} "${name}" not found`)
    if (def.plural === 'pods' && graceSeconds !== 0) {
      if (old.metadata.deletionTimestamp) return clone(old)
      const next = clone(old)
      next.metadata.deletionTimestamp = new Date().toISOString()
      next.metadata.deletionGracePeriodSeconds = graceSeconds ?? 30
      const committed = this.#commit(def, key, next, old)
      const t = setTimeout(() => {
        this.#timers.delete(t)
        const cur = this.#store.get(def.plural)!.get(key)
        if (cur && cur.metadata.uid === old.metadata.uid) this.#commitDelete(def, key, cur)
      }, this.#o.podTerminationMs ?? 1000)
      this.#timers.add(t)
      return committed
    }
    return this.#commitDelete(def, key, old)
  }

  #publish(e: HistoryEntry): void {
    this.#history.push(e)
    if (this.#history.length > 10_000) {
      this.#compactedRv = this.#history[4999]!.rv
      this.#history.splice(0, 5000)
    }
    for (const w of this.#watches) this.#deliver(w, e)
  }

  #deliver(w: WatchConn, e: HistoryEntry): void {
    if (w.plural !== e.plural || w.closed || w.stalled) return
    if (w.namespace && e.obj.metadata.namespace !== w.namespace) return
    const now = e.type !== 'DELETED' && w.selector(e.obj.metadata.labels)
    const before = e.old !== undefined && w.selector(e.old.metadata.labels)
    let type: string = e.type
    if (e.type === 'DELETED') {
      if (!before) return
    } else if (now && !before) type = 'ADDED'
    else if (!now && before) type = 'DELETED'
    else if (!now) return
    this.#send(w, { type, object: e.obj })
  }

  #send(w: WatchConn, event: Obj): void {
    w.res.write(`${JSON.stringify(event)}\n`)
  }

  #bookmark(): void {
    for (const w of this.#watches) {
      if (w.stalled || w.closed) continue
      const def = this.#def(w.plural)
      this.#send(w, {
        type: 'BOOKMARK',
        object: {
          kind: def.kind,
          apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
          metadata: { resourceVersion: String(this.#rv) },
        },
      })
    }
  }

  #parse(method: string, url: URL, auth: string): RequestInfo & { def: ResourceDef; namespace?: string } {
    const segs = url.pathname.split('/').filter(Boolean)
    let group = ''
    let version: string | undefined
    let rest: string[]
    if (segs[0] === 'api') {
      version = segs[1]
      rest = segs.slice(2)
    } else if (segs[0] === 'apis') {
      group = segs[1] ?? ''
      version = segs[2]
      rest = segs.slice(3)
    } else throw new HttpError(404, 'NotFound', `no route for ${url.pathname}`)
    let namespace: string | undefined
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1]
      rest = rest.slice(2)
    }
    const [plural, name, subresource] = rest
    const def = RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural)
    if (!def) throw new HttpError(404, 'NotFound', `the server could not find the requested resource`)
    if (def.namespaced && !namespace && name) throw new HttpError(404, 'NotFound', 'namespace required')
    if (subresource && (subresource !== 'status' || !def.statusSubresource))
      throw new HttpError(404, 'NotFound', `no subresource ${subresource}`)
    return {
      def,
      method,
      path: url.pathname,
      plural: def.plural,
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
      ...(subresource ? { subresource } : {}),
      watch: url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1',
      user: auth.replace(/^Bearer\s+/i, ''),
    }
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    const method = req.method ?? 'GET'
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    const user = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '')
    const reply = (status: number, body: Obj) => {
      this.requests.push({ method, path: url.pathname, status, at: Date.now(), user })
      if (res.destroyed) return
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    try {
      const info = this.#parse(method, url, req.headers.authorization ?? '')
      for (const f of this.#faults) {
        if (f.count <= 0 || !f.match(info)) continue
        f.count--
        if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs))
        if (f.status) throw new HttpError(f.status, 'InternalError', 'injected fault')
      }
      this.#faults = this.#faults.filter((f) => f.count > 0)
      if (method === 'GET' && info.watch && !info.name) return this.#watch(info, url, res)
      const body = raw ? (JSON.parse(raw) as Obj) : undefined
      const [status, out] = this.#serve(info, url, body, req.headers['content-type'] ?? '')
      reply(status, out)
    } catch (err) {
      if (err instanceof HttpError) reply(err.status, statusBody(err.status, err.reason, err.message))
      else if (err instanceof SyntaxError) reply(400, statusBody(400, 'BadRequest', err.message))
      else reply(500, statusBody(500, 'InternalError', String(err)))
    }
  }

  #serve(
    info: RequestInfo & { def: ResourceDef; namespace?: string },
    url: URL,
    body: Obj | undefined,
    contentType: string,
  ): [number, Obj] {
    const { def, namespace, name } = info
    const store = this.#store.get(def.plural)!
    switch (info.method) {
      case 'GET': {
        if (name) {
          const o = store.get(this.#key(namespace, name))
          if (!o) throw new HttpError(404, 'NotFound', `${def.plural} "${name}" not found`)
          return [200, clone(o)]
        }
        return [200, this.#list(info, url)]
      }
      case 'POST': {
        if (name || !body) throw new HttpError(405, 'MethodNotAllowed', 'POST to a collection only')
        const obj = clone(body)
        obj.metadata ??= {}
        if (!obj.metadata.name && obj.metadata.generateName)
          obj.metadata.name = obj.metadata.generateName + randomUUID().slice(0, 5)
        if (!obj.metadata.name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value')
        if (def.namespaced) obj.metadata.namespace = namespace
        const key = this.#key(namespace, obj.metadata.name)
        if (store.has(key))
          throw new HttpError(409, 'AlreadyExists', `${def.plural} "${obj.metadata.name}" already exists`)
        delete obj.metadata.resourceVersion
        if (def.dropStatusOnCreate) delete obj.status
        if (def.plural === 'events') validateEvent(obj)
        this.#initMeta(def, obj)
        return [201, this.#commit(def, key, obj, undefined)]
      }
      case 'PUT':
      case 'PATCH': {
        if (!name || body === undefined)
          throw new HttpError(405, 'MethodNotAllowed', 'needs a name and a body')
        const key = this.#key(namespace, name)
        const old = store.get(key)
        if (!old) throw new HttpError(404, 'NotFound', `${def.plural} "${name}" not found`)
        let next: Obj
        if (info.method === 'PUT') next = clone(body)
        else if (contentType.startsWith('application/merge-patch+json')) next = mergePatch(old, body) as Obj
        else if (contentType.startsWith('application/json-patch+json'))
          next = jsonPatch(old, body as unknown as Obj[])
        else if (contentType.startsWith('application/strategic-merge-patch+json')) {
          if (def.group === 'flowgate.io')
            throw new HttpError(415, 'UnsupportedMediaType', 'strategic merge patch is not supported')
          next = mergePatch(old, body) as Obj
        } else throw new HttpError(415, 'UnsupportedMediaType', `unsupported patch type ${contentType}`)
        const wanted = next.metadata?.resourceVersion
        if (wanted && wanted !== old.metadata.resourceVersion)
          throw new HttpError(
            409,
            'Conflict',
            `Operation cannot be fulfilled on ${def.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          )
        // Identity and system fields are the server's.
        next.metadata = {
          ...next.metadata,
          name: old.metadata.name,
          uid: old.metadata.uid,
          creationTimestamp: old.metadata.creationTimestamp,
          ...(old.metadata.namespace ? { namespace: old.metadata.namespace } : {}),
          ...(old.metadata.generation ? { generation: old.metadata.generation } : {}),
          ...(old.metadata.deletionTimestamp ? { deletionTimestamp: old.metadata.deletionTimestamp } : {}),
        }
        next.apiVersion = old.apiVersion
        next.kind = old.kind
        if (def.statusSubresource) {
          if (info.subresource === 'status') {
            // Only status changes through /status.
            const keep = clone(old)
            keep.status = next.status
            next = keep
          } else if (old.status === undefined) delete next.status
          else next.status = clone(old.status)
        }
        if (def.generation && JSON.stringify(old.spec) !== JSON.stringify(next.spec))
          next.metadata.generation = (old.metadata.generation ?? 1) + 1
        // A write that changes nothing does not bump the resourceVersion, as on the real server.
        const strip = (o: Obj) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } })
        if (JSON.stringify(strip(next)) === JSON.stringify(strip(old))) return [200, clone(old)]
        return [200, this.#commit(def, key, next, old)]
      }
      case 'DELETE': {
        if (!name) throw new HttpError(405, 'MethodNotAllowed', 'DELETE of a collection is not supported')
        const g = url.searchParams.get('gracePeriodSeconds') ?? body?.gracePeriodSeconds
        return [
          200,
          this.#delete(def, namespace, name, g === undefined || g === null ? undefined : Number(g)),
        ]
      }
      default:
        throw new HttpError(405, 'MethodNotAllowed', info.method)
    }
  }

  #list(info: RequestInfo & { def: ResourceDef; namespace?: string }, url: URL): Obj {
    const { def, namespace } = info
    const limit = Number(url.searchParams.get('limit') ?? 0)
    const cont = url.searchParams.get('continue')
    let items: Obj[]
    let rv: string
    let offset = 0
    let token: string
    if (cont) {
      const [id, off, listRv] = Buffer.from(cont, 'base64url').toString().split(':')
      const snap = this.#snapshots.get(id ?? '')
      if (!snap) throw new HttpError(410, 'Expired', 'the provided continue parameter is too old')
      items = snap
      offset = Number(off)
      rv = listRv ?? ''
      token = id!
    } else {
      const selector = parseSelector(url.searchParams.get('labelSelector'))
      items = [...this.#store.get(def.plural)!.values()]
        .filter((o) => !namespace || o.metadata.namespace === namespace)
        .filter((o) => selector(o.metadata.labels))
        .sort((a, b) =>
          this.#key(a.metadata.namespace, a.metadata.name) < this.#key(b.metadata.namespace, b.metadata.name)
            ? -1
            : 1,
        )
        .map(clone)
      rv = String(this.#rv)
      token = randomUUID()
    }
    const page = limit > 0 ? items.slice(offset, offset + limit) : items.slice(offset)
    const more = limit > 0 && offset + limit < items.length
    if (more) this.#snapshots.set(token, items)
    else this.#snapshots.delete(token)
    return {
      kind: `${def.kind}List`,
      apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
      metadata: {
        resourceVersion: rv,
        ...(more ? { continue: Buffer.from(`${token}:${offset + limit}:${rv}`).toString('base64url') } : {}),
      },
      items: page,
    }
  }

  #watch(
    info: RequestInfo & { def: ResourceDef; namespace?: string },
    url: URL,
    res: http.ServerResponse,
  ): void {
    this.requests.push({ method: 'WATCH', path: url.pathname, status: 200, at: Date.now(), user: info.user })
    const from = url.searchParams.get('resourceVersion')
    const w: WatchConn = {
      plural: info.plural,
      namespace: info.namespace,
      selector: parseSelector(url.searchParams.get('labelSelector')),
      res,
      stalled: false,
      closed: false,
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
    res.flushHeaders()
    if (from && from !== '0' && Number(from) < this.#compactedRv) {
      this.#send(w, {
        type: 'ERROR',
        object: statusBody(410, 'Expired', `too old resource version: ${from} (${this.#compactedRv})`),
      })
      res.end()
      return
    }
    if (!from || from === '0') {
      for (const o of this.#store.get(info.plural)!.values()) {
        if (info.namespace && o.metadata.namespace !== info.namespace) continue
        if (w.selector(o.metadata.labels)) this.#send(w, { type: 'ADDED', object: o })
      }
    } else {
      for (const e of this.#history) if (e.rv > Number(from)) this.#deliver(w, e)
    }
    this.#watches.add(w)
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0)
    const end = () => {
      this.#watches.delete(w)
      w.closed = true
    }
    if (timeout > 0) {
      const t = setTimeout(() => {
        this.#timers.delete(t)
        end()
        res.end()
      }, timeout * 1000)
      this.#timers.add(t)
    }
    res.on('close', end)
  }
}
