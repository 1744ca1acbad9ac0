// The flow table: one entry per flow, keyed by GWLB endpoint id + inner 5-tuple, both directions mapping
// to the same entry (GWLB.md "Flows": key on the endpoint id plus the 5-tuple, never on the cookie).
//
// Memory layout (for ≤ 300 bytes/flow at 1 M flows): struct-of-arrays in typed arrays indexed by entry
// number, plus an open-addressing hash (linear probing, backward-shift deletion, no tombstones) whose slots
// hold entry number + 1. The key is packed in 12 32-bit words:
//   w0-1 endpoint id · w2-5 address A · w6-9 address B · w10 portA<<16|portB · w11 protocol<<8|family
// where (A, portA) ≤ (B, portB): the canonical order that makes both directions one key. The hash is
// seeded per table so that hostile 5-tuples cannot be chosen to collide.
//
// Entry numbers are only valid until the entry is removed; `gen[i]` changes on every reuse so holders of an
// entry number across packets (fragment cache, timers) can tell.

import type { ParsedPacket } from '../wire/packet.ts'

export const KEY_WORDS = 12

/** A flow's key in its orig direction (see FlowTable.keyOf). */
export interface FlowKey {
  endpointId: Uint8Array
  family: 4 | 6
  protocol: number
  src: Uint8Array
  dst: Uint8Array
  srcPort: number
  dstPort: number
}

/** state bits */
export const FlowState = {
  used: 0x001,
  /** the packet that created the flow came from address A: that direction is "orig" (0) */
  origIsA: 0x002,
  seenOrig: 0x004,
  seenReply: 0x008,
  tcp: 0x010,
  finOrig: 0x020,
  finReply: 0x040,
  rst: 0x080,
  syn: 0x100,
} as const

/** Eviction classes, lowest evicted first. */
export const FlowClass = { closing: 0, unreplied: 1, assured: 2 } as const

export interface FlowTableOptions {
  /** maximum number of flows */
  capacity: number
  /** clock in ms (injected so tests control time) */
  now?: () => number
  /** GWLB's idle timeouts: TCP 350 s, other protocols 120 s (GWLB.md "Flows") */
  tcpIdleMs?: number
  otherIdleMs?: number
  /** after a FIN in both directions (a TIME-WAIT-like grace for retransmitted FIN/ACKs) */
  tcpClosingIdleMs?: number
  /** after a RST */
  tcpResetIdleMs?: number
  /** under pressure, an assured (two-way) flow active this recently is never evicted; the new flow is refused */
  protectActiveMs?: number
  /** how many entries one eviction looks at */
  evictionSample?: number
  /** Geneve header bytes stored inline per flow; longer headers go to a side map (GWLB's are 40) */
  geneveInline?: number
  /** hash seed; random by default */
  seed?: number
  /**
   * Called when flow i leaves the table, while its columns (key, counters, decision) are still readable
   * and before its entry number can be reused: for flow records.
   */
  onRemove?: (i: number, reason: RemoveReason) => void
}

/** Why a flow left the table: idle timeout (or the shortened one after FIN/RST), pressure, or a caller. */
export type RemoveReason = 'expired' | 'evicted' | 'removed'

/** TCP flags as VPC Flow Logs report them: FIN 1, SYN 2, RST 4, and 16 (ACK) only on a SYN-ACK (18). */
export function vpcTcpFlags(tcpFlags: number): number {
  return (tcpFlags & 0x07) | ((tcpFlags & 0x12) === 0x12 ? 0x10 : 0)
}

const TCP = 6

function mix(h0: number, w: number): number {
  // murmur3's 32-bit block step
  let k = Math.imul(w, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  k = Math.imul(k, 0x1b873593)
  let h = h0 ^ k
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

function fmix(h0: number): number {
  let h = h0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

export class FlowTable {
  readonly capacity: number
  readonly tcpIdleMs: number
  readonly otherIdleMs: number
  readonly tcpClosingIdleMs: number
  readonly tcpResetIdleMs: number
  readonly protectActiveMs: number
  readonly evictionSample: number
  readonly geneveInline: number
  readonly now: () => number
  private readonly seed: number
  private readonly onRemove: ((i: number, reason: RemoveReason) => void) | undefined

  // per-entry columns
  readonly keys: Uint32Array
  readonly hashes: Uint32Array
  readonly state: Uint16Array
  /** owned by the caller (the fast path's verdict code) */
  readonly verdict: Uint8Array
  /** owned by the caller (an interned decision id) */
  readonly decision: Uint32Array
  /** owned by the caller (dropEveryNth counter) */
  readonly nth: Uint32Array
  readonly gen: Uint32Array
  readonly created: Float64Array
  readonly last: Float64Array
  /** packets per direction: [2i] orig, [2i+1] reply */
  readonly packets: Float64Array
  readonly bytes: Float64Array
  /** TCP flags seen, in VPC Flow Logs' encoding (vpcTcpFlags), OR-ed; flow records may clear it */
  readonly tcpFlags: Uint8Array
  /** latest outer source (the GWLB node) as IPv4 u32 and UDP port */
  readonly outerIp: Uint32Array
  readonly outerPort: Uint16Array
  readonly geneve: Uint8Array
  readonly geneveLen: Uint16Array
  private readonly geneveOverflow = new Map<number, Uint8Array>()

  private readonly slots: Int32Array
  private readonly mask: number
  private readonly free: Uint32Array
  private freeTop: number
  private sweepCursor = 0
  private evictCursor = 0

  size = 0
  readonly stats = { created: 0, removed: 0, expired: 0, evicted: 0, refused: 0 }

  // the staged key (one packet at a time)
  private readonly sk = new Uint32Array(KEY_WORDS)
  private sh = 0
  /** whether the staged packet's source is address A of the canonical key */
  srcIsA = true

  constructor(o: FlowTableOptions) {
    const cap = Math.max(1, Math.floor(o.capacity))
    this.capacity = cap
    this.now = o.now ?? (() => performance.now())
    this.tcpIdleMs = o.tcpIdleMs ?? 350_000
    this.otherIdleMs = o.otherIdleMs ?? 120_000
    this.tcpClosingIdleMs = o.tcpClosingIdleMs ?? 30_000
    this.tcpResetIdleMs = o.tcpResetIdleMs ?? 10_000
    this.protectActiveMs = o.protectActiveMs ?? 30_000
    this.evictionSample = o.evictionSample ?? 16
    this.geneveInline = o.geneveInline ?? 40
    this.onRemove = o.onRemove
    this.seed = (o.seed ?? (Math.random() * 0x100000000) >>> 0) | 0
    this.keys = new Uint32Array(cap * KEY_WORDS)
    this.hashes = new Uint32Array(cap)
    this.state = new Uint16Array(cap)
    this.verdict = new Uint8Array(cap)
    this.decision = new Uint32Array(cap)
    this.nth = new Uint32Array(cap)
    this.gen = new Uint32Array(cap)
    this.created = new Float64Array(cap)
    this.last = new Float64Array(cap)
    this.packets = new Float64Array(cap * 2)
    this.bytes = new Float64Array(cap * 2)
    this.tcpFlags = new Uint8Array(cap)
    this.outerIp = new Uint32Array(cap)
    this.outerPort = new Uint16Array(cap)
    this.geneve = new Uint8Array(cap * this.geneveInline)
    this.geneveLen = new Uint16Array(cap)
    let size = 16
    while (size < cap * 2) size *= 2 // load factor ≤ 0.5 keeps linear probes short
    this.slots = new Int32Array(size)
    this.mask = size - 1
    this.free = new Uint32Array(cap)
    for (let i = 0; i < cap; i++) this.free[i] = cap - 1 - i
    this.freeTop = cap
  }

  /**
   * Stages the key of a packet (endpoint id bytes, addresses at srcOff/dstOff of `b`, ports) for find/insert.
   * Sets `srcIsA`.
   */
  stage(
    b: Uint8Array,
    endpointOff: number,
    family: 4 | 6,
    srcOff: number,
    dstOff: number,
    protocol: number,
    srcPort: number,
    dstPort: number,
  ): void {
    const k = this.sk
    k[0] = rd(b, endpointOff)
    k[1] = rd(b, endpointOff + 4)
    // Compare (src, srcPort) with (dst, dstPort) word by word to choose the canonical order.
    let cmp = 0
    const words = family === 4 ? 1 : 4
    for (let w = 0; w < words && cmp === 0; w++) {
      const s = rd(b, srcOff + w * 4)
      const d = rd(b, dstOff + w * 4)
      cmp = s < d ? -1 : s > d ? 1 : 0
    }
    if (cmp === 0) cmp = srcPort < dstPort ? -1 : srcPort > dstPort ? 1 : 0
    const aIsSrc = cmp <= 0
    this.srcIsA = aIsSrc
    const aOff = aIsSrc ? srcOff : dstOff
    const bOff = aIsSrc ? dstOff : srcOff
    if (family === 4) {
      k[2] = rd(b, aOff)
      k[3] = k[4] = k[5] = 0
      k[6] = rd(b, bOff)
      k[7] = k[8] = k[9] = 0
    } else {
      for (let w = 0; w < 4; w++) {
        k[2 + w] = rd(b, aOff + w * 4)
        k[6 + w] = rd(b, bOff + w * 4)
      }
    }
    k[10] = aIsSrc ? ((srcPort << 16) | dstPort) >>> 0 : ((dstPort << 16) | srcPort) >>> 0
    k[11] = (protocol << 8) | family
    // IPv4 keys have zeros in w3-5 and w7-9: hashing them adds nothing. Equal keys share a family, so
    // the two shapes never need to agree.
    let h = mix(mix(mix(this.seed, k[0]!), k[1]!), k[2]!)
    if (family === 6) h = mix(mix(mix(h, k[3]!), k[4]!), k[5]!)
    h = mix(h, k[6]!)
    if (family === 6) h = mix(mix(mix(h, k[7]!), k[8]!), k[9]!)
    h = mix(mix(h, k[10]!), k[11]!)
    this.sh = fmix(h ^ KEY_WORDS)
  }

  stagePacket(p: ParsedPacket): void {
    this.stage(p.buf, p.endpointOff, p.family, p.srcOff, p.dstOff, p.protocol, p.srcPort, p.dstPort)
  }

  /** entry number of the staged key, or -1 */
  find(): number {
    const h = this.sh
    const slots = this.slots
    const mask = this.mask
    let s = h & mask
    for (;;) {
      const e = slots[s]!
      if (e === 0) return -1
      const i = e - 1
      if (this.hashes[i] === h && this.keyEquals(i)) return i
      s = (s + 1) & mask
    }
  }

  private keyEquals(i: number): boolean {
    const k = this.sk
    const keys = this.keys
    const o = i * KEY_WORDS
    for (let w = 0; w < KEY_WORDS; w++) if (keys[o + w] !== k[w]) return false
    return true
  }

  /** Direction of the staged packet in flow i: 0 = as the flow's first packet (orig), 1 = reply. */
  direction(i: number): 0 | 1 {
    return ((this.state[i]! & FlowState.origIsA) !== 0) === this.srcIsA ? 0 : 1
  }

  /**
   * Inserts the staged key (which must not be present) as a new flow whose orig direction is the staged
   * packet's. When the table is full, expired flows are reclaimed first, then one flow is evicted (see
   * evict). Returns the entry number, or -1 when the flow is refused.
   */
  insert(now: number = this.now()): number {
    if (this.freeTop === 0 && !this.makeRoom(now)) {
      this.stats.refused++
      return -1
    }
    const i = this.free[--this.freeTop]!
    const k = this.sk
    this.keys.set(k, i * KEY_WORDS)
    this.hashes[i] = this.sh
    const tcp = k[11]! >>> 8 === TCP
    this.state[i] = FlowState.used | (this.srcIsA ? FlowState.origIsA : 0) | (tcp ? FlowState.tcp : 0)
    this.verdict[i] = 0
    this.decision[i] = 0
    this.nth[i] = 0
    this.gen[i] = (this.gen[i]! + 1) >>> 0
    this.created[i] = now
    this.last[i] = now
    this.packets[2 * i] = this.packets[2 * i + 1] = 0
    this.bytes[2 * i] = this.bytes[2 * i + 1] = 0
    this.tcpFlags[i] = 0
    this.outerIp[i] = 0
    this.outerPort[i] = 0
    this.geneveLen[i] = 0
    const slots = this.slots
    let s = this.sh & this.mask
    while (slots[s] !== 0) s = (s + 1) & this.mask
    slots[s] = i + 1
    this.size++
    this.stats.created++
    return i
  }

  /** Records one packet of flow i: direction, inner bytes, TCP flags (0 for other protocols), time. */
  touch(i: number, dir: 0 | 1, bytes: number, tcpFlags: number, now: number): void {
    this.packets[2 * i + dir]!++
    this.bytes[2 * i + dir]! += bytes
    this.last[i] = now
    let st = this.state[i]! | (dir === 0 ? FlowState.seenOrig : FlowState.seenReply)
    if (tcpFlags !== 0) {
      this.tcpFlags[i]! |= vpcTcpFlags(tcpFlags)
      if (tcpFlags & 0x02) st |= FlowState.syn
      if (tcpFlags & 0x01) st |= dir === 0 ? FlowState.finOrig : FlowState.finReply
      if (tcpFlags & 0x04) st |= FlowState.rst
    }
    this.state[i] = st
  }

  /** Idle timeout of flow i now, shortened once the TCP connection is closing. */
  idleTimeout(i: number): number {
    const st = this.state[i]!
    if (!(st & FlowState.tcp)) return this.otherIdleMs
    if (st & FlowState.rst) return this.tcpResetIdleMs
    if ((st & (FlowState.finOrig | FlowState.finReply)) === (FlowState.finOrig | FlowState.finReply))
      return this.tcpClosingIdleMs
    return this.tcpIdleMs
  }

  isExpired(i: number, now: number): boolean {
    return now - this.last[i]! >= this.idleTimeout(i)
  }

  /** closing < unreplied (one direction seen: half-open TCP, unanswered UDP) < assured (both directions) */
  flowClass(i: number): number {
    const st = this.state[i]!
    if (st & FlowState.rst) return FlowClass.closing
    if ((st & (FlowState.finOrig | FlowState.finReply)) === (FlowState.finOrig | FlowState.finReply))
      return FlowClass.closing
    return (st & (FlowState.seenOrig | FlowState.seenReply)) === (FlowState.seenOrig | FlowState.seenReply)
      ? FlowClass.assured
      : FlowClass.unreplied
  }

  /** Whether i is a live entry. */
  isLive(i: number): boolean {
    return i >= 0 && i < this.capacity && (this.state[i]! & FlowState.used) !== 0
  }

  remove(i: number, reason: RemoveReason = 'removed'): void {
    if (!this.isLive(i)) return
    this.onRemove?.(i, reason)
    const slots = this.slots
    const mask = this.mask
    let s = this.hashes[i]! & mask
    while (slots[s] !== i + 1) s = (s + 1) & mask
    // Backward-shift deletion: pull later members of the probe run into the hole when the hole lies on
    // their path from their home slot.
    let j = s
    for (;;) {
      j = (j + 1) & mask
      const e = slots[j]!
      if (e === 0) break
      const home = this.hashes[e - 1]! & mask
      const between = s <= j ? home > s && home <= j : home > s || home <= j
      if (!between) {
        slots[s] = e
        s = j
      }
    }
    slots[s] = 0
    this.state[i] = 0
    if (this.geneveLen[i]! > this.geneveInline) this.geneveOverflow.delete(i)
    this.geneveLen[i] = 0
    this.free[this.freeTop++] = i
    this.size--
    this.stats.removed++
  }

  /**
   * Removes expired flows, looking at no more than `budget` entries from where the last sweep stopped, so a
   * caller can spread the work over time. Returns how many were removed.
   */
  sweep(now: number, budget = 4096): number {
    let removed = 0
    const cap = this.capacity
    let c = this.sweepCursor
    for (let n = 0; n < budget && n < cap; n++) {
      if (this.state[c]! & FlowState.used && this.isExpired(c, now)) {
        this.remove(c, 'expired')
        this.stats.expired++
        removed++
      }
      c = c + 1 === cap ? 0 : c + 1
    }
    this.sweepCursor = c
    return removed
  }

  /**
   * Frees one entry for a new flow: reclaim expired flows near the sweep cursor, else evict the best
   * victim among `evictionSample` entries — closing flows first, then unreplied ones (half-open TCP, SYN
   * floods), then assured ones, the least recently active within a class. An assured flow active within
   * protectActiveMs is never evicted: the new flow is refused instead.
   */
  private makeRoom(now: number): boolean {
    if (this.sweep(now, 32) > 0) return true
    const cap = this.capacity
    let best = -1
    let bestClass = 3
    let bestLast = Number.POSITIVE_INFINITY
    let c = this.evictCursor
    for (let n = 0; n < this.evictionSample && n < cap; n++) {
      if (this.state[c]! & FlowState.used) {
        const cl = this.flowClass(c)
        const l = this.last[c]!
        if (cl < bestClass || (cl === bestClass && l < bestLast)) {
          best = c
          bestClass = cl
          bestLast = l
        }
      }
      c = c + 1 === cap ? 0 : c + 1
    }
    this.evictCursor = c
    if (best < 0) return false
    if (bestClass === FlowClass.assured && now - bestLast < this.protectActiveMs) return false
    this.remove(best, 'evicted')
    this.stats.evicted++
    return true
  }

  /** Stores the Geneve header b[off, off+len) for flow i unless identical to the stored one (GWLB.md: refresh per packet). */
  setGeneve(i: number, b: Uint8Array, off: number, len: number): void {
    const inl = this.geneveInline
    if (len <= inl) {
      const g = this.geneve
      const base = i * inl
      if (this.geneveLen[i] === len) {
        let same = true
        // compare from the end: the cookie is the field that changes
        for (let k = len - 1; k >= 0; k--) {
          if (g[base + k] !== b[off + k]) {
            same = false
            break
          }
        }
        if (same) return
      } else if (this.geneveLen[i]! > inl) this.geneveOverflow.delete(i)
      for (let k = 0; k < len; k++) g[base + k] = b[off + k]!
    } else {
      // Longer than GWLB's headers: kept aside, copied only when it changed.
      const cur = this.geneveOverflow.get(i)
      if (cur && cur.length === len) {
        let same = true
        for (let k = len - 1; k >= 0 && same; k--) same = cur[k] === b[off + k]
        if (same) return
      }
      this.geneveOverflow.set(i, Uint8Array.prototype.slice.call(b, off, off + len))
    }
    this.geneveLen[i] = len
  }

  /** Copies flow i's stored Geneve header to out[o]; returns its length (0 if none). */
  copyGeneve(i: number, out: Uint8Array, o: number): number {
    const len = this.geneveLen[i]!
    if (len === 0) return 0
    if (len <= this.geneveInline)
      out.set(this.geneve.subarray(i * this.geneveInline, i * this.geneveInline + len), o)
    else out.set(this.geneveOverflow.get(i)!, o)
    return len
  }

  setOuter(i: number, ip: number, port: number): void {
    this.outerIp[i] = ip >>> 0
    this.outerPort[i] = port
  }

  /**
   * The flow's key in its orig direction (the first packet's): for re-deciding flows after a policy swap,
   * flow logs and admin dumps. Allocates; not for the per-packet path.
   */
  keyOf(i: number): FlowKey {
    const o = i * KEY_WORDS
    const k = this.keys
    const family = (k[o + 11]! & 0xff) as 4 | 6
    const n = family === 4 ? 1 : 4
    const bytesOf = (w0: number) => {
      const out = new Uint8Array(n * 4)
      for (let w = 0; w < n; w++) {
        const v = k[o + w0 + w]!
        out[w * 4] = v >>> 24
        out[w * 4 + 1] = (v >>> 16) & 0xff
        out[w * 4 + 2] = (v >>> 8) & 0xff
        out[w * 4 + 3] = v & 0xff
      }
      return out
    }
    const ep = new Uint8Array(8)
    for (let b = 0; b < 8; b++) ep[b] = (k[o + (b >> 2)]! >>> (24 - 8 * (b & 3))) & 0xff
    const a = bytesOf(2)
    const bb = bytesOf(6)
    const portA = k[o + 10]! >>> 16
    const portB = k[o + 10]! & 0xffff
    const aIsOrig = (this.state[i]! & FlowState.origIsA) !== 0
    return {
      endpointId: ep,
      family,
      protocol: k[o + 11]! >>> 8,
      src: aIsOrig ? a : bb,
      dst: aIsOrig ? bb : a,
      srcPort: aIsOrig ? portA : portB,
      dstPort: aIsOrig ? portB : portA,
    }
  }

  /** Iterates live entry numbers (tests, admin dumps; not the hot path). */
  *live(): Generator<number> {
    for (let i = 0; i < this.capacity; i++) if (this.state[i]! & FlowState.used) yield i
  }
}

function rd(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
}
