// Responses the appliance makes itself. Bodies are short and say what happened without naming the policy
// (the client is not told which rule matched; the log is).

import { STATUS_CODES } from 'node:http'
import type { Fields } from './headers.ts'
import type { LocalResponseReason } from './stats.ts'

export interface ResponseHead {
  status: number
  statusMessage: string
  fields: Fields
}

export interface LocalResponse extends ResponseHead {
  body: Buffer
  /** close the connection after it (Reject, malformed input, a gone upstream) */
  close: boolean
  reason: LocalResponseReason
}

const TEXT: Record<number, string> = {
  400: 'Bad request.',
  403: 'Forbidden by policy.',
  405: 'Method not allowed through this gateway.',
  421: 'Misdirected request: the Host does not match the TLS server name.',
  431: 'Request header fields too large.',
  502: 'Bad gateway.',
}

export function localResponse(status: number, reason: LocalResponseReason, close: boolean): LocalResponse {
  const body = Buffer.from(`${TEXT[status] ?? STATUS_CODES[status] ?? 'Error'}\n`)
  return {
    status,
    statusMessage: STATUS_CODES[status] ?? '',
    fields: [
      ['content-type', 'text/plain; charset=utf-8'],
      ['content-length', String(body.length)],
      ['cache-control', 'no-store'],
    ],
    body,
    close,
    reason,
  }
}
