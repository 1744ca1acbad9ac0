// Destination port sets: "443", 443 or "8000-8100" (inclusive).

export type PortRange = readonly [lo: number, hi: number]
export type PortResult = { ok: true; range: PortRange } | { ok: false; message: string }

const quote = (v: unknown) => JSON.stringify(v)

export function parsePort(value: string | number): PortResult {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 65535) {
      return { ok: false, message: `${value} is not a port (1-65535)` }
    }
    return { ok: true, range: [value, value] }
  }
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(value.trim())
  if (!m) return { ok: false, message: `${quote(value)} is not a port or a range like "8000-8100"` }
  const lo = Number(m[1])
  const hi = m[2] === undefined ? lo : Number(m[2])
  for (const p of [lo, hi]) {
    if (p < 1 || p > 65535) return { ok: false, message: `${quote(value)}: ${p} is not a port (1-65535)` }
  }
  if (hi < lo) return { ok: false, message: `${quote(value)} is a reversed range` }
  return { ok: true, range: [lo, hi] }
}

/** Sorted, merged ranges. */
export function normalizeRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0] || a[1] - b[1])
  const out: [number, number][] = []
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1]
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi)
    else out.push([lo, hi])
  }
  return out
}

/** Intersection of two port sets (undefined = every port). */
export function intersectRanges(
  a: readonly PortRange[] | undefined,
  b: readonly PortRange[] | undefined,
): PortRange[] | undefined {
  if (!a) return b ? normalizeRanges(b) : undefined
  if (!b) return normalizeRanges(a)
  const out: PortRange[] = []
  for (const [alo, ahi] of a) {
    for (const [blo, bhi] of b) {
      const lo = Math.max(alo, blo)
      const hi = Math.min(ahi, bhi)
      if (lo <= hi) out.push([lo, hi])
    }
  }
  return normalizeRanges(out)
}

export function formatRange([lo, hi]: PortRange): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`
}
