// The user-space TCP stack (ARCHITECTURE.md item 7). Start with stack.ts (endpoints, limits) and
// connection.ts (the RFC 9293 state machine); stream.ts turns connections into Node.js Duplex streams.
export {
  type Clock,
  cryptoRandom,
  Deadline,
  FakeClock,
  type Random,
  SeededRandom,
  systemClock,
  type TimerHandle,
} from './clock.ts'
export { type CongestionControl, NewReno } from './congestion.ts'
export {
  Connection,
  type ConnectionContext,
  type ConnectionEvents,
  DEFAULT_CONFIG,
  type KeepaliveConfig,
  resetFor,
  type TcpConfig,
} from './connection.ts'
export { Cubic } from './cubic.ts'
export { TcpError, TcpErrorCode } from './errors.ts'
export { TCP_METRIC_NAMES, TCP_STATE_LABELS, TcpMetrics } from './metrics.ts'
export { DEFAULT_MSS, GWLB_INNER_MTU, gwlbMss } from './options.ts'
export {
  Flag,
  formatSegment,
  makeSegment,
  type SackBlock,
  segLen,
  type TcpRepr,
  type Timestamp,
} from './segment.ts'
export { type Seq, seq, seqAdd, seqGe, seqGt, seqLe, seqLt, seqSub } from './seq.ts'
export {
  type AcceptHandler,
  DEFAULT_LIMITS,
  type FourTuple,
  type Listener,
  type ListenSpec,
  type StackLimits,
  type StackOptions,
  TcpStack,
  tupleKey,
} from './stack.ts'
export { State, stateName } from './state.ts'
export { TcpSocket, tcpAccept, tcpConnect, tcpListen } from './stream.ts'
