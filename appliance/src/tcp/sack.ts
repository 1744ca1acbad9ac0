// The sender's scoreboard (RFC 6675 §3): every segment sent and not yet cumulatively acknowledged, in
// sequence order, with what the receiver reported about it (SACKed, RFC 2018), what loss detection concluded
// (lost, recovery.ts) and when it last left (RACK's per-segment transmit time, RFC 8985 §5.2). The segments
// tile [SND.UNA, SND.MAX) exactly; the bytes themselves stay in the send buffer.
//
// From it follow RFC 6675's quantities: `pipe` (§4, SetPipe: bytes in flight = not SACKed and not lost,
// where a lost segment counts again once it is retransmitted) and NextSeg's first rule (the first lost
// segment not yet retransmitted).

import type { SackBlock } from './segment.ts'
import { type Seq, seqAdd, seqGe, seqGt, seqLe, seqLt, seqSub } from './seq.ts'

export interface SentSegment {
  start: Seq
  /** One past the last sequence number it occupies (the FIN included). */
  end: Seq
  /** It carries our FIN (the last sequence number). */
  fin: boolean
  /** Clock ms of its latest transmission (RFC 8985 Segment.xmit_ts). */
  xmitTs: number
  /** Sent more than once (RFC 8985 Segment.retransmitted). */
  retransmitted: boolean
  sacked: boolean
  /** Deemed lost and not retransmitted since (RFC 8985 Segment.lost). */
  lost: boolean
}

/** Sequence space a segment occupies. */
export function segSpace(s: SentSegment): number {
  return seqSub(s.end, s.start)
}

/** Payload bytes of a segment (its FIN excluded). */
export function segData(s: SentSegment): number {
  return seqSub(s.end, s.start) - (s.fin ? 1 : 0)
}

export class SackScoreboard {
  readonly #segs: SentSegment[] = []
  #head = 0
  /** Sequence space SACKed, lost (and not retransmitted since), and SACKed segments (RACK.segs_sacked). */
  sackedBytes = 0
  lostBytes = 0
  sackedSegments = 0
  /** The latest transmit time handed out (see #stamp). */
  #lastXmit = Number.NEGATIVE_INFINITY

  get length(): number {
    return this.#segs.length - this.#head
  }

  /** The i-th unacknowledged segment (0: the one at SND.UNA). */
  at(i: number): SentSegment | undefined {
    return this.#segs[this.#head + i]
  }

  get last(): SentSegment | undefined {
    return this.length ? this.#segs[this.#segs.length - 1] : undefined
  }

  /** RFC 6675 §4 SetPipe for a flight of `flight` bytes (SND.MAX − SND.UNA). */
  pipe(flight: number): number {
    return flight - this.sackedBytes - this.lostBytes
  }

  /** A new segment left at `now`: [start, end), end past its FIN if it has one. */
  push(start: Seq, end: Seq, fin: boolean, now: number): SentSegment {
    const xmitTs = this.#stamp(now)
    const s: SentSegment = { start, end, fin, xmitTs, retransmitted: false, sacked: false, lost: false }
    this.#segs.push(s)
    return s
  }

  /**
   * The cumulative ACK moved to `una`: drops what it covers (trimming a segment it cuts into) and returns the
   * bytes delivered that had not been SACKed before (RFC 6937 DeliveredData's share); `delivered` sees each
   * whole segment newly delivered by it.
   */
  ackTo(una: Seq, delivered: (s: SentSegment) => void): number {
    let bytes = 0
    while (this.length) {
      const s = this.#segs[this.#head]!
      if (seqLe(s.end, una)) {
        const n = segSpace(s)
        if (s.sacked) {
          this.sackedBytes -= n
          this.sackedSegments--
        } else {
          if (s.lost) this.lostBytes -= n
          bytes += n
          delivered(s)
        }
        this.#segs[this.#head++] = DONE
        continue
      }
      if (seqLt(s.start, una)) {
        // The receiver took a prefix (a truncated segment, or our retransmission was shorter).
        const n = seqSub(una, s.start)
        if (s.sacked) this.sackedBytes -= n
        else {
          if (s.lost) this.lostBytes -= n
          bytes += n
        }
        s.start = una
      }
      break
    }
    if (this.#head > 64 && this.#head * 2 > this.#segs.length) {
      this.#segs.splice(0, this.#head)
      this.#head = 0
    }
    return bytes
  }

  /**
   * The RTT sample a cumulative ACK up to `ack` gives at `now` (before ackTo): the time since the first newly
   * acknowledged segment left, unless the ACK covers a retransmitted one (Karn's rule, RFC 6298 §3) or only
   * SACKed ones; −1 then. As Linux does, segment timing is preferred to timestamp echoes: it is exact, where
   * TSvals tick in milliseconds and a sub-millisecond path would measure 0.
   */
  rttSample(ack: Seq, now: number): number {
    let first = -1
    for (let i = this.#head; i < this.#segs.length; i++) {
      const s = this.#segs[i]!
      if (seqGt(s.end, ack)) break
      if (s.retransmitted) return -1
      if (first < 0 && !s.sacked) first = s.xmitTs
    }
    return first < 0 ? -1 : now - first
  }

  /**
   * SACK blocks arrived (RFC 2018 §5): marks what they cover, splitting segments at block edges, and returns
   * the bytes newly SACKed; `delivered` sees each segment newly SACKed. Blocks not within (SND.UNA, SND.MAX]
   * are ignored: D-SACKs (RFC 2883) or forged, and trusting them could make us skip data the receiver does
   * not have.
   */
  sack(blocks: readonly SackBlock[], una: Seq, max: Seq, delivered: (s: SentSegment) => void): number {
    let bytes = 0
    for (const b of blocks) {
      if (!seqLt(b.left, b.right) || seqLe(b.left, una) || seqGt(b.right, max)) continue
      for (let i = this.#find(b.left); i < this.#segs.length; i++) {
        let s = this.#segs[i]!
        if (seqGe(s.start, b.right)) break
        if (s.sacked) continue
        const dataEnd = seqAdd(s.end, s.fin ? -1 : 0)
        if (seqLt(s.start, b.left)) {
          // Only the upper part is covered: split, and look at that part next.
          this.#split(i, b.left)
          continue
        }
        // A block reports data only; a FIN beyond it (or a segment that is only a FIN) stays unSACKed.
        if (seqGt(dataEnd, b.right)) this.#split(i, b.right)
        else if (s.fin && seqLt(s.start, dataEnd)) this.#split(i, dataEnd)
        else if (s.fin) continue
        s = this.#segs[i]!
        const n = segSpace(s)
        if (s.lost) this.lostBytes -= n
        s.lost = false
        s.sacked = true
        this.sackedBytes += n
        this.sackedSegments++
        bytes += n
        delivered(s)
      }
    }
    return bytes
  }

  /** Index of the first segment ending after `at`. */
  #find(at: Seq): number {
    let lo = this.#head
    let hi = this.#segs.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (seqLe(this.#segs[mid]!.end, at)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Splits segment `i` (absolute index) at `at`; both halves keep its marks, the FIN goes with the upper. */
  #split(i: number, at: Seq): void {
    const s = this.#segs[i]!
    const upper: SentSegment = { ...s, start: at }
    s.end = at
    s.fin = false
    if (s.sacked) this.sackedSegments++
    this.#segs.splice(i + 1, 0, upper)
  }

  /** Splits the i-th unacknowledged segment at `at` (a retransmission that only fits partly in the window). */
  splitAt(i: number, at: Seq): void {
    const s = this.at(i)
    if (s && seqLt(s.start, at) && seqLt(at, s.end)) this.#split(this.#head + i, at)
  }

  markLost(s: SentSegment): void {
    if (s.lost || s.sacked) return
    s.lost = true
    this.lostBytes += segSpace(s)
  }

  /** `s` was sent again at `now`. */
  retransmitted(s: SentSegment, now: number): void {
    if (s.lost) this.lostBytes -= segSpace(s)
    s.lost = false
    s.retransmitted = true
    s.xmitTs = this.#stamp(now)
  }

  /**
   * Transmit times strictly increase in the order segments leave, so that RACK's "sent after" (RFC 8985
   * §6.2) is the true order even when one event sends several segments at the same clock reading — a
   * retransmission after new data would otherwise rank by sequence number, before it.
   */
  #stamp(now: number): number {
    this.#lastXmit = now > this.#lastXmit ? now : this.#lastXmit + 1e-6
    return this.#lastXmit
  }

  /** The first segment deemed lost and not retransmitted since, as an index from SND.UNA, or −1. */
  firstLost(): number {
    if (this.lostBytes === 0) return -1
    for (let i = this.#head; i < this.#segs.length; i++) if (this.#segs[i]!.lost) return i - this.#head
    return -1
  }

  /** RTO (RFC 6675 §5.1, RFC 8985 §8): everything not SACKed is presumed lost. */
  markAllLost(): void {
    for (let i = this.#head; i < this.#segs.length; i++) this.markLost(this.#segs[i]!)
  }

  /**
   * Forgets every SACK (RFC 2018 §8: the receiver may renege; RFC 6675 §5.1 after a timeout whose first
   * segment was SACKed, which only a reneging receiver produces).
   */
  clearSacks(): void {
    for (let i = this.#head; i < this.#segs.length; i++) this.#segs[i]!.sacked = false
    this.sackedBytes = 0
    this.sackedSegments = 0
  }

  clear(): void {
    this.#segs.length = 0
    this.#head = 0
    this.sackedBytes = 0
    this.lostBytes = 0
    this.sackedSegments = 0
  }
}

const DONE: SentSegment = {
  start: 0 as Seq,
  end: 0 as Seq,
  fin: false,
  xmitTs: 0,
  retransmitted: false,
  sacked: false,
  lost: false,
}
