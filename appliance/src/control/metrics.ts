// Every appliance metric, named once (STYLE.md). The packet loop never calls prom-client: it bumps
// plain numbers in typed arrays indexed by small integer codes, and prom-client reads them at scrape
// time through collect(). Label hashing per packet would cost more than the packet.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** A family of counters over a fixed label set, cheap to bump from the hot path. */
export class CounterFamily {
  readonly values: Float64Array
  readonly labels: readonly string[]
  constructor(labels: readonly string[]) {
    this.labels = labels
    this.values = new Float64Array(labels.length)
  }
  inc(code: number, by = 1): void {
    this.values[code]! += by
  }
  get(label: string): number {
    return this.values[this.labels.indexOf(label)] ?? 0
  }
}

export const DIRECTIONS = ['from-client', 'from-server'] as const
export const VERDICTS = ['pass', 'drop', 'reject', 'rewrite', 'hold', 'inspect', 'audit-pass'] as const
export type Direction = (typeof DIRECTIONS)[number]
export type Verdict = (typeof VERDICTS)[number]

export interface MetricsOptions {
  /** reasons a packet is dropped after parsing (policy, packet rule, table full, …) */
  dropReasons: readonly string[]
  /** reasons a packet fails to parse; the codec's list */
  malformedReasons: readonly string[]
  flowEvictionReasons: readonly string[]
}

export class ApplianceMetrics {
  readonly registry = new Registry()
  /** index: direction * VERDICTS.length + verdict */
  readonly packets = new Float64Array(DIRECTIONS.length * VERDICTS.length)
  readonly bytes = new Float64Array(DIRECTIONS.length * VERDICTS.length)
  readonly drops: CounterFamily
  readonly malformed: CounterFamily
  readonly flowsEvicted: CounterFamily
  flowsCreated = 0
  flowsActive = 0
  flowTableCapacity = 0
  readonly decisionSeconds: Histogram
  readonly policyReloads: Counter<'result'>
  private readonly policyInfo: Gauge<'version' | 'source'>
  private readonly draining: Gauge

  constructor(opts: MetricsOptions) {
    this.drops = new CounterFamily(opts.dropReasons)
    this.malformed = new CounterFamily(opts.malformedReasons)
    this.flowsEvicted = new CounterFamily(opts.flowEvictionReasons)
    const r = this.registry
    collectDefaultMetrics({ register: r, prefix: 'flowgate_appliance_' })
    // Counters mirror totals kept by the packet loop: reset, then set to the absolute value at scrape.
    const mirror = (name: string, help: string, labelNames: string[], read: (c: Counter<string>) => void) =>
      new Counter({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset()
          read(this)
        },
      })
    const byDirVerdict = (values: Float64Array) => (c: Counter<string>) => {
      for (const [di, direction] of DIRECTIONS.entries()) {
        for (const [vi, verdict] of VERDICTS.entries()) {
          const n = values[di * VERDICTS.length + vi]!
          if (n) c.inc({ direction, verdict }, n)
        }
      }
    }
    const byReason = (fam: CounterFamily) => (c: Counter<string>) =>
      fam.labels.forEach((reason, i) => {
        const n = fam.values[i]!
        if (n) c.inc({ reason }, n)
      })
    mirror(
      'flowgate_packets_total',
      'Inner packets handled, by direction and verdict',
      ['direction', 'verdict'],
      byDirVerdict(this.packets),
    )
    mirror(
      'flowgate_bytes_total',
      'Inner bytes handled, by direction and verdict',
      ['direction', 'verdict'],
      byDirVerdict(this.bytes),
    )
    mirror(
      'flowgate_drops_total',
      'Packets dropped after parsing, by reason',
      ['reason'],
      byReason(this.drops),
    )
    mirror(
      'flowgate_packets_malformed_total',
      'Datagrams that failed to parse, by reason',
      ['reason'],
      byReason(this.malformed),
    )
    mirror(
      'flowgate_flows_evicted_total',
      'Flows removed from the table, by reason',
      ['reason'],
      byReason(this.flowsEvicted),
    )
    mirror('flowgate_flows_created_total', 'Flows created', [], (c) => c.inc(this.flowsCreated))
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          this.set(read())
        },
      })
    gauge('flowgate_flows_active', 'Flows in the table', () => this.flowsActive)
    gauge('flowgate_flow_table_capacity', 'Flow table capacity', () => this.flowTableCapacity)
    this.decisionSeconds = new Histogram({
      name: 'flowgate_decision_duration_seconds',
      help: 'Policy decision latency per new flow',
      buckets: [0.5e-6, 1e-6, 2e-6, 5e-6, 10e-6, 50e-6, 200e-6, 1e-3],
      registers: [r],
    })
    this.policyReloads = new Counter({
      name: 'flowgate_policy_reloads_total',
      help: 'Policy loads, by result (ok, rejected)',
      labelNames: ['result'],
      registers: [r],
    })
    this.policyInfo = new Gauge({
      name: 'flowgate_policy_info',
      help: 'The policy bundle in force (value 1), by version and source',
      labelNames: ['version', 'source'],
      registers: [r],
    })
    this.draining = new Gauge({
      name: 'flowgate_draining',
      help: '1 while the appliance drains',
      registers: [r],
    })
  }

  setPolicy(version: string, source: string): void {
    this.policyInfo.reset()
    this.policyInfo.set({ version, source }, 1)
  }

  setDraining(on: boolean): void {
    this.draining.set(on ? 1 : 0)
  }
}
