// The per-packet fast path: parsed packet + flow table + policy decision → pass / drop / reject / rewrite,
// or hand-off (hold for an L7 peek, divert to the L7 path). Pure: no sockets, time is passed in, output
// goes to buffers the FastPath owns and reuses. One instance per packet loop (not re-entrant).
//
// Decisions are taken once per flow, on its first packet, and interned: the flow table stores a small
// decision id, not an object per flow.
//
// Packet rules (dropEveryNth, dropIfContains, replace) are "per-packet rules for UDP and ICMP flows (no TCP
// state)" (schema): on TCP they are ignored, since rewriting a TCP payload would desynchronise sequence
// numbers. Order per packet: dropEveryNth counts every packet of the flow (both directions), then
// dropIfContains, then replace. Fragments (see wire/ipv4.ts): first fragments get the flow's decision and
// dropIfContains/dropEveryNth but are never rewritten; later fragments follow their flow's verdict.
//
// ICMP errors quoting a packet of a known flow follow that flow's verdict (no packet rules): so a policy
// that drops ICMP does not break PMTU discovery or port-unreachable signalling of flows it allows.
//
// Pending decisions (L7 facts needed): TCP segments without payload pass; segments with payload come back
// as `hold` for the caller to buffer, peek at (peek/), decide (setDecision) and then release or reset
// (wire/build.ts buildRstToSender / buildRstToReceiver).
//
// Audit mode: the engine never enforces an Audit entry; `decision.audit` is what it would have done. The
// fast path computes that outcome per packet into `result.auditOutcome` (for counters/flow logs) and
// enforces only `decision.action`.

import type { Decision, Entry, FlowFacts } from '../../../policy/src/engine/index.ts'
import { FragmentCache } from '../flow/fragments.ts'
import { FlowClass, type FlowTable } from '../flow/table.ts'
import { RuleUsage } from '../visibility/rule-usage.ts'
import { buildRstToSender, buildUnreachable } from '../wire/build.ts'
import { adjust, sum16, update16 } from '../wire/checksum.ts'
import { MalformedCounters } from '../wire/counters.ts'
import { formatEndpointId } from '../wire/geneve.ts'
import { QuotedPacket, readQuoted, Unreachable } from '../wire/icmp.ts'
import { Frag } from '../wire/ipv4.ts'
import { IpProto, l4PseudoSum, ParsedPacket, parsePacket } from '../wire/packet.ts'
import { TcpFlag } from '../wire/tcp.ts'
import { DROP_REASONS, Drop, OUTCOMES, Outcome, Verdict } from './counters.ts'
import { containsIn, packetRulesOf, replaceInto } from './rules.ts'

/** What the fast path needs from the policy engine. */
export interface Decider {
  decide(f: FlowFacts): Decision
  /** the entries decisions point into (PolicyEngine.entries): rule usage is counted per entry */
  readonly entries?: readonly Entry[]
}

export interface FastPathOptions {
  flows: FlowTable
  engine: Decider
  fragments?: FragmentCache
  /** GWLB's inner packets go up to 8,500 bytes (GWLB.md); a rewrite may not grow a packet past this */
  maxInnerLen?: number
  /**
   * ICMP errors the fast path may send per second (token bucket; burst = one second's worth). RFC 4443
   * §2.4(f) requires ICMPv6 errors to be rate-limited; RFC 1812 §4.3.2.8 says the same for ICMPv4.
   */
  icmpErrorsPerSecond?: number
  /** per-rule hit counters (default: the fast path's own) */
  usage?: RuleUsage
}

/** Reused result of process(). */
export class FastPathResult {
  /** Outcome code */
  outcome = 0
  /** Drop code when outcome is drop */
  reason = 0
  /** MalformedReason code when reason is malformed */
  malformed = 0
  /**
   * bytes to send back to GWLB: the received datagram (pass) or a FastPath buffer (rewrite, reject, and
   * the RST of a TCP drop by Deny); outLen 0 when nothing is to be sent
   */
  out: Buffer<ArrayBufferLike> = Buffer.alloc(0)
  outLen = 0
  /** flow entry number, -1 if none */
  flow = -1
  /** 0 = packet travels in the flow's first direction, 1 = reply */
  dir: 0 | 1 = 0
  newFlow = false
  decision: Decision | undefined = undefined
  /** what an Audit entry would have done to this packet (an Outcome), -1 when no Audit entry matched */
  auditOutcome = -1
}

const MAX_DATAGRAM = 65_535
const NO_ENTRY = {}
const ACTIONS = ['Allow', 'Deny', 'Reject', 'Inspect', 'Authorize']

function verdictOf(d: Decision): number {
  // A flow an Inspect rule may decide is terminated from its SYN; its L7 decision is taken on the stream.
  if (d.kind === 'pending') return d.mayInspect === true ? Verdict.divert : Verdict.pending
  switch (d.action) {
    case 'Allow':
      // An explicit L4 proxy (tcpProxy): the flow is terminated by the appliance's TCP stack.
      return d.entry?.tcpProxy === true ? Verdict.divert : Verdict.allow
    case 'Deny':
      return Verdict.deny
    case 'Reject':
      return Verdict.reject
    default:
      return Verdict.divert // Inspect, Authorize: the L7 path's
  }
}

export class FastPath {
  readonly flows: FlowTable
  readonly fragments: FragmentCache
  readonly maxInnerLen: number
  private engine: Decider
  private readonly decisions: Decision[] = [undefined as unknown as Decision]
  private readonly decisionIds = new Map<object, Map<object, Map<number, number>>>()
  private lastEndpoint = ''
  private readonly lastEndpointBytes = new Uint8Array(8)
  readonly malformed = new MalformedCounters()
  readonly drops = new Float64Array(DROP_REASONS.length)
  readonly outcomes = new Float64Array(OUTCOMES.length)
  private readonly scratch = Buffer.alloc(MAX_DATAGRAM)
  private readonly scratch2 = Buffer.alloc(MAX_DATAGRAM)
  private readonly replyBuf = Buffer.alloc(MAX_DATAGRAM)
  private readonly parsed = new ParsedPacket()
  private readonly quoted = new QuotedPacket()
  private readonly icmpRate: number
  private icmpTokens: number
  private icmpLast = Number.NEGATIVE_INFINITY
  /** hits per rule: one per flow a rule decides (setDecision); the L7 path adds one per HTTP request */
  readonly usage: RuleUsage

  constructor(o: FastPathOptions) {
    this.flows = o.flows
    this.engine = o.engine
    this.usage = o.usage ?? new RuleUsage()
    this.usage.setEntries(o.engine.entries ?? [])
    this.fragments = o.fragments ?? new FragmentCache()
    this.maxInnerLen = o.maxInnerLen ?? 8500
    this.icmpRate = o.icmpErrorsPerSecond ?? 1000
    this.icmpTokens = this.icmpRate
  }

  /** New flows are decided by `engine` from now on; existing flows keep their decision. */
  setEngine(engine: Decider): void {
    this.engine = engine
    this.usage.setEntries(engine.entries ?? [])
  }

  /** Interns a decision; returns its id (stable for the life of the FastPath). */
  intern(d: Decision): number {
    // Keyed by the deciding and auditing entries' identities (each engine has its own Entry objects) and
    // the rest of the decision packed in a number: no string building per new flow.
    const byEntry = this.decisionIds.get(d.entry ?? NO_ENTRY) ?? new Map<object, Map<number, number>>()
    if (byEntry.size === 0) this.decisionIds.set(d.entry ?? NO_ENTRY, byEntry)
    let byAudit = byEntry.get(d.audit ?? NO_ENTRY)
    if (!byAudit) {
      byAudit = new Map()
      byEntry.set(d.audit ?? NO_ENTRY, byAudit)
    }
    const code =
      d.needs +
      (d.mayInspect === true ? 0x8000 : 0) +
      (d.kind === 'pending' ? 0x10000 : 0) +
      ACTIONS.indexOf(d.action) * 0x20000
    let id = byAudit.get(code)
    if (id === undefined) {
      id = this.decisions.length
      this.decisions.push(d)
      byAudit.set(code, id)
    }
    return id
  }

  decisionOf(flow: number): Decision | undefined {
    return this.decisions[this.flows.decision[flow]!]
  }

  /** Replaces flow i's decision (after an L7 peek made a pending decision final, or on re-evaluation). */
  setDecision(flow: number, d: Decision): void {
    const flows = this.flows
    const prev = this.decisions[flows.decision[flow]!]
    flows.decision[flow] = this.intern(d)
    flows.verdict[flow] = verdictOf(d)
    // Rule usage: one hit when a flow gets a final decision, not again when the same deciding entries are
    // stored twice (Authorize: once when its rule matches, again with the webhook's answer). A new flow's
    // slot holds decision 0 (none). The flow's last-packet time stands in for the clock.
    if (d.kind === 'final' && !(prev?.kind === 'final' && prev.entry === d.entry && prev.audit === d.audit)) {
      const now = flows.last[flow]!
      if (d.entry) this.usage.hit(d.entry, now)
      if (d.audit) this.usage.hit(d.audit, now)
    }
  }

  /** Parses one datagram and processes it; malformed datagrams are counted and dropped. */
  processDatagram(
    buf: Buffer,
    len: number,
    outerIp: number,
    outerPort: number,
    now: number,
    r: FastPathResult,
  ): FastPathResult {
    const p = this.parsed
    const code = parsePacket(buf, len, p)
    if (code !== 0) {
      this.malformed.inc(code)
      this.reset(r)
      r.malformed = code
      return this.drop(r, Drop.malformed)
    }
    return this.process(p, outerIp, outerPort, now, r)
  }

  /** The packet most recently parsed by processDatagram. */
  get lastPacket(): ParsedPacket {
    return this.parsed
  }

  private reset(r: FastPathResult): void {
    r.outcome = Outcome.pass
    r.reason = 0
    r.malformed = 0
    r.outLen = 0
    r.flow = -1
    r.dir = 0
    r.newFlow = false
    r.decision = undefined
    r.auditOutcome = -1
  }

  private drop(r: FastPathResult, reason: number): FastPathResult {
    r.outcome = Outcome.drop
    r.reason = reason
    r.outLen = 0
    this.drops[reason]!++
    this.outcomes[Outcome.drop]!++
    return r
  }

  private done(r: FastPathResult, outcome: number): FastPathResult {
    r.outcome = outcome
    this.outcomes[outcome]!++
    return r
  }

  private pass(p: ParsedPacket, r: FastPathResult): FastPathResult {
    r.out = p.buf
    r.outLen = p.ipEnd
    return this.done(r, Outcome.pass)
  }

  /** Processes a successfully parsed packet from GWLB node outerIp:outerPort. */
  process(
    p: ParsedPacket,
    outerIp: number,
    outerPort: number,
    now: number,
    r: FastPathResult,
  ): FastPathResult {
    this.reset(r)
    const flows = this.flows
    if (p.fragment === Frag.later) return this.laterFragment(p, now, r)
    if (p.icmpType >= 0 && p.hasL4) {
      const related = this.relatedFlow(p)
      if (related >= 0) return this.related(p, related, now, r)
    }
    flows.stagePacket(p)
    let i = flows.find()
    // A SYN on a flow that was reset or closed is a new connection on a reused 5-tuple: decide it afresh
    // (its first bytes may differ; keeping the old decision would let an SNI decision carry over).
    if (
      i >= 0 &&
      (p.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN &&
      p.protocol === IpProto.TCP &&
      flows.flowClass(i) === FlowClass.closing
    ) {
      flows.remove(i)
      i = -1
    }
    if (i < 0) {
      // A SYN-ACK as first packet (flow picked up mid-handshake) belongs to a flow opened the other way.
      const reversed =
        p.protocol === IpProto.TCP &&
        (p.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK)
      const d = this.engine.decide(this.factsOf(p, reversed))
      i = flows.insert(now)
      if (i < 0) return this.drop(r, Drop.flow_table_full)
      if (reversed) flows.state[i]! ^= 0x002 // FlowState.origIsA
      this.setDecision(i, d)
      r.newFlow = true
    }
    const dir = flows.direction(i)
    r.flow = i
    r.dir = dir
    flows.touch(i, dir, p.ipEnd - p.ipOff, p.protocol === IpProto.TCP ? p.tcpFlags : 0, now)
    flows.setGeneve(i, p.buf, 0, p.geneveLen)
    flows.setOuter(i, outerIp, outerPort)
    if (p.fragment === Frag.first) this.fragments.remember(p, i, flows.gen[i]!, now)
    const d = this.decisions[flows.decision[i]!]!
    r.decision = d
    if (d.audit) r.auditOutcome = this.auditOutcome(p, i, d.audit)
    switch (flows.verdict[i]) {
      case Verdict.allow:
        return this.allow(p, i, d.entry, r)
      case Verdict.deny:
        return this.deny(p, r)
      case Verdict.reject:
        return this.reject(p, now, r)
      case Verdict.pending:
        // Segments without payload (handshake, pure ACKs, FIN, RST) pass so the connection can come up and
        // the client can send the ClientHello or request the decision waits for; data is held.
        if (p.protocol === IpProto.TCP && p.payloadLen === 0) return this.pass(p, r)
        return this.done(r, Outcome.hold)
      default:
        return this.done(r, Outcome.divert)
    }
  }

  /** The endpoint id string, reused while consecutive new flows come from the same endpoint. */
  private endpointOf(p: ParsedPacket): string {
    const b = p.buf
    const o = p.endpointOff
    const last = this.lastEndpointBytes
    let same = this.lastEndpoint !== ''
    for (let k = 0; k < 8 && same; k++) same = b[o + k] === last[k]
    if (!same) {
      for (let k = 0; k < 8; k++) last[k] = b[o + k]!
      this.lastEndpoint = p.endpointId()
    }
    return this.lastEndpoint
  }

  private factsOf(p: ParsedPacket, reversed: boolean): FlowFacts {
    return {
      endpoint: this.endpointOf(p),
      family: p.family,
      src: reversed ? p.dst() : p.src(),
      dst: reversed ? p.src() : p.dst(),
      protocol: p.protocol,
      dstPort: reversed ? p.srcPort : p.dstPort,
    }
  }

  /**
   * An ICMP error about a packet of a known flow belongs to that flow (as conntrack's RELATED): the quoted
   * packet was sent by the error's destination, so its source must be the error's destination.
   */
  private relatedFlow(p: ParsedPacket): number {
    const q = this.quoted
    if (!readQuoted(p, q)) return -1
    const b = p.buf
    const n = p.family === 4 ? 4 : 16
    for (let k = 0; k < n; k++) if (b[q.srcOff + k] !== b[p.dstOff + k]) return -1
    this.flows.stage(b, p.endpointOff, q.family, q.srcOff, q.dstOff, q.protocol, q.srcPort, q.dstPort)
    return this.flows.find()
  }

  /** A related ICMP error follows its flow's verdict; packet rules and counters of its own do not apply. */
  private related(p: ParsedPacket, i: number, now: number, r: FastPathResult): FastPathResult {
    const flows = this.flows
    // The quoted packet travelled in direction d; the error travels back against it.
    const dir = flows.direction(i) === 0 ? 1 : 0
    r.flow = i
    r.dir = dir
    r.decision = this.decisions[flows.decision[i]!]
    flows.touch(i, dir, p.ipEnd - p.ipOff, 0, now)
    const v = flows.verdict[i]
    if (v === Verdict.allow || v === Verdict.pending || v === Verdict.divert) return this.pass(p, r)
    return this.drop(r, v === Verdict.deny ? Drop.policy_deny : Drop.policy_reject_silent)
  }

  private laterFragment(p: ParsedPacket, now: number, r: FastPathResult): FastPathResult {
    const flows = this.flows
    const i = this.fragments.lookup(p, now)
    if (i < 0 || !flows.isLive(i) || flows.gen[i] !== this.fragments.lookupGen)
      return this.drop(r, Drop.fragment_unknown_flow)
    flows.stage(p.buf, p.endpointOff, p.family, p.srcOff, p.dstOff, p.protocol, 0, 0)
    const dir = flows.direction(i)
    r.flow = i
    r.dir = dir
    flows.touch(i, dir, p.ipEnd - p.ipOff, 0, now)
    const d = this.decisions[flows.decision[i]!]!
    r.decision = d
    if (flows.verdict[i] !== Verdict.allow)
      return this.drop(r, flows.verdict[i] === Verdict.deny ? Drop.policy_deny : Drop.policy_reject_silent)
    const pr = packetRulesOf(d.entry)
    if (pr && p.protocol !== IpProto.TCP) {
      if (pr.nth && ++flows.nth[i]! % pr.nth === 0) return this.drop(r, Drop.drop_every_nth)
      for (const c of pr.contains)
        if (containsIn(p.buf, p.l4Off, p.ipEnd, c)) return this.drop(r, Drop.drop_if_contains)
    }
    return this.pass(p, r)
  }

  /**
   * Deny drops; on TCP the drop carries a RST toward the sender (in `out`), so a client fails at once
   * instead of by timeout. UDP and ICMP stay silent: answering them is Reject.
   */
  private deny(p: ParsedPacket, r: FastPathResult): FastPathResult {
    this.drop(r, Drop.policy_deny)
    if (p.protocol !== IpProto.TCP) return r
    const n = buildRstToSender(p, this.replyBuf)
    if (n > 0) {
      r.out = this.replyBuf
      r.outLen = n
    }
    return r
  }

  private reject(p: ParsedPacket, now: number, r: FastPathResult): FastPathResult {
    let n = 0
    if (p.protocol === IpProto.TCP) n = buildRstToSender(p, this.replyBuf)
    else {
      if (!this.takeIcmpToken(now)) return this.drop(r, Drop.reject_rate_limited)
      const kind = p.protocol === IpProto.UDP ? Unreachable.port : Unreachable.adminProhibited
      n = buildUnreachable(p, kind, this.replyBuf)
    }
    if (n === 0) return this.drop(r, Drop.policy_reject_silent)
    r.out = this.replyBuf
    r.outLen = n
    return this.done(r, Outcome.reject)
  }

  private takeIcmpToken(now: number): boolean {
    const rate = this.icmpRate
    if (now > this.icmpLast) {
      this.icmpTokens = Math.min(rate, this.icmpTokens + ((now - this.icmpLast) * rate) / 1000)
      this.icmpLast = now
    }
    if (this.icmpTokens < 1) return false
    this.icmpTokens--
    return true
  }

  /** Facts for re-deciding flow i (e.g. after setEngine): its key in the orig direction. Allocates. */
  flowFacts(i: number): FlowFacts {
    const k = this.flows.keyOf(i)
    return {
      endpoint: formatEndpointId(k.endpointId, 0),
      family: k.family,
      src: k.src,
      dst: k.dst,
      protocol: k.protocol,
      dstPort: k.dstPort,
    }
  }

  /**
   * Re-decides flow i with the current engine from its 5-tuple alone and stores the result. L7 facts learnt
   * by a peek are not kept by the fast path: pass them in `l7` (sni, host, …) to keep them.
   */
  redecide(i: number, l7: Partial<FlowFacts> = {}): Decision {
    const d = this.engine.decide({ ...this.flowFacts(i), ...l7 })
    this.setDecision(i, d)
    return d
  }

  /** What the Audit entry would have done to this packet, without doing it. */
  private auditOutcome(p: ParsedPacket, i: number, a: Entry): number {
    if (a.action === 'Deny') return Outcome.drop
    if (a.action === 'Reject') return Outcome.reject
    if (a.action !== 'Allow') return Outcome.divert
    const pr = packetRulesOf(a)
    if (!pr || p.protocol === IpProto.TCP || !p.hasL4) return Outcome.pass
    const n = this.flows.packets[2 * i]! + this.flows.packets[2 * i + 1]!
    if (pr.nth && n % pr.nth === 0) return Outcome.drop
    const end = p.payloadOff + p.payloadLen
    for (const c of pr.contains) if (containsIn(p.buf, p.payloadOff, end, c)) return Outcome.drop
    for (const f of pr.from) if (containsIn(p.buf, p.payloadOff, end, f)) return Outcome.rewrite
    return Outcome.pass
  }

  private allow(p: ParsedPacket, i: number, e: Entry | undefined, r: FastPathResult): FastPathResult {
    const pr = packetRulesOf(e)
    if (!pr || p.protocol === IpProto.TCP || !p.hasL4) return this.pass(p, r)
    if (pr.nth && ++this.flows.nth[i]! % pr.nth === 0) return this.drop(r, Drop.drop_every_nth)
    const b = p.buf
    const end = p.payloadOff + p.payloadLen
    for (const c of pr.contains)
      if (containsIn(b, p.payloadOff, end, c)) return this.drop(r, Drop.drop_if_contains)
    if (pr.from.length === 0 || p.fragment !== Frag.none) return this.pass(p, r)
    let hit = false
    for (const f of pr.from) if (containsIn(b, p.payloadOff, end, f)) hit = true
    if (!hit) return this.pass(p, r)
    return this.rewrite(p, pr.from, pr.to, r)
  }

  /**
   * Applies the replace rules in order into a fresh datagram, then fixes the IP length (IPv4 total length
   * and header checksum by RFC 1624, IPv6 payload length), the UDP length, and the L4 checksum by RFC 1624
   * over the old and new sums, so an error already present in the received checksum is carried over.
   */
  private rewrite(p: ParsedPacket, from: Buffer[], to: Buffer[], r: FastPathResult): FastPathResult {
    const b = p.buf
    const hdrEnd = p.payloadOff
    const maxEnd = p.ipOff + this.maxInnerLen
    let src: Buffer<ArrayBufferLike> = b
    let s = p.payloadOff
    let e = p.payloadOff + p.payloadLen
    let dst: Buffer<ArrayBufferLike> = this.scratch
    let other: Buffer<ArrayBufferLike> = this.scratch2
    // Bytes before the first replacement are the same in every stage (and in the output), so the checksum
    // update only needs the sums from there on.
    let first = e
    for (let k = 0; k < from.length; k++) {
      const f = from[k]!
      const h = f.length === 0 ? -1 : src.indexOf(f, s)
      if (h >= 0 && h + f.length <= e && h < first) first = h
      const n = replaceInto(src, s, e, f, to[k]!, dst, hdrEnd, maxEnd)
      if (n < 0) return this.drop(r, Drop.rewrite_too_large)
      src = dst
      s = hdrEnd
      e = n
      dst = other
      other = src
    }
    const out = src // the last buffer written
    b.copy(out, 0, 0, hdrEnd)
    const newEnd = e
    const l4 = p.l4Off
    const oldL4Len = p.payloadOff + p.payloadLen - l4
    const newL4Len = newEnd - l4
    const udp = p.protocol === IpProto.UDP
    const csumOff = l4 + (udp ? 6 : 2)
    const oldC = (b[csumOff]! << 8) | b[csumOff + 1]!
    // RFC 1624 over what changed: the pseudo-header length, the UDP length field, and the words from the
    // first replacement on (word-aligned from l4; the header and checksum fields all lie before it).
    const s0 = l4 + ((first - l4) & ~1)
    const oldSum =
      l4PseudoSum(b, p, oldL4Len) +
      (udp ? (b[l4 + 4]! << 8) | b[l4 + 5]! : 0) +
      sum16(b, s0, p.payloadOff + p.payloadLen - s0)
    if (p.family === 4) {
      const oldTotal = (b[p.ipOff + 2]! << 8) | b[p.ipOff + 3]!
      const total = newEnd - p.ipOff
      out[p.ipOff + 2] = total >> 8
      out[p.ipOff + 3] = total & 0xff
      const hc = update16((b[p.ipOff + 10]! << 8) | b[p.ipOff + 11]!, oldTotal, total)
      out[p.ipOff + 10] = hc >> 8
      out[p.ipOff + 11] = hc & 0xff
    } else {
      const plen = newEnd - p.ipOff - 40
      out[p.ipOff + 4] = plen >> 8
      out[p.ipOff + 5] = plen & 0xff
    }
    if (udp) {
      out[l4 + 4] = newL4Len >> 8
      out[l4 + 5] = newL4Len & 0xff
    }
    // RFC 768: a zero UDP checksum over IPv4 means "none"; keep it that way.
    if (!(udp && oldC === 0)) {
      const newSum = l4PseudoSum(out, p, newL4Len) + (udp ? newL4Len : 0) + sum16(out, s0, newEnd - s0)
      let c = adjust(oldC, oldSum, newSum)
      if (c === 0 && udp) c = 0xffff // RFC 768: computed zero is sent as all ones
      out[csumOff] = c >> 8
      out[csumOff + 1] = c & 0xff
    }
    r.out = out
    r.outLen = newEnd
    return this.done(r, Outcome.rewrite)
  }
}
