// --har-dir: HAR entries into rotating files, each a whole HAR 1.2 document at every moment. An entry is
// written with the document's tail after it, at the offset where the previous tail began, so the file
// always ends in `]}}` and any HAR reader opens it while it grows (a crash mid-write is the one exception).
// A file is closed once it passes maxFileBytes and the next entry starts a new one; the oldest files beyond
// keepFiles are deleted. Files are created 0600: they hold request and response data.
//
// Writes are one at a time, entries queued meanwhile are written together; the queue is bounded in bytes
// and an entry that does not fit is dropped (counted by the hub), so a slow disk never holds the data path.

import { type FileHandle, mkdir, open, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { HAR_TAIL, harHead } from './har.ts'
import { HAR_CREATOR, type HarSink } from './har-hub.ts'

export interface HarFilesOptions {
  dir: string
  /** a file is closed once it is past this (default 64 MiB) */
  maxFileBytes?: number
  /** files kept in dir; older ones are deleted (default 10) */
  keepFiles?: number
  /** entry bytes waiting for the disk before entries are dropped (default 8 MiB) */
  maxQueueBytes?: number
  onError?: (err: Error) => void
  /** ms since the epoch (file names) */
  now?: () => number
}

const NAME = /^flowgate-\d{8}T\d{6}Z-\d{4}\.har$/

export class HarFiles implements HarSink {
  readonly dir: string
  private readonly maxFileBytes: number
  private readonly keepFiles: number
  private readonly maxQueueBytes: number
  private readonly o: HarFilesOptions
  private queue: string[] = []
  private queued = 0
  private writing: Promise<void> | undefined
  private file: { handle: FileHandle; path: string; pos: number; entries: number } | undefined
  private seq = 0
  private closed = false
  /** files written, oldest first */
  readonly written: string[] = []

  constructor(o: HarFilesOptions) {
    this.o = o
    this.dir = o.dir
    this.maxFileBytes = o.maxFileBytes ?? 64 * 1024 * 1024
    this.keepFiles = Math.max(1, o.keepFiles ?? 10)
    this.maxQueueBytes = o.maxQueueBytes ?? 8 * 1024 * 1024
  }

  push(json: string): boolean {
    if (this.closed || this.queued + json.length > this.maxQueueBytes) return false
    this.queue.push(json)
    this.queued += json.length
    this.kick()
    return true
  }

  private kick(): void {
    if (this.writing) return
    this.writing = this.drain().finally(() => {
      this.writing = undefined
      // Pushed after the loop looked for the last time.
      if (this.queue.length > 0) this.kick()
    })
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      this.queued = 0
      try {
        await this.write(batch)
      } catch (err) {
        // The file is abandoned (it still ends in a tail, unless the failed write cut it); the next entry
        // starts a new one.
        this.o.onError?.(err as Error)
        await this.file?.handle.close().catch(() => undefined)
        this.file = undefined
      }
    }
  }

  private async write(batch: string[]): Promise<void> {
    const f = this.file ?? (await this.openNext())
    let text = ''
    for (const json of batch) {
      text += f.entries === 0 ? json : `,${json}`
      f.entries++
    }
    const bytes = Buffer.from(text + HAR_TAIL)
    await f.handle.write(bytes, 0, bytes.length, f.pos)
    f.pos += bytes.length - HAR_TAIL.length
    if (f.pos >= this.maxFileBytes) {
      this.file = undefined
      await f.handle.close()
    }
  }

  private async openNext(): Promise<NonNullable<HarFiles['file']>> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const stamp = new Date((this.o.now ?? Date.now)())
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')
    const path = join(this.dir, `flowgate-${stamp}-${String(this.seq++ % 10_000).padStart(4, '0')}.har`)
    const handle = await open(path, 'w', 0o600)
    const head = Buffer.from(harHead(HAR_CREATOR) + HAR_TAIL)
    await handle.write(head, 0, head.length, 0)
    this.file = { handle, path, pos: head.length - HAR_TAIL.length, entries: 0 }
    this.written.push(path)
    await this.prune()
    return this.file
  }

  /** Deletes our oldest files beyond keepFiles (names sort by time). */
  private async prune(): Promise<void> {
    const ours = (await readdir(this.dir)).filter((n) => NAME.test(n)).sort()
    for (const n of ours.slice(0, Math.max(0, ours.length - this.keepFiles)))
      await rm(join(this.dir, n), { force: true })
  }

  /** Writes what is queued, then closes the current file. */
  async close(): Promise<void> {
    this.closed = true
    while (this.writing) await this.writing
    await this.file?.handle.close()
    this.file = undefined
  }
}
