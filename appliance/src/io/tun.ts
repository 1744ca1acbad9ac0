// A TUN device (layer 3, no packet-info prefix) through the flowgate_io addon: the GWLB stand-in reads what
// the client and server namespaces send from these, and writes what the appliance returns into them.
// Opening one needs the TUNSETIFF ioctl, which Node cannot issue (see native/src/flowgate_io.c for why a
// helper of our own rather than a package). The device is created in the caller's namespace; it can then
// be moved (`ip link set DEV netns NS`) and the fd keeps working.
import { writeSync } from 'node:fs'
import { type FlowgateIoAddon, loadAddon, type PollerHandle } from './addon.ts'

const W = 8

export class TunDevice {
  readonly fd: number
  readonly name: string
  private readonly addon: FlowgateIoAddon
  private poller: PollerHandle | undefined
  private closed = false
  private readonly ring: Buffer
  private readonly meta: Uint32Array
  private readonly slot: number
  private readonly max: number

  /** Creates TUN device `name` (≤ 15 bytes). Needs CAP_NET_ADMIN and /dev/net/tun. */
  constructor(name: string, options: { slotSize?: number; batchSize?: number } = {}) {
    this.addon = loadAddon()
    ;[this.fd, this.name] = this.addon.tunOpen(name)
    this.slot = options.slotSize ?? 65536
    this.max = options.batchSize ?? 16
    this.ring = Buffer.allocUnsafeSlow(this.slot * this.max)
    this.meta = new Uint32Array(this.max * W)
  }

  /**
   * Calls onPacket for every packet the kernel routes into the device. The Buffer is a view over a ring
   * reused for the next read: copy what you keep.
   */
  read(onPacket: (packet: Buffer) => void): void {
    if (this.poller || this.closed) return
    this.poller = this.addon.pollerOpen(this.fd, 1, this.ring, this.slot, this.meta, this.max, (n) => {
      for (let i = 0; i < n; i++) {
        onPacket(this.ring.subarray(i * this.slot, i * this.slot + this.meta[i * W]!))
      }
    })
  }

  /** Delivers one IP packet to the kernel as if it arrived on the device; false if refused. */
  write(packet: Uint8Array): boolean {
    if (this.closed) return false
    try {
      return writeSync(this.fd, packet) === packet.length
    } catch {
      // EIO/EINVAL for a packet the kernel will not take (e.g. not IP); EAGAIN if its queue is full.
      return false
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.poller) this.addon.pollerClose(this.poller)
    this.addon.fdClose(this.fd)
  }
}
