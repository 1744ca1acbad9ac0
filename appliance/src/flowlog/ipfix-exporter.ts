// IPFIX export over UDP to one collector: a flow-log sink beside the JSON writer. push() never blocks and
// never waits for I/O: records wait in a bounded queue and are encoded and sent in a setImmediate after the
// packet loop's current batch; past `maxQueued` they are dropped and counted, as they are while the
// collector's name does not resolve or a send fails. Templates go out in the first message and again every
// `templateRefreshMs` (RFC 7011 §8.4: over UDP a collector that restarted learns them only that way).
import { createSocket, type Socket } from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { IPFIX_PORT, IpfixEncoder, type IpfixEncoderOptions } from './ipfix.ts'
import type { FlowRecord, FlowRecordInput } from './record.ts'

/** indexes of IpfixExporter.counts (metrics: flowgate_ipfix_records_total, flowgate_ipfix_messages_total) */
export const IPFIX_COUNTS = { exported: 0, dropped: 1, messages: 2, sendErrors: 3 } as const

export interface IpfixTarget {
  host: string
  port: number
}

/** `HOST:PORT`, `[IPv6]:PORT` or `HOST` (port 4739, IANA's IPFIX port). Throws a clear error. */
export function parseIpfixTarget(text: string): IpfixTarget {
  const s = text.trim()
  let host: string
  let port = IPFIX_PORT
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
  if (v6) {
    host = v6[1]!
    if (v6[2] !== undefined) port = Number(v6[2])
  } else if (isIP(s) === 6) {
    host = s
  } else {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(s)
    if (!m) throw new Error(`--ipfix: "${text}" is not HOST:PORT`)
    host = m[1]!
    if (m[2] !== undefined) port = Number(m[2])
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`--ipfix: "${text}" is not HOST:PORT (port 1-65535)`)
  if (v6 && isIP(host) !== 6) throw new Error(`--ipfix: "${host}" in brackets is not an IPv6 address`)
  return { host, port }
}

export interface IpfixExporterOptions extends IpfixEncoderOptions {
  target: IpfixTarget
  /** re-send the templates this often (default 60 s) */
  templateRefreshMs?: number
  /** records waiting to be sent at most (default 16,384) */
  maxQueued?: number
  /** a name that does not resolve is tried again after this long (default 10 s) */
  retryResolveMs?: number
  /** told once per kind of failure (resolution, send), for the log */
  onError?: (err: Error) => void
  now?: () => number
}

export class IpfixExporter {
  /** [exported records, dropped records, messages, send errors]: see IPFIX_COUNTS */
  readonly counts = new Float64Array(4)
  readonly encoder: IpfixEncoder
  private readonly o: IpfixExporterOptions
  private readonly socket: Socket
  private queue: { record: FlowRecord; input: FlowRecordInput }[] = []
  private scheduled = false
  private closed = false
  private connected = false
  private templatesAt = Number.NEGATIVE_INFINITY
  private retryTimer: NodeJS.Timeout | undefined
  private inflight = 0
  private drained: (() => void) | undefined
  private readonly told = new Set<string>()
  /** settles when the socket is connected (or the attempt failed) */
  private connecting: Promise<void> = Promise.resolve()

  constructor(o: IpfixExporterOptions) {
    this.o = o
    this.encoder = new IpfixEncoder(o)
    const family = isIP(o.target.host) === 6 ? 'udp6' : 'udp4'
    this.socket = createSocket(family)
    // An ICMP port unreachable from a collector that is down comes back as an error on the socket: count it,
    // never crash.
    this.socket.on('error', (err) => this.fail('send', err))
    this.socket.unref()
    this.connecting = this.connect()
  }

  private tell(kind: string, err: Error): void {
    if (this.told.has(kind)) return
    this.told.add(kind)
    this.o.onError?.(err)
  }

  private fail(kind: string, err: Error): void {
    this.counts[IPFIX_COUNTS.sendErrors]!++
    this.tell(kind, err)
  }

  private async connect(): Promise<void> {
    if (this.closed) return
    const { host, port } = this.o.target
    let address = host
    try {
      if (!isIP(host)) address = (await lookup(host, { family: isIP(host) === 6 ? 6 : 4 })).address
    } catch (err) {
      this.tell('resolve', new Error(`IPFIX collector ${host}: ${(err as Error).message}; retrying`))
      this.retryTimer = setTimeout(() => {
        this.connecting = this.connect()
      }, this.o.retryResolveMs ?? 10_000)
      this.retryTimer.unref()
      return
    }
    if (this.closed) return
    // connect(): one destination, and the kernel reports it unreachable on the socket
    await new Promise<void>((resolve) => {
      this.socket.once('error', () => resolve())
      this.socket.connect(port, address, () => {
        this.connected = true
        this.schedule()
        resolve()
      })
    })
  }

  private now(): number {
    return (this.o.now ?? Date.now)()
  }

  /** A flow-log sink (FlowLog.addSink): queue the record for the collector. */
  push(record: FlowRecord, input: FlowRecordInput): void {
    if (this.closed || this.queue.length >= (this.o.maxQueued ?? 16_384)) {
      this.counts[IPFIX_COUNTS.dropped]!++
      return
    }
    this.queue.push({ record, input })
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled || !this.connected || this.queue.length === 0) return
    this.scheduled = true
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.scheduled = false
    if (!this.connected || this.queue.length === 0) return
    const batch = this.queue
    this.queue = []
    const now = this.now()
    const refresh = now - this.templatesAt >= (this.o.templateRefreshMs ?? 60_000)
    if (refresh) this.templatesAt = now
    for (const { bytes, records: n } of this.encoder.encode(batch, now, refresh)) {
      // A message's records count once the kernel took it; a failed send loses them.
      this.inflight++
      this.socket.send(bytes, (err) => {
        this.inflight--
        if (err) {
          this.fail('send', err)
          this.counts[IPFIX_COUNTS.dropped]! += n
        } else {
          this.counts[IPFIX_COUNTS.messages]!++
          this.counts[IPFIX_COUNTS.exported]! += n
        }
        if (this.inflight === 0) this.drained?.()
      })
    }
  }

  /** Sends what is queued (when the collector's address is known), then closes the socket. */
  async close(): Promise<void> {
    if (this.closed) return
    clearTimeout(this.retryTimer)
    // a connect under way (the address is known or being resolved) gets a second to finish
    await Promise.race([this.connecting, new Promise((r) => setTimeout(r, 1000).unref())])
    if (this.connected) this.flush()
    else this.counts[IPFIX_COUNTS.dropped]! += this.queue.length
    this.queue = []
    this.closed = true
    if (this.inflight > 0) await new Promise<void>((r) => (this.drained = r))
    await new Promise<void>((r) => {
      try {
        this.socket.close(() => r())
      } catch {
        r()
      }
    })
  }
}
