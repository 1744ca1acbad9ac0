// Bearer tokens from a mounted Secret file, re-read when the file changes so a token rotates without a
// restart. Kubernetes updates a Secret volume by swapping a symlink (..data), so the file is polled by
// stat (mtime, size, inode) rather than watched: inotify on the old target goes quiet after the swap.
//
// Rotation without downtime: the file holds one or more tokens, one per line; the first is the one this
// side *sends*, all of them are *accepted*. Tokens that disappear from the file stay accepted for
// `graceMs` (kubelet updates the operator's and the appliances' copies of the Secret at different times,
// up to a minute or so apart). So a plain replace of the token works; listing new and old for a while
// works too.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'

export interface TokenFileOptions {
  path: string
  /** how long a token removed from the file is still accepted */
  graceMs?: number
  /** re-stat the file at most this often */
  checkMs?: number
  now?: () => number
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

export class TokenFile {
  readonly #o: TokenFileOptions
  #stamp = ''
  #checkedAt = Number.NEGATIVE_INFINITY
  #current: string[] = []
  #previous: { digest: Buffer; until: number }[] = []
  #previousFirst: string | undefined

  constructor(o: TokenFileOptions) {
    this.#o = o
    this.#refresh(true)
  }

  #now(): number {
    return (this.#o.now ?? Date.now)()
  }

  #refresh(force = false): void {
    const now = this.#now()
    if (!force && now - this.#checkedAt < (this.#o.checkMs ?? 1000)) return
    this.#checkedAt = now
    let stamp: string
    let tokens: string[]
    try {
      stamp = readFileSync(this.#o.path, 'utf8')
      if (stamp === this.#stamp) return
      tokens = stamp
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    } catch {
      // A missing file (Secret not mounted yet) means no tokens; keep the old ones in grace.
      stamp = '\0missing'
      tokens = []
    }
    if (stamp === this.#stamp) return
    const until = now + (this.#o.graceMs ?? 120_000)
    for (const t of this.#current) if (!tokens.includes(t)) this.#previous.push({ digest: digest(t), until })
    if (this.#current[0] !== undefined && this.#current[0] !== tokens[0])
      this.#previousFirst = this.#current[0]
    this.#current = tokens
    this.#stamp = stamp
  }

  /** The token to send (first line), or undefined when there is none. */
  token(): string | undefined {
    this.#refresh()
    return this.#current[0]
  }

  /** The token this side sent before the last change, to retry with once when the peer still expects it. */
  previousToken(): string | undefined {
    this.#refresh()
    return this.#previousFirst
  }

  /** Whether any token is configured at all (no token: refuse everything). */
  configured(): boolean {
    this.#refresh()
    return this.#current.length > 0 || this.#previous.some((p) => p.until > this.#now())
  }

  /**
   * Constant-time check: both sides are hashed to 32 bytes so lengths never leak, and every accepted
   * token is compared (no early exit) so timing does not tell which one nearly matched.
   */
  accepts(candidate: string): boolean {
    this.#refresh()
    const now = this.#now()
    this.#previous = this.#previous.filter((p) => p.until > now)
    const c = digest(candidate)
    let ok = false
    for (const t of this.#current) ok = timingSafeEqual(c, digest(t)) || ok
    for (const p of this.#previous) ok = timingSafeEqual(c, p.digest) || ok
    return ok
  }
}
