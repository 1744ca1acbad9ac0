// The sender's SACK scoreboard (RFC 2018 §5): which bytes above SND.UNA the receiver reports holding, so
// that fast recovery retransmits the holes instead of data already received (the loss-recovery use RFC 6675
// describes; we retransmit each hole once per recovery episode rather than keeping RFC 6675's full "pipe").

import type { SackBlock } from './segment.ts'
import { type Seq, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSub } from './seq.ts'

export class SackScoreboard {
  /** Sorted, merged, all strictly above SND.UNA. */
  #blocks: { left: Seq; right: Seq }[] = []

  get blocks(): readonly SackBlock[] {
    return this.#blocks
  }

  /**
   * Adds reported blocks. Blocks not within (SND.UNA, SND.MAX] are ignored: they are D-SACKs (RFC 2883) or
   * forged, and trusting them could make us skip data the receiver does not have.
   */
  update(reported: readonly SackBlock[], sndUna: Seq, sndMax: Seq): void {
    for (const b of reported) {
      if (!seqLt(b.left, b.right) || seqLe(b.left, sndUna) || seqGt(b.right, sndMax)) continue
      this.#add(b.left, b.right)
    }
  }

  #add(left: Seq, right: Seq): void {
    const out: { left: Seq; right: Seq }[] = []
    let l = left
    let r = right
    let placed = false
    for (const b of this.#blocks) {
      if (seqLt(b.right, l)) out.push(b)
      else if (seqGt(b.left, r)) {
        if (!placed) {
          out.push({ left: l, right: r })
          placed = true
        }
        out.push(b)
      } else {
        l = seqMin(l, b.left)
        r = seqMax(r, b.right)
      }
    }
    if (!placed) out.push({ left: l, right: r })
    this.#blocks = out
  }

  /** Forgets everything at or below the new cumulative ACK. */
  ackTo(sndUna: Seq): void {
    while (this.#blocks.length && seqLe(this.#blocks[0]!.right, sndUna)) this.#blocks.shift()
    const f = this.#blocks[0]
    if (f && seqLt(f.left, sndUna)) this.#blocks[0] = { left: sndUna, right: f.right }
  }

  clear(): void {
    this.#blocks = []
  }

  /** Right edge of the highest SACKed block. */
  highest(): Seq | undefined {
    return this.#blocks[this.#blocks.length - 1]?.right
  }

  /**
   * The first hole at or after `from` that lies below the highest SACKed byte: [start, end). Data beyond the
   * highest SACK is not presumed lost (RFC 6675 §4, IsLost needs SACKed data above it).
   */
  nextHole(from: Seq): { start: Seq; end: Seq } | undefined {
    let cur = from
    for (const b of this.#blocks) {
      if (seqLe(b.right, cur)) continue
      if (seqGt(b.left, cur)) return { start: cur, end: b.left }
      cur = b.right
    }
    return undefined
  }

  /** Total bytes SACKed. */
  get sacked(): number {
    let n = 0
    for (const b of this.#blocks) n += seqSub(b.right, b.left)
    return n
  }

  isSacked(s: Seq): boolean {
    return this.#blocks.some((b) => seqGe(s, b.left) && seqLt(s, b.right))
  }
}
