// A bounded queue between the packet loop and the output stream. push() never blocks and never waits for
// I/O: past `maxQueued` records it drops and counts, so a slow disk or a closed pipe costs records, not
// packets. Serialisation and writes happen in a setImmediate after the loop's current batch.
import { createWriteStream } from 'node:fs'
import type { Writable } from 'node:stream'

export class FlowLogWriter {
  /** [written, dropped] (metrics: flowgate_flow_records_total{result}) */
  readonly counts = new Float64Array(2)
  private queue: object[] = []
  private scheduled = false
  private waitingDrain = false
  private closed = false
  private readonly out: Writable
  private readonly ownsStream: boolean
  private readonly maxQueued: number

  constructor(out: Writable, maxQueued = 16_384, ownsStream = false) {
    this.out = out
    this.maxQueued = maxQueued
    this.ownsStream = ownsStream
    // A broken output (full disk, closed pipe) must not crash the appliance: later records are dropped.
    out.on('error', () => {
      this.closed = true
    })
  }

  /** `-` is stdout; anything else a file, appended to. */
  static open(target: string, maxQueued?: number): FlowLogWriter {
    if (target === '-') return new FlowLogWriter(process.stdout, maxQueued)
    return new FlowLogWriter(createWriteStream(target, { flags: 'a' }), maxQueued, true)
  }

  get written(): number {
    return this.counts[0]!
  }

  get dropped(): number {
    return this.counts[1]!
  }

  push(record: object): void {
    if (this.closed || this.queue.length >= this.maxQueued) {
      this.counts[1]!++
      return
    }
    this.queue.push(record)
    if (!this.scheduled && !this.waitingDrain) {
      this.scheduled = true
      setImmediate(() => this.flush())
    }
  }

  private flush(): void {
    this.scheduled = false
    const batch = this.queue
    if (batch.length === 0) return
    this.queue = []
    if (this.closed) {
      this.counts[1]! += batch.length
      return
    }
    let text = ''
    for (const r of batch) text += `${JSON.stringify(r)}\n`
    const ok = this.out.write(text)
    this.counts[0]! += batch.length
    if (!ok) {
      // Let the stream catch up; meanwhile records queue up to maxQueued, then drop.
      this.waitingDrain = true
      this.out.once('drain', () => {
        this.waitingDrain = false
        this.flush()
      })
    }
  }

  /** Writes what is queued and closes a file it opened. */
  async close(): Promise<void> {
    if (!this.waitingDrain) this.flush()
    else this.counts[1]! += this.queue.length // the stream never caught up: these are lost
    this.queue = []
    this.closed = true
    if (!this.ownsStream) return
    await new Promise<void>((resolve) => this.out.end(resolve))
  }
}
