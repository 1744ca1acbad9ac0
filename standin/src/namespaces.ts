// Network namespaces made and always removed by whoever made them: a test (TESTING.md layer 3) or
// `flowgate demo`.
//
// Names carry the creating process id (`fgt-<pid>-<rand>-<role>`), so a run that was killed before its
// cleanup ran is swept by the next one: namespaces whose pid is no longer alive are deleted at creation.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'

export const NS_PREFIX = 'fgt-'

/** Runs `ip ARGS` and throws with stderr on failure. */
export function ip(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (e) {
    const err = e as { stderr?: Buffer }
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.toString().trim() ?? String(e)}`)
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Deletes namespaces left behind by test processes that no longer exist. */
export function sweepStale(): void {
  let list = ''
  try {
    // stderr is not ours to print: `ip` complains about peers of namespaces others are deleting meanwhile.
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const m = /^fgt-(\d+)-/.exec(name)
    if (m && !alive(Number(m[1]))) {
      try {
        ip('netns', 'del', name)
      } catch {}
    }
  }
}

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (c.pid) process.kill(-c.pid, signal)
  } catch {
    c.kill(signal)
  }
}

export interface ExecResult {
  code: number | null
  signal: string | null
  stdout: Buffer
  stderr: string
  ms: number
}

const liveSets = new Set<NamespaceSet>()
let exitHookInstalled = false

/** A set of namespaces and the processes started in them, torn down together. */
export class NamespaceSet {
  /** short random id, also used in interface names (≤ 15 bytes) */
  readonly id: string
  private readonly names: string[] = []
  private readonly children = new Set<ChildProcess>()
  private closed = false

  constructor() {
    this.id = randomBytes(3).toString('hex')
    sweepStale()
    liveSets.add(this)
    if (!exitHookInstalled) {
      exitHookInstalled = true
      // Last resort if a test forgot close() or the process is exiting on an exception.
      process.on('exit', () => {
        for (const s of liveSets) s.closeSync()
      })
    }
  }

  /** Creates namespace `<prefix><pid>-<id>-<role>` with lo up; returns its name. */
  create(role: string): string {
    const name = `${NS_PREFIX}${process.pid}-${this.id}-${role}`
    ip('netns', 'add', name)
    this.names.push(name)
    ip('-n', name, 'link', 'set', 'lo', 'up')
    return name
  }

  /** Runs a command to completion inside `ns`, bounded by timeoutMs. */
  exec(ns: string, cmd: string, args: string[], timeoutMs = 30_000): Promise<ExecResult> {
    const t0 = performance.now()
    return new Promise((resolve) => {
      execFile(
        'ip',
        ['netns', 'exec', ns, cmd, ...args],
        { encoding: 'buffer', maxBuffer: 64 << 20, timeout: timeoutMs, killSignal: 'SIGKILL' },
        (err, stdout, stderr) => {
          const e = err as (Error & { code?: number | string; signal?: string }) | null
          resolve({
            code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
            signal: e?.signal ?? null,
            stdout,
            stderr: stderr.toString(),
            ms: performance.now() - t0,
          })
        },
      )
    })
  }

  /**
   * Starts a long-running process inside `ns`; it is killed at close(). Resolves once a line of its
   * stdout matches `ready` (or at once without one); rejects if it exits first or after readyMs.
   */
  spawn(ns: string, cmd: string, args: string[], ready?: RegExp, readyMs = 10_000): Promise<ChildProcess> {
    // A process group of its own, so close() also reaches what it forks (socat's per-peer children, which
    // would otherwise outlive the namespace and hold our pipes open).
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    this.children.add(child)
    child.on('exit', () => {
      this.children.delete(child)
      // Whatever it forked goes with it.
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL')
      } catch {}
    })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
    })
    if (!ready) return Promise.resolve(child)
    return new Promise((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => {
        reject(new Error(`${cmd} in ${ns} not ready after ${readyMs} ms: ${stderr}`))
      }, readyMs)
      const onData = (d: Buffer) => {
        out += d.toString()
        if (ready.test(out)) {
          clearTimeout(timer)
          child.stdout!.off('data', onData)
          child.stdout!.resume()
          resolve(child)
        }
      }
      child.stdout!.on('data', onData)
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`${cmd} in ${ns} exited (${code}) before ready: ${stderr}`))
      })
    })
  }

  /** Kills every process started here, then deletes the namespaces (which removes their veths). */
  async close(): Promise<void> {
    if (this.closed) return
    const waits = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve()
          const timer = setTimeout(() => killGroup(c, 'SIGKILL'), 2000)
          c.once('exit', () => {
            clearTimeout(timer)
            resolve()
          })
          killGroup(c, 'SIGTERM')
        }),
    )
    await Promise.all(waits)
    this.closeSync()
  }

  closeSync(): void {
    if (this.closed) return
    this.closed = true
    liveSets.delete(this)
    for (const c of this.children) killGroup(c, 'SIGKILL')
    for (const n of this.names.reverse()) {
      try {
        ip('netns', 'del', n)
      } catch {}
    }
  }
}
