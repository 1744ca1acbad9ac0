// Out-of-order receive queue (RFC 9293 §3.10.7.4, seventh check: segments beyond RCV.NXT are held "for later
// processing"), bounded in bytes so that a peer cannot make us hold unbounded memory. It also produces the
// SACK blocks we report (RFC 2018 §4).

import type { SackBlock } from './segment.ts'
import { type Seq, seqAdd, seqGe, seqGt, seqLe, seqLt, seqMax, seqSub } from './seq.ts'

interface Piece {
  seq: Seq
  data: Uint8Array
}

export class Reassembly {
  /** Sorted by sequence number, non-overlapping. */
  #pieces: Piece[] = []
  #held = 0
  /** The block that contains the most recently received segment (RFC 2018 §4, first SACK block). */
  #recent: Seq | undefined
  readonly limit: number
  readonly #onHeld: (delta: number) => void

  constructor(limit: number, onHeld: (delta: number) => void = () => {}) {
    this.limit = limit
    this.#onHeld = onHeld
  }

  /** Bytes held. */
  get held(): number {
    return this.#held
  }

  get empty(): boolean {
    return this.#pieces.length === 0
  }

  /**
   * Holds `data` starting at `start` (which is beyond RCV.NXT). Only the bytes not already held are copied.
   * Returns false, holding nothing, when that would exceed the limit: the segment is then dropped as if lost,
   * and since it is never SACKed the sender will retransmit it.
   */
  insert(start: Seq, data: Uint8Array): boolean {
    const end = seqAdd(start, data.length)
    const add: Piece[] = []
    let cur = start
    for (const p of this.#pieces) {
      const pEnd = seqAdd(p.seq, p.data.length)
      if (seqLe(pEnd, cur)) continue
      if (seqGe(p.seq, end)) break
      if (seqLt(cur, p.seq))
        add.push({ seq: cur, data: data.subarray(seqSub(cur, start), seqSub(p.seq, start)) })
      cur = seqMax(cur, pEnd)
      if (seqGe(cur, end)) break
    }
    if (seqLt(cur, end)) add.push({ seq: cur, data: data.subarray(seqSub(cur, start)) })
    let total = 0
    for (const a of add) total += a.data.length
    if (this.#held + total > this.limit) return false
    for (const a of add) {
      // Copy: the payload is a view over a datagram buffer that the packet I/O layer reuses.
      // (Uint8Array's slice: on a Buffer, .slice() is a view, not a copy.)
      a.data = Uint8Array.prototype.slice.call(a.data)
      this.#pieces.push(a)
    }
    if (add.length) {
      this.#pieces.sort((x, y) => seqSub(x.seq, y.seq))
      this.#held += total
      this.#onHeld(total)
    }
    this.#recent = start
    return true
  }

  /** Removes and returns the data contiguous from `rcvNxt` on (trimmed to start there). */
  take(rcvNxt: Seq): Uint8Array[] {
    const out: Uint8Array[] = []
    let nxt = rcvNxt
    let freed = 0
    let n = 0
    for (const p of this.#pieces) {
      if (seqGt(p.seq, nxt)) break
      n++
      freed += p.data.length
      const pEnd = seqAdd(p.seq, p.data.length)
      if (seqGt(pEnd, nxt)) {
        out.push(p.data.subarray(seqSub(nxt, p.seq)))
        nxt = pEnd
      }
    }
    if (n) {
      this.#pieces.splice(0, n)
      this.#held -= freed
      this.#onHeld(-freed)
    }
    return out
  }

  /**
   * Up to `max` SACK blocks: first the one containing the most recently received segment (RFC 2018 §4: "The
   * first SACK block ... MUST specify the contiguous block of data containing the segment which triggered
   * this ACK"), then the others from the lowest up.
   */
  sackBlocks(max: number): SackBlock[] {
    const blocks: SackBlock[] = []
    for (const p of this.#pieces) {
      const pEnd = seqAdd(p.seq, p.data.length)
      const last = blocks[blocks.length - 1]
      if (last && last.right === p.seq) blocks[blocks.length - 1] = { left: last.left, right: pEnd }
      else blocks.push({ left: p.seq, right: pEnd })
    }
    const r = this.#recent
    if (r !== undefined) {
      const i = blocks.findIndex((b) => seqLe(b.left, r) && seqLt(r, b.right))
      if (i > 0) blocks.unshift(...blocks.splice(i, 1))
    }
    return blocks.slice(0, max)
  }

  clear(): void {
    if (this.#held) this.#onHeld(-this.#held)
    this.#pieces = []
    this.#held = 0
    this.#recent = undefined
  }
}
