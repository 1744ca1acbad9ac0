// Shared by the CA tests: openssl as an independent judge of what we issue, and a temp dir for
// certificates. Only public material (certificates) is ever written to disk.
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

export interface Run {
  code: number
  stdout: string
  stderr: string
}

export async function openssl(args: string[], input?: string): Promise<Run> {
  if (input !== undefined) {
    return new Promise((resolve, reject) => {
      const p = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      p.stdout.on('data', (d) => {
        stdout += d
      })
      p.stderr.on('data', (d) => {
        stderr += d
      })
      p.on('error', reject)
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
      p.stdin.end(input)
    })
  }
  try {
    const { stdout, stderr } = await execFileP('openssl', args)
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

/** A temp dir for certificates (public material only); removed by cleanup(). */
export async function certDir(): Promise<{
  path: (name: string) => string
  put: (name: string, pem: string) => Promise<string>
  cleanup: () => Promise<void>
}> {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-ca-'))
  return {
    path: (name) => join(dir, name),
    put: async (name, pem) => {
      if (/PRIVATE KEY/.test(pem)) throw new Error('tests write certificates only, never keys')
      const p = join(dir, name)
      await writeFile(p, pem)
      return p
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

/** Parse "notBefore=…"/"notAfter=…" from `openssl x509 -dates`. */
export function opensslDates(out: string): { notBefore: number; notAfter: number } {
  const nb = /notBefore=(.+)/.exec(out)?.[1]
  const na = /notAfter=(.+)/.exec(out)?.[1]
  if (!nb || !na) throw new Error(`no dates in ${out}`)
  return { notBefore: Date.parse(nb), notAfter: Date.parse(na) }
}
