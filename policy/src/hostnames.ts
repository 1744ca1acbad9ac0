// Host name patterns for SNI and HTTP Host: "example.com" (exact) or "*.example.com" (any name below).
import { isIP } from 'node:net'

export type HostPattern = { kind: 'exact'; name: string } | { kind: 'suffix'; suffix: string }
export type HostPatternResult = { ok: true; pattern: HostPattern } | { ok: false; message: string }

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/

function validName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false
  return name.split('.').every((l) => LABEL.test(l))
}

/** Lower-cases and strips one trailing dot, as DNS names compare. */
export function normalizeHostName(name: string): string {
  const lower = name.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

export function parseHostPattern(text: string, allowIp: boolean): HostPatternResult {
  const q = JSON.stringify(text)
  const name = normalizeHostName(text)
  if (isIP(name)) {
    return allowIp
      ? { ok: true, pattern: { kind: 'exact', name } }
      : { ok: false, message: `${q} is an IP address; TLS SNI never carries one (RFC 6066 §3)` }
  }
  if (name.startsWith('*.')) {
    const suffix = name.slice(2)
    if (!validName(suffix)) return { ok: false, message: `${q} is not a valid wildcard host pattern` }
    return { ok: true, pattern: { kind: 'suffix', suffix } }
  }
  if (name.includes('*')) {
    return { ok: false, message: `${q}: a wildcard may only be the whole first label, as in "*.example.com"` }
  }
  if (!validName(name)) return { ok: false, message: `${q} is not a valid host name` }
  return { ok: true, pattern: { kind: 'exact', name } }
}

export function hostPatternMatches(p: HostPattern, host: string): boolean {
  return p.kind === 'exact' ? host === p.name : host.endsWith(`.${p.suffix}`)
}
