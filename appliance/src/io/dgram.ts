// The pure-Node fallback: works without the addon and without CAP_NET_RAW.
//
// Receive: a dgram socket on the Geneve port; each datagram is a batch of one (Node hands them over one
// by one, each in a Buffer of its own, which is also why nothing here needs copying to reply).
// Return: GWLB wants the reply from *its* source port (GWLB.md "Returning a packet"), and dgram sends from
// the port a socket is bound to, so we keep one socket bound per GWLB source port seen (reuseAddr).
//
// Limits (why `native` is the default where it can run):
//   - one JS callback and one sendmsg per packet; Node allocates a Buffer per received datagram.
//   - the reply's source address is the bound address: bound to 0.0.0.0 the kernel picks it by route,
//     which is right for a single-homed node but not guaranteed on a multi-homed one. Bind to the node IP.
//   - each GWLB source port costs a socket (GWLB uses few: 60000, 60001, …); capped by maxPortSockets,
//     beyond which replies for new ports are dropped and counted. A port some other process holds
//     without SO_REUSEADDR cannot be bound: replies for it are dropped and counted.
//   - those sockets also receive whatever is sent to them; it is discarded.
import { createSocket, type Socket } from 'node:dgram'
import {
  type BatchHandler,
  DEFAULTS,
  ipv4ToU32,
  newStats,
  type PacketIO,
  PacketIOError,
  type PacketIOOptions,
  type ReturnPath,
  type RxBatch,
  u32ToIpv4,
} from './packet-io.ts'

class DgramRxBatch implements RxBatch {
  count = 0
  msg: Buffer = Buffer.alloc(0)
  address = ''
  addr = 0
  port = 0
  local = 0
  buffer(_i: number): Buffer {
    return this.msg
  }
  offset(_i: number): number {
    return 0
  }
  length(_i: number): number {
    return this.msg.length
  }
  capacity(_i: number): number {
    return this.msg.length
  }
  remoteAddr(_i: number): number {
    return this.addr
  }
  remotePort(_i: number): number {
    return this.port
  }
  localAddr(_i: number): number {
    return this.local
  }
  view(_i: number): Buffer {
    return this.msg
  }
}

export interface DgramPacketIOOptions extends PacketIOOptions {
  /** most per-source-port sockets kept open; default 1024 */
  maxPortSockets?: number
}

export class DgramPacketIO implements PacketIO {
  readonly backend = 'dgram' as const
  readonly stats = newStats()
  port = 0
  private readonly opts: Required<DgramPacketIOOptions>
  private main: Socket | undefined
  private readonly byPort = new Map<number, Socket>()
  /** sends handed to dgram and not yet completed, per socket: lost together if its bind fails */
  private readonly inFlight = new Map<Socket, number>()
  private readonly batch = new DgramRxBatch()
  private inBatch = false
  private handler: BatchHandler = () => {}
  private readonly localAddr: number

  constructor(options: DgramPacketIOOptions = {}) {
    this.opts = { ...DEFAULTS, maxPortSockets: 1024, ...options }
    this.localAddr = ipv4ToU32(this.opts.bindAddr)
  }

  async start(onBatch: BatchHandler): Promise<void> {
    if (this.main) throw new PacketIOError('FG_ERR_IO_STATE', 'packet I/O already started')
    this.handler = onBatch
    const s = createSocket({ type: 'udp4', recvBufferSize: this.opts.receiveBufferSize })
    this.main = s
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.bind({ port: this.opts.port, address: this.opts.bindAddr, exclusive: true }, () => {
        s.off('error', reject)
        resolve()
      })
    }).catch((e: Error) => {
      s.close()
      this.main = undefined
      throw new PacketIOError('FG_ERR_IO_BIND', `cannot bind Geneve port: ${e.message}`, { cause: e })
    })
    // After start an error on the Geneve socket is not fatal to the process: count and keep the socket
    // (it stays bound, which is what keeps ICMP port-unreachable away).
    s.on('error', () => {
      this.stats.txDropped++
    })
    this.port = s.address().port
    s.on('message', this.onMessage)
  }

  private readonly onMessage = (msg: Buffer, rinfo: { address: string; port: number }): void => {
    const b = this.batch
    b.count = 1
    b.msg = msg
    b.address = rinfo.address
    b.addr = ipv4ToU32(rinfo.address)
    b.port = rinfo.port
    b.local = this.localAddr
    const s = this.stats
    s.rxBatches++
    s.rxPackets++
    if (msg.length > this.opts.slotSize) {
      s.rxTruncated++
      b.msg = msg.subarray(0, 0)
    } else s.rxBytes += msg.length
    this.inBatch = true
    try {
      this.handler(b)
    } finally {
      this.inBatch = false
    }
  }

  /** The socket bound to our address and GWLB's source port `port`; undefined when over the cap. */
  private socketFor(port: number): Socket | undefined {
    if (port === this.port) return this.main
    let s = this.byPort.get(port)
    if (s) return s
    if (this.byPort.size >= this.opts.maxPortSockets) return undefined
    s = createSocket({ type: 'udp4', reuseAddr: true })
    const sock = s
    sock.on('error', () => {
      // The bind failed (port held exclusively elsewhere): the sends queued behind it are lost. Drop the
      // socket, so the next reply for this port tries again.
      this.stats.txDropped += this.inFlight.get(sock) ?? 0
      this.inFlight.delete(sock)
      if (this.byPort.get(port) === sock) this.byPort.delete(port)
      try {
        sock.close()
      } catch {}
    })
    sock.on('message', () => {})
    // dgram queues sends issued while the bind is in progress, so the first reply is not lost.
    sock.bind({ port, address: this.opts.bindAddr })
    this.byPort.set(port, sock)
    return sock
  }

  private out(buf: Buffer, offset: number, length: number, addr: string, srcPort: number): void {
    const s = this.socketFor(srcPort)
    if (!s) {
      this.stats.txDropped++
      return
    }
    this.inFlight.set(s, (this.inFlight.get(s) ?? 0) + 1)
    // Counted when dgram reports the outcome: a send queued behind a bind that fails never completes.
    s.send(buf, offset, length, this.port, addr, (err) => {
      const left = this.inFlight.get(s)
      if (left !== undefined) this.inFlight.set(s, left - 1)
      if (err) this.stats.txDropped++
      else {
        this.stats.txPackets++
        this.stats.txBytes += length
      }
    })
  }

  reply(batch: RxBatch, i: number, len?: number): void {
    if (!this.inBatch || batch !== this.batch || i !== 0) {
      throw new PacketIOError('FG_ERR_IO_STATE', 'reply() is only valid for the batch being handled')
    }
    const length = len ?? batch.length(i)
    if (length <= 0 || length > this.batch.msg.length) {
      this.stats.txDropped++
      return
    }
    // The message Buffer is ours alone (Node allocates one per datagram): no copy needed.
    this.out(this.batch.msg, 0, length, this.batch.address, this.batch.port)
  }

  send(bytes: Uint8Array, offset: number, length: number, path: ReturnPath): void {
    if (!this.main) throw new PacketIOError('FG_ERR_IO_STATE', 'packet I/O not started')
    if (length <= 0 || offset < 0 || offset + length > bytes.length) {
      this.stats.txDropped++
      return
    }
    // dgram may send after we return: the caller may reuse `bytes`, so copy.
    const copy = Buffer.from(bytes.subarray(offset, offset + length))
    this.out(copy, 0, length, u32ToIpv4(path.remoteAddr), path.remotePort)
  }

  /** Scratch space for reserve()/commit(): dgram sends a copy, so one datagram's worth is enough. */
  #scratch: Buffer | undefined

  get txBuffer(): Buffer {
    this.#scratch ??= Buffer.alloc(this.opts.slotSize)
    return this.#scratch
  }

  get txSlotSize(): number {
    return this.opts.slotSize
  }

  reserve(): number {
    if (!this.main) throw new PacketIOError('FG_ERR_IO_STATE', 'packet I/O not started')
    return 0
  }

  commit(length: number, path: ReturnPath): void {
    this.send(this.txBuffer, 0, length, path)
  }

  flush(): void {
    // Each send is already handed to the kernel (or queued behind a bind) as it is made.
  }

  async close(): Promise<void> {
    const all = [...this.byPort.values()]
    if (this.main) all.push(this.main)
    this.byPort.clear()
    this.main = undefined
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve())
            } catch {
              resolve()
            }
          }),
      ),
    )
  }
}
