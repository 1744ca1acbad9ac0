// Which flow a later fragment belongs to. A later fragment (offset ≠ 0) has no ports, so the first
// fragment records (endpoint, src, dst, protocol, fragment id) → flow here and later ones look it up: they
// follow that flow's verdict, or are dropped and counted when it is unknown (out-of-order arrival, expired).
// Direct-mapped and fixed-size: a collision replaces the older datagram; entries expire after
// RFC 8200 §4.5's 60-second reassembly time.

import type { ParsedPacket } from '../wire/packet.ts'

export class FragmentCache {
  private readonly mask: number
  private readonly tag: Uint32Array
  private readonly id: Uint32Array
  private readonly flow: Int32Array
  private readonly flowGen: Uint32Array
  private readonly time: Float64Array
  readonly ttlMs: number

  constructor(size = 4096, ttlMs = 60_000) {
    let n = 16
    while (n < size) n *= 2
    this.mask = n - 1
    this.tag = new Uint32Array(n)
    this.id = new Uint32Array(n)
    this.flow = new Int32Array(n).fill(-1)
    this.flowGen = new Uint32Array(n)
    this.time = new Float64Array(n)
    this.ttlMs = ttlMs
  }

  private hash(p: ParsedPacket): number {
    const b = p.buf
    const n = p.family === 4 ? 4 : 16
    // RFC 791 §3.2: an IPv4 datagram is identified by (src, dst, protocol, id). RFC 8200 §4.5: an IPv6 one
    // by (src, dst, id) — and the next header seen after the Fragment header may differ between fragments.
    let h = 0x811c9dc5 ^ (p.family === 4 ? p.protocol : 0)
    for (let k = 0; k < 8; k++) h = Math.imul(h ^ b[p.endpointOff + k]!, 0x01000193)
    for (let k = 0; k < n; k++) h = Math.imul(h ^ b[p.srcOff + k]!, 0x01000193)
    for (let k = 0; k < n; k++) h = Math.imul(h ^ b[p.dstOff + k]!, 0x01000193)
    h = Math.imul(h ^ p.fragId, 0x01000193)
    return (h ^ (h >>> 15)) >>> 0
  }

  /** On a first fragment: remember its flow. */
  remember(p: ParsedPacket, flow: number, gen: number, now: number): void {
    const h = this.hash(p)
    const s = h & this.mask
    this.tag[s] = h
    this.id[s] = p.fragId
    this.flow[s] = flow
    this.flowGen[s] = gen
    this.time[s] = now
  }

  /** On a later fragment: the flow number recorded for its datagram and the generation to check, or -1. */
  lookup(p: ParsedPacket, now: number): number {
    const h = this.hash(p)
    const s = h & this.mask
    if (this.flow[s]! < 0 || this.tag[s] !== h || this.id[s] !== p.fragId || now - this.time[s]! > this.ttlMs)
      return -1
    this.lookupGen = this.flowGen[s]!
    return this.flow[s]!
  }
  /** generation recorded with the last successful lookup */
  lookupGen = 0
}
