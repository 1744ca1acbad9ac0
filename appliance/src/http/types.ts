// The HTTP layer's public types (re-exported by index.ts).

import type { RuleAction } from '../../../policy/src/schema.ts'
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
}

export const DEFAULT_LIMITS: Required<HttpLimits> = {
  maxResponseBodyBytes: 1024 * 1024,
  idleMs: 350_000,
  maxHeaderBytes: 16 * 1024,
  maxWebSocketFrameBytes: 16 * 1024 * 1024,
}
