// Every way a connection can fail, with a stable code callers branch on (STYLE.md: FG_ERR_…) and the
// errno-style name Node's net module would have used, so proxied applications see familiar errors.

export const TcpErrorCode = {
  /** The peer sent an acceptable RST in a synchronized state (RFC 9293 §3.10.7.4, second check). */
  reset: 'FG_ERR_TCP_RESET',
  /** RST in answer to our SYN (RFC 9293 §3.10.7.3). */
  refused: 'FG_ERR_TCP_REFUSED',
  /** SYN, data or keepalive retransmissions ran out (RFC 9293 §3.8.3, R2). */
  timeout: 'FG_ERR_TCP_TIMEOUT',
  /** The stack's connection limit was reached. */
  limit: 'FG_ERR_TCP_LIMIT',
  /** The 4-tuple is already in use. */
  inUse: 'FG_ERR_TCP_IN_USE',
  /** The application aborted the connection (destroy → RST). */
  aborted: 'FG_ERR_TCP_ABORTED',
} as const
export type TcpErrorCode = (typeof TcpErrorCode)[keyof typeof TcpErrorCode]

const ERRNO: Record<TcpErrorCode, string> = {
  FG_ERR_TCP_RESET: 'ECONNRESET',
  FG_ERR_TCP_REFUSED: 'ECONNREFUSED',
  FG_ERR_TCP_TIMEOUT: 'ETIMEDOUT',
  FG_ERR_TCP_LIMIT: 'EMFILE',
  FG_ERR_TCP_IN_USE: 'EADDRINUSE',
  FG_ERR_TCP_ABORTED: 'ECONNABORTED',
}

export class TcpError extends Error {
  readonly code: TcpErrorCode
  /** The errno name Node's net.Socket would report for the same condition. */
  readonly errno: string
  constructor(code: TcpErrorCode, message: string) {
    super(message)
    this.name = 'TcpError'
    this.code = code
    this.errno = ERRNO[code]
  }
}
