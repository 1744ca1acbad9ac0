// What building the mini-VPC needs from the machine: root (namespaces, links, TUN), /dev/net/tun, iproute2,
// the native addon (TUN devices are opened through it) and the real peers run inside the namespaces.
// Shared by the namespace test suites (which fail or skip on a gap) and `flowgate demo` (which explains it).
import { execFileSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { addonAvailable } from '../../appliance/src/io/addon.ts'

export type Need = 'root' | 'tun' | 'ip' | 'addon' | 'peers'

/** The real peers the namespace suites drive (.ci/run installs them). */
export const PEERS = ['curl', 'socat', 'ping']

export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** One reason per unmet need, in the order given; empty when everything is there. */
export function unmet(needs: readonly Need[], peers: readonly string[] = PEERS): string[] {
  const why: string[] = []
  if (needs.includes('root') && process.getuid?.() !== 0) why.push('not running as root')
  if (needs.includes('tun')) {
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      why.push(code === 'ENOENT' ? '/dev/net/tun is missing' : `cannot open /dev/net/tun (${code})`)
    }
  }
  if (needs.includes('ip')) {
    try {
      execFileSync('ip', ['-V'], { stdio: 'ignore' })
    } catch {
      why.push('iproute2 `ip` is not installed')
    }
  }
  if (needs.includes('addon') && !addonAvailable()) why.push('native addon not built (npm run build:native)')
  if (needs.includes('peers')) {
    const absent = peers.filter((c) => !hasCommand(c))
    if (absent.length) why.push(`missing peer tools: ${absent.join(', ')}`)
  }
  return why
}

/** The unmet needs as one line, or null. */
export function missing(needs: readonly Need[]): string | null {
  const why = unmet(needs)
  return why.length ? why.join('; ') : null
}
