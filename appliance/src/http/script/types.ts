// The CloudFront Functions event model (AWS CloudFront Developer Guide, "CloudFront Functions event
// structure") as the HTTP layer and the scripts see it, and what a hook call returns.

export interface ScriptLimits {
  /** CPU time of the calling thread per call (process.threadCpuUsage); default 5 */
  cpuMs: number
  /** heap one call may allocate beyond its script's realm; default 16 MiB */
  memoryBytes: number
  /** largest body exposed to onResponse or accepted from a script (decoded bytes); default 1 MiB */
  maxBodyBytes: number
  /** compiled scripts kept (least recently used evicted); default 256 */
  maxScripts: number
}

/**
 * One query parameter, header or cookie. Duplicates collapse into one field whose `multiValue` lists every
 * value in order; `value` repeats the first. Response cookies carry their Set-Cookie attributes.
 */
export interface CfValue {
  value: string
  attributes?: string
  multiValue?: { value: string; attributes?: string }[]
}
export type CfMap = Record<string, CfValue>

export interface CfRequest {
  method: string
  /** path as received (percent-encoding kept), always starting with "/" */
  uri: string
  /** names and values as received, percent-encoding kept (CloudFront does not decode them) */
  querystring: CfMap
  /** names lower-case; Cookie headers are in `cookies` instead */
  headers: CfMap
  cookies: CfMap
}

export interface CfBody {
  encoding: 'text' | 'base64'
  data: string
}

export interface CfResponse {
  statusCode: number
  statusDescription?: string
  /** names lower-case; Set-Cookie headers are in `cookies` instead */
  headers: CfMap
  cookies?: CfMap
  /** absent: the origin's body goes through unchanged */
  body?: CfBody
}

export interface CfEvent {
  version: '1.0'
  context: {
    eventType: 'viewer-request' | 'viewer-response'
    requestId: string
    endpointId?: string
    policy?: string
    rule?: string
  }
  viewer: { ip: string }
  request: CfRequest
  response?: CfResponse
}

export type ScriptFailureReason = 'compile' | 'threw' | 'timeout' | 'memory' | 'invalid-result'
export type ScriptFailure = { ok: false; reason: ScriptFailureReason; message: string }
export type RequestHookResult =
  | { ok: true; request: CfRequest }
  | { ok: true; response: CfResponse }
  | ScriptFailure
export type ResponseHookResult = { ok: true; response: CfResponse } | ScriptFailure

export const FAILURE_REASONS: readonly ScriptFailureReason[] = [
  'compile',
  'threw',
  'timeout',
  'memory',
  'invalid-result',
]
