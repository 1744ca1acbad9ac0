// Every operator metric, named once. One Registry per operator instance (tests run several in one
// process). Names follow flowgate_operator_<thing>_<unit>.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export type OperatorMetrics = ReturnType<typeof createMetrics>

export function createMetrics(registry = new Registry()) {
  const registers = [registry]
  /** the work queues whose depth is reported at scrape time */
  const queues: { name: string; depth: number }[] = []
  return {
    registry,
    queues,
    reconcileDuration: new Histogram({
      name: 'flowgate_operator_reconcile_duration_seconds',
      help: 'Time spent in one reconcile, by reconciler',
      labelNames: ['reconciler'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reconcileErrors: new Counter({
      name: 'flowgate_operator_reconcile_errors_total',
      help: 'Reconciles that failed and were requeued with backoff, by reconciler',
      labelNames: ['reconciler'] as const,
      registers,
    }),
    queueDepth: new Gauge({
      name: 'flowgate_operator_queue_depth_keys',
      help: 'Keys waiting in a work queue',
      labelNames: ['queue'] as const,
      registers,
      collect() {
        for (const q of queues) this.set({ queue: q.name }, q.depth)
      },
    }),
    pushes: new Counter({
      name: 'flowgate_operator_bundle_pushes_total',
      help: 'Bundle pushes to appliances that succeeded',
      registers,
    }),
    pushFailures: new Counter({
      name: 'flowgate_operator_push_failures_total',
      help: 'Bundle pushes or version checks to appliances that failed',
      labelNames: ['reason'] as const,
      registers,
    }),
    targetsRegistered: new Gauge({
      name: 'flowgate_operator_targets_registered_targets',
      help: 'Targets in the GWLB target group that are not draining, as last described',
      registers,
    }),
    targetChanges: new Counter({
      name: 'flowgate_operator_target_changes_total',
      help: 'Targets registered or deregistered by the operator',
      labelNames: ['change'] as const,
      registers,
    }),
    awsRetries: new Counter({
      name: 'flowgate_operator_aws_retries_total',
      help: 'ELBv2 calls retried, by operation and reason (throttled, server)',
      labelNames: ['operation', 'reason'] as const,
      registers,
    }),
    watchRestarts: new Counter({
      name: 'flowgate_operator_watch_restarts_total',
      help: 'Watch restarts by resource and reason (gone, error, silent, closed, relist)',
      labelNames: ['resource', 'reason'] as const,
      registers,
    }),
    leader: new Gauge({
      name: 'flowgate_operator_leader_status',
      help: '1 while this replica holds the Lease',
      registers,
    }),
    statusWrites: new Counter({
      name: 'flowgate_operator_status_writes_total',
      help: 'FlowPolicy status patches written',
      registers,
    }),
    usageReports: new Counter({
      name: 'flowgate_operator_usage_reports_total',
      help: 'Rule usage reads from appliances (GET /v1/rule-usage), by result (ok, error)',
      labelNames: ['result'] as const,
      registers,
    }),
    events: new Counter({
      name: 'flowgate_operator_events_total',
      help: 'Kubernetes Events emitted, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
  }
}
