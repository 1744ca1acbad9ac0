// The contract shared by the peek parsers: given all bytes seen so far at the start of a TCP stream
// (segments concatenated by the caller), answer one of these. `needMore` promises that more bytes can only
// lead to another answer; the caller bounds how long and how much it waits (ARCHITECTURE.md item 6).

export const Peek = {
  /** consistent so far, incomplete */
  needMore: 0,
  /** parsed; the info object is filled */
  complete: 1,
  /** not this protocol (pass through as unknown) */
  notMatched: 2,
  /** this protocol, but broken or over the size bound */
  malformed: 3,
} as const
export type PeekStatus = (typeof Peek)[keyof typeof Peek]
export const PEEK_STATUS_NAMES = ['need_more', 'complete', 'not_matched', 'malformed'] as const
