// Hands a secret (a private key) to another process through a named pipe, so that it never lands on disk:
// the FIFO (mode 600) holds no data, the reader gets the bytes once, and the writer's copy is zeroed.
import { execFileSync } from 'node:child_process'
import { closeSync, constants, createWriteStream, openSync, rmSync } from 'node:fs'

export class SecretPipe {
  readonly path: string
  /** settles once the reader has taken the secret (or the pipe was closed unread) */
  readonly taken: Promise<boolean>
  #done = false

  constructor(path: string, secret: Buffer) {
    this.path = path
    execFileSync('mkfifo', ['-m', '600', path])
    // Opening blocks (on a libuv thread) until a reader opens the other end.
    const out = createWriteStream(path)
    this.taken = new Promise((resolve) => {
      out.once('finish', () => resolve(true))
      out.once('error', () => resolve(false))
    }).then((ok) => {
      this.#done = true
      secret.fill(0)
      return ok as boolean
    })
    out.end(secret)
  }

  /** Removes the pipe; a writer still waiting for a reader is released (it fails, the secret unsent). */
  close(): void {
    if (!this.#done) {
      try {
        closeSync(openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK))
      } catch {}
    }
    rmSync(this.path, { force: true })
  }
}
