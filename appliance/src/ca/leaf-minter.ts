// Per-host leaf certificates for terminated TLS flows, signed by the in-memory intermediate.
//
// - P-256 key per leaf, generated off the event loop (libuv pool), as is the signature; only building the
//   DER runs on the main thread, so one flow's mint does not stall the packets of the others.
// - SAN = the DNS name, or an iPAddress SAN for an IP-literal host (clients check IP literals against IP
//   SANs only: RFC 6125 §6.2.1 / RFC 2818 §3.1).
// - Back-dated a few minutes; never valid past the intermediate (a chain is only as valid as its shortest
//   link, and some clients report the leaf's dates, which would mislead).
// - Bounded LRU cache; concurrent requests for one host share one mint (in-flight de-duplication).
// - Key material stays in memory: a KeyObject and the SecureContext built from it. Nothing is logged.
import crypto, { type KeyObject } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import { promisify } from 'node:util'
import { issueCertificate } from './certificate.ts'
import { CaError, CaErrorCodes } from './errors.ts'
import { DEFAULT_BACKDATE_MS, type IntermediateCa } from './intermediate.ts'
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  type Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  type X509Certificate,
} from './x509.ts'

const generateKeyPair = promisify(crypto.generateKeyPair)

export const DEFAULT_LEAF_VALIDITY_MS = 24 * 3_600_000
export const DEFAULT_LEAF_CACHE_SIZE = 2048

export interface LeafMinterOptions {
  /** most leaves kept (LRU); default 2048 */
  cacheSize?: number
  /** default 24 h, cut to the intermediate's notAfter */
  validityMs?: number
  backdateMs?: number
  /** a cached leaf with less than this left is minted anew; default 1/4 of validityMs */
  renewBeforeMs?: number
  /**
   * mints under way at once (default 2). Each mint's finishing steps (DER, SecureContext) run on the main
   * thread when its key and signature come back from the libuv pool, and libuv hands back every finished
   * job in one go: with 60 mints in flight that was a 65 ms stall; capped, it stays a few ms.
   */
  concurrency?: number
  /**
   * mints allowed to wait for a slot (default 1024); beyond that get() fails at once with FG_ERR_CA_BUSY,
   * so a flood of fresh SNI names cannot grow the queue (and each waiting flow) without bound
   */
  maxQueued?: number
  /** merged into every leaf's tls.createSecureContext options (ciphers, minVersion, ...) */
  secureContextOptions?: tls.SecureContextOptions
  now?: () => number
}

export interface MintedLeaf {
  /** the normalized host the leaf is for */
  host: string
  kind: 'dns' | 'ip'
  cert: X509Certificate
  certPem: string
  /** leaf then intermediate, PEM: what a TLS server sends (the root stays with the clients) */
  chainPem: string
  /** the leaf's private key, in memory only */
  key: KeyObject
  /** ready for tls.TLSSocket({ secureContext }) or an SNICallback */
  secureContext: tls.SecureContext
  notBefore: number
  notAfter: number
  /** wall-clock time from request to leaf (queueing, key, DER, signature, SecureContext), ms */
  mintMs: number
}

export interface LeafMinterStats {
  hits: number
  misses: number
  /** requests that joined a mint already under way for the same host */
  joined: number
  mints: number
  mintErrors: number
  evictions: number
}

export type HostName = { host: string; kind: 'dns' | 'ip' }

/**
 * Normalize a host for a certificate: lower case, no trailing dot, IPv6 without brackets; throws
 * FG_ERR_CA_NAME for anything a certificate must not carry (it came from the network: SNI or Host).
 */
export function normalizeHost(input: string): HostName {
  let h = input.trim()
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1)
  if (net.isIP(h)) {
    // Canonical text form, so "::ffff:1" and "::FFFF:0.0.1" share one leaf; URL does the IPv6 canonicalization.
    const host = net.isIPv6(h) ? new URL(`http://[${h}]/`).hostname.slice(1, -1) : h
    return { host, kind: 'ip' }
  }
  h = h.toLowerCase()
  if (h.endsWith('.')) h = h.slice(0, -1)
  // RFC 1035 §2.3.4 lengths; LDH labels plus "_", which real names carry (RFC 2181 §11) and clients accept.
  if (!h || h.length > 253) throw new CaError(CaErrorCodes.name, `host name length ${h.length} not in 1..253`)
  for (const label of h.split('.')) {
    if (!/^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label)) {
      throw new CaError(CaErrorCodes.name, `not a host name: ${JSON.stringify(input.slice(0, 300))}`)
    }
  }
  return { host: h, kind: 'dns' }
}

interface Issuer {
  ca: IntermediateCa
  generation: number
  /** extensions common to every leaf under this intermediate, built once */
  fixed: Extension[]
}

export class LeafMinter {
  readonly stats: LeafMinterStats = { hits: 0, misses: 0, joined: 0, mints: 0, mintErrors: 0, evictions: 0 }
  readonly #cache = new Map<string, MintedLeaf>() // insertion order = recency (oldest first)
  readonly #inflight = new Map<string, Promise<MintedLeaf>>()
  readonly #size: number
  readonly #validity: number
  readonly #backdate: number
  readonly #renewBefore: number
  readonly #now: () => number
  readonly #tlsOptions: tls.SecureContextOptions
  readonly #concurrency: number
  readonly #maxQueued: number
  #active = 0
  readonly #waiting: (() => void)[] = []
  #issuer: Promise<Issuer>
  #current: IntermediateCa
  #generation = 0

  constructor(intermediate: IntermediateCa, o: LeafMinterOptions = {}) {
    this.#size = o.cacheSize ?? DEFAULT_LEAF_CACHE_SIZE
    this.#validity = o.validityMs ?? DEFAULT_LEAF_VALIDITY_MS
    this.#backdate = o.backdateMs ?? DEFAULT_BACKDATE_MS
    this.#renewBefore = o.renewBeforeMs ?? this.#validity / 4
    this.#now = o.now ?? Date.now
    this.#tlsOptions = o.secureContextOptions ?? {}
    this.#concurrency = o.concurrency ?? 2
    this.#maxQueued = o.maxQueued ?? 1024
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new CaError(
        CaErrorCodes.config,
        `mint concurrency must be a whole number ≥ 1, got ${this.#concurrency}`,
      )
    }
    if (!Number.isInteger(this.#size) || this.#size < 1) {
      throw new CaError(CaErrorCodes.config, `leaf cache size must be a whole number ≥ 1, got ${this.#size}`)
    }
    if (!(this.#validity > 0) || !(this.#backdate >= 0) || !(this.#renewBefore >= 0)) {
      throw new CaError(CaErrorCodes.config, 'leaf validity must be > 0, back-dating and renewal ≥ 0')
    }
    this.#current = intermediate
    this.#issuer = this.#prepare(intermediate)
  }

  /** Leaves cached now. */
  get size(): number {
    return this.#cache.size
  }

  /** Current intermediate certificate. */
  async intermediate(): Promise<IntermediateCa> {
    return (await this.#issuer).ca
  }

  /**
   * Switch to a new intermediate (rotation before the old one expires). Cached leaves chain to the old
   * one, so they are dropped; mints under way finish under the old one and are not cached.
   */
  setIntermediate(next: IntermediateCa): void {
    this.#current = next
    this.#issuer = this.#prepare(next)
    this.#cache.clear()
  }

  /** The leaf for `host` (SNI, Host header or IP literal): from the cache, a mint under way, or a new mint. */
  get(hostInput: string): Promise<MintedLeaf> {
    let name: HostName
    try {
      name = normalizeHost(hostInput)
    } catch (e) {
      return Promise.reject(e)
    }
    const { host, kind } = name
    const cached = this.#cache.get(host)
    if (cached) {
      // Fresh enough, or as fresh as the current intermediate allows (while its renewal is overdue, e.g.
      // KMS down, re-minting on every request would buy nothing).
      if (cached.notAfter - this.#now() > this.#renewBefore || cached.notAfter >= this.#current.notAfter) {
        this.#cache.delete(host) // re-insert: most recently used goes last
        this.#cache.set(host, cached)
        this.stats.hits++
        return Promise.resolve(cached)
      }
      this.#cache.delete(host)
    }
    const pending = this.#inflight.get(host)
    if (pending) {
      this.stats.joined++
      return pending
    }
    this.stats.misses++
    const p = this.#mint(host, kind).then(
      ({ leaf, generation }) => {
        this.#inflight.delete(host)
        if (generation === this.#generation) this.#remember(host, leaf)
        return leaf
      },
      (err: unknown) => {
        this.#inflight.delete(host)
        this.stats.mintErrors++
        throw err
      },
    )
    this.#inflight.set(host, p)
    return p
  }

  /** The SecureContext for `host`; what a TLS server socket needs. */
  async secureContext(host: string): Promise<tls.SecureContext> {
    return (await this.get(host)).secureContext
  }

  /** For tls.createServer({ SNICallback }) and new tls.TLSSocket(..., { SNICallback }). */
  readonly SNICallback = (
    servername: string,
    cb: (err: Error | null, ctx?: tls.SecureContext) => void,
  ): void => {
    this.get(servername).then(
      (leaf) => cb(null, leaf.secureContext),
      (err: Error) => cb(err),
    )
  }

  /** Hosts cached, least recently used first (for tests and the admin API). */
  cachedHosts(): string[] {
    return [...this.#cache.keys()]
  }

  #remember(host: string, leaf: MintedLeaf): void {
    this.#cache.set(host, leaf)
    while (this.#cache.size > this.#size) {
      const oldest = this.#cache.keys().next().value as string
      this.#cache.delete(oldest)
      this.stats.evictions++
    }
  }

  async #prepare(ca: IntermediateCa): Promise<Issuer> {
    const generation = ++this.#generation
    const fixed: Extension[] = [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
      await AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ]
    return { ca, generation, fixed }
  }

  async #mint(host: string, kind: 'dns' | 'ip'): Promise<{ leaf: MintedLeaf; generation: number }> {
    const t0 = performance.now()
    if (this.#active >= this.#concurrency) {
      if (this.#waiting.length >= this.#maxQueued) {
        throw new CaError(
          CaErrorCodes.busy,
          `${this.#waiting.length} leaf mints already waiting; refusing ${host}`,
        )
      }
      // The finishing mint hands its slot straight to us (no decrement/increment gap a newcomer could use).
      await new Promise<void>((r) => this.#waiting.push(r))
    } else {
      this.#active++
    }
    try {
      return await this.#mintNow(host, kind, t0)
    } finally {
      const next = this.#waiting.shift()
      if (next) next()
      else this.#active--
    }
  }

  async #mintNow(
    host: string,
    kind: 'dns' | 'ip',
    t0: number,
  ): Promise<{ leaf: MintedLeaf; generation: number }> {
    const issuer = await this.#issuer
    const { ca } = issuer
    const now = this.#now()
    if (ca.notAfter <= now) {
      throw new CaError(
        CaErrorCodes.root,
        `intermediate CA expired at ${new Date(ca.notAfter).toISOString()}`,
      )
    }
    const { publicKey, privateKey } = await generateKeyPair('ec', { namedCurve: 'prime256v1' })
    const notBefore = Math.max(now - this.#backdate, ca.notBefore)
    const notAfter = Math.min(now + this.#validity, ca.notAfter)
    // CN is limited to 64 characters (RFC 5280 ub-common-name); clients use the SAN anyway. Without a
    // subject, the SAN must be critical (RFC 5280 §4.2.1.6).
    const withCn = host.length <= 64
    const cert = await issueCertificate(ca.signer, {
      subject: withCn ? [{ CN: [host] }] : [],
      issuer: ca.cert.subjectName,
      publicKey: publicKey.export({ type: 'spki', format: 'der' }),
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      extensions: [
        ...issuer.fixed,
        new SubjectAlternativeNameExtension([{ type: kind, value: host }], !withCn),
      ],
    })
    const certPem = cert.toString('pem')
    const chainPem = `${certPem}\n${ca.pem}\n`
    const secureContext = tls.createSecureContext({
      ...this.#tlsOptions,
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: chainPem,
    })
    this.stats.mints++
    const leaf: MintedLeaf = {
      host,
      kind,
      cert,
      certPem,
      chainPem,
      key: privateKey,
      secureContext,
      notBefore: cert.notBefore.getTime(),
      notAfter: cert.notAfter.getTime(),
      mintMs: performance.now() - t0,
    }
    return { leaf, generation: issuer.generation }
  }
}
