// @peculiar/x509 registers its algorithms with tsyringe, which refuses to load unless the Reflect metadata
// API exists (it checks `Reflect.getMetadata` at import time). It only ever stores and reads
// "injectionTokens" and "design:paramtypes" on its own classes, so these three functions are all it uses.
// Installed only when nothing else provided them, so a real polyfill loaded earlier wins.

type Metadata = Map<unknown, unknown>
const store = new WeakMap<object, Metadata>()

interface ReflectMetadata {
  defineMetadata(key: unknown, value: unknown, target: object): void
  getOwnMetadata(key: unknown, target: object): unknown
  getMetadata(key: unknown, target: object): unknown
}

const R = Reflect as unknown as Partial<ReflectMetadata>
if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (key, value, target) => {
    let m = store.get(target)
    if (!m) {
      m = new Map()
      store.set(target, m)
    }
    m.set(key, value)
  }
  R.getOwnMetadata = (key, target) => store.get(target)?.get(key)
  R.getMetadata = (key, target) => {
    for (let o: object | null = target; o; o = Object.getPrototypeOf(o)) {
      const m = store.get(o)
      if (m?.has(key)) return m.get(key)
    }
    return undefined
  }
}
