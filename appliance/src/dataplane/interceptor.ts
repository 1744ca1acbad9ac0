// The L7 path of a terminated flow (ARCHITECTURE.md items 6–9). The TCP proxy has connected to the server
// (as the client) and accepted the client (as the server); from here:
//
//   1. read the client's first bytes (first-bytes.ts): ClientHello, HTTP request head, h2c preface, other;
//   2. decide with what they show (SNI; Host, method, path, headers) — per connection;
//   3. Deny/Reject → reset both sides; Authorize → ask the webhook;
//      TLS that an Inspect rule may decide (or whose request must be seen) → intercept: TLS to the real
//      server first (original SNI, the client's ALPN offer, full verification), then TLS to the client with
//      a leaf minted for the SNI and the ALPN the server chose; the decrypted pair goes to the HTTP layer;
//      cleartext HTTP → the HTTP layer directly; anything else (SNI-less TLS, unknown protocols, allowed
//      TLS) → relayed byte for byte.
//
// An upstream that fails verification is refused to the client with a TLS handshake_failure alert before
// any certificate of ours is shown: the client sees a failed handshake, never a response.

import { isIP } from 'node:net'
import type { Duplex } from 'node:stream'
import { type SecureContext, type TLSSocket, TLSSocket as TlsSocket, connect as tlsConnect } from 'node:tls'
import type { Decision, FlowFacts, PolicyEngine } from '../../../policy/src/engine/index.ts'
import type { CertificateAuthority } from '../ca/index.ts'
import type { TcpSocket } from '../tcp/stream.ts'
import { streamSocketFor } from '../tcp/stream-handle.ts'
import { type FirstBytes, readFirstBytes } from './first-bytes.ts'
import { type InterceptFacts, type ProxiedFlow, relay } from './tcp-proxy.ts'

export const INTERCEPT_RESULTS = [
  'intercepted',
  'http',
  'relayed',
  'relayed_no_sni',
  'relayed_unknown',
  'denied',
  'authorize_denied',
  'no_ca',
  'no_policy',
  'upstream_cert_rejected',
  'upstream_tls_failed',
  'client_rejected_cert',
  'client_tls_failed',
  'mint_failed',
] as const
type InterceptResult = (typeof INTERCEPT_RESULTS)[number]

/** L7 facts learnt from the first bytes (as FlowFacts takes them) */
export type FirstFacts = Pick<FlowFacts, 'sni' | 'host' | 'method' | 'path' | 'headers'>

/** What a flow's records say of its L7 path: the facts, the TLS, and the decision that stands for the flow. */
export interface FlowFacts7 {
  sni?: string | null | undefined
  host?: string | null | undefined
  tlsVersion?: string | null
  intercepted?: boolean
  /** the connection's decision on its first bytes; a pending one (requests decide) is recorded as Inspect */
  decision: Decision
}

/** A decision still pending on the request is the HTTP layer's to take per request: the flow is inspected. */
function settled(d: Decision): Decision {
  return d.kind === 'pending' ? { ...d, kind: 'final', action: 'Inspect', needs: 0 } : d
}

/** What the HTTP layer is handed for one decrypted (or cleartext) pair of streams. */
export interface HttpHandoff {
  protocol: 'http/1.1' | 'h2'
  /** null on cleartext flows */
  sni: string | null
  /** the upstream's name for h2 (:authority default): the SNI, else the server's address */
  authority: string
  flow: ProxiedFlow
  facts: InterceptFacts
  /** the connection was allowed by the authorizer webhook (an Authorize decision on its first bytes) */
  authorized: boolean
  /** per request: the decision with the request's facts */
  decide(req: Required<Pick<FlowFacts, 'host' | 'method' | 'path' | 'headers'>>): Decision
}

export interface InterceptorOptions {
  /** the current policy (swapped on reload) */
  engine(): PolicyEngine | undefined
  ca?: CertificateAuthority | undefined
  /** roots for verifying servers (upstream-trust.ts) */
  upstreamTrust: SecureContext
  /** serves HTTP on a pair of streams; without it the pair is relayed byte for byte */
  http?(client: Duplex, upstream: Duplex, h: HttpHandoff): void
  /** the webhook's answer for an Authorize decision taken on the stream */
  authorize?(d: Decision, facts: InterceptFacts, l7: FirstFacts): Promise<boolean>
  /** facts learnt from the first bytes, and later the negotiated TLS (flow records) */
  onFacts?(f: ProxiedFlow, l7: FlowFacts7): void
  /**
   * A flow decided on its first bytes alone (reset or relayed; rule usage). Flows the HTTP layer serves are
   * decided, and counted, per request instead.
   */
  onDecision?(d: Decision): void
  log?: { warn(obj: object, msg: string): void }
  /**
   * Where the TLS secrets of an intercepted flow go (a running live capture that takes the flow), per side:
   * 'server' is our session with the real server, 'client' the one with the client. undefined: nowhere,
   * and the socket's key log is not even turned on.
   */
  keylog?(f: ProxiedFlow, side: 'client' | 'server'): ((line: Buffer) => void) | undefined
  /** how long to wait for the client's first bytes (default 5 s) */
  firstBytesMs?: number
  /** each TLS handshake (upstream, then client) must finish within this (default 10 s) */
  handshakeMs?: number
}

// TLS alert record, plaintext (before any handshake keys): fatal (2) handshake_failure (40), RFC 8446 §6.
const HANDSHAKE_FAILURE_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])

/** ALPN protocols the HTTP layer can serve; others are not offered upstream. */
const HTTP_ALPN = new Set(['h2', 'http/1.1'])

/** TLS alerts a client sends when it does not accept our certificate (pinning, untrusted root). */
const CLIENT_REJECTS =
  /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|DECRYPT_ERROR)/

function factsOf(first: FirstBytes): FirstFacts {
  switch (first.kind) {
    case 'tls':
      // Before interception the SNI stands in for the Host (FLOWPOLICY.md); the request decides later.
      return { sni: first.hello.sni, host: first.hello.sni }
    case 'http': {
      const r = first.request
      return { sni: null, host: r.host, method: r.method, path: r.path, headers: r.headers }
    }
    case 'h2c':
      return { sni: null } // the requests will tell
    default:
      return { sni: null, host: null, method: null, path: null, headers: null }
  }
}

export class Interceptor {
  readonly results = new Float64Array(INTERCEPT_RESULTS.length)
  readonly #o: InterceptorOptions
  #warnedNoCa = false

  constructor(o: InterceptorOptions) {
    this.#o = o
  }

  #count(r: InterceptResult): void {
    this.results[INTERCEPT_RESULTS.indexOf(r)]!++
  }

  /** Takes over a terminated flow (TcpProxyOptions.intercept). */
  handle(f: ProxiedFlow, up: TcpSocket, down: TcpSocket): void {
    // Until a TLS socket or the relay owns them, an error on either side aborts both.
    const abort = () => {
      up.destroy()
      down.destroy()
    }
    up.on('error', abort)
    down.on('error', abort)
    void this.#run(f, up, down).catch((err: Error) => {
      this.#o.log?.warn({ err: err.message }, 'intercepted flow failed')
      abort()
    })
  }

  async #run(f: ProxiedFlow, up: TcpSocket, down: TcpSocket): Promise<void> {
    const facts = f.intercept!
    const read = await readFirstBytes(down, up, this.#o.firstBytesMs ?? 5_000)
    if (up.destroyed || down.destroyed) return
    const engine = this.#o.engine()
    if (!engine) {
      this.#count('no_policy')
      return reset(up, down)
    }
    const l7 = factsOf(read.first)
    let d = engine.decide({ ...facts, ...l7 })
    const note = (decision: Decision) => this.#o.onFacts?.(f, { sni: l7.sni, host: l7.host, decision })
    let authorized = false
    if (d.kind === 'final' && d.action === 'Authorize') {
      const allow = this.#o.authorize ? await this.#o.authorize(d, facts, l7) : false
      authorized = allow
      if (up.destroyed || down.destroyed) return
      d = { ...d, action: allow ? 'Allow' : 'Deny' }
      if (!allow) {
        this.#count('authorize_denied')
        this.#o.onDecision?.(d)
        note(d)
        return reset(up, down)
      }
    }
    if (d.kind === 'final' && (d.action === 'Deny' || d.action === 'Reject')) {
      this.#count('denied')
      this.#o.onDecision?.(d)
      note(d)
      return reset(up, down)
    }
    const first = read.first
    // A decision that still needs the request (method, path, headers) can only be taken by intercepting.
    const inspect = d.action === 'Inspect' || d.kind === 'pending'
    note(settled(d))
    if (first.kind === 'http' || first.kind === 'h2c') {
      this.#count('http')
      return this.#http(down, up, f, 'http/1.1', null, authorized)
    }
    if (first.kind === 'tls' && inspect) {
      const sni = first.hello.sni
      if (!sni) {
        this.#count('relayed_no_sni') // nothing to mint a certificate for: FLOWPOLICY.md passes it through
        this.#o.onDecision?.(d)
        return this.#relay(up, down, read.ended, read.bytes)
      }
      if (!this.#o.ca) {
        this.#count('no_ca')
        note({ ...settled(d), action: 'Deny' }) // reset, whatever the rule said
        if (!this.#warnedNoCa) {
          this.#warnedNoCa = true
          this.#o.log?.warn(
            {},
            'a flow matched Inspect but no CA is configured (--ca-cert); such flows are reset',
          )
        }
        return reset(up, down)
      }
      return this.#intercept(f, up, down, sni, first.hello.alpn, authorized, settled(d))
    }
    this.#count(inspect ? 'relayed_unknown' : 'relayed')
    this.#o.onDecision?.(d)
    this.#relay(up, down, read.ended, read.bytes)
  }

  #relay(up: TcpSocket, down: TcpSocket, ended: boolean, bytes: Buffer): void {
    if (ended) {
      // The client's stream ended while we read it: what it sent is in `bytes`; pass it on, then its FIN.
      up.end(bytes)
      up.pipe(down)
      return
    }
    relay(up, down)
  }

  async #intercept(
    f: ProxiedFlow,
    up: TcpSocket,
    down: TcpSocket,
    sni: string,
    offered: string[],
    authorized: boolean,
    decision: Decision,
  ): Promise<void> {
    const alpn = offered.filter((p) => HTTP_ALPN.has(p))
    const handshakeMs = this.#o.handshakeMs ?? 10_000
    const upstream = tlsConnect({
      socket: streamSocketFor(up),
      // An IP literal is not a valid SNI (RFC 6066 §3); the identity check then needs the address.
      ...(isIP(sni) ? { host: sni } : { servername: sni }),
      secureContext: this.#o.upstreamTrust,
      ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
    })
    // Subscribed before any handshake message is read, so no secret of the session is missed.
    const upKeys = this.#o.keylog?.(f, 'server')
    if (upKeys) upstream.on('keylog', upKeys)
    const upOk = await handshake(upstream, 'secureConnect', handshakeMs)
    if (upOk !== true) {
      const certificate = upOk !== 'timeout' && isCertificateError(upOk)
      this.#count(certificate ? 'upstream_cert_rejected' : 'upstream_tls_failed')
      this.#o.log?.warn(
        { sni, error: upOk === 'timeout' ? 'timeout' : (upOk.code ?? upOk.message) },
        certificate ? 'upstream certificate rejected; refusing the client' : 'upstream TLS failed',
      )
      upstream.destroy()
      // The client's ClientHello is answered with a fatal alert, then its connection closes.
      if (!down.destroyed) down.end(HANDSHAKE_FAILURE_ALERT)
      return
    }
    const chosen = typeof upstream.alpnProtocol === 'string' ? upstream.alpnProtocol : undefined
    let leaf: SecureContext
    try {
      leaf = (await this.#o.ca!.minter.get(sni)).secureContext
    } catch (err) {
      this.#count('mint_failed')
      this.#o.log?.warn({ sni, err: (err as Error).message }, 'could not mint a certificate; resetting')
      upstream.destroy()
      down.destroy()
      return
    }
    if (down.destroyed) {
      upstream.destroy()
      return
    }
    const client = new TlsSocket(streamSocketFor(down), {
      isServer: true,
      secureContext: leaf,
      // The server's choice, which the client offered (we offered the server only the client's list).
      ...(chosen
        ? { ALPNCallback: ({ protocols }) => (protocols.includes(chosen) ? chosen : undefined) }
        : {}),
    })
    const downKeys = this.#o.keylog?.(f, 'client')
    if (downKeys) client.on('keylog', downKeys)
    const downOk = await handshake(client, 'secure', handshakeMs)
    if (downOk !== true) {
      const rejected = downOk !== 'timeout' && CLIENT_REJECTS.test(`${downOk.code ?? ''} ${downOk.message}`)
      this.#count(rejected ? 'client_rejected_cert' : 'client_tls_failed')
      client.destroy()
      upstream.destroy()
      return
    }
    this.#count('intercepted')
    this.#o.onFacts?.(f, { sni, host: sni, tlsVersion: client.getProtocol(), intercepted: true, decision })
    this.#http(client, upstream, f, chosen === 'h2' ? 'h2' : 'http/1.1', sni, authorized)
  }

  #http(
    client: Duplex,
    upstream: Duplex,
    f: ProxiedFlow,
    protocol: 'http/1.1' | 'h2',
    sni: string | null,
    authorized: boolean,
  ): void {
    const serve = this.#o.http
    if (!serve) {
      relay(client, upstream)
      return
    }
    const facts = f.intercept!
    const engine = this.#o.engine
    serve(client, upstream, {
      protocol,
      sni,
      authority: sni ?? (f.family === 6 ? `[${addressOf(f.server)}]` : addressOf(f.server)),
      flow: f,
      facts,
      authorized,
      decide: (req) => {
        const e = engine()
        if (!e) return { kind: 'final', action: 'Deny', needs: 0 }
        return e.decide({ ...facts, sni, ...req })
      },
    })
  }
}

function addressOf(b: Uint8Array): string {
  if (b.length === 4) return b.join('.')
  const parts: string[] = []
  for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16))
  return parts.join(':')
}

/** Resets both sides (RST): a refusal decided on the stream. */
function reset(up: Duplex, down: Duplex): void {
  up.destroy()
  down.destroy()
}

/** Resolves true when `event` fires, the error otherwise (or 'timeout'). */
function handshake(
  s: TLSSocket,
  event: 'secureConnect' | 'secure',
  ms: number,
): Promise<true | 'timeout' | (Error & { code?: string })> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done('timeout'), ms)
    const onOk = () => done(true)
    const onErr = (err: Error) => done(err)
    const onClose = () =>
      done(Object.assign(new Error('closed during the handshake'), { code: 'ECONNRESET' }))
    function done(r: true | 'timeout' | Error): void {
      clearTimeout(timer)
      s.removeListener(event, onOk)
      s.removeListener('error', onErr)
      s.removeListener('close', onClose)
      // Later errors belong to whoever uses the socket next; until then they must not go unhandled.
      if (r !== true) s.on('error', () => undefined)
      resolve(r)
    }
    s.once(event, onOk)
    s.once('error', onErr)
    s.once('close', onClose)
  })
}

/** OpenSSL's verification failures and Node's name check. */
function isCertificateError(err: Error & { code?: string }): boolean {
  const code = err.code ?? ''
  return (
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' ||
    /CERT|SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY|ISSUER/.test(code)
  )
}
