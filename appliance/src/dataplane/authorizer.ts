// The authorizer webhook (FLOWPOLICY.md "Authorizer"; flowdog's Lambda acceptor as a webhook): one
// HTTPS call per new connection with the flow's facts, `{allow, reason?, ttlSeconds?}` back. Calls never
// block the packet loop (the flow's first packets wait in a bounded hold meanwhile); answers are cached
// per (endpoint, source, destination, port, protocol, SNI/Host) for min(cacheSeconds, ttlSeconds);
// timeouts and errors follow the policy's onError. The server's certificate is always verified.
import { Agent, request } from 'node:https'
import { rootCertificates } from 'node:tls'
import type { AuthorizerT } from '../../../policy/src/schema.ts'

export interface AuthorizeRequest {
  endpoint: string
  protocol: 'TCP' | 'UDP' | 'ICMP' | 'ICMPv6' | number
  source: { address: string; port: number }
  destination: { address: string; port: number }
  sni?: string | null
  host?: string | null
  policy: string
  rule: string | null
}

export interface AuthorizeAnswer {
  allow: boolean
  reason?: string
  /** where the answer came from */
  via: 'authorizer' | 'cache' | 'on-error'
  error?: string
}

export const AUTHORIZER_RESULTS = ['allow', 'deny', 'cached', 'error', 'timeout'] as const

export interface AuthorizerClientOptions {
  /** extra PEM roots trusted for authorizer servers (besides Node's bundled roots) */
  ca?: string | Buffer
  /** cache entries at most */
  maxCache?: number
  now?: () => number
}

const MAX_RESPONSE = 16 * 1024

export class AuthorizerClient {
  readonly counts = new Float64Array(AUTHORIZER_RESULTS.length)
  private readonly agent: Agent
  private readonly cache = new Map<string, { allow: boolean; reason?: string; until: number }>()
  private readonly maxCache: number
  private readonly now: () => number

  constructor(o: AuthorizerClientOptions = {}) {
    // keepAlive: one connection per authorizer is reused, so a decision costs a request, not a handshake.
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 64,
      ...(o.ca ? { ca: [...rootCertificates, o.ca.toString()] } : {}),
    })
    this.maxCache = o.maxCache ?? 65_536
    this.now = o.now ?? Date.now
  }

  static cacheKey(r: AuthorizeRequest): string {
    return `${r.policy}|${r.endpoint}|${r.protocol}|${r.source.address}|${r.destination.address}|${r.destination.port}|${r.sni ?? ''}|${r.host ?? ''}`
  }

  async authorize(cfg: Required<AuthorizerT>, req: AuthorizeRequest): Promise<AuthorizeAnswer> {
    const key = AuthorizerClient.cacheKey(req)
    const hit = this.cache.get(key)
    if (hit && hit.until > this.now()) {
      this.counts[2]!++
      return { allow: hit.allow, ...(hit.reason ? { reason: hit.reason } : {}), via: 'cache' }
    }
    try {
      const answer = await this.call(cfg, req)
      this.counts[answer.allow ? 0 : 1]!++
      const ttl = Math.min(cfg.cacheSeconds, answer.ttlSeconds ?? cfg.cacheSeconds)
      if (ttl > 0) this.remember(key, answer.allow, answer.reason, ttl)
      return { allow: answer.allow, ...(answer.reason ? { reason: answer.reason } : {}), via: 'authorizer' }
    } catch (err) {
      const e = err as Error & { cause?: { name?: string } }
      const timedOut = e.name === 'TimeoutError' || e.cause?.name === 'TimeoutError'
      this.counts[timedOut ? 4 : 3]!++
      return { allow: cfg.onError === 'Allow', via: 'on-error', error: timedOut ? 'timeout' : e.message }
    }
  }

  close(): void {
    this.agent.destroy()
  }

  private remember(key: string, allow: boolean, reason: string | undefined, ttlSeconds: number): void {
    if (this.cache.size >= this.maxCache) {
      // Oldest first (Map keeps insertion order): a bounded cache, not an exact LRU.
      const first = this.cache.keys().next()
      if (!first.done) this.cache.delete(first.value)
    }
    this.cache.set(key, { allow, ...(reason ? { reason } : {}), until: this.now() + ttlSeconds * 1000 })
  }

  private call(
    cfg: Required<AuthorizerT>,
    body: AuthorizeRequest,
  ): Promise<{ allow: boolean; reason?: string; ttlSeconds?: number }> {
    const data = JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const url = new URL(cfg.url)
      if (url.protocol !== 'https:') {
        reject(new Error('the authorizer URL must be https'))
        return
      }
      const req = request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          signal: AbortSignal.timeout(cfg.timeoutMs),
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(data),
            accept: 'application/json',
          },
        },
        (res) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size > MAX_RESPONSE) req.destroy(new Error('authorizer response too large'))
            else chunks.push(c)
          })
          res.on('end', () => {
            if (res.statusCode !== 200) {
              reject(new Error(`authorizer answered HTTP ${res.statusCode}`))
              return
            }
            try {
              const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
              if (typeof v.allow !== 'boolean') throw new Error('authorizer answer has no boolean "allow"')
              const out: { allow: boolean; reason?: string; ttlSeconds?: number } = { allow: v.allow }
              if (typeof v.reason === 'string') out.reason = v.reason.slice(0, 256)
              if (typeof v.ttlSeconds === 'number' && v.ttlSeconds >= 0) out.ttlSeconds = v.ttlSeconds
              resolve(out)
            } catch (err) {
              reject(err)
            }
          })
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(data)
    })
  }
}
