// Where the packet loop hands packets to live captures. While nobody captures, the loop's only cost is
// reading `active` (false); while someone does, each packet goes through each capture's filter and, when
// it matches, is copied into that capture's queue (session.ts) — never more work than that per packet.
//
// TLS secrets: the L7 path asks keylogFor() when it starts a TLS session of a terminated flow; only if a
// running capture's filter takes the flow does it subscribe to the socket's 'keylog' events, and each line
// then goes to the captures that take the flow at that moment. Secrets go nowhere else: not to logs, not
// to disk — only into the capture streams an authenticated operator asked for.

import { type CaptureFilter, CLIENT_SIDE, type Matchable, SERVER_SIDE, type Side } from './filter.ts'
import {
  CAPTURE_COUNTS,
  type CaptureLimits,
  CaptureSession,
  DEFAULT_LIMITS,
  type EndReason,
} from './session.ts'

export interface CaptureTapOptions {
  /** captures at once; more are refused (default 4) */
  maxCaptures?: number
  /** defaults for each capture's queue and hold time */
  limits?: Partial<CaptureLimits>
  onEnd?: (s: CaptureSession, why: EndReason) => void
}

/** A flow's key in both orientations, as filters see packets (client → server, server → client). */
export interface FlowKey {
  forward: Matchable
  reverse: Matchable
}

export class CaptureTap {
  /** true while at least one capture runs: the packet loop checks this and nothing else when idle */
  active = false
  /** totals over all captures (CAPTURE_COUNTS) */
  readonly counts = new Float64Array(4)
  readonly maxCaptures: number
  private sessions: CaptureSession[] = []
  private readonly o: CaptureTapOptions

  constructor(o: CaptureTapOptions = {}) {
    this.o = o
    this.maxCaptures = o.maxCaptures ?? 4
  }

  get size(): number {
    return this.sessions.length
  }

  get limits(): CaptureLimits {
    return { ...DEFAULT_LIMITS, ...this.o.limits }
  }

  /** Starts a capture; undefined when maxCaptures are already running. */
  open(filter: CaptureFilter, limits: Partial<CaptureLimits> = {}): CaptureSession | undefined {
    if (this.sessions.length >= this.maxCaptures) return undefined
    const s = new CaptureSession(filter, { ...this.limits, ...limits }, this.counts, (done, why) => {
      this.sessions = this.sessions.filter((x) => x !== done)
      this.active = this.sessions.length > 0
      this.o.onEnd?.(done, why)
    })
    this.sessions = [...this.sessions, s]
    this.active = true
    return s
  }

  /**
   * A packet: data[from, to) is the inner IP packet `p` describes. `outbound`: sent by the appliance
   * (rather than received from GWLB).
   */
  packet(p: Matchable, side: Side, outbound: boolean, data: Buffer, from: number, to: number): void {
    const list = this.sessions
    const now = performance.now()
    const micros = Math.round((performance.timeOrigin + now) * 1000)
    const flags = outbound ? 2 : 1 // epb_flags: outbound / inbound
    for (let k = 0; k < list.length; k++) {
      const s = list[k]!
      if (s.filter.matches(p, side)) s.offer(side, flags, micros, now, data, from, to)
    }
  }

  /**
   * For the TLS session on `side` of a flow: a sink for its key log lines when a running capture takes the
   * flow, else undefined (then nobody should subscribe to the socket's keylog events).
   */
  keylogFor(flow: FlowKey, side: Side): ((line: Buffer) => void) | undefined {
    if (!this.sessions.some((s) => takes(s.filter, flow, side))) return undefined
    return (line) => {
      for (const s of this.sessions) if (takes(s.filter, flow, side)) s.secret(line)
    }
  }

  /** Ends every capture, writing what they hold (shutdown). */
  close(): void {
    for (const s of this.sessions) s.finish('shutdown', true)
  }
}

/** A filter takes a flow when it takes the flow's packets in either direction. */
function takes(f: CaptureFilter, flow: FlowKey, side: Side): boolean {
  return f.matches(flow.forward, side) || f.matches(flow.reverse, side)
}

/** A flow's key from its facts (addresses are 4 or 16 bytes, the endpoint id 8 bytes). */
export function flowKey(o: {
  family: 4 | 6
  client: Uint8Array
  server: Uint8Array
  clientPort: number
  serverPort: number
  protocol: number
  endpoint: Uint8Array | undefined
}): FlowKey {
  const n = o.client.length
  const buf = new Uint8Array(2 * n + 8)
  buf.set(o.client, 0)
  buf.set(o.server, n)
  if (o.endpoint) buf.set(o.endpoint, 2 * n)
  const base = {
    buf,
    family: o.family,
    protocol: o.protocol,
    hasL4: true,
    endpointOff: o.endpoint ? 2 * n : -1,
  }
  return {
    forward: { ...base, srcOff: 0, dstOff: n, srcPort: o.clientPort, dstPort: o.serverPort },
    reverse: { ...base, srcOff: n, dstOff: 0, srcPort: o.serverPort, dstPort: o.clientPort },
  }
}

export { CAPTURE_COUNTS, CLIENT_SIDE, SERVER_SIDE }
