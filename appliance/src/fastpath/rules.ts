// Packet rules of a policy entry (FlowPolicy `packet`: dropIfContains, replace, dropEveryNth), compiled
// once per entry to byte strings, and the payload search/replace they need.

import type { Entry } from '../../../policy/src/engine/index.ts'

export interface CompiledPacketRules {
  contains: Buffer[]
  from: Buffer[]
  to: Buffer[]
  /** 0 = none */
  nth: number
}

const cache = new WeakMap<Entry, CompiledPacketRules | null>()

/** The entry's packet rules as bytes (UTF-8), or null when it has none. Cached per entry object. */
export function packetRulesOf(e: Entry | undefined): CompiledPacketRules | null {
  if (!e) return null
  let c = cache.get(e)
  if (c !== undefined) return c
  const pr = e.packet
  if (!pr || (!pr.dropIfContains?.length && !pr.replace?.length && !pr.dropEveryNth)) c = null
  else {
    c = {
      contains: (pr.dropIfContains ?? []).map((s) => Buffer.from(s, 'utf8')),
      from: (pr.replace ?? []).map((r) => Buffer.from(r.from, 'utf8')),
      to: (pr.replace ?? []).map((r) => Buffer.from(r.to, 'utf8')),
      nth: pr.dropEveryNth ?? 0,
    }
  }
  cache.set(e, c)
  return c
}

/** Whether b[s, e) contains needle. Buffer#indexOf is native; the end bound is checked on the hit. */
export function containsIn(b: Buffer, s: number, e: number, needle: Buffer): boolean {
  if (needle.length === 0 || e - s < needle.length) return false
  const i = b.indexOf(needle, s)
  return i >= 0 && i + needle.length <= e
}

/**
 * Copies src[s, e) to dst[d, …) with every occurrence of `from` replaced by `to` (left to right, non-
 * overlapping). Returns the end offset in dst, or -1 if it would pass dmax.
 */
export function replaceInto(
  src: Buffer,
  s: number,
  e: number,
  from: Buffer,
  to: Buffer,
  dst: Buffer,
  d: number,
  dmax: number,
): number {
  let pos = s
  let o = d
  for (;;) {
    let i = from.length === 0 ? -1 : src.indexOf(from, pos)
    if (i >= 0 && i + from.length > e) i = -1
    const chunkEnd = i < 0 ? e : i
    const n = chunkEnd - pos
    if (o + n > dmax) return -1
    src.copy(dst, o, pos, chunkEnd)
    o += n
    if (i < 0) return o
    if (o + to.length > dmax) return -1
    to.copy(dst, o)
    o += to.length
    pos = i + from.length
  }
}
