// Packet I/O: how Geneve datagrams enter and leave the appliance (ARCHITECTURE.md "Packet I/O";
// GWLB.md "Returning a packet"). One interface, two backends, one shared test suite (test/io):
//   - `native`: the flowgate_io addon — recvmmsg into a ring, one JS call per batch, replies built with
//     their outer IPv4/UDP header and sent with sendmmsg on a raw socket. Needs CAP_NET_RAW.
//   - `dgram`: pure Node. Receives on a dgram socket, returns each packet through a socket bound to the
//     GWLB source port it came from. Works unprivileged; see dgram.ts for its limits.
//
// Addresses are IPv4 as host-order u32 numbers (10.0.0.1 = 0x0a000001) so the hot path never builds a
// string. The outer header is always IPv4 (GWLB.md "Wire format"), even for IPv6 inner packets.

export type PacketIOBackend = 'native' | 'dgram'

export interface PacketIOOptions {
  /** IPv4 address to bind the Geneve socket to; default 0.0.0.0 */
  bindAddr?: string
  /** UDP port GWLB sends to, and the destination port of every reply (ports kept); default 6081. 0 = any (tests) */
  port?: number
  /** most datagrams handed to the handler in one call (native); default 64 */
  batchSize?: number
  /** bytes per receive slot; larger datagrams are counted truncated. Default 9216 ≥ 8,500 inner + 68 */
  slotSize?: number
  /** SO_RCVBUF bytes; default 8 MiB (gwlbtun: grow towards ~50 MB above 1 Mpps) */
  receiveBufferSize?: number
  /** send slots for `send()` (copied datagrams) per flush; default 256 (native) */
  sendSlots?: number
}

/**
 * The datagrams of one receive, valid only until the handler returns (the native backend reuses its ring
 * for the next batch). Indexed accessors instead of per-packet objects: nothing is allocated per packet.
 * The bytes may be rewritten in place and returned with `PacketIO.reply`.
 */
export interface RxBatch {
  readonly count: number
  /** memory holding datagram i (the same ring for every i in the native backend) */
  buffer(i: number): Buffer
  /** where datagram i (the Geneve header onwards: outer IPv4/UDP already stripped) starts in buffer(i) */
  offset(i: number): number
  /** its length; 0 for a datagram that did not fit a slot (counted in stats.rxTruncated) */
  length(i: number): number
  /** bytes available from offset(i) for rewriting in place (a payload may grow up to this) */
  capacity(i: number): number
  /** the sender: a GWLB node, as u32 */
  remoteAddr(i: number): number
  /** GWLB's source port for this flow: our reply's source port */
  remotePort(i: number): number
  /** our address the datagram was sent to: our reply's source address (0 if the backend cannot tell) */
  localAddr(i: number): number
  /** a Buffer view of datagram i; allocates a view, so prefer buffer/offset/length on the hot path */
  view(i: number): Buffer
}

/**
 * Where a packet of a flow goes back to: kept in the flow table so the appliance can send in either
 * direction of a flow it has seen (GWLB.md "Flows"). Replies go from localAddr:remotePort to
 * remoteAddr:<PacketIO.port>.
 */
export interface ReturnPath {
  localAddr: number
  remoteAddr: number
  remotePort: number
}

export type BatchHandler = (batch: RxBatch) => void

/** Counters of the I/O layer, bumped in place (read them at scrape time). */
export interface PacketIOStats {
  rxBatches: number
  rxPackets: number
  rxBytes: number
  /** datagrams larger than a receive slot (never a GWLB packet: it sends at most 8,568 bytes) */
  rxTruncated: number
  txPackets: number
  txBytes: number
  /** datagrams the kernel refused, that did not fit a slot, or that had no way out (e.g. bind failed) */
  txDropped: number
}

export interface PacketIO {
  readonly backend: PacketIOBackend
  /** the bound Geneve port (known after start) */
  readonly port: number
  readonly stats: PacketIOStats
  /** binds the Geneve socket and starts delivering batches */
  start(onBatch: BatchHandler): Promise<void>
  /**
   * Queues datagram i of the batch being handled, as it is now in the buffer (possibly rewritten, with a
   * new length ≤ capacity), back to the node that sent it the GWLB way: from localAddr(i):remotePort(i) to
   * remoteAddr(i):port. No copy. Only valid inside the handler; queued replies go out when it returns.
   */
  reply(batch: RxBatch, i: number, length?: number): void
  /** Queues a copy of bytes[offset, offset+length) to a flow's return path. Usable anywhere. */
  send(bytes: Uint8Array, offset: number, length: number, path: ReturnPath): void
  /**
   * A datagram built in place instead of copied in: reserve() returns where in `txBuffer` up to `txSlotSize`
   * bytes may be written, commit() queues them to `path`. Nothing else may be sent between the two.
   */
  reserve(): number
  readonly txBuffer: Buffer
  readonly txSlotSize: number
  commit(length: number, path: ReturnPath): void
  /** sends everything queued now (done automatically after each batch and at the end of a tick) */
  flush(): void
  close(): Promise<void>
}

export class PacketIOError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'PacketIOError'
  }
}

export function newStats(): PacketIOStats {
  return { rxBatches: 0, rxPackets: 0, rxBytes: 0, rxTruncated: 0, txPackets: 0, txBytes: 0, txDropped: 0 }
}

/** '10.0.0.1' → 0x0a000001; throws PacketIOError FG_ERR_IO_ADDRESS for anything but dotted-quad IPv4. */
export function ipv4ToU32(s: string): number {
  const parts = s.split('.')
  if (parts.length !== 4) throw new PacketIOError('FG_ERR_IO_ADDRESS', `not an IPv4 address: ${s}`)
  let n = 0
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) {
      throw new PacketIOError('FG_ERR_IO_ADDRESS', `not an IPv4 address: ${s}`)
    }
    n = n * 256 + Number(p)
  }
  return n
}

export function u32ToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

export const DEFAULTS = {
  bindAddr: '0.0.0.0',
  port: 6081,
  batchSize: 64,
  slotSize: 9216,
  receiveBufferSize: 8 << 20,
  sendSlots: 256,
} as const
