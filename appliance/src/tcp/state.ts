// Connection states of RFC 9293 §3.3.2 (Figure 6). LISTEN is a per-connection state here because the
// proxy listens for one given 4-tuple at a time.

export const State = {
  CLOSED: 0,
  LISTEN: 1,
  SYN_SENT: 2,
  SYN_RECEIVED: 3,
  ESTABLISHED: 4,
  FIN_WAIT_1: 5,
  FIN_WAIT_2: 6,
  CLOSE_WAIT: 7,
  CLOSING: 8,
  LAST_ACK: 9,
  TIME_WAIT: 10,
} as const
export type State = (typeof State)[keyof typeof State]

export const STATE_NAMES = [
  'CLOSED',
  'LISTEN',
  'SYN-SENT',
  'SYN-RECEIVED',
  'ESTABLISHED',
  'FIN-WAIT-1',
  'FIN-WAIT-2',
  'CLOSE-WAIT',
  'CLOSING',
  'LAST-ACK',
  'TIME-WAIT',
] as const

export const STATE_COUNT = STATE_NAMES.length

export function stateName(s: State): string {
  return STATE_NAMES[s]!
}

/** RFC 9293 §3.3.2: states after the three-way handshake in which both sequence spaces are known. */
export function isSynchronized(s: State): boolean {
  return s >= State.ESTABLISHED
}

/** States in which peer data is still accepted (RFC 9293 §3.10.7.4, seventh check). */
export function canReceive(s: State): boolean {
  return s === State.ESTABLISHED || s === State.FIN_WAIT_1 || s === State.FIN_WAIT_2
}
