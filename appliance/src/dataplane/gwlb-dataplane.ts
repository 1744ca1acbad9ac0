// The GWLB packet path: Geneve datagrams in through PacketIO, each through the fast path (parse, flow
// table, decision, packet rules), and back out the GWLB way (GWLB.md "Returning a packet"). Flows whose
// decision needs their first bytes are held by PeekHolds and decided when the ClientHello or request line
// shows; their held packets are then released or both sides are reset.

import type { Duplex } from 'node:stream'
import { formatAddress } from '../../../policy/src/cidr.ts'
import type { Decision, FlowFacts } from '../../../policy/src/engine/index.ts'
import { PolicyEngine, PROTOCOL_NUMBERS } from '../../../policy/src/engine/index.ts'
import { CaptureTap, CLIENT_SIDE, flowKey, SERVER_SIDE, type Side } from '../capture/index.ts'
import type { DataplaneStats } from '../control/metrics.ts'
import { DROP_REASONS, OUTCOMES, Outcome } from '../fastpath/counters.ts'
import { FastPath, FastPathResult } from '../fastpath/fastpath.ts'
import { FlowTable, type RemoveReason } from '../flow/table.ts'
import { FlowLog } from '../flowlog/index.ts'
import { createHttpStats, interceptHttp } from '../http/index.ts'
import { ScriptEngine } from '../http/script/index.ts'
import { type PacketIO, type ReturnPath, type RxBatch, startPacketIO } from '../io/index.ts'
import type { TcpRepr } from '../tcp/segment.ts'
import { upstreamTrust } from '../tls/upstream-trust.ts'
import { AwsApiRequests } from '../visibility/aws-requests.ts'
import { type ObservedDecision, observeExchanges } from '../visibility/exchanges.ts'
import { HarHub } from '../visibility/har-hub.ts'
import { buildRstToReceiver, buildRstToSender, buildTcpSegment } from '../wire/build.ts'
import { MALFORMED_REASONS } from '../wire/counters.ts'
import { parseEndpointId } from '../wire/geneve.ts'
import { IpProto, ParsedPacket, parsePacket } from '../wire/packet.ts'
import { TcpFlag } from '../wire/tcp.ts'
import { AUTHORIZER_RESULTS, type AuthorizeRequest, AuthorizerClient } from './authorizer.ts'
import type { Dataplane, DataplaneContext, DataplaneFactory } from './dataplane.ts'
import { type FirstFacts, type HttpHandoff, INTERCEPT_RESULTS, Interceptor } from './interceptor.ts'
import { type HeldPacket, type HoldOptions, type HoldStep, PEEK_RESULTS, PeekHolds } from './peek-hold.ts'
import { type InterceptFacts, type ProxiedFlow, TCP_PROXY_RESULTS, TcpProxy } from './tcp-proxy.ts'

export interface GwlbDataplaneOptions {
  io?: 'auto' | 'native' | 'dgram'
  flowCapacity?: number
  tcpIdleMs?: number
  otherIdleMs?: number
  hold?: Partial<HoldOptions>
  /** how often idle flows and held flows are swept */
  sweepMs?: number
  /**
   * extra PEM roots trusted for servers the appliance calls as a client: the real servers of intercepted
   * flows (beside the bundled and system roots) and authorizer webhooks
   */
  upstreamCa?: string | Buffer
  /** flows waiting for the authorizer at once; more are decided by the policy's onError */
  maxAuthorizing?: number
  /** flow records as JSON lines to a file or `-` (stdout); periodic ones every intervalMs (default 60 s) */
  flowLog?: { target: string; intervalMs?: number }
}

interface Authorizing {
  gen: number
  packets: HeldPacket[]
  bytes: number
}

const MAX_AUTHORIZING_BYTES_PER_FLOW = 64 * 1024

/** 6 → 'TCP', … for the authorizer's request (the inverse of the policy's PROTOCOL_NUMBERS). */
const PROTOCOL_NAMES = new Map(
  (Object.entries(PROTOCOL_NUMBERS) as [AuthorizeRequest['protocol'] & string, number][]).map(([k, v]) => [
    v,
    k,
  ]),
)

/** Drops decided by this loop rather than the fast path (appended to the fast path's reasons). */
export const LOOP_DROPS = ['l7_unavailable', 'held_reset', 'authorizer_overflow'] as const
const L7_UNAVAILABLE = 0
const HELD_RESET = 1
const AUTHORIZER_OVERFLOW = 2

const MAX_DATAGRAM = 65_535

export function gwlbDataplane(options: GwlbDataplaneOptions = {}): DataplaneFactory {
  return async (ctx) => GwlbDataplane.start(ctx, options)
}

export class GwlbDataplane implements Dataplane {
  readonly flows: FlowTable
  readonly fastpath: FastPath
  readonly holds: PeekHolds
  readonly authorizer: AuthorizerClient
  private readonly authorizing = new Map<number, Authorizing>()
  private readonly maxAuthorizing: number
  private io: PacketIO | undefined
  private readonly ctx: DataplaneContext
  private readonly result = new FastPathResult()
  private readonly reparsed = new ParsedPacket()
  private readonly rst = Buffer.alloc(MAX_DATAGRAM)
  private readonly packets = new Float64Array(2 * OUTCOMES.length)
  private readonly bytes = new Float64Array(2 * OUTCOMES.length)
  private readonly loopDrops = new Float64Array(LOOP_DROPS.length)
  private sweepTimer: NodeJS.Timeout | undefined
  readonly flowLog: FlowLog | undefined
  /** terminates flows whose Allow rule says tcpProxy, and flows the L7 path takes (Inspect) */
  readonly proxy: TcpProxy
  readonly interceptor: Interceptor
  readonly httpStats = createHttpStats()
  private scripts: ScriptEngine | undefined
  private readonly proxyGeneve = Buffer.alloc(1024)
  private closed = false
  private failure = ''
  private warnedL7 = false
  /** live captures (capture/): the loop reads capture.active and does nothing more while it is false */
  readonly capture = new CaptureTap()
  private readonly captured = new ParsedPacket()
  /** HAR entries of intercepted exchanges, for policies that ask (spec.har) while a sink takes them */
  readonly har = new HarHub()
  /** SigV4-signed requests on intercepted flows, by account and service */
  readonly awsRequests = new AwsApiRequests()

  private constructor(ctx: DataplaneContext, o: GwlbDataplaneOptions) {
    this.ctx = ctx
    // Flow records (flowlog/): written from the table's columns when a flow ends and periodically.
    if (o.flowLog) {
      this.flowLog = FlowLog.open(o.flowLog.target, {
        decisionOf: (i) => this.fastpath.decisionOf(i),
        ...(o.flowLog.intervalMs ? { intervalMs: o.flowLog.intervalMs } : {}),
      })
    }
    const log = this.flowLog
    this.flows = new FlowTable({
      ...(log ? { onRemove: (i: number, why: RemoveReason) => log.onRemove(i, why) } : {}),
      capacity: o.flowCapacity ?? 262_144,
      ...(o.tcpIdleMs !== undefined ? { tcpIdleMs: o.tcpIdleMs } : {}),
      ...(o.otherIdleMs !== undefined ? { otherIdleMs: o.otherIdleMs } : {}),
    })
    // Without a policy nothing is allowed: health already fails, so GWLB should not send us flows.
    const engine = ctx.store.current?.engine ?? new PolicyEngine([], 'Deny')
    this.fastpath = new FastPath({ flows: this.flows, engine })
    log?.attach(this.flows)
    this.holds = new PeekHolds(o.hold)
    this.authorizer = new AuthorizerClient(o.upstreamCa ? { ca: o.upstreamCa } : {})
    this.maxAuthorizing = o.maxAuthorizing ?? 16_384
    ctx.store.onChange((next) => this.fastpath.setEngine(next.engine))
    this.interceptor = new Interceptor({
      engine: () => ctx.store.current?.engine,
      ca: ctx.ca,
      upstreamTrust: upstreamTrust(o.upstreamCa).context,
      authorize: (d, l4, l7) => this.authorizeStream(d, l4, l7),
      onFacts: (f, l7) => this.flowLog?.noteL7(f.flow, l7),
      http: (client, upstream, h) => this.serveHttp(client, upstream, h),
      onDecision: (d) => this.fastpath.usage.record(d),
      keylog: (f, side) => this.keylogFor(f, side === 'client' ? CLIENT_SIDE : SERVER_SIDE),
      log: ctx.log,
    })
    this.proxy = new TcpProxy({
      send: (f, towardClient, seg) => this.proxySend(f, towardClient, seg),
      intercept: (f, up, down) => this.interceptor.handle(f, up, down),
    })
  }

  /** An intercepted (or cleartext) HTTP flow: per-request decisions, scripts, counters. */
  private serveHttp(client: Duplex, upstream: Duplex, h: HttpHandoff): void {
    const src = formatAddress(h.facts.src)
    const onExchange = observeExchanges(
      {
        aws: this.awsRequests,
        har: this.har,
        noteAccount: (account) => this.flowLog?.noteAwsAccount(h.flow.flow, h.flow.gen, account),
      },
      {
        scheme: h.sni === null ? 'http' : 'https',
        authority: h.authority,
        serverIp: formatAddress(h.facts.dst),
        endpoint: h.facts.endpoint,
        client: `${h.facts.family === 6 ? `[${src}]` : src}:${h.facts.srcPort}`,
      },
    )
    void interceptHttp(client, upstream, {
      protocol: h.protocol,
      sni: h.sni,
      authority: h.authority,
      decide: (req) => {
        const d = h.decide(req)
        this.fastpath.usage.record(d)
        let action = d.action
        // The webhook is asked once per connection: a request that would need it on a connection it did not
        // allow is refused rather than let through unasked.
        if (action === 'Authorize') action = h.authorized ? 'Allow' : 'Deny'
        const out: ObservedDecision = { action }
        if (d.entry) {
          out.policy = d.entry.policy.name
          if (d.entry.rule) out.rule = d.entry.rule.name
          if (d.entry.http) out.hooks = d.entry.http
          if (d.entry.policy.har) out.har = d.entry.policy.har
        }
        return out
      },
      onExchange,
      ...(this.scripts ? { scripts: this.scripts } : {}),
      event: { endpointId: h.facts.endpoint, viewerIp: src },
      stats: this.httpStats,
      log: this.ctx.log,
    })
  }

  /** The authorizer's answer for a flow decided on its stream (the L7 path): onError applies on failure. */
  private async authorizeStream(d: Decision, l4: InterceptFacts, l7: FirstFacts): Promise<boolean> {
    const cfg = d.entry?.policy.authorizer
    if (!cfg) return false
    const answer = await this.authorizer.authorize(cfg, this.authorizeRequest(d, l4, l7))
    if (answer.via === 'on-error') {
      this.ctx.log.warn(
        { policy: d.entry!.policy.name, error: answer.error },
        'authorizer failed; onError applied',
      )
    }
    return answer.allow
  }

  private authorizeRequest(
    d: Decision,
    l4: FlowFacts & { srcPort?: number },
    l7: { sni?: string | null | undefined; host?: string | null | undefined },
  ): AuthorizeRequest {
    const request: AuthorizeRequest = {
      endpoint: l4.endpoint,
      protocol: PROTOCOL_NAMES.get(l4.protocol) ?? l4.protocol,
      source: { address: formatAddress(l4.src), port: l4.srcPort ?? 0 },
      destination: { address: formatAddress(l4.dst), port: l4.dstPort },
      policy: d.entry!.policy.name,
      rule: d.entry!.rule?.name ?? null,
    }
    if (l7.sni !== undefined) request.sni = l7.sni
    if (l7.host !== undefined) request.host = l7.host
    return request
  }

  /** A segment of the TCP proxy, sent with its flow's Geneve header toward the client or the server. */
  private proxySend(f: ProxiedFlow, towardClient: boolean, seg: TcpRepr): void {
    const flows = this.flows
    if (!this.io || this.closed || !flows.isLive(f.flow) || flows.gen[f.flow] !== f.gen) return
    const g = flows.copyGeneve(f.flow, this.proxyGeneve, 0)
    if (g === 0) return
    const src = towardClient ? f.server : f.client
    const dst = towardClient ? f.client : f.server
    const geneve = this.proxyGeneve.subarray(0, g)
    const path = {
      localAddr: f.localAddr,
      remoteAddr: flows.outerIp[f.flow]!,
      remotePort: flows.outerPort[f.flow]!,
    }
    // Built straight into the send ring: no copy of the segment on its way out.
    const io = this.io
    const at = io.reserve()
    const n = buildTcpSegment(geneve, f.family, src, dst, seg, io.txBuffer, at, at + io.txSlotSize)
    if (n === 0) return
    if (this.capture.active)
      this.captureSent(towardClient ? CLIENT_SIDE : SERVER_SIDE, io.txBuffer.subarray(at, at + n))
    io.commit(n, path)
  }

  /** The packet the fast path just parsed, as received from GWLB, to the captures. */
  private captureReceived(side: Side): void {
    const p = this.fastpath.lastPacket
    this.capture.packet(p, side, false, p.buf, p.ipOff, p.ipEnd)
  }

  /** A segment proxySend just built (the whole datagram: Geneve and inner packet), to the captures. */
  private captureSent(side: Side, datagram: Buffer): void {
    const p = this.captured
    if (parsePacket(datagram, datagram.length, p) !== 0) return
    this.capture.packet(p, side, true, p.buf, p.ipOff, p.ipEnd)
  }

  /** A sink for a terminated flow's TLS secrets on one side, when a running capture takes the flow. */
  private keylogFor(f: ProxiedFlow, side: Side): ((line: Buffer) => void) | undefined {
    if (!this.capture.active) return undefined
    const key = flowKey({
      family: f.family,
      client: f.client,
      server: f.server,
      clientPort: f.clientPort,
      serverPort: f.serverPort,
      protocol: IpProto.TCP,
      endpoint: f.intercept ? parseEndpointId(f.intercept.endpoint) : undefined,
    })
    return this.capture.keylogFor(key, side)
  }

  static async start(ctx: DataplaneContext, o: GwlbDataplaneOptions): Promise<GwlbDataplane> {
    const dp = new GwlbDataplane(ctx, o)
    // The sandbox for Inspect rules' scripts (WebAssembly, loaded once).
    dp.scripts = await ScriptEngine.create()
    dp.io = await startPacketIO(
      { backend: o.io ?? 'auto', bindAddr: ctx.bind === '::' ? '0.0.0.0' : ctx.bind, port: ctx.genevePort },
      (batch) => dp.onBatch(batch),
      (reason) =>
        ctx.log.warn({ reason: reason.message }, 'fast packet I/O unavailable; using the dgram backend'),
    )
    ctx.metrics.attachDataplane(dp.stats())
    const sweepMs = o.sweepMs ?? 250
    dp.sweepTimer = setInterval(() => dp.sweep(Date.now()), sweepMs)
    dp.sweepTimer.unref()
    ctx.log.info(
      { backend: dp.io.backend, port: dp.io.port, flowCapacity: dp.flows.capacity },
      'packet loop started',
    )
    return dp
  }

  get port(): number {
    return this.io?.port ?? 0
  }

  alive(): boolean {
    return !!this.io && !this.closed && !this.failure
  }

  detail(): string {
    if (this.failure) return this.failure
    if (this.closed) return 'closed'
    return this.io ? `${this.io.backend} on ${this.io.port}` : 'starting'
  }

  async close(): Promise<void> {
    this.closed = true
    this.capture.close()
    clearInterval(this.sweepTimer)
    await this.har.close()
    this.proxy.close()
    this.authorizer.close()
    this.scripts?.dispose()
    await this.io?.close()
    await this.flowLog?.close()
  }

  private onBatch(batch: RxBatch): void {
    const now = Date.now()
    const io = this.io!
    const r = this.result
    for (let i = 0; i < batch.count; i++) {
      const len = batch.length(i)
      if (len === 0) continue
      // The fast path parses from index 0, so hand it a view starting at the Geneve header.
      const buf = batch.buffer(i)
      const off = batch.offset(i)
      const view = off === 0 ? buf : buf.subarray(off, off + batch.capacity(i))
      try {
        this.fastpath.processDatagram(view, len, batch.remoteAddr(i), batch.remotePort(i), now, r)
      } catch (err) {
        // Parsers are total; this is a bug. Count it, drop the packet, keep the loop alive.
        this.ctx.log.error({ err }, 'packet handling threw; packet dropped')
        continue
      }
      this.count(r)
      // Diverted packets are captured where the loop knows which connection they belong to (onDivert).
      if (this.capture.active && r.malformed === 0 && r.outcome !== Outcome.divert)
        this.captureReceived(CLIENT_SIDE)
      switch (r.outcome) {
        case Outcome.pass:
          io.reply(batch, i, r.outLen)
          break
        case Outcome.rewrite:
        case Outcome.reject:
          io.send(r.out, 0, r.outLen, this.pathOf(batch, i))
          break
        case Outcome.hold:
          this.onHold(batch, i, now)
          break
        case Outcome.divert:
          this.onDivert(batch, i, now)
          break
        default:
          // A drop may still answer: a Deny on TCP carries its RST.
          if (r.outLen > 0) io.send(r.out, 0, r.outLen, this.pathOf(batch, i))
      }
    }
  }

  private pathOf(batch: RxBatch, i: number): ReturnPath {
    return { localAddr: batch.localAddr(i), remoteAddr: batch.remoteAddr(i), remotePort: batch.remotePort(i) }
  }

  private count(r: FastPathResult): void {
    if (r.flow < 0) return
    const p = this.fastpath.lastPacket
    const k = r.dir * OUTCOMES.length + r.outcome
    this.packets[k]!++
    this.bytes[k]! += p.ipEnd - p.ipOff
  }

  /**
   * Authorize asks the webhook (the flow's packets wait meanwhile). Inspect needs the L7 path (user-space
   * TCP, TLS, HTTP), which is not in this build: fail closed — reset TCP, drop the rest — and say so once.
   */
  private onDivert(batch: RxBatch, i: number, now: number): void {
    const r = this.result
    const p = this.fastpath.lastPacket
    const d = r.decision
    const fromClient = r.dir === 0
    const proxied = d?.action === 'Allow' && d.entry?.tcpProxy === true
    const intercepted = d?.action === 'Inspect' || d?.mayInspect === true
    const terminated = !!d && r.flow >= 0 && p.protocol === IpProto.TCP && p.hasL4 && (proxied || intercepted)
    // A terminated flow's packets from the server belong to the appliance's upstream connection.
    if (this.capture.active) this.captureReceived(terminated && !fromClient ? SERVER_SIDE : CLIENT_SIDE)
    if (d?.action === 'Authorize' && d.entry?.policy.authorizer && r.flow >= 0) {
      const packet = { bytes: Buffer.from(p.buf.subarray(0, p.ipEnd)), path: this.pathOf(batch, i) }
      this.authorize(r.flow, this.flows.gen[r.flow]!, d, [packet], this.l4Facts(p, r.dir), {}, now)
      return
    }
    if (!terminated) {
      this.failClosed(p, this.pathOf(batch, i))
      return
    }
    // The L4 facts go with a client SYN only: the proxy needs them when it opens a flow.
    const syn = fromClient && (p.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN
    const facts = intercepted && syn ? this.l4Facts(p, r.dir) : undefined
    if (this.proxy.input(p, r.flow, this.flows.gen[r.flow]!, fromClient, batch.localAddr(i), facts)) return
    // A connection older than the rule (a policy reload made the flow tcpProxy) passes as Allow; one that
    // must be intercepted cannot be taken over mid-stream and is reset.
    if (proxied) this.io!.reply(batch, i, p.ipEnd)
    else this.failClosed(p, this.pathOf(batch, i))
  }

  /** A packet the L7 path cannot take (not TCP, or a connection it did not terminate from its SYN). */
  private failClosed(p: ParsedPacket, path: ReturnPath): void {
    this.loopDrops[L7_UNAVAILABLE]!++
    if (!this.warnedL7) {
      this.warnedL7 = true
      this.ctx.log.warn(
        'a packet needed the L7 path but its connection was not terminated from its SYN (non-TCP, or established before a policy reload); reset',
      )
    }
    if (p.protocol === IpProto.TCP) {
      const n = buildRstToSender(p, this.rst)
      if (n > 0) this.io!.send(this.rst, 0, n, path)
    }
  }

  /** Holds the flow's packets while the authorizer decides; one call per flow, answers cached. */
  private authorize(
    flow: number,
    gen: number,
    d: Decision,
    packets: HeldPacket[],
    l4: FlowFacts & { srcPort?: number },
    l7: { sni?: string | null | undefined; host?: string | null | undefined },
    now: number,
  ): void {
    const waiting = this.authorizing.get(flow)
    if (waiting && waiting.gen === gen) {
      for (const pkt of packets) {
        if (waiting.bytes + pkt.bytes.length > MAX_AUTHORIZING_BYTES_PER_FLOW) {
          this.loopDrops[AUTHORIZER_OVERFLOW]!++
          continue
        }
        waiting.packets.push(pkt)
        waiting.bytes += pkt.bytes.length
      }
      return
    }
    const cfg = d.entry!.policy.authorizer!
    if (this.authorizing.size >= this.maxAuthorizing) {
      this.loopDrops[AUTHORIZER_OVERFLOW]!++
      this.finishAuthorize(flow, gen, d, packets, cfg.onError === 'Allow', now)
      return
    }
    this.authorizing.set(flow, {
      gen,
      packets: [...packets],
      bytes: packets.reduce((n, p) => n + p.bytes.length, 0),
    })
    const request = this.authorizeRequest(d, l4, l7)
    void this.authorizer.authorize(cfg, request).then((answer) => {
      const held = this.authorizing.get(flow)
      this.authorizing.delete(flow)
      if (!held || held.gen !== gen || this.closed) return
      if (answer.via === 'on-error') {
        this.ctx.log.warn(
          { policy: request.policy, error: answer.error, allow: answer.allow },
          'authorizer failed; onError applied',
        )
      }
      this.finishAuthorize(flow, gen, d, held.packets, answer.allow, Date.now())
    })
  }

  private finishAuthorize(
    flow: number,
    gen: number,
    d: Decision,
    packets: HeldPacket[],
    allow: boolean,
    now: number,
  ): void {
    if (!this.flows.isLive(flow) || this.flows.gen[flow] !== gen) return
    this.fastpath.setDecision(flow, { ...d, kind: 'final', action: allow ? 'Allow' : 'Deny' })
    if (allow) {
      for (const pkt of packets) this.replay(pkt.bytes, pkt.path, now)
      this.io?.flush()
    } else {
      this.loopDrops[HELD_RESET]! += packets.length
      const last = packets.at(-1)
      if (!last || !this.io) return
      const p = this.reparsed
      if (parsePacket(last.bytes, last.bytes.length, p) !== 0) return
      const n = buildRstToSender(p, this.rst)
      if (n > 0) this.io.send(this.rst, 0, n, last.path)
      // A flow decided after its first bytes (SNI) is established: reset the server too.
      if (p.payloadLen > 0) {
        const m = buildRstToReceiver(p, this.rst)
        if (m > 0) this.io.send(this.rst, 0, m, last.path)
      }
      this.io.flush()
    }
  }

  private onHold(batch: RxBatch, i: number, now: number): void {
    const r = this.result
    const p = this.fastpath.lastPacket
    const flow = r.flow
    const gen = this.flows.gen[flow]!
    const l4 = () => this.l4Facts(p, r.dir)
    // Only TCP data comes here: the fast path passes a pending flow's segments without payload.
    const step =
      r.dir === 1
        ? this.holds.serverFirst(flow, gen, now, l4)
        : this.holds.clientData(p, flow, gen, this.pathOf(batch, i), now, l4)
    if (r.dir === 1 && step.kind === 'decide') {
      // Decide, then handle this server packet like any other of the flow.
      this.resolve(step)
      const copy = Buffer.from(p.buf.subarray(0, p.ipEnd))
      this.replay(copy, this.pathOf(batch, i), now)
      return
    }
    if (step.kind === 'decide') this.resolve(step)
  }

  /** Direction 0 is the flow's first direction, which the fast path orients to the client. */
  private l4Facts(p: ParsedPacket, dir: 0 | 1): FlowFacts & { srcPort: number } {
    const fromClient = dir === 0
    return {
      endpoint: p.endpointId(),
      family: p.family,
      src: Uint8Array.from(fromClient ? p.src() : p.dst()),
      dst: Uint8Array.from(fromClient ? p.dst() : p.src()),
      protocol: p.protocol,
      dstPort: fromClient ? p.dstPort : p.srcPort,
      srcPort: fromClient ? p.srcPort : p.dstPort,
    }
  }

  private resolve(step: Extract<HoldStep, { kind: 'decide' }>): void {
    const h = step.held
    const start = process.hrtime.bigint()
    const engine = this.ctx.store.current?.engine
    let d: Decision = engine
      ? engine.decide({ ...h.l4, ...step.facts })
      : { kind: 'final', action: 'Deny', needs: 0 }
    this.ctx.metrics.decisionSeconds.observe(Number(process.hrtime.bigint() - start) / 1e9)
    if (!this.flows.isLive(h.flow) || this.flows.gen[h.flow] !== h.gen) return // the flow ended meanwhile
    if (d.kind === 'pending') {
      // Still needs the HTTP request of a TLS flow: only interception can tell.
      d = { ...d, kind: 'final', action: 'Inspect' }
    }
    this.flowLog?.noteL7(h.flow, step.facts)
    const now = Date.now()
    if (d.action === 'Authorize' && d.entry?.policy.authorizer) {
      this.fastpath.setDecision(h.flow, d)
      this.authorize(h.flow, h.gen, d, h.packets, h.l4, step.facts, now)
      return
    }
    this.fastpath.setDecision(h.flow, d)
    if (d.action === 'Deny' || d.action === 'Reject') {
      this.resetBoth(h.packets.at(-1))
      this.loopDrops[HELD_RESET]! += h.packets.length
      return
    }
    for (const pkt of h.packets) this.replay(pkt.bytes, pkt.path, now)
    this.io?.flush()
  }

  /** Runs a held (copied) datagram through the fast path again, now that its flow is decided. */
  private replay(bytes: Buffer, path: ReturnPath, now: number): void {
    const r = this.result
    this.fastpath.processDatagram(bytes, bytes.length, path.remoteAddr, path.remotePort, now, r)
    this.count(r)
    if (r.outcome === Outcome.pass || r.outcome === Outcome.rewrite || r.outcome === Outcome.reject) {
      this.io?.send(r.out, 0, r.outLen, path)
    } else if (r.outcome === Outcome.divert) {
      const d = r.decision
      if (d?.action === 'Authorize' && d.entry?.policy.authorizer && r.flow >= 0) {
        const p = this.fastpath.lastPacket
        this.authorize(r.flow, this.flows.gen[r.flow]!, d, [{ bytes, path }], this.l4Facts(p, r.dir), {}, now)
      } else {
        this.loopDrops[L7_UNAVAILABLE]!++
        this.resetBoth({ bytes, path })
      }
    }
  }

  /** After a deny on the first bytes the connection is established: reset the client and the server. */
  private resetBoth(pkt: { bytes: Buffer; path: ReturnPath } | undefined): void {
    if (!pkt || !this.io) return
    const p = this.reparsed
    if (parsePacket(pkt.bytes, pkt.bytes.length, p) !== 0) return
    let n = buildRstToSender(p, this.rst)
    if (n > 0) this.io.send(this.rst, 0, n, pkt.path)
    n = buildRstToReceiver(p, this.rst)
    if (n > 0) this.io.send(this.rst, 0, n, pkt.path)
    this.io.flush()
  }

  private sweep(now: number): void {
    try {
      this.flows.sweep(now)
      this.flowLog?.tick(now)
      this.proxy.sweep((flow, gen) => this.flows.isLive(flow) && this.flows.gen[flow] === gen)
      for (const step of this.holds.expire(now)) if (step.kind === 'decide') this.resolve(step)
    } catch (err) {
      this.ctx.log.error({ err }, 'sweep failed')
    }
  }

  stats(): DataplaneStats {
    const fp = this.fastpath
    const self = this
    return {
      outcomes: OUTCOMES,
      packets: this.packets,
      bytes: this.bytes,
      dropReasons: [...DROP_REASONS, ...LOOP_DROPS],
      get drops() {
        const out = new Float64Array(DROP_REASONS.length + LOOP_DROPS.length)
        out.set(fp.drops)
        out.set(self.loopDrops, DROP_REASONS.length)
        return out
      },
      malformedReasons: MALFORMED_REASONS,
      malformed: fp.malformed.counts,
      flows: () => ({
        active: this.flows.size,
        capacity: this.flows.capacity,
        created: this.flows.stats.created,
        expired: this.flows.stats.expired,
        evicted: this.flows.stats.evicted,
        refused: this.flows.stats.refused,
      }),
      io: () => {
        const s = this.io?.stats
        return {
          backend: this.io?.backend ?? 'none',
          rxPackets: s?.rxPackets ?? 0,
          txPackets: s?.txPackets ?? 0,
          rxTruncated: s?.rxTruncated ?? 0,
          txDropped: s?.txDropped ?? 0,
        }
      },
      peeks: { names: PEEK_RESULTS, counts: this.holds.results },
      authorizations: { names: AUTHORIZER_RESULTS, counts: this.authorizer.counts },
      tcp: {
        metrics: this.proxy.stack.metrics,
        proxy: { names: TCP_PROXY_RESULTS, counts: this.proxy.results },
      },
      intercepts: { names: INTERCEPT_RESULTS, counts: this.interceptor.results },
      http: this.httpStats,
      ...(this.flowLog?.writer ? { flowRecords: this.flowLog.writer.counts } : {}),
    }
  }
}
