// The fast backend: the flowgate_io addon (native/src/flowgate_io.c). recvmmsg writes straight into
// `rxRing`; the addon calls us once per batch with a count; replies are descriptors (buffer, offset,
// length, addresses, ports) that the addon turns into outer IPv4/UDP headers and sends with one sendmmsg on
// a raw socket. The per-packet work in JS is reading and writing a few Uint32Array words.
import { type FlowgateIoAddon, loadAddon, type PollerHandle, type TxHandle } from './addon.ts'
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
} from './packet-io.ts'

const W = 8 // META_WORDS in the addon
// tx buffer indices passed to txOpen
const BUF_RX = 0
const BUF_TX = 1

class NativeRxBatch implements RxBatch {
  count = 0
  readonly ring: Buffer
  readonly meta: Uint32Array
  readonly slot: number
  constructor(ring: Buffer, meta: Uint32Array, slot: number) {
    this.ring = ring
    this.meta = meta
    this.slot = slot
  }
  buffer(_i: number): Buffer {
    return this.ring
  }
  offset(i: number): number {
    return i * this.slot
  }
  length(i: number): number {
    return this.meta[i * W + 4]! & 1 ? 0 : this.meta[i * W]!
  }
  capacity(_i: number): number {
    return this.slot
  }
  remoteAddr(i: number): number {
    return this.meta[i * W + 1]!
  }
  remotePort(i: number): number {
    return this.meta[i * W + 2]!
  }
  localAddr(i: number): number {
    return this.meta[i * W + 3]!
  }
  view(i: number): Buffer {
    return this.ring.subarray(i * this.slot, i * this.slot + this.length(i))
  }
}

export class NativePacketIO implements PacketIO {
  readonly backend = 'native' as const
  readonly stats = newStats()
  port = 0
  private readonly opts: Required<PacketIOOptions>
  private addon: FlowgateIoAddon | undefined
  private udpFd = -1
  private rawFd = -1
  private poller: PollerHandle | undefined
  private tx: TxHandle | undefined
  private batch: NativeRxBatch | undefined
  private txRing = Buffer.alloc(0)
  private txMeta = new Uint32Array(0)
  private txMax = 0
  private txCount = 0
  private txSlotsUsed = 0
  private inBatch = false
  private flushScheduled = false
  private handler: BatchHandler = () => {}

  constructor(options: PacketIOOptions = {}) {
    this.opts = { ...DEFAULTS, ...options }
  }

  async start(onBatch: BatchHandler): Promise<void> {
    if (this.poller) throw new PacketIOError('FG_ERR_IO_STATE', 'packet I/O already started')
    this.handler = onBatch
    const a = loadAddon()
    this.addon = a
    const { batchSize, slotSize, sendSlots } = this.opts
    ;[this.udpFd, this.port] = a.udpOpen(
      ipv4ToU32(this.opts.bindAddr),
      this.opts.port,
      this.opts.receiveBufferSize,
    )
    try {
      this.rawFd = a.rawOpen(4 << 20)
    } catch (e) {
      a.fdClose(this.udpFd)
      this.udpFd = -1
      throw new PacketIOError(
        'FG_ERR_IO_RAW_SOCKET',
        `native packet I/O needs a raw socket (CAP_NET_RAW) to send from GWLB's port: ${(e as Error).message}`,
        { cause: e },
      )
    }
    // allocUnsafeSlow: memory of our own (not the shared pool), so the addon can hold its address.
    const rxRing = Buffer.allocUnsafeSlow(batchSize * slotSize)
    const rxMeta = new Uint32Array(batchSize * W)
    this.batch = new NativeRxBatch(rxRing, rxMeta, slotSize)
    this.txRing = Buffer.allocUnsafeSlow(sendSlots * slotSize)
    // Every received packet may be replied to and, beside them, every send slot used.
    this.txMax = batchSize + sendSlots
    this.txMeta = new Uint32Array(this.txMax * W)
    this.tx = a.txOpen(this.rawFd, [rxRing, this.txRing], this.txMeta, this.txMax)
    this.poller = a.pollerOpen(this.udpFd, 0, rxRing, slotSize, rxMeta, batchSize, this.onNativeBatch)
  }

  private readonly onNativeBatch = (count: number): void => {
    const b = this.batch!
    b.count = count
    const s = this.stats
    s.rxBatches++
    s.rxPackets += count
    for (let i = 0; i < count; i++) {
      if (b.meta[i * W + 4]! & 1) s.rxTruncated++
      else s.rxBytes += b.meta[i * W]!
    }
    this.inBatch = true
    try {
      this.handler(b)
    } finally {
      this.inBatch = false
      // Replies point into the ring: they must leave before the next recvmmsg overwrites it.
      this.flush()
    }
  }

  reply(batch: RxBatch, i: number, len?: number): void {
    if (!this.inBatch || batch !== this.batch || i < 0 || i >= batch.count) {
      throw new PacketIOError('FG_ERR_IO_STATE', 'reply() is only valid for the batch being handled')
    }
    const length = len ?? batch.length(i)
    if (length <= 0 || length > this.opts.slotSize) {
      this.stats.txDropped++
      return
    }
    if (this.txCount === this.txMax) this.flush()
    const m = this.txMeta
    const o = this.txCount++ * W
    m[o] = BUF_RX
    m[o + 1] = i * this.opts.slotSize
    m[o + 2] = length
    m[o + 3] = batch.localAddr(i)
    m[o + 4] = batch.remoteAddr(i)
    m[o + 5] = batch.remotePort(i)
    m[o + 6] = this.port
  }

  send(bytes: Uint8Array, offset: number, length: number, path: ReturnPath): void {
    if (!this.tx) throw new PacketIOError('FG_ERR_IO_STATE', 'packet I/O not started')
    if (length <= 0 || length > this.opts.slotSize || offset < 0 || offset + length > bytes.length) {
      this.stats.txDropped++
      return
    }
    this.txRing.set(bytes.subarray(offset, offset + length), this.reserve())
    this.commit(length, path)
  }

  get txBuffer(): Buffer {
    return this.txRing
  }

  get txSlotSize(): number {
    return this.opts.slotSize
  }

  reserve(): number {
    if (!this.tx) throw new PacketIOError('FG_ERR_IO_STATE', 'packet I/O not started')
    if (this.txSlotsUsed === this.opts.sendSlots || this.txCount === this.txMax) this.flush()
    return this.txSlotsUsed * this.opts.slotSize
  }

  commit(length: number, path: ReturnPath): void {
    if (length <= 0 || length > this.opts.slotSize) {
      this.stats.txDropped++
      return
    }
    const at = this.txSlotsUsed++ * this.opts.slotSize
    const m = this.txMeta
    const o = this.txCount++ * W
    m[o] = BUF_TX
    m[o + 1] = at
    m[o + 2] = length
    m[o + 3] = path.localAddr
    m[o + 4] = path.remoteAddr
    m[o + 5] = path.remotePort
    m[o + 6] = this.port
    // Outside a batch (timers, the TCP stack), coalesce this tick's sends into one sendmmsg.
    if (!this.inBatch && !this.flushScheduled) {
      this.flushScheduled = true
      queueMicrotask(this.flushTask)
    }
  }

  private readonly flushTask = (): void => {
    this.flushScheduled = false
    this.flush()
  }

  flush(): void {
    const n = this.txCount
    if (n === 0 || !this.tx) return
    const sent = this.addon!.txSend(this.tx, n)
    const s = this.stats
    s.txPackets += sent
    s.txDropped += n - sent
    // Bytes as handed to the kernel (Geneve onwards), counted for every entry that was queued; drops are
    // rare enough that precision here is not worth a second pass.
    for (let k = 0; k < n; k++) s.txBytes += this.txMeta[k * W + 2]!
    this.txCount = 0
    this.txSlotsUsed = 0
  }

  async close(): Promise<void> {
    const a = this.addon
    if (!a) return
    this.flush()
    if (this.poller) a.pollerClose(this.poller)
    if (this.tx) a.txClose(this.tx)
    if (this.udpFd >= 0) a.fdClose(this.udpFd)
    if (this.rawFd >= 0) a.fdClose(this.rawFd)
    this.poller = undefined
    this.tx = undefined
    this.udpFd = -1
    this.rawFd = -1
    this.addon = undefined
  }
}
