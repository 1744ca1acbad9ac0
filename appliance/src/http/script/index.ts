// The script sandbox and the CloudFront Functions event model (README.md beside this file).
export { bodyOf, fromCfRequest, fromCfResponse, toCfRequest, toCfResponse } from './convert.ts'
export { DEFAULT_SCRIPT_LIMITS, ScriptEngine, type ScriptStats } from './engine.ts'
export type {
  CfBody,
  CfEvent,
  CfMap,
  CfRequest,
  CfResponse,
  CfValue,
  RequestHookResult,
  ResponseHookResult,
  ScriptFailure,
  ScriptFailureReason,
  ScriptLimits,
} from './types.ts'
