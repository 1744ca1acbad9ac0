// The appliance's last good bundle on disk, so a restarted appliance serves it before the operator
// calls again. Written to a temporary file, fsynced, then renamed over the old one: a crash leaves
// either the old or the new bundle, never half of one.
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { type ConfigBundle, verifyBundle } from '../../../policy/src/bundle.ts'
import type { CheckedPolicy } from '../../../policy/src/validate.ts'

export const STATE_FILE = 'bundle.json'

export interface PreparedState {
  /** renames the written file into place */
  commit(): Promise<void>
  /** removes the written file */
  discard(): Promise<void>
}

/** Writes the bundle next to the state file; nothing is visible until commit(). */
export async function prepareState(dir: string, bundle: ConfigBundle): Promise<PreparedState> {
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.${STATE_FILE}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(JSON.stringify(bundle))
    await fh.sync()
  } finally {
    await fh.close()
  }
  return {
    commit: async () => {
      await rename(tmp, join(dir, STATE_FILE))
      // fsync the directory so the rename itself survives a power loss.
      const d = await open(dir, 'r')
      try {
        await d.sync()
      } catch {
        // some file systems refuse fsync on a directory; the rename is still atomic
      } finally {
        await d.close()
      }
    },
    discard: () => rm(tmp, { force: true }),
  }
}

/** The persisted bundle, re-verified; undefined when there is none. Throws when it is corrupt. */
export async function loadState(
  dir: string,
): Promise<{ bundle: ConfigBundle; policies: CheckedPolicy[] } | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return verifyBundle(JSON.parse(text))
}
