// The HTTP layer of TLS interception (ARCHITECTURE.md item 9): proxies HTTP/1.1 (keep-alive, chunked,
// WebSocket) and HTTP/2 (h2, h2c) between the two decrypted streams of one flow, asks the policy per
// request, and runs Inspect rules' onRequest/onResponse scripts. README.md in this folder has the semantics.

import type { Duplex } from 'node:stream'
import { TLSSocket } from 'node:tls'
import { FlowLifetime } from './flow.ts'
import { serveHttp1 } from './http1.ts'
import { serveHttp2 } from './http2.ts'
import { sniffPreface } from './preface.ts'
import { DEFAULT_LIMITS, type HttpLimits, type InterceptOptions } from './types.ts'

export {
  createHttpStats,
  HTTP_METRICS,
  type HttpStats,
} from './stats.ts'
export type {
  ExchangeObserver,
  ExchangeStart,
  HttpLimits,
  HttpRequestFacts,
  InterceptOptions,
  RequestDecision,
} from './types.ts'
export { DEFAULT_LIMITS } from './types.ts'

/**
 * Proxies HTTP between `client` (decrypted stream from the client) and `upstream` (decrypted stream to the
 * real server, already connected). Resolves when both are finished; never throws; destroys both on error.
 */
export async function interceptHttp(client: Duplex, upstream: Duplex, opts: InterceptOptions): Promise<void> {
  const limits = resolveLimits(opts.limits)
  const flow = new FlowLifetime(client, upstream, limits.idleMs)
  try {
    let protocol = opts.protocol
    const sniffed = protocol === 'http/1.1' && !isTls(client)
    const h2c = sniffed && (await sniffPreface(client))
    if (h2c) protocol = 'h2'
    if (sniffed && client.readableEnded) {
      // The client hung up before a byte: its 'end' went to the sniff, no HTTP server would see it.
      flow.endGracefully(client)
      flow.endGracefully(upstream)
      return await flow.done
    }
    if (protocol === 'h2') {
      opts.stats.flows[h2c ? 'h2c' : 'h2']++
      await settleTls(client)
      await settleTls(upstream)
      // RFC 9113 §8.3.1: :scheme is that of the target URI — https when the client spoke TLS to it.
      serveHttp2(flow, opts, limits, opts.sni !== null || isTls(client) ? 'https' : 'http')
    } else {
      opts.stats.flows.http1++
      serveHttp1(flow, opts, limits)
    }
    // The sniff left the stream paused; Node's HTTP/1 server only adds a 'data' listener (the HTTP/2 session
    // resumes its stream itself).
    if (sniffed && !h2c) client.resume()
  } catch (err) {
    opts.stats.internalErrors++
    opts.log?.warn({ err: err instanceof Error ? err.stack : String(err) }, 'HTTP interception failed')
    flow.destroy()
  }
  return flow.done
}

/**
 * Waits out a TLS handshake still in progress, then clears `secureConnecting` if it is still set: a server-
 * side TLSSocket made without a tls.Server (as the TLS layer makes them) never clears it — only tls.Server's
 * own handler does — and an Http2Session on such a socket waits for a 'secureConnect' that never comes, then
 * throws from a nextTick (Node 24) on the client preface already buffered.
 */
async function settleTls(s: Duplex): Promise<void> {
  if (!(s instanceof TLSSocket)) return
  const t = s as TLSSocket & { secureConnecting?: boolean; alpnProtocol: string | false | null }
  if (t.alpnProtocol === null && !t.destroyed) {
    await new Promise<void>((resolve) => {
      t.once('secure', resolve)
      t.once('secureConnect', resolve)
      t.once('close', resolve)
    })
  }
  if (t.secureConnecting) t.secureConnecting = false
}

function isTls(s: Duplex): boolean {
  return (s as { encrypted?: boolean }).encrypted === true
}

function resolveLimits(l: HttpLimits | undefined): Required<HttpLimits> {
  const out = { ...DEFAULT_LIMITS }
  if (!l) return out
  for (const k of Object.keys(out) as (keyof HttpLimits)[]) {
    const v = l[k]
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) out[k] = v
  }
  return out
}
