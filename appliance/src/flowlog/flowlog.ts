// When to write flow records, reading the flow table's columns: the final record when a flow ends, and a
// periodic one for long-lived flows. A flow "ends" for the log at the first of:
// - it is idle past its timeout: found by the scan below (every `scanMs`), since the table's own sweep
//   walks only a slice of the table per tick and may reach the flow many seconds later;
// - it leaves the table (eviction, or expiry before the scan saw it): FlowTable's onRemove;
// - its TCP connection closed (FIN both ways, or a RST) or it was denied/rejected, and it has then been
//   quiet for `quietMs` (so the last ACK and retransmitted FINs land in the same record): found by a scan
//   every `scanMs`. The table keeps such flows for its closing timeout (30 s), far past the 5 s budget.
// Packets after that final record (late retransmissions) are reported when the flow leaves the table.
// A flow that ends by leaving the table always gets a record ('expired'/'evicted'), with zero counts when
// its last periodic record already had every packet: the record marks the end.
//
// Per flow we keep the counts at its last record (so each record carries counts since the previous one),
// when that record was written, and whether the final one was. Entry numbers are reused, so all of it is
// reset in onRemove, which FlowTable calls before the entry can be reused.

import type { Decision } from '../../../policy/src/engine/index.ts'
import { Verdict } from '../fastpath/counters.ts'
import { FlowState, type FlowTable, type RemoveReason } from '../flow/table.ts'
import {
  buildFlowRecord,
  type FlowL7,
  type FlowRecord,
  type FlowRecordInput,
  MAX_FLOW_ACCOUNTS,
  type RecordReason,
} from './record.ts'
import { FlowLogWriter } from './writer.ts'

/** Another output for the same records (the IPFIX exporter); push must not block. */
export interface FlowRecordSink {
  /** `input` has what the JSON record rounds or formats away: raw addresses, times in ms */
  push(record: FlowRecord, input: FlowRecordInput): void
  close(): Promise<void>
}

export interface FlowLogOptions {
  /** where records go (FlowLogWriter.push); must not block */
  sink?: (record: FlowRecord, input: FlowRecordInput) => void
  /** the flow's current decision (FastPath.decisionOf) */
  decisionOf: (flow: number) => Decision | undefined
  /** a long-lived flow gets a record this often (default 60 s) */
  intervalMs?: number
  /** quiet time after a close or deny before the final record (default 1 s) */
  quietMs?: number
  /** how often the table is scanned for closed and long-lived flows (default 1 s) */
  scanMs?: number
  /**
   * Records one scan may write (default 4096, ~5 ms of the loop): flows created together come due
   * together, and 200,000 periodic records at once would stall the loop for 200 ms and overflow the queue.
   * The rest are written by the next scans, each starting where the last one stopped.
   */
  maxRecordsPerScan?: number
}

const CLOSED_FINS = FlowState.finOrig | FlowState.finReply

export class FlowLog {
  readonly intervalMs: number
  readonly quietMs: number
  readonly scanMs: number
  readonly maxRecordsPerScan: number
  private cursor = 0
  private flows: FlowTable | undefined
  private readonly o: FlowLogOptions
  private basePackets = new Float64Array(0)
  private baseBytes = new Float64Array(0)
  /** when the flow's last record was written (ms), 0 if none */
  private reportedAt = new Float64Array(0)
  /** 1 once the flow's final record is written */
  private done = new Uint8Array(0)
  private readonly l7 = new Map<number, FlowL7>()
  private lastScan = 0
  private readonly sinks: FlowRecordSink[] = []
  /** set when the log owns its output (FlowLog.open) */
  writer: FlowLogWriter | undefined

  constructor(o: FlowLogOptions) {
    this.o = o
    this.intervalMs = o.intervalMs ?? 60_000
    this.quietMs = o.quietMs ?? 1000
    this.scanMs = o.scanMs ?? 1000
    this.maxRecordsPerScan = o.maxRecordsPerScan ?? 4096
  }

  /**
   * A log writing JSON lines to `target` (`-` is stdout, else a file appended to) through a bounded queue;
   * `''`: no JSON output, the records go only to sinks added with addSink (IPFIX alone).
   */
  static open(target: string, o: Omit<FlowLogOptions, 'sink'>): FlowLog {
    if (target === '') return new FlowLog(o)
    const writer = FlowLogWriter.open(target)
    const log = new FlowLog({ ...o, sink: (r) => writer.push(r) })
    log.writer = writer
    return log
  }

  /** Sends every record to `sink` as well, from now on; FlowLog.close closes it. */
  addSink(sink: FlowRecordSink): void {
    this.sinks.push(sink)
  }

  /** On shutdown: a final record ('removed') for every flow still in the table, then the outputs closed. */
  async close(): Promise<void> {
    const f = this.flows
    if (f)
      for (const i of f.live()) if (!this.done[i] || this.hasNew(f, i)) this.emit(f, i, 'removed', f.last[i]!)
    await Promise.all([this.writer?.close(), ...this.sinks.map((s) => s.close())])
  }

  /** Binds the table (created with `onRemove: (i, r) => log.onRemove(i, r)`). */
  attach(flows: FlowTable): void {
    const cap = flows.capacity
    this.flows = flows
    this.basePackets = new Float64Array(cap * 2)
    this.baseBytes = new Float64Array(cap * 2)
    this.reportedAt = new Float64Array(cap)
    this.done = new Uint8Array(cap)
  }

  /** L7 facts learnt by a peek (SNI, Host), for the flow's records. */
  noteL7(flow: number, l7: FlowL7): void {
    if (!this.flows?.isLive(flow)) return
    const accounts = this.l7.get(flow)?.awsAccountIds
    this.l7.set(flow, accounts ? { ...l7, awsAccountIds: accounts } : l7)
  }

  /** An AWS account a request on the flow was signed for (entry `flow` of generation `gen`). */
  noteAwsAccount(flow: number, gen: number, account: string): void {
    const f = this.flows
    if (!f?.isLive(flow) || f.gen[flow] !== gen) return
    let l7 = this.l7.get(flow)
    if (!l7) {
      l7 = {}
      this.l7.set(flow, l7)
    }
    const ids = l7.awsAccountIds ?? []
    l7.awsAccountIds = ids
    if (ids.length < MAX_FLOW_ACCOUNTS && !ids.includes(account)) ids.push(account)
  }

  onRemove(i: number, reason: RemoveReason): void {
    const f = this.flows
    if (!f) return
    if (!this.done[i] || this.hasNew(f, i)) this.emit(f, i, reason, f.last[i]!)
    this.basePackets[2 * i] = this.basePackets[2 * i + 1] = 0
    this.baseBytes[2 * i] = this.baseBytes[2 * i + 1] = 0
    this.reportedAt[i] = 0
    this.done[i] = 0
    this.l7.delete(i)
  }

  /**
   * Called from the loop's sweep timer; scans at most every scanMs, or at the next call when the last
   * scan stopped at its record budget.
   */
  tick(now: number): void {
    const f = this.flows
    if (!f || now - this.lastScan < this.scanMs) return
    this.lastScan = now
    const cap = f.capacity
    const state = f.state
    let written = 0
    let i = this.cursor
    for (let n = 0; n < cap; n++, i = i + 1 === cap ? 0 : i + 1) {
      const st = state[i]!
      if (!(st & FlowState.used)) continue
      if (written >= this.maxRecordsPerScan) {
        this.cursor = i
        this.lastScan = 0
        return
      }
      if (!this.done[i] && f.isExpired(i, now)) {
        // Idle past its timeout: the table's sweep, which walks a slice of the table per tick, may take
        // a while to get here, so the record does not wait for it.
        this.emit(f, i, 'expired', now)
        this.done[i] = 1
        written++
      } else if (!this.done[i] && this.ended(f, i, st) && now - f.last[i]! >= this.quietMs) {
        this.emit(f, i, 'closed', now)
        this.done[i] = 1
        written++
      } else if (now - Math.max(f.created[i]!, this.reportedAt[i]!) >= this.intervalMs) {
        // A silent interval writes nothing (as VPC); the next window starts now.
        if (this.hasNew(f, i)) {
          this.emit(f, i, 'active', now)
          written++
        } else this.reportedAt[i] = now
      }
    }
  }

  private ended(f: FlowTable, i: number, st: number): boolean {
    if (st & FlowState.tcp && (st & FlowState.rst || (st & CLOSED_FINS) === CLOSED_FINS)) return true
    const v = f.verdict[i]!
    return v === Verdict.deny || v === Verdict.reject
  }

  private hasNew(f: FlowTable, i: number): boolean {
    return (
      f.packets[2 * i]! !== this.basePackets[2 * i]! || f.packets[2 * i + 1]! !== this.basePackets[2 * i + 1]!
    )
  }

  private emit(f: FlowTable, i: number, reason: RecordReason, now: number): void {
    const p0 = f.packets[2 * i]!
    const p1 = f.packets[2 * i + 1]!
    const b0 = f.bytes[2 * i]!
    const b1 = f.bytes[2 * i + 1]!
    const since = this.reportedAt[i]!
    const input: FlowRecordInput = {
      key: f.keyOf(i),
      startMs: since === 0 ? f.created[i]! : since,
      endMs: f.last[i]!,
      packets: [p0 - this.basePackets[2 * i]!, p1 - this.basePackets[2 * i + 1]!],
      bytes: [b0 - this.baseBytes[2 * i]!, b1 - this.baseBytes[2 * i + 1]!],
      tcpFlags: f.tcpFlags[i]!,
      decision: this.l7.get(i)?.decision ?? this.o.decisionOf(i),
      l7: this.l7.get(i),
      reason,
    }
    const record = buildFlowRecord(input)
    this.basePackets[2 * i] = p0
    this.basePackets[2 * i + 1] = p1
    this.baseBytes[2 * i] = b0
    this.baseBytes[2 * i + 1] = b1
    this.reportedAt[i] = now
    // flags since the previous record, as VPC ORs them per aggregation window
    f.tcpFlags[i] = 0
    this.o.sink?.(record, input)
    for (const s of this.sinks) s.push(record, input)
  }
}
