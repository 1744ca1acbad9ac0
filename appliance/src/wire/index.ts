export {
  BUILD_MAX,
  buildReturnDatagram,
  buildRstToReceiver,
  buildRstToSender,
  buildUnreachable,
} from './build.ts'
export {
  adjust,
  checksum,
  finish,
  fold,
  pseudoSum4,
  pseudoSum6,
  sum16,
  update16,
  update32,
} from './checksum.ts'
export { M, MALFORMED_REASONS, MalformedCounters, type MalformedReason, malformedReason } from './counters.ts'
export {
  AWS_OPTION_CLASS,
  AwsOption,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  formatEndpointId,
  GENEVE_PORT,
  GWLB_GENEVE_LEN,
  parseEndpointId,
  parseGeneve,
  writeGeneve,
} from './geneve.ts'
export { Icmp6Type, IcmpType, Unreachable, type UnreachableKind } from './icmp.ts'
export { Frag, ipv4, writeIpv4Header } from './ipv4.ts'
export { ipv6, NextHeader, writeIpv6Header } from './ipv6.ts'
export { IpProto, l4ChecksumOk, ParsedPacket, parsePacket } from './packet.ts'
export { TcpFlag, TcpOptions } from './tcp.ts'
