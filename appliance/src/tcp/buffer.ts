// The send buffer: bytes the application wrote that the peer has not acknowledged yet. Chunks are kept as
// written (no copy); reading a range for (re)transmission copies only when it spans chunks.

export class SendBuffer {
  readonly #chunks: Uint8Array[] = []
  #head = 0
  /** Bytes already dropped from the first chunk. */
  #skip = 0
  #length = 0

  get length(): number {
    return this.#length
  }

  push(b: Uint8Array): void {
    if (b.length === 0) return
    this.#chunks.push(b)
    this.#length += b.length
  }

  /** Drops n bytes from the front (they were acknowledged). */
  drop(n: number): void {
    let left = Math.min(n, this.#length)
    this.#length -= left
    while (left > 0) {
      const c = this.#chunks[this.#head]!
      const avail = c.length - this.#skip
      if (left < avail) {
        this.#skip += left
        return
      }
      left -= avail
      this.#chunks[this.#head] = EMPTY
      this.#head++
      this.#skip = 0
    }
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head)
      this.#head = 0
    }
  }

  /** Bytes [offset, offset + len) from the front; a view when they lie in one chunk. */
  read(offset: number, len: number): Uint8Array {
    let i = this.#head
    let o = offset + this.#skip
    while (i < this.#chunks.length && o >= this.#chunks[i]!.length) {
      o -= this.#chunks[i]!.length
      i++
    }
    const first = this.#chunks[i]
    if (!first) return EMPTY
    if (o + len <= first.length) return first.subarray(o, o + len)
    const out = new Uint8Array(len)
    let w = 0
    while (w < len) {
      const c = this.#chunks[i++]!
      const n = Math.min(c.length - o, len - w)
      out.set(c.subarray(o, o + n), w)
      w += n
      o = 0
    }
    return out
  }
}

const EMPTY = new Uint8Array(0)
