// Initial sequence numbers, RFC 6528 §3: "ISN = M + F(localip, localport, remoteip, remoteport, secretkey)"
// where M is a 4-microsecond timer and F a keyed hash, so ISNs are unpredictable to off-path attackers yet
// increase for a reused 4-tuple (which RFC 9293 §3.4.1 relies on for old-duplicate rejection).

import { createHash } from 'node:crypto'
import type { Clock, Random } from './clock.ts'
import { type Seq, seq } from './seq.ts'

export class IsnGenerator {
  readonly #secret: Buffer
  readonly #clock: Clock

  constructor(clock: Clock, random: Random) {
    this.#clock = clock
    // RFC 6528 §3: the secret key "SHOULD be of at least 128 bits" and unpredictable.
    this.#secret = Buffer.alloc(16)
    for (let i = 0; i < 16; i += 4) this.#secret.writeUInt32BE(random.u32(), i)
  }

  next(localAddr: string, localPort: number, remoteAddr: string, remotePort: number): Seq {
    const f = createHash('sha256')
      .update(this.#secret)
      .update(`${localAddr}|${localPort}|${remoteAddr}|${remotePort}`)
      .digest()
      .readUInt32BE(0)
    // M: one tick per 4 µs (RFC 6528 §3, after RFC 793).
    const m = Math.floor(this.#clock.now() * 250)
    return seq(m + f)
  }

  /**
   * The timestamp clock's offset for a connection (RFC 7323 §5.4, as Linux's tsoffset): a keyed hash of the
   * 4-tuple, not a fresh random value, so that a reused tuple's TSvals keep increasing — a peer still holding
   * the previous connection in TIME-WAIT accepts the new SYN (RFC 6191) instead of dropping it as old.
   */
  tsOffset(localAddr: string, localPort: number, remoteAddr: string, remotePort: number): number {
    return createHash('sha256')
      .update(this.#secret)
      .update(`ts|${localAddr}|${localPort}|${remoteAddr}|${remotePort}`)
      .digest()
      .readUInt32BE(0)
  }
}
