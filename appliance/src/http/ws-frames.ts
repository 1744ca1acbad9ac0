// RFC 6455 §5.2 frame parser for one direction of a relayed WebSocket: it reads frame headers as bytes pass,
// counts frames and messages, and stops the relay at the first protocol error. It never changes a byte
// (payloads are neither unmasked nor decompressed): what it lets through is exactly what the peer sent.
//
// Pure and incremental: push() takes whatever chunk the stream gave and answers which bytes may be
// forwarded. A frame header split across chunks is held back until it is whole and valid, so an error is
// always found before any byte of the offending frame has left, and the receiving side sits on a frame
// boundary where a Close frame can be injected cleanly.

import { randomBytes } from 'node:crypto'

export const WsOpcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const

export interface WsProtocolError {
  /** RFC 6455 §7.4.1: 1002 protocol error, 1009 message too big */
  code: 1002 | 1009
  reason: string
}

export interface WsFrameParserOptions {
  /** client-to-server frames must be masked, server-to-client frames must not be (RFC 6455 §5.1) */
  masked: boolean
  maxFrameBytes: number
  /** RSV bits an extension negotiated in the handshake may set (0x40: permessage-deflate's RSV1) */
  rsvMask: number
  onFrame?: (opcode: number, fin: boolean, payloadLength: number) => void
  /** a data message's final frame went by */
  onMessage?: () => void
}

export interface WsPushResult {
  /** bytes to forward now (a view of the chunk when possible) */
  forward: Buffer
  error?: WsProtocolError
}

const EMPTY = Buffer.alloc(0)

export class WsFrameParser {
  readonly #o: WsFrameParserOptions
  readonly #hdr = Buffer.alloc(14)
  #hdrLen = 0
  #hdrNeed = 2
  #payloadLeft = 0
  #inMessage = false
  #closeSeen = false
  #dead = false

  constructor(o: WsFrameParserOptions) {
    this.#o = o
  }

  /** True when everything forwarded so far ends on a frame boundary. */
  get atBoundary(): boolean {
    return this.#payloadLeft === 0
  }

  /** A Close frame passed in this direction (RFC 6455 §5.5.1). */
  get closeSeen(): boolean {
    return this.#closeSeen
  }

  push(chunk: Buffer): WsPushResult {
    if (this.#dead) return { forward: EMPTY }
    const carried = this.#hdrLen // header bytes held from earlier chunks, not forwarded yet
    let prefix: Buffer | null = null
    let safe = 0
    let i = 0
    let headerStart = carried > 0 ? -1 : 0
    const n = chunk.length
    while (i < n) {
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, n - i)
        i += take
        this.#payloadLeft -= take
        safe = i
        continue
      }
      if (this.#hdrLen === 0) headerStart = i
      this.#hdr[this.#hdrLen++] = chunk[i++]!
      if (this.#hdrLen === 2) {
        const len7 = this.#hdr[1]! & 0x7f
        this.#hdrNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.#hdr[1]! & 0x80 ? 4 : 0)
      }
      if (this.#hdrLen < 2 || this.#hdrLen < this.#hdrNeed) continue
      const err = this.#header()
      if (err) {
        this.#dead = true
        // Everything before the offending header goes; nothing of it does.
        const upTo = headerStart < 0 ? 0 : headerStart
        return { forward: join(prefix, chunk.subarray(0, upTo)), error: err }
      }
      if (headerStart < 0) prefix = Buffer.from(this.#hdr.subarray(0, carried))
      this.#hdrLen = 0
      this.#hdrNeed = 2
      safe = i
    }
    return { forward: join(prefix, chunk.subarray(0, safe)) }
  }

  #header(): WsProtocolError | undefined {
    const h = this.#hdr
    const fin = (h[0]! & 0x80) !== 0
    const rsv = h[0]! & 0x70
    const opcode = h[0]! & 0x0f
    const masked = (h[1]! & 0x80) !== 0
    const len7 = h[1]! & 0x7f
    let len: number
    if (len7 === 126) len = h.readUInt16BE(2)
    else if (len7 === 127) {
      const hi = h.readUInt32BE(2)
      // §5.2: the most significant bit MUST be 0.
      if (hi & 0x80000000) return { code: 1002, reason: '64-bit length with the high bit set' }
      len = hi * 2 ** 32 + h.readUInt32BE(6)
    } else len = len7
    if (masked !== this.#o.masked)
      return { code: 1002, reason: this.#o.masked ? 'unmasked client frame' : 'masked server frame' }
    const control = opcode >= 8
    if (
      opcode !== WsOpcode.continuation &&
      opcode !== WsOpcode.text &&
      opcode !== WsOpcode.binary &&
      opcode !== WsOpcode.close &&
      opcode !== WsOpcode.ping &&
      opcode !== WsOpcode.pong
    )
      return { code: 1002, reason: `reserved opcode ${opcode}` }
    // §5.2: RSV bits are 0 unless an extension defines them; RFC 7692 §6: RSV1 only on a message's first frame.
    if (rsv & ~this.#o.rsvMask) return { code: 1002, reason: 'reserved bits set' }
    if (rsv && (control || opcode === WsOpcode.continuation) && this.#o.rsvMask === 0x40)
      return { code: 1002, reason: 'RSV1 on a control or continuation frame' }
    if (this.#closeSeen) return { code: 1002, reason: 'frame after Close' }
    if (control) {
      // §5.5: control frames are not fragmented and carry at most 125 bytes; §5.5.1: a Close body is 0 or ≥ 2.
      if (!fin) return { code: 1002, reason: 'fragmented control frame' }
      if (len > 125) return { code: 1002, reason: 'control frame over 125 bytes' }
      if (opcode === WsOpcode.close && len === 1)
        return { code: 1002, reason: 'Close frame with a 1-byte body' }
    } else if (len > this.#o.maxFrameBytes) {
      return { code: 1009, reason: `frame of ${len} bytes over the ${this.#o.maxFrameBytes}-byte limit` }
    }
    // §5.4: a fragmented message is a data frame without FIN, continuations, and a final continuation.
    if (opcode === WsOpcode.continuation) {
      if (!this.#inMessage) return { code: 1002, reason: 'continuation outside a message' }
    } else if (!control && this.#inMessage)
      return { code: 1002, reason: 'new message inside a fragmented one' }
    if (!control) {
      this.#inMessage = !fin
      if (fin) this.#o.onMessage?.()
    }
    if (opcode === WsOpcode.close) this.#closeSeen = true
    this.#o.onFrame?.(opcode, fin, len)
    this.#payloadLeft = len
    return undefined
  }
}

function join(prefix: Buffer | null, rest: Buffer): Buffer {
  if (!prefix) return rest
  return rest.length === 0 ? prefix : Buffer.concat([prefix, rest])
}

/** A Close frame (RFC 6455 §5.5.1); masked with a fresh key when sent toward the server (§5.3). */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason.slice(0, 120))
  const body = Buffer.alloc(2 + text.length)
  body.writeUInt16BE(code, 0)
  text.copy(body, 2)
  const head = Buffer.from([0x88, (masked ? 0x80 : 0) | body.length])
  if (!masked) return Buffer.concat([head, body])
  const key = randomBytes(4)
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!
  return Buffer.concat([head, key, body])
}

/**
 * RSV bits the negotiated extensions may use (RFC 6455 §9.1, from the 101's Sec-WebSocket-Extensions):
 * permessage-deflate (RFC 7692) uses RSV1; an extension we do not know may use any of them.
 */
export function rsvMaskFor(extensions: string | undefined): number {
  if (!extensions) return 0
  let mask = 0
  for (const ext of extensions.split(',')) {
    const name = ext.split(';')[0]!.trim().toLowerCase()
    if (!name) continue
    mask |= name === 'permessage-deflate' ? 0x40 : 0x70
  }
  return mask
}
