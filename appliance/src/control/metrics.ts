// Every appliance metric, named once (STYLE.md). The packet loop never calls prom-client: it bumps plain
// numbers in typed arrays (the fast path's own counters, the I/O layer's stats), and prom-client reads
// them at scrape time through collect(). Label hashing per packet would cost more than the packet.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { CAPTURE_COUNTS, type CaptureTap } from '../capture/index.ts'
import { HTTP_METRICS, type HttpStats } from '../http/stats.ts'
import { TCP_METRIC_NAMES, TCP_STATE_LABELS, type TcpMetrics } from '../tcp/metrics.ts'
import type { AwsRequestCount } from '../visibility/aws-requests.ts'
import { HAR_COUNTS, type HarHub } from '../visibility/har-hub.ts'
import type { RuleHits } from '../visibility/rule-usage.ts'

export const DIRECTIONS = ['from-client', 'from-server'] as const

/** What the data plane exposes for scraping; all read-only from here. */
export interface DataplaneStats {
  /** outcome names (pass, drop, reject, rewrite, hold, divert) */
  outcomes: readonly string[]
  /** packets by [direction * outcomes.length + outcome] */
  packets: Float64Array
  bytes: Float64Array
  dropReasons: readonly string[]
  drops: Float64Array
  malformedReasons: readonly string[]
  malformed: Float64Array
  flows(): {
    active: number
    capacity: number
    created: number
    expired: number
    evicted: number
    refused: number
  }
  io(): { backend: string; rxPackets: number; txPackets: number; rxTruncated: number; txDropped: number }
  /** peek outcomes for flows held for their first bytes */
  peeks: { names: readonly string[]; counts: Float64Array }
  /** authorizer webhook outcomes */
  authorizations: { names: readonly string[]; counts: Float64Array }
  /** the user-space TCP stack terminating tcpProxy flows: its counters and the relay's outcomes */
  tcp?: { metrics: TcpMetrics; proxy: { names: readonly string[]; counts: Float64Array } }
  /** the HTTP layer's counters (http/stats.ts) */
  http?: HttpStats
  /** the L7 path's outcome per terminated flow (dataplane/interceptor.ts) */
  intercepts?: { names: readonly string[]; counts: Float64Array }
  /** flow records [written, dropped] when --flow-log is on */
  flowRecords?: Float64Array
}

/** Per-rule hit counters (visibility/rule-usage.ts), read at scrape time and by the admin API. */
export interface RuleUsageSource {
  snapshot(): RuleHits[]
}

/** AWS API requests seen on intercepted flows (visibility/aws-requests.ts); bounded label values. */
export interface AwsRequestsSource {
  snapshot(): AwsRequestCount[]
}

/** The IPFIX exporter's counters (flowlog/ipfix-exporter.ts): see IPFIX_COUNTS for the indexes. */
export interface IpfixStats {
  counts: Float64Array
}

export class ApplianceMetrics {
  readonly registry = new Registry()
  readonly decisionSeconds: Histogram
  readonly policyReloads: Counter<'result'>
  private readonly policyInfo: Gauge<'version' | 'source'>
  private readonly draining: Gauge
  private dp: DataplaneStats | undefined
  // Set by the packet path's visibility wiring once it is up (visibility/dataplane.ts); undefined before.
  // Read at scrape time here, and by the admin API (rule usage, captures, HAR exports).
  /** the rule hit counters (FastPath.usage) */
  ruleUsage: RuleUsageSource | undefined
  ipfix: IpfixStats | undefined
  /** live captures (capture/tap.ts) */
  capture: CaptureTap | undefined
  /** HAR entries (visibility/har-hub.ts): counters, and where GET /v1/har opens exports */
  har: HarHub | undefined
  awsRequests: AwsRequestsSource | undefined

  constructor() {
    const r = this.registry
    collectDefaultMetrics({ register: r, prefix: 'flowgate_appliance_' })
    // Counters mirror totals kept elsewhere (the packet loop, the visibility outputs): reset, then set to the
    // absolute value at scrape; nothing while the source is not there yet.
    const mirrorOf =
      <T>(source: () => T | undefined) =>
      (name: string, help: string, labelNames: string[], read: (c: Counter<string>, s: T) => void) =>
        new Counter({
          name,
          help,
          labelNames,
          registers: [r],
          collect() {
            this.reset()
            const s = source()
            if (s !== undefined) read(this, s)
          },
        })
    const dp = () => this.dp
    const mirror = mirrorOf(dp)
    const byDirection =
      (values: (s: DataplaneStats) => Float64Array) => (c: Counter<string>, s: DataplaneStats) => {
        const v = values(s)
        for (const [di, direction] of DIRECTIONS.entries()) {
          for (const [oi, verdict] of s.outcomes.entries()) {
            const n = v[di * s.outcomes.length + oi]!
            if (n) c.inc({ direction, verdict }, n)
          }
        }
      }
    const byReason =
      (names: (s: DataplaneStats) => readonly string[], values: (s: DataplaneStats) => Float64Array) =>
      (c: Counter<string>, s: DataplaneStats) => {
        const v = values(s)
        for (const [i, reason] of names(s).entries()) if (v[i]) c.inc({ reason }, v[i]!)
      }
    mirror(
      'flowgate_packets_total',
      'Inner packets, by direction and verdict',
      ['direction', 'verdict'],
      byDirection((s) => s.packets),
    )
    mirror(
      'flowgate_bytes_total',
      'Inner bytes, by direction and verdict',
      ['direction', 'verdict'],
      byDirection((s) => s.bytes),
    )
    mirror(
      'flowgate_drops_total',
      'Packets dropped, by reason',
      ['reason'],
      byReason(
        (s) => s.dropReasons,
        (s) => s.drops,
      ),
    )
    mirror(
      'flowgate_packets_malformed_total',
      'Datagrams that failed to parse, by reason',
      ['reason'],
      byReason(
        (s) => s.malformedReasons.slice(1),
        (s) => s.malformed.subarray(1),
      ),
    )
    mirror(
      'flowgate_flow_records_total',
      'Flow records written to the flow log, or dropped because its queue was full',
      ['result'],
      (c, s) => {
        const n = s.flowRecords
        if (!n) return
        if (n[0]) c.inc({ result: 'written' }, n[0])
        if (n[1]) c.inc({ result: 'dropped' }, n[1])
      },
    )
    mirror('flowgate_peeks_total', 'First-bytes peeks of held flows, by result', ['result'], (c, s) => {
      for (const [i, result] of s.peeks.names.entries())
        if (s.peeks.counts[i]) c.inc({ result }, s.peeks.counts[i]!)
    })
    mirror(
      'flowgate_authorizer_decisions_total',
      'Authorizer webhook outcomes (allow, deny, cached, error, timeout)',
      ['result'],
      (c, s) => {
        for (const [i, result] of s.authorizations.names.entries()) {
          if (s.authorizations.counts[i]) c.inc({ result }, s.authorizations.counts[i]!)
        }
      },
    )
    mirror('flowgate_flows_created_total', 'Flows created', [], (c, s) => c.inc(s.flows().created))
    mirror(
      'flowgate_flows_evicted_total',
      'Flows removed before their idle timeout, by reason',
      ['reason'],
      (c, s) => {
        const f = s.flows()
        if (f.evicted) c.inc({ reason: 'pressure' }, f.evicted)
        if (f.expired) c.inc({ reason: 'idle' }, f.expired)
        if (f.refused) c.inc({ reason: 'refused' }, f.refused)
      },
    )
    mirror('flowgate_io_packets_total', 'Geneve datagrams through the I/O layer', ['direction'], (c, s) => {
      const io = s.io()
      c.inc({ direction: 'rx' }, io.rxPackets)
      c.inc({ direction: 'tx' }, io.txPackets)
    })
    mirror('flowgate_io_errors_total', 'Datagrams the I/O layer could not handle', ['kind'], (c, s) => {
      const io = s.io()
      if (io.rxTruncated) c.inc({ kind: 'rx_truncated' }, io.rxTruncated)
      if (io.txDropped) c.inc({ kind: 'tx_dropped' }, io.txDropped)
    })
    // The TCP stack's counters under their names in tcp/metrics.ts; two of them are gauges.
    for (const [key, name] of Object.entries(TCP_METRIC_NAMES) as [keyof TcpMetrics, string][]) {
      if (key === 'connectionsByState') {
        new Gauge({
          name,
          help: 'User-space TCP connections, by state',
          labelNames: ['state'],
          registers: [r],
          collect() {
            this.reset()
            const m = dp()?.tcp?.metrics
            if (m)
              for (const [i, state] of TCP_STATE_LABELS.entries())
                this.set({ state }, m.connectionsByState[i] ?? 0)
          },
        })
      } else if (key === 'outOfOrderBytes') {
        new Gauge({
          name,
          help: 'User-space TCP: bytes held in out-of-order queues',
          registers: [r],
          collect() {
            this.set(dp()?.tcp?.metrics.outOfOrderBytes ?? 0)
          },
        })
      } else {
        mirror(name, `User-space TCP: ${key}`, [], (c, s) => {
          const v = s.tcp?.metrics[key]
          if (typeof v === 'number' && v) c.inc(v)
        })
      }
    }
    mirror(
      'flowgate_tcp_proxy_flows_total',
      'Flows terminated by the TCP proxy (tcpProxy), by result (relayed, refused, upstream_failed, limit)',
      ['result'],
      (c, s) => {
        const p = s.tcp?.proxy
        if (p) for (const [i, result] of p.names.entries()) if (p.counts[i]) c.inc({ result }, p.counts[i]!)
      },
    )
    // One series per entry of the bundle in force (its rules and default actions): bounded by the bundle.
    const usage = () => this.ruleUsage
    mirrorOf(usage)(
      'flowgate_rule_hits_total',
      'Flows (and HTTP requests of intercepted flows) decided by each rule; rule "defaultAction" is the policy\'s default action',
      ['policy', 'rule'],
      (c, u) => {
        for (const x of u.snapshot()) c.inc({ policy: x.policy, rule: x.rule ?? 'defaultAction' }, x.hits)
      },
    )
    new Gauge({
      name: 'flowgate_rule_last_hit_timestamp_seconds',
      help: 'When each rule last decided a flow or request (unix seconds); absent for rules never hit',
      labelNames: ['policy', 'rule'],
      registers: [r],
      collect() {
        this.reset()
        for (const u of usage()?.snapshot() ?? [])
          if (u.lastHit !== null)
            this.set({ policy: u.policy, rule: u.rule ?? 'defaultAction' }, u.lastHit / 1000)
      },
    })
    const ipfix = mirrorOf(() => this.ipfix?.counts)
    ipfix(
      'flowgate_ipfix_records_total',
      'Flow records exported over IPFIX, or dropped (queue full, collector unreachable, send error)',
      ['result'],
      (c, n) => {
        if (n[0]) c.inc({ result: 'exported' }, n[0])
        if (n[1]) c.inc({ result: 'dropped' }, n[1])
      },
    )
    ipfix('flowgate_ipfix_messages_total', 'IPFIX messages sent to the collector', [], (c, n) => {
      if (n[2]) c.inc(n[2])
    })
    const tap = () => this.capture
    new Gauge({
      name: 'flowgate_captures_active',
      help: 'Live captures running (GET /v1/capture)',
      registers: [r],
      collect() {
        this.set(tap()?.size ?? 0)
      },
    })
    const captureCounts = mirrorOf(() => tap()?.counts)
    captureCounts(
      'flowgate_capture_packets_total',
      'Packets taken by live captures, or dropped because a capture queue was full',
      ['result'],
      (c, n) => {
        if (n[CAPTURE_COUNTS.captured]) c.inc({ result: 'captured' }, n[CAPTURE_COUNTS.captured])
        if (n[CAPTURE_COUNTS.dropped]) c.inc({ result: 'dropped' }, n[CAPTURE_COUNTS.dropped])
      },
    )
    captureCounts(
      'flowgate_capture_secrets_total',
      'TLS key log lines written into live captures, or dropped because a capture fell behind',
      ['result'],
      (c, n) => {
        if (n[CAPTURE_COUNTS.secrets]) c.inc({ result: 'written' }, n[CAPTURE_COUNTS.secrets])
        if (n[CAPTURE_COUNTS.secretsDropped]) c.inc({ result: 'dropped' }, n[CAPTURE_COUNTS.secretsDropped])
      },
    )
    mirrorOf(() => this.awsRequests)(
      'flowgate_aws_api_requests_total',
      'SigV4-signed requests on intercepted flows, by AWS account (from the access key id; the first 64 seen, then "other"; "unknown" when the key carries none) and service (the first 32 seen, then "other")',
      ['account', 'service'],
      (c, a) => {
        for (const x of a.snapshot()) c.inc({ account: x.account, service: x.service }, x.requests)
      },
    )
    const har = () => this.har
    mirrorOf(har)(
      'flowgate_har_entries_total',
      'HAR entries of intercepted exchanges: recorded, and copies written to or dropped by a sink (live export, --har-dir) that had no room',
      ['result'],
      (c, h) => {
        for (const [result, i] of Object.entries(HAR_COUNTS)) if (h.counts[i]) c.inc({ result }, h.counts[i])
      },
    )
    mirrorOf(har)(
      'flowgate_har_bodies_cut_total',
      "HAR bodies cut short of their policy's maxBodyBytes because recordings in flight held the memory bound",
      [],
      (c, h) => {
        if (h.budget.cut) c.inc(h.budget.cut)
      },
    )
    new Gauge({
      name: 'flowgate_har_exports_active',
      help: 'Live HAR exports running (GET /v1/har)',
      registers: [r],
      collect() {
        this.set(har()?.size ?? 0)
      },
    })
    // The HTTP layer names its own counters (HTTP_METRICS): plain numbers, or records over a label's values.
    for (const [key, m] of Object.entries(HTTP_METRICS) as [
      keyof HttpStats,
      (typeof HTTP_METRICS)[keyof HttpStats],
    ][]) {
      const label = 'label' in m ? m.label : undefined
      mirror(m.name, m.help, label ? [label] : [], (c, s) => {
        const v = s.http?.[key]
        if (v === undefined) return
        if (typeof v === 'number') {
          if (v) c.inc(v)
          return
        }
        for (const [k, n] of Object.entries(v as Record<string, number>)) if (n) c.inc({ [label!]: k }, n)
      })
    }
    mirror(
      'flowgate_l7_flows_total',
      'Flows the L7 path took, by outcome (intercepted, http, relayed*, denied, upstream_cert_rejected, client_rejected_cert, ...)',
      ['result'],
      (c, s) => {
        const p = s.intercepts
        if (p) for (const [i, result] of p.names.entries()) if (p.counts[i]) c.inc({ result }, p.counts[i]!)
      },
    )
    const gauge = (name: string, help: string, read: (s: DataplaneStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          const s = dp()
          this.set(s ? read(s) : 0)
        },
      })
    gauge('flowgate_flows_active', 'Flows in the table', (s) => s.flows().active)
    gauge('flowgate_flow_table_capacity', 'Flow table capacity', (s) => s.flows().capacity)
    this.decisionSeconds = new Histogram({
      name: 'flowgate_decision_duration_seconds',
      help: 'Policy decision latency (new flows and L7 re-decisions)',
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

  attachDataplane(stats: DataplaneStats): void {
    this.dp = stats
  }

  setPolicy(version: string, source: string): void {
    this.policyInfo.reset()
    this.policyInfo.set({ version, source }, 1)
  }

  setDraining(on: boolean): void {
    this.draining.set(on ? 1 : 0)
  }
}
