// The HTTP layer's public types (re-exported by index.ts).

import type { RuleAction } from '../../../policy/src/schema.ts'
import type { Fields } from './headers.ts'
import type { ScriptEngine } from './script/index.ts'
import type { HttpStats } from './stats.ts'

export interface HttpRequestFacts {
  /** Host (or :authority, or an absolute-form target's authority), normalized, no port; null when absent */
  host: string | null
  method: string
  /** request path without the query */
  path: string
  /** request header fields, names lower-case */
  headers: ReadonlyMap<string, readonly string[]>
}

export interface RequestDecision {
  action: RuleAction
  policy?: string
  rule?: string
  /** script sources; only used with Inspect */
  hooks?: { onRequest?: string; onResponse?: string }
}

export interface HttpLimits {
  /** onResponse sees bodies of declared length up to this (default 1 MiB) */
  maxResponseBodyBytes?: number
  /** no byte either way and nothing in flight for this long closes both sides (default 350 s, GWLB's TCP idle) */
  idleMs?: number
  /** request/response head size (default 16 KiB, Node's default) */
  maxHeaderBytes?: number
  /** WebSocket frames larger than this close the connection with 1009 (default 16 MiB) */
  maxWebSocketFrameBytes?: number
}

export interface InterceptOptions {
  /** from ALPN; cleartext flows pass 'http/1.1' and an h2c prior-knowledge preface is detected here */
  protocol: 'http/1.1' | 'h2'
  /** null on cleartext flows */
  sni: string | null
  /** what to call the upstream for h2 (the SNI or the destination address) */
  authority: string
  /** the policy engine, per request (cheap, synchronous) */
  decide(req: HttpRequestFacts): RequestDecision
  scripts?: ScriptEngine
  /** goes into the CloudFront event context/viewer */
  event: { endpointId: string; viewerIp: string }
  stats: HttpStats
  log?: { warn(obj: object, msg: string): void }
  limits?: HttpLimits
  /**
   * Per decided request (after decide, before any script): an observer for the rest of the exchange, or
   * undefined for none. Unset, or answering undefined, costs the exchange nothing more.
   */
  onExchange?(x: ExchangeStart): ExchangeObserver | undefined
}

/** A request as the client sent it, once decided (InterceptOptions.onExchange). */
export interface ExchangeStart {
  method: string
  /** the request target as received: origin-form path and query (HTTP/1 also absolute-form or '*') */
  target: string
  /** the client's field lines, names lower-case; on HTTP/2 :authority is the host field. Do not change. */
  fields: Fields
  /** '1.1', '1.0' or '2.0' */
  httpVersion: string
  decision: RequestDecision
}

/** What became of one observed exchange. Calls are synchronous and must not throw or block. */
export interface ExchangeObserver {
  /** a chunk of the request body as it went upstream */
  requestBody(chunk: Buffer): void
  /** the request body has all gone upstream (or there was none) */
  requestEnd(): void
  /** the response head as given to the client: the origin's (after onResponse) or one made here */
  response(status: number, statusMessage: string, fields: Fields): void
  /** a chunk of the response body as given to the client */
  responseBody(chunk: Buffer): void
  /** the exchange is over; complete is false when it was cut short (reset, truncated, never answered) */
  end(complete: boolean): void
}

export const DEFAULT_LIMITS: Required<HttpLimits> = {
  maxResponseBodyBytes: 1024 * 1024,
  idleMs: 350_000,
  maxHeaderBytes: 16 * 1024,
  maxWebSocketFrameBytes: 16 * 1024 * 1024,
}
