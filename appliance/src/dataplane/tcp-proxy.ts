// Termination of diverted TCP flows (ARCHITECTURE.md item 7, issue 4 item 2): for each flow one user-space
// endpoint answers the client *as the server* and another connects to the server *as the client*, both over
// Geneve with the flow's header (GWLB.md "Flows"). Upstream first: the client's SYN is held until the server
// answers; its SYN-ACK makes us accept the held SYN, its RST makes us reset the client, and silence stays
// silence (the client retries its SYN into the still-connecting upstream, which gives up in the end and the
// flow's state goes). Once both are connected a relay pipes them both ways: half-close carries over (end →
// FIN), an abort on either side (RST, retransmission give-up) aborts the other (RST).
//
// The stack does not know IP or Geneve: its addresses are flow-scoped names — `c<flow>.<gen>` for the client
// side, `s<flow>.<gen>` for the server side — so flows from different GWLB endpoints with the same inner
// 5-tuple never share a connection. `output` maps a segment back to its flow and direction; the caller
// (the packet loop) encodes it with the flow's Geneve header and sends it.

import type { Duplex } from 'node:stream'
import type { FlowFacts } from '../../../policy/src/engine/index.ts'
import type { TcpConfig } from '../tcp/connection.ts'
import { TcpErrorCode } from '../tcp/errors.ts'
import { gwlbMss } from '../tcp/options.ts'
import { Flag, makeSegment, type SackBlock, type TcpRepr } from '../tcp/segment.ts'
import type { Seq } from '../tcp/seq.ts'
import { type FourTuple, type StackLimits, TcpStack } from '../tcp/stack.ts'
import { TcpSocket, tcpAccept, tcpConnect } from '../tcp/stream.ts'
import type { ParsedPacket } from '../wire/packet.ts'

/** One terminated flow. */
export interface ProxiedFlow {
  readonly flow: number
  readonly gen: number
  readonly family: 4 | 6
  /** the client's and the server's inner addresses (copies) and ports */
  readonly client: Uint8Array
  readonly server: Uint8Array
  readonly clientPort: number
  readonly serverPort: number
  /** the packet I/O local address the flow arrives on (replies leave from it) */
  readonly localAddr: number
  /** the stack's tuples: the client-facing endpoint (local = server) and the upstream one (local = client) */
  readonly down: FourTuple
  readonly up: FourTuple
  upstream: TcpSocket | undefined
  downstream: TcpSocket | undefined
  /** set for flows the L7 path takes over once both sides are connected (the flow's L4 facts) */
  readonly intercept: InterceptFacts | undefined
  /** while connecting upstream: when the client's latest SYN came, and the gap before it (ms) */
  lastSynMs: number
  synGapMs: number
}

/**
 * A client whose SYNs stopped for this long past its own retransmission gap has given up (its connect
 * timed out, or it went away: a client's SYN-SENT close sends nothing), so the upstream attempt made on its
 * behalf stops too, instead of retrying for the stack's two minutes. Generous enough for clients whose first
 * SYN retransmission comes after 3 s (older Windows).
 */
export const CLIENT_GAVE_UP_MS = 5_000

/** What the L7 path needs to know of a terminated flow: its L4 facts as the policy engine takes them. */
export type InterceptFacts = FlowFacts & { srcPort: number }

export interface TcpProxyOptions {
  /**
   * Sends seg for flow f: toward the client (from the server's address) or toward the server (from the
   * client's). Called from the stack's output: must not call back into the proxy synchronously.
   */
  send(f: ProxiedFlow, towardClient: boolean, seg: TcpRepr): void
  config?: Partial<TcpConfig>
  limits?: Partial<StackLimits>
  /** a flow finished (both sockets gone) */
  onClosed?(f: ProxiedFlow): void
  /**
   * Takes over a flow opened with intercept facts once both sides are connected, instead of the byte relay.
   * It owns both sockets from then on; the proxy only notices when they close.
   */
  intercept?(f: ProxiedFlow, upstream: TcpSocket, downstream: TcpSocket): void
}

export const TCP_PROXY_RESULTS = ['relayed', 'refused', 'upstream_failed', 'limit'] as const
const RELAYED = 0
const REFUSED = 1
const UPSTREAM_FAILED = 2
const LIMIT = 3

/** The segment in a parsed TCP packet as the stack takes it; payload is a view over p.buf. */
export function reprOf(p: ParsedPacket): TcpRepr {
  const o = p.tcpOptions
  let sack: SackBlock[] | undefined
  if (o.sackBlocks > 0) {
    sack = []
    for (let k = 0; k < o.sackBlocks; k++)
      sack.push({ left: o.sack[2 * k]! as Seq, right: o.sack[2 * k + 1]! as Seq })
  }
  return {
    srcPort: p.srcPort,
    dstPort: p.dstPort,
    seq: p.tcpSeq as Seq,
    ack: p.tcpAck as Seq,
    flags: p.tcpFlags,
    window: p.tcpWindow,
    mss: o.mss >= 0 ? o.mss : undefined,
    windowScale: o.windowScale >= 0 ? o.windowScale : undefined,
    sackPermitted: o.sackPermitted || undefined,
    sack,
    timestamp: o.tsVal >= 0 ? { val: o.tsVal >>> 0, ecr: o.tsEcr >>> 0 } : undefined,
    // A plain Uint8Array view (Buffer's slice() would not copy where the stack copies).
    payload: new Uint8Array(p.buf.buffer, p.buf.byteOffset + p.payloadOff, p.payloadLen),
  }
}

/** Copies what the stack may keep beyond the datagram's lifetime (a held SYN). */
function copyRepr(s: TcpRepr): TcpRepr {
  return { ...s, sack: s.sack ? [...s.sack] : undefined, payload: Uint8Array.prototype.slice.call(s.payload) }
}

export class TcpProxy {
  readonly stack: TcpStack
  readonly results = new Float64Array(TCP_PROXY_RESULTS.length)
  readonly #flows = new Map<number, ProxiedFlow>()
  readonly #byName = new Map<string, ProxiedFlow>()
  readonly #closing = new Set<ProxiedFlow>()
  /** by flow index: the latest relay of that flow whose sockets are gone (its connections may linger) */
  readonly #ending = new Map<number, ProxiedFlow>()
  readonly #opts: TcpProxyOptions

  constructor(opts: TcpProxyOptions) {
    this.#opts = opts
    this.stack = new TcpStack({
      // Deferred: the stack must not be re-entered from its own output, and the loop batches sends.
      output: (tuple, seg) => this.#output(tuple, seg),
      config: { mss: gwlbMss(6), timeWaitMs: 5_000, ...opts.config },
      limits: opts.limits ?? {},
      // Unknown segments get what the real endpoints would give: decided by the peer, not by us.
      resetUnknown: false,
    })
  }

  get size(): number {
    return this.#flows.size
  }

  /** The proxied flow at table index `flow` if it is this generation's. */
  get(flow: number, gen: number): ProxiedFlow | undefined {
    const f = this.#flows.get(flow)
    return f && f.gen === gen ? f : undefined
  }

  /**
   * A TCP packet of a diverted flow from GWLB. `fromClient` is its direction. A client SYN for an unknown
   * flow opens the upstream connection; everything else goes to the endpoint facing its sender, also while
   * a finished relay's connections wind down (LAST-ACK, TIME-WAIT). Returns false for a segment of a
   * connection the proxy never terminated (one established before its rule said tcpProxy): the caller
   * forwards it, as Allow would.
   */
  input(
    p: ParsedPacket,
    flow: number,
    gen: number,
    fromClient: boolean,
    localAddr: number,
    intercept?: InterceptFacts,
  ): boolean {
    const f = this.get(flow, gen)
    const seg = reprOf(p)
    if (!f) {
      const stale = this.#flows.get(flow)
      if (stale) this.#drop(stale) // the table reused the index: the old flow is gone
      if (fromClient && (seg.flags & (Flag.SYN | Flag.ACK | Flag.RST)) === Flag.SYN) {
        this.#open(p, flow, gen, seg, localAddr, intercept)
        return true
      }
      const ending = this.#ending.get(flow)
      if (ending?.gen !== gen) return false
      this.stack.input(fromClient ? ending.down : ending.up, seg)
      return true
    }
    if (fromClient) {
      if (f.downstream) this.stack.input(f.down, seg)
      else if ((seg.flags & (Flag.SYN | Flag.ACK)) === Flag.SYN) {
        // The client's SYN retransmissions while the upstream is connecting: it keeps waiting.
        const now = Date.now()
        f.synGapMs = now - f.lastSynMs
        f.lastSynMs = now
      }
    } else {
      this.stack.input(f.up, seg)
    }
    return true
  }

  #open(
    p: ParsedPacket,
    flow: number,
    gen: number,
    syn: TcpRepr,
    localAddr: number,
    intercept: InterceptFacts | undefined,
  ): ProxiedFlow | undefined {
    const c = `c${flow}.${gen}`
    const s = `s${flow}.${gen}`
    const client = Uint8Array.from(p.src())
    const server = Uint8Array.from(p.dst())
    const clientAddr = client.join('.')
    const serverAddr = server.join('.')
    const f: ProxiedFlow = {
      flow,
      gen,
      family: p.family,
      client,
      server,
      clientPort: p.srcPort,
      serverPort: p.dstPort,
      localAddr,
      down: {
        localAddr: s,
        localPort: p.dstPort,
        remoteAddr: c,
        remotePort: p.srcPort,
        real: { localAddr: serverAddr, remoteAddr: clientAddr },
      },
      up: {
        localAddr: c,
        localPort: p.srcPort,
        remoteAddr: s,
        remotePort: p.dstPort,
        real: { localAddr: clientAddr, remoteAddr: serverAddr },
      },
      upstream: undefined,
      downstream: undefined,
      intercept,
      lastSynMs: Date.now(),
      synGapMs: 0,
    }
    const held = copyRepr(syn)
    const config = { mss: gwlbMss(p.family) }
    // Named before connecting: the SYN leaves from inside connect.
    this.#byName.set(c, f)
    this.#byName.set(s, f)
    let up: TcpSocket
    try {
      up = tcpConnect(this.stack, f.up, config)
    } catch {
      this.results[LIMIT]!++
      this.#byName.delete(c)
      this.#byName.delete(s)
      return undefined // at the connection limit: silence, the client retries
    }
    f.upstream = up
    this.#flows.set(flow, f)
    let connected = false
    up.once('connect', () => {
      connected = true
      const down = tcpAccept(this.stack, f.down, held, config)
      if (!down) {
        this.results[LIMIT]!++
        up.destroy()
        return
      }
      f.downstream = down
      this.results[RELAYED]!++
      this.#join(f, up, down)
    })
    up.on('error', (err: Error & { code?: string }) => {
      if (connected) return // the relay handles it
      if (err.code === TcpErrorCode.refused) {
        // Refused: the client gets the RST the server gave us, answering its SYN (RFC 9293 §3.10.7.1).
        this.results[REFUSED]!++
        const rst = makeSegment({
          srcPort: f.serverPort,
          dstPort: f.clientPort,
          seq: 0 as Seq,
          ack: ((held.seq + 1) >>> 0) as Seq,
          flags: Flag.RST | Flag.ACK,
        })
        this.#opts.send(f, true, rst)
      } else {
        this.results[UPSTREAM_FAILED]!++ // no answer: the client sees none either
      }
    })
    up.once('close', () => {
      if (!connected) this.#forget(f)
    })
    return f
  }

  #join(f: ProxiedFlow, up: TcpSocket, down: TcpSocket): void {
    let open = 2
    const closed = () => {
      if (--open === 0) this.#forget(f)
    }
    up.once('close', closed)
    down.once('close', closed)
    if (f.intercept && this.#opts.intercept) this.#opts.intercept(f, up, down)
    else relay(up, down)
  }

  /**
   * The flow's sockets are gone; its connections may still be finishing (our FIN's retransmissions, TIME-WAIT
   * ACKs), so their names stay until sweep() sees both closed.
   */
  #forget(f: ProxiedFlow): void {
    if (this.#flows.get(f.flow) !== f) return
    this.#flows.delete(f.flow)
    this.#closing.add(f)
    this.#ending.set(f.flow, f)
    this.#opts.onClosed?.(f)
  }

  /** Ends flows whose table entry is gone and lets go of closed connections' names; call periodically. */
  sweep(isLive: (flow: number, gen: number) => boolean, now = Date.now()): void {
    for (const f of [...this.#flows.values()]) {
      if (!isLive(f.flow, f.gen)) this.#drop(f)
      else if (!f.downstream && now - f.lastSynMs > 2 * f.synGapMs + CLIENT_GAVE_UP_MS) {
        // The client gave up: so do we (counted as upstream_failed, as the stack's own give-up would be).
        f.upstream?.destroy(Object.assign(new Error('the client stopped waiting'), { code: 'ETIMEDOUT' }))
      }
    }
    for (const f of [...this.#closing]) {
      const up = this.stack.get(f.up)
      const down = this.stack.get(f.down)
      const done =
        (!up || up.closed || up !== f.upstream?.connection) &&
        (!down || down.closed || down !== f.downstream?.connection)
      if (!done) continue
      this.#closing.delete(f)
      if (this.#ending.get(f.flow) === f) this.#ending.delete(f.flow)
      for (const name of [f.up.localAddr, f.down.localAddr])
        if (this.#byName.get(name) === f) this.#byName.delete(name)
    }
  }

  /** Aborts a flow whose table entry went away. */
  #drop(f: ProxiedFlow): void {
    this.#forget(f)
    // Reset, not closed: a socket whose FIN is queued would otherwise linger (orphaned) for the FIN of a
    // peer the flow table has already forgotten.
    f.upstream?.resetAndDestroy()
    f.downstream?.resetAndDestroy()
  }

  /** Aborts every flow (shutdown). */
  close(): void {
    for (const f of [...this.#flows.values()]) this.#drop(f)
  }

  #output(tuple: FourTuple, seg: TcpRepr): void {
    const f = this.#byName.get(tuple.localAddr)
    if (!f) return
    // The client-facing endpoint's local name is the server's: it speaks toward the client.
    this.#opts.send(f, tuple.localAddr === f.down.localAddr, seg)
  }
}

/**
 * Joins two connected streams byte for byte: pipe carries backpressure and half-close (the source's end →
 * the destination's end → FIN); an abort on either side (RST, give-up) aborts the other (RST).
 */
export function relay(a: Duplex, b: Duplex): void {
  a.pipe(b)
  b.pipe(a)
  const abort = (other: Duplex) => () => {
    if (other.destroyed) return
    // A reset even of a side already half-closed in order, which destroy() would close, not reset.
    if (other instanceof TcpSocket) other.resetAndDestroy()
    else other.destroy()
  }
  a.on('error', abort(b))
  b.on('error', abort(a))
}
