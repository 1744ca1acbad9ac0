// Suites that need root, /dev/net/tun, `ip` or the addon: in CI a missing requirement is a failure
// (TESTING.md "What CI must show"); on a developer machine the suite is skipped with the reason printed.
import test, { type ExecutionContext } from 'ava'
import { missing, type Need } from '../../../standin/src/requirements.ts'

export { missing, type Need } from '../../../standin/src/requirements.ts'

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
