// Errors the operator raises. Callers branch on `code`, never on the message.

export const OperatorErrorCodes = {
  /** the Kubernetes API answered with an error or could not be reached */
  kube: 'FG_ERR_KUBE',
  /** an ELBv2 call failed after its retries */
  aws: 'FG_ERR_AWS',
  /** pushing a bundle to an appliance failed */
  push: 'FG_ERR_PUSH',
  /** a write was attempted without holding the Lease */
  notLeader: 'FG_ERR_NOT_LEADER',
  /** invalid operator options */
  config: 'FG_ERR_CONFIG',
  /** the admin API refused a call for lack of (valid) credentials */
  auth: 'FG_ERR_AUTH',
  /** the appliance could not persist or load its state */
  state: 'FG_ERR_STATE',
} as const
export type OperatorErrorCode = (typeof OperatorErrorCodes)[keyof typeof OperatorErrorCodes]

export class OperatorError extends Error {
  readonly code: OperatorErrorCode
  /** HTTP status of the failed call, when there was one */
  readonly status: number | undefined
  constructor(code: OperatorErrorCode, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'OperatorError'
    this.code = code
    this.status = options.status
  }
}

/** The HTTP status carried by an error from @kubernetes/client-node (ApiException.code or Watch's statusCode). */
export function httpStatusOf(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object') return undefined
  const e = err as { code?: unknown; statusCode?: unknown; status?: unknown }
  if (typeof e.statusCode === 'number') return e.statusCode
  if (typeof e.code === 'number') return e.code
  if (typeof e.status === 'number') return e.status
  return undefined
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
