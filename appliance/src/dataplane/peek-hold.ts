// Flows whose decision waits for their first bytes (ARCHITECTURE.md item 6; FLOWPOLICY.md "L7 conditions
// on a flow that has not shown them yet"). While a TCP flow is pending, handshake and other empty segments
// pass (the client must get to send its ClientHello), and the client's data segments are held — copied,
// bounded in bytes and time — while the in-order bytes are read as a TLS ClientHello or an HTTP/1 request.
// The result is the set of L7 facts the engine decides with; what to do with the held packets is the
// caller's. Pure: no sockets, time passed in.
import type { FlowFacts } from '../../../policy/src/engine/index.ts'
import type { ReturnPath } from '../io/packet-io.ts'
import {
  ClientHelloInfo,
  HttpRequestInfo,
  MAX_CLIENT_HELLO,
  Peek,
  peekClientHello,
  peekHttpRequest,
} from '../peek/index.ts'
import type { ParsedPacket } from '../wire/packet.ts'

export const PEEK_RESULTS = [
  'tls',
  'http',
  'unknown',
  'malformed',
  'timeout',
  'overflow',
  'server-first',
] as const
export type PeekResult = (typeof PEEK_RESULTS)[number]

export interface HeldPacket {
  bytes: Buffer
  path: ReturnPath
}

export interface Held {
  flow: number
  gen: number
  since: number
  /** L4 facts in the client's orientation, copied when the hold began */
  l4: FlowFacts
  stream: Buffer
  streamLen: number
  /** next in-order client sequence number, or -1 before the first data segment */
  nextSeq: number
  packets: HeldPacket[]
  heldBytes: number
}

export interface HoldOptions {
  /** how long a flow may wait for its first bytes */
  maxWaitMs: number
  /** client bytes read at most; a ClientHello larger than this counts as malformed */
  maxStreamBytes: number
  /** datagram bytes held per flow (the stream plus headers and retransmissions) */
  maxHeldBytesPerFlow: number
  /** flows held at once; more are decided at once as if they showed nothing */
  maxFlows: number
  /** bytes held across all flows (streams and datagrams); past it, a flow is decided as overflow */
  maxTotalBytes: number
}

export const HOLD_DEFAULTS: HoldOptions = {
  maxWaitMs: 5000,
  maxStreamBytes: MAX_CLIENT_HELLO,
  maxHeldBytesPerFlow: 4 * MAX_CLIENT_HELLO,
  maxFlows: 16_384,
  maxTotalBytes: 64 * 1024 * 1024,
}

// Most ClientHellos and request heads fit here; the stream grows by doubling up to maxStreamBytes.
const INITIAL_STREAM_BYTES = 2048

export type L7Facts = Pick<FlowFacts, 'sni' | 'host' | 'method' | 'path' | 'headers'>

/** What a flow that shows nothing readable is decided with: every L7 fact known to be absent. */
export const NO_L7: L7Facts = { sni: null, host: null, method: null, path: null, headers: null }

export type HoldStep =
  | { kind: 'waiting' }
  | { kind: 'decide'; result: PeekResult; facts: L7Facts; held: Held }

export class PeekHolds {
  readonly options: HoldOptions
  readonly results = new Float64Array(PEEK_RESULTS.length)
  private readonly byFlow = new Map<number, Held>()
  /** bytes of every held stream buffer and datagram */
  private totalBytes = 0
  private readonly hello = new ClientHelloInfo()
  private readonly request = new HttpRequestInfo()

  constructor(options: Partial<HoldOptions> = {}) {
    this.options = { ...HOLD_DEFAULTS, ...options }
  }

  get size(): number {
    return this.byFlow.size
  }

  /** bytes held now, across flows */
  get bytes(): number {
    return this.totalBytes
  }

  get(flow: number, gen: number): Held | undefined {
    const h = this.byFlow.get(flow)
    return h && h.gen === gen ? h : undefined
  }

  /**
   * A client data segment of a pending flow: holds a copy and reads the stream so far. `l4` is built
   * only when the hold starts.
   */
  clientData(
    p: ParsedPacket,
    flow: number,
    gen: number,
    path: ReturnPath,
    now: number,
    l4: () => FlowFacts,
  ): HoldStep {
    let h = this.get(flow, gen)
    if (!h) {
      if (this.byFlow.size >= this.options.maxFlows) {
        const held = this.start(flow, gen, now, l4())
        return this.finish(held, 'overflow', NO_L7)
      }
      h = this.start(flow, gen, now, l4())
    }
    const datagram = Buffer.from(p.buf.subarray(0, p.ipEnd))
    h.packets.push({ bytes: datagram, path: { ...path } })
    h.heldBytes += datagram.length
    this.totalBytes += datagram.length
    if (h.nextSeq === -1 || p.tcpSeq === h.nextSeq) {
      this.ensureRoom(h, p.payloadLen)
      const room = h.stream.length - h.streamLen
      const n = Math.min(room, p.payloadLen)
      p.buf.copy(h.stream, h.streamLen, p.payloadOff, p.payloadOff + n)
      h.streamLen += n
      h.nextSeq = (p.tcpSeq + p.payloadLen) >>> 0
    }
    const step = this.read(h)
    const overBudget =
      h.heldBytes > this.options.maxHeldBytesPerFlow || this.totalBytes > this.options.maxTotalBytes
    if (step.kind === 'waiting' && overBudget) return this.finish(h, 'overflow', NO_L7)
    return step
  }

  /** The server spoke first (SSH, SMTP banners): no ClientHello or request line is coming. */
  serverFirst(flow: number, gen: number, now: number, l4: () => FlowFacts): HoldStep {
    const h = this.get(flow, gen) ?? this.start(flow, gen, now, l4())
    return this.finish(h, 'server-first', NO_L7)
  }

  /** Flows that waited too long, decided as showing nothing. */
  expire(now: number): HoldStep[] {
    const out: HoldStep[] = []
    for (const h of this.byFlow.values()) {
      if (now - h.since >= this.options.maxWaitMs) out.push(this.finish(h, 'timeout', NO_L7))
    }
    return out
  }

  drop(flow: number): void {
    const h = this.byFlow.get(flow)
    if (h) this.release(h)
  }

  /** Grows the stream buffer (doubling, up to maxStreamBytes) to take `more` bytes if it can. */
  private ensureRoom(h: Held, more: number): void {
    const want = Math.min(this.options.maxStreamBytes, h.streamLen + more)
    if (want <= h.stream.length) return
    let size = h.stream.length
    while (size < want) size *= 2
    size = Math.min(size, this.options.maxStreamBytes)
    const next = Buffer.allocUnsafe(size)
    h.stream.copy(next, 0, 0, h.streamLen)
    this.totalBytes += size - h.stream.length
    h.stream = next
  }

  private release(h: Held): void {
    this.byFlow.delete(h.flow)
    this.totalBytes -= h.stream.length + h.heldBytes
  }

  private start(flow: number, gen: number, now: number, l4: FlowFacts): Held {
    const h: Held = {
      flow,
      gen,
      since: now,
      l4,
      stream: Buffer.allocUnsafe(Math.min(INITIAL_STREAM_BYTES, this.options.maxStreamBytes)),
      streamLen: 0,
      nextSeq: -1,
      packets: [],
      heldBytes: 0,
    }
    this.byFlow.set(flow, h)
    this.totalBytes += h.stream.length
    return h
  }

  private finish(h: Held, result: PeekResult, facts: L7Facts): HoldStep {
    this.release(h)
    this.results[PEEK_RESULTS.indexOf(result)]!++
    return { kind: 'decide', result, facts, held: h }
  }

  private read(h: Held): HoldStep {
    const tls = peekClientHello(h.stream, 0, h.streamLen, this.hello)
    if (tls === Peek.complete) {
      // Not intercepted here, so the SNI stands in for the Host (FLOWPOLICY.md); the HTTP facts stay
      // unknown: a rule that needs them can only be decided by intercepting.
      const sni = this.hello.sni
      return this.finish(h, 'tls', { sni, host: sni, method: undefined, path: undefined, headers: undefined })
    }
    if (tls === Peek.malformed) return this.finish(h, 'malformed', NO_L7)
    if (tls === Peek.notMatched) {
      const http = peekHttpRequest(h.stream, 0, h.streamLen, this.request)
      if (http === Peek.complete) {
        const r = this.request
        return this.finish(h, 'http', {
          sni: null,
          host: r.host,
          method: r.method,
          path: r.path,
          headers: new Map(r.headers),
        })
      }
      if (http === Peek.malformed) return this.finish(h, 'malformed', NO_L7)
      if (http === Peek.notMatched) return this.finish(h, 'unknown', NO_L7)
    }
    if (h.streamLen >= this.options.maxStreamBytes) return this.finish(h, 'overflow', NO_L7)
    return { kind: 'waiting' }
  }
}
