// One running capture: packets the tap offers it are encoded at once as pcapng Enhanced Packet Blocks into
// a reusable chunk (one copy, no allocation per packet), chunks wait in a bounded queue, and a timer moves
// them to the output stream. Nothing here ever waits: past the queue's bound a packet is dropped and
// counted, and a slow reader only makes the queue fill.
//
// TLS secrets must come before the packets they decrypt (readers decrypt in file order). A key log line
// is emitted while the TLS stack processes a packet that has already been captured — the ServerHello and
// the encrypted records behind it share a segment — so packets are held `holdMs` before they go out, and
// secrets go out as soon as they arrive, ahead of every packet still held: a secret that follows its
// packet by less than holdMs is still written before it.

import { Readable } from 'node:stream'
import type { CaptureFilter, Side } from './filter.ts'
import {
  decryptionSecrets,
  enhancedPacketSize,
  interfaceDescription,
  interfaceStatistics,
  LINKTYPE_RAW,
  sectionHeader,
  writeEnhancedPacket,
} from './pcapng.ts'

export interface CaptureLimits {
  /** the capture ends after this long */
  seconds: number
  /** and once about this many bytes were written (headers and statistics included) */
  maxBytes: number
  /** bytes waiting to be written, beyond which packets are dropped */
  queueBytes: number
  /** how long a packet waits for the secrets that decrypt it */
  holdMs: number
}

export const DEFAULT_LIMITS: CaptureLimits = {
  seconds: 60,
  maxBytes: 100 * 1024 * 1024,
  queueBytes: 8 * 1024 * 1024,
  holdMs: 250,
}

/** Totals over every capture, for metrics (the tap owns the array; sessions add to it). */
export const CAPTURE_COUNTS = { captured: 0, dropped: 1, secrets: 2, secretsDropped: 3 } as const

/** The interfaces of every capture: one per side (filter.ts says which packets are on which). */
export const INTERFACES = [
  {
    name: 'client',
    description:
      "flowgate client side: inner packets between clients and the appliance as received from and sent to GWLB (for flows the appliance does not terminate, the whole flow: the client's and the server's packets)",
  },
  {
    name: 'server',
    description:
      'flowgate server side: the appliance’s own connection to the server of each flow it terminates (tcpProxy, Inspect)',
  },
] as const

export type EndReason = 'time' | 'bytes' | 'closed' | 'shutdown'

/** Big enough for the largest inner packet's block, so a packet never spans chunks. */
const CHUNK = 128 * 1024
const MAX_SECRET_BYTES = 256 * 1024

interface Held {
  buf: Buffer
  /** ms (performance.now()) after which it may be written */
  due: number
}

export class CaptureSession {
  readonly filter: CaptureFilter
  readonly stream: Readable
  readonly started = Date.now()
  /** per side: packets offered, and of those dropped by the queue */
  readonly received = [0, 0]
  readonly dropped = [0, 0]
  secrets = 0
  secretsDropped = 0
  written = 0
  ended: EndReason | undefined
  private readonly limits: CaptureLimits
  private readonly totals: Float64Array
  private readonly onEnd: (s: CaptureSession, why: EndReason) => void
  private chunk = Buffer.allocUnsafe(CHUNK)
  private used = 0
  /** performance.now() of the newest packet in the chunk */
  private newest = 0
  private readonly held: Held[] = []
  private heldBytes = 0
  private pendingSecrets: Buffer[] = []
  private secretBytes = 0
  /** the reader asked for no more for now */
  private paused = false
  /** bytes written or accepted: the capture stops taking packets at maxBytes */
  private committed = 0
  private full = false
  private readonly ticker: NodeJS.Timeout
  private readonly deadline: NodeJS.Timeout

  constructor(
    filter: CaptureFilter,
    limits: CaptureLimits,
    totals: Float64Array,
    onEnd: (s: CaptureSession, why: EndReason) => void,
  ) {
    this.filter = filter
    this.limits = limits
    this.totals = totals
    this.onEnd = onEnd
    this.stream = new Readable({
      highWaterMark: 256 * 1024,
      read: () => {
        this.paused = false
        this.flush(performance.now())
      },
      destroy: (err, cb) => {
        this.finish('closed', false)
        cb(err)
      },
    })
    const head = Buffer.concat([
      sectionHeader({
        application: 'flowgate',
        comment: `flowgate live capture${filter.text ? ` (filter: ${filter.text})` : ''}`,
      }),
      ...INTERFACES.map((i) =>
        interfaceDescription({
          linkType: LINKTYPE_RAW,
          name: i.name,
          description: i.description,
          ...(filter.text ? { filter: filter.text } : {}),
        }),
      ),
    ])
    this.push(head)
    this.committed = head.length + this.trailerSize()
    this.ticker = setInterval(() => this.flush(performance.now()), Math.max(10, limits.holdMs / 2))
    this.ticker.unref()
    // Not unref'd: a capture is bounded, and its end (written out) is awaited by its reader.
    this.deadline = setTimeout(() => this.finish('time', true), limits.seconds * 1000)
  }

  /** One packet from the tap: data[from, to) is an inner IP packet. Never throws, never waits. */
  offer(
    side: Side,
    flags: number,
    micros: number,
    now: number,
    data: Buffer,
    from: number,
    to: number,
  ): void {
    if (this.ended || this.full) return
    this.received[side]!++
    const size = enhancedPacketSize(to - from)
    if (this.committed + size > this.limits.maxBytes) {
      // The byte limit: what was taken is written, then the capture ends (the next flush).
      this.full = true
      this.received[side]!--
      return
    }
    if (this.heldBytes + this.used + size > this.limits.queueBytes) {
      this.dropped[side]!++
      this.totals[CAPTURE_COUNTS.dropped]!++
      return
    }
    if (this.used + size > CHUNK) this.seal()
    this.used = writeEnhancedPacket(this.chunk, this.used, side, micros, flags, data, from, to)
    this.newest = now
    this.committed += size
    this.totals[CAPTURE_COUNTS.captured]!++
  }

  /** A key log line for a flow this capture takes; goes out ahead of the held packets. */
  secret(line: Buffer): void {
    if (this.ended) return
    if (this.secretBytes + line.length + 1 > MAX_SECRET_BYTES) {
      this.secretsDropped++
      this.totals[CAPTURE_COUNTS.secretsDropped]!++
      return
    }
    const withNewline = line[line.length - 1] === 0x0a ? line : Buffer.concat([line, Buffer.of(0x0a)])
    this.pendingSecrets.push(withNewline)
    this.secretBytes += withNewline.length
    this.secrets++
    this.totals[CAPTURE_COUNTS.secrets]!++
  }

  /** Ends the capture: what is held is written (when `drain`), then the statistics, then the end. */
  finish(why: EndReason, drain: boolean): void {
    if (this.ended) return
    this.ended = why
    clearInterval(this.ticker)
    clearTimeout(this.deadline)
    if (drain && !this.stream.destroyed) {
      this.seal()
      this.writeSecrets()
      for (const h of this.held) this.push(h.buf)
      this.held.length = 0
      this.heldBytes = 0
      this.push(this.trailer())
      this.stream.push(null)
    }
    this.onEnd(this, why)
  }

  /** Seals the chunk into the queue: its used part is copied out so the chunk is reused. */
  private seal(): void {
    if (this.used === 0) return
    const buf = Buffer.from(this.chunk.subarray(0, this.used))
    this.held.push({ buf, due: this.newest + this.limits.holdMs })
    this.heldBytes += buf.length
    this.used = 0
  }

  private flush(now: number): void {
    if (this.ended) return
    const settled = this.newest + this.limits.holdMs <= now
    if (this.used > 0 && settled) this.seal()
    if (this.full && settled) {
      // At the byte limit nothing more comes in: once the last packet had its time, write the rest.
      this.finish('bytes', true)
      return
    }
    if (this.paused) return
    this.writeSecrets()
    while (this.held.length > 0 && this.held[0]!.due <= now && !this.paused) {
      const h = this.held.shift()!
      this.heldBytes -= h.buf.length
      this.push(h.buf)
    }
  }

  private writeSecrets(): void {
    if (this.pendingSecrets.length === 0) return
    const lines = Buffer.concat(this.pendingSecrets)
    this.pendingSecrets = []
    this.secretBytes = 0
    const dsb = decryptionSecrets(lines)
    this.committed += dsb.length
    this.push(dsb)
  }

  private push(b: Buffer): void {
    this.written += b.length
    if (!this.stream.push(b)) this.paused = true
  }

  private trailerSize(): number {
    return this.trailer().length
  }

  /** Interface Statistics Blocks: what each side saw and dropped. */
  private trailer(): Buffer {
    const end = Math.round((performance.timeOrigin + performance.now()) * 1000)
    return Buffer.concat(
      INTERFACES.map((_, side) =>
        interfaceStatistics({
          interfaceId: side,
          start: this.started * 1000,
          end,
          received: this.received[side]!,
          dropped: this.dropped[side]!,
          comment: 'dropped: packets the capture queue had no room for',
        }),
      ),
    )
  }
}
