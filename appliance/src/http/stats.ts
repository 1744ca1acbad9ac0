// HTTP interception counters, named once (STYLE.md). Plain numbers updated per request; the control plane
// mirrors them into prom-client under HTTP_METRICS. Labelled counters are records over fixed label values
// so an exporter can enumerate them without knowing the code.

export const HTTP_PROTOCOLS = ['http1', 'h2', 'h2c'] as const
export type HttpProtocolLabel = (typeof HTTP_PROTOCOLS)[number]

/** RuleAction, lower-case (the label values of flowgate_http_requests_total{action}). */
export const HTTP_ACTIONS = ['allow', 'deny', 'reject', 'inspect', 'authorize'] as const
export type HttpActionLabel = (typeof HTTP_ACTIONS)[number]

/** Responses made here instead of by the origin, by why. */
export const LOCAL_RESPONSE_REASONS = [
  /** Deny: 403, connection kept */
  'deny',
  /** Reject: 403, connection closed */
  'reject',
  /** Host/:authority disagrees with the SNI: 421 */
  'misdirected',
  /** an onRequest or onResponse script failed: 502 */
  'script_failure',
  /** onRequest returned a response (short circuit, no upstream contact) */
  'script_response',
  /** malformed request: 400 (or 431 for oversized headers) */
  'bad_request',
  /** the upstream failed before a response head arrived (reset, malformed, gone): 502 */
  'upstream_error',
  /** a method this proxy does not carry (CONNECT): 405 */
  'method_not_allowed',
] as const
export type LocalResponseReason = (typeof LOCAL_RESPONSE_REASONS)[number]

export const SCRIPT_HOOKS = ['on_request', 'on_response'] as const
export type ScriptHookLabel = (typeof SCRIPT_HOOKS)[number]

/** ScriptFailure['reason'] of the sandbox, with '-' as '_'. */
export const SCRIPT_FAILURE_REASONS = ['compile', 'threw', 'timeout', 'memory', 'invalid_result'] as const
export type ScriptFailureLabel = (typeof SCRIPT_FAILURE_REASONS)[number]

/** What onResponse saw of a response body. */
export const RESPONSE_BODY_OUTCOMES = [
  /** buffered and given to the script (declared length within the limit) */
  'offered',
  /** the script replaced it */
  'rewritten',
  /** too large, or of undeclared length (chunked, close-delimited, h2 without content-length): headers only */
  'headers_only',
] as const
export type ResponseBodyLabel = (typeof RESPONSE_BODY_OUTCOMES)[number]

export const MALFORMED_SIDES = ['client', 'upstream'] as const
export type MalformedSide = (typeof MALFORMED_SIDES)[number]

export const WS_OPCODES = ['continuation', 'text', 'binary', 'close', 'ping', 'pong'] as const
export type WsOpcodeLabel = (typeof WS_OPCODES)[number]
export const WS_DIRECTIONS = ['client', 'server'] as const
export type WsDirection = (typeof WS_DIRECTIONS)[number]
/** RFC 6455 §7.4.1 close codes we send on a peer's protocol error. */
export const WS_ERROR_CODES = ['1002', '1009'] as const

const zero = <K extends string>(keys: readonly K[]): Record<K, number> =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

export function createHttpStats() {
  return {
    /** intercepted flows handed to interceptHttp, by the protocol spoken */
    flows: zero(HTTP_PROTOCOLS),
    /** requests (HTTP/1 requests, HTTP/2 streams) by the decision */
    requests: zero(HTTP_ACTIONS),
    /** responses made here, by why */
    localResponses: zero(LOCAL_RESPONSE_REASONS),
    /** responses relayed from the upstream */
    upstreamResponses: 0,
    scriptRuns: zero(SCRIPT_HOOKS),
    scriptFailures: zero(SCRIPT_FAILURE_REASONS),
    responseBodies: zero(RESPONSE_BODY_OUTCOMES),
    /** unparseable HTTP by the side that sent it */
    malformed: zero(MALFORMED_SIDES),
    /** exchanges cut short after the response head left (reset, truncated body): the client sees a reset */
    aborted: 0,
    /** HTTP/2 RST_STREAM passed on, by the side that reset first */
    h2Resets: zero(MALFORMED_SIDES),
    /** HTTP/2 GOAWAY received, by the side that sent it */
    h2Goaways: zero(MALFORMED_SIDES),
    websocketUpgrades: 0,
    /** WebSocket frames by opcode (both directions) */
    websocketFrames: zero(WS_OPCODES),
    /** complete WebSocket data messages, by the side that sent them */
    websocketMessages: zero(WS_DIRECTIONS),
    /** WebSocket connections closed here for a peer's protocol error, by the close code sent */
    websocketErrors: zero(WS_ERROR_CODES),
    /** exceptions in this layer's own handlers (a bug): the exchange was reset, the process kept running */
    internalErrors: 0,
  }
}
export type HttpStats = ReturnType<typeof createHttpStats>

/** Prometheus names; `label` names the label a record's keys go in. */
export const HTTP_METRICS = {
  flows: { name: 'flowgate_http_flows_total', label: 'protocol', help: 'Intercepted HTTP flows by protocol' },
  requests: {
    name: 'flowgate_http_requests_total',
    label: 'action',
    help: 'Intercepted HTTP requests by policy decision',
  },
  localResponses: {
    name: 'flowgate_http_local_responses_total',
    label: 'reason',
    help: 'Responses made by the appliance instead of the origin, by reason',
  },
  upstreamResponses: {
    name: 'flowgate_http_upstream_responses_total',
    help: 'Responses relayed from the origin',
  },
  scriptRuns: { name: 'flowgate_http_script_runs_total', label: 'hook', help: 'HTTP hook scripts run' },
  scriptFailures: {
    name: 'flowgate_http_script_failures_total',
    label: 'reason',
    help: 'HTTP hook scripts that failed (the request got a 502), by reason',
  },
  responseBodies: {
    name: 'flowgate_http_response_bodies_total',
    label: 'outcome',
    help: 'Responses seen by onResponse: body offered, rewritten, or headers only',
  },
  malformed: {
    name: 'flowgate_http_malformed_total',
    label: 'side',
    help: 'Malformed HTTP by the side that sent it',
  },
  aborted: {
    name: 'flowgate_http_aborted_exchanges_total',
    help: 'Exchanges cut short after the response head was sent',
  },
  h2Resets: { name: 'flowgate_http2_resets_total', label: 'side', help: 'HTTP/2 streams reset, by side' },
  h2Goaways: {
    name: 'flowgate_http2_goaways_total',
    label: 'side',
    help: 'HTTP/2 GOAWAYs received, by side',
  },
  websocketUpgrades: { name: 'flowgate_websocket_upgrades_total', help: 'WebSocket upgrades relayed' },
  websocketFrames: {
    name: 'flowgate_websocket_frames_total',
    label: 'opcode',
    help: 'WebSocket frames relayed, by opcode',
  },
  websocketMessages: {
    name: 'flowgate_websocket_messages_total',
    label: 'sender',
    help: 'WebSocket data messages relayed, by sender',
  },
  websocketErrors: {
    name: 'flowgate_websocket_protocol_errors_total',
    label: 'code',
    help: 'WebSocket connections closed for a protocol error, by close code sent',
  },
  internalErrors: {
    name: 'flowgate_http_internal_errors_total',
    help: 'Exceptions in the HTTP layer (bugs); the exchange was reset',
  },
} as const satisfies Record<keyof HttpStats, { name: string; label?: string; help: string }>
