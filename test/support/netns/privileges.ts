// Suites that need root, /dev/net/tun, `ip` or the addon: in CI a missing requirement is a failure
// (TESTING.md "What CI must show"); on a developer machine the suite is skipped with the reason printed.
import { execFileSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import test, { type ExecutionContext } from 'ava'
import { addonAvailable } from '../../../appliance/src/io/addon.ts'

export type Need = 'root' | 'tun' | 'ip' | 'addon' | 'peers'

/** The real peers the namespace suites drive (.ci/run installs them). */
const PEERS = ['curl', 'socat', 'ping']

export function missing(needs: readonly Need[]): string | null {
  const why: string[] = []
  if (needs.includes('root') && process.getuid?.() !== 0) why.push('not running as root')
  if (needs.includes('tun')) {
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK)
    } catch {
      why.push('/dev/net/tun is missing')
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
    const absent = PEERS.filter((c) => {
      try {
        execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' })
        return false
      } catch {
        return true
      }
    })
    if (absent.length) why.push(`missing peer tools: ${absent.join(', ')}`)
  }
  return why.length ? why.join('; ') : null
}

const announced = new Set<string>()

/** `test`, or a loud failure (CI) / a skip with the reason (elsewhere) when a requirement is missing. */
export function privilegedTest(
  needs: readonly Need[],
): (title: string, fn: (t: ExecutionContext) => Promise<void> | void) => void {
  const reason = missing(needs)
  return (title, fn) => {
    if (!reason) {
      test(title, fn)
    } else if (process.env.CI) {
      test(title, (t) => {
        t.fail(
          `cannot run: ${reason} (CI must provide root, /dev/net/tun, iproute2, curl/socat/ping and the addon)`,
        )
      })
    } else {
      if (!announced.has(reason)) {
        announced.add(reason)
        console.warn(`SKIPPING privileged network tests: ${reason}`)
      }
      test.skip(title, fn)
    }
  }
}
