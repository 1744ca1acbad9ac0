// `flowgate operator`: wires the informers, work queues, reconcilers, leader election and the metrics
// server together. Level-based: every reconcile recomputes what should be from the caches and converges
// the world to it, so a missed event only delays convergence until the next event or resync.
//
//   FlowPolicy watch ──► queue "policies" ──► compile bundle, write status, emit Events
//                                      │ new bundle
//   Pod watch ─────────► queue "appliances" (one key per pod) ──► verify / push bundle
//                                      │ version seen changes
//                        queue "targets" ──► DescribeTargetHealth → Register/DeregisterTargets
//
// Informers run on every replica (a standby keeps warm caches); the queues' workers run only on the
// leader, and every write checks the leader's abort signal first.
import { hostname } from 'node:os'
import type { ElasticLoadBalancingV2ClientConfig } from '@aws-sdk/client-elastic-load-balancing-v2'
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node'
import pino, { type Logger } from 'pino'
import type { RuleUsageReport } from '../../appliance/src/admin/plugin.ts'
import { TokenFile } from '../../appliance/src/admin/tokens.ts'
import { type ConfigBundle, compile } from '../../policy/src/bundle.ts'
import type { DefaultAction } from '../../policy/src/schema.ts'
import { GROUP, PLURAL, VERSION } from '../../policy/src/schema.ts'
import { ApplianceClient } from './appliance-client.ts'
import { type TargetGroupApi, TargetGroupClient } from './aws/elbv2.ts'
import { errorMessage, OperatorError, OperatorErrorCodes } from './errors.ts'
import { withTimeout } from './kube/backoff.ts'
import { Informer, type KubeObject } from './kube/informer.ts'
import { WorkQueue } from './kube/workqueue.ts'
import { LeaderElector } from './leader/lease.ts'
import { createMetrics, type OperatorMetrics } from './metrics.ts'
import { type ApplianceView, applianceView, isPushTarget, pushAction } from './reconcilers/appliances.ts'
import {
  bundleRefs,
  desiredStatus,
  type FlowPolicyObject,
  newlyRejected,
  policyRef,
  statusPatch,
} from './reconcilers/policies.ts'
import { planTargets } from './reconcilers/targets.ts'
import { desiredRules, ruleNamesByPolicy, rulesPatch, sumUsage } from './reconcilers/usage.ts'
import { startServer } from './server.ts'

export const CONTROLLER_NAME = 'flowgate.io/operator'

/** Options of `flowgate operator`. Every duration is in milliseconds. */
export interface OperatorOptions {
  /** defaults to KubeConfig.loadFromDefault(): $KUBECONFIG, ~/.kube/config, or in-cluster */
  kubeConfig?: KubeConfig
  /** namespace of the appliance pods and of the Lease */
  namespace: string
  /** label selector of the appliance pods */
  applianceSelector?: string
  /** admin API port when the pod declares no container port named "admin" */
  adminPort?: number
  /** 'https' in production (the token must not cross the network in clear); 'http' for tests */
  adminScheme?: 'http' | 'https'
  /** PEM of the CA that signs the appliances' serving certificates */
  adminCa?: string | Buffer
  /**
   * the name the appliances' serving certificates are verified against: pods are dialled by IP, and
   * their certificate names the appliance Service (e.g. flowgate-appliance.flowgate-system.svc)
   */
  adminServerName?: string
  adminTimeoutMs?: number
  /** the mounted Secret file with the admin bearer token(s) */
  tokenFile: string
  /** GWLB target group; without it the targets reconciler is off */
  targetGroupArn?: string
  /** AWS region (else from the environment) */
  region?: string
  /** extra ELBv2 client configuration (endpoint, credentials) — tests point it at a local server */
  elbv2?: ElasticLoadBalancingV2ClientConfig
  /** injectable ELBv2 implementation; defaults to TargetGroupClient */
  targetGroup?: TargetGroupApi
  /** what flows no policy decides get */
  fleetDefault?: DefaultAction
  /** this replica's name in the Lease (default hostname_pid) */
  identity?: string
  leaseName?: string
  leaseDurationMs?: number
  renewDeadlineMs?: number
  retryPeriodMs?: number
  /** re-enqueue everything this often (appliances are re-verified, strays looked for) */
  resyncMs?: number
  /** relist every resource this often */
  relistMs?: number
  /** restart a watch silent for this long */
  watchSilenceMs?: number
  /** base and cap of the per-key retry backoff */
  retryBaseMs?: number
  retryMaxMs?: number
  /** base and cap of the watch and ELBv2 backoff */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** coalesce status updates triggered by appliance progress over this window */
  statusDelayMs?: number
  /**
   * coalesce target reconciles triggered by pod and appliance changes over this window: each one costs a
   * DescribeTargetHealth, and Describe* calls share a per-account bucket (40, refilling 10/s)
   */
  targetsDelayMs?: number
  /** appliance pushes in flight at once */
  pushConcurrency?: number
  /**
   * how often rule usage is read from every appliance and written to FlowPolicy status.rules (default
   * 30 s; 0: never). A policy's status is patched at most this often, and only when its usage changed.
   */
  usageIntervalMs?: number
  /** namespace for Events about cluster-scoped FlowPolicies (Kubernetes puts those in "default") */
  eventsNamespace?: string
  /** metrics/health server; false to not start one */
  listen?: { host?: string; port?: number } | false
  logger?: Logger
  /** install SIGTERM/SIGINT handlers that stop the operator gracefully (the CLI sets this) */
  handleSignals?: boolean
}

export interface RunningOperator {
  readonly identity: string
  readonly metrics: OperatorMetrics
  /** base URL of the metrics/health server, when started */
  readonly url: string | undefined
  isLeader(): boolean
  /** the bundle the operator currently pushes */
  bundle(): ConfigBundle | undefined
  /** what each appliance (namespace/name) last reported running */
  applianceVersions(): ReadonlyMap<string, string>
  /** graceful: stop writing, release the Lease, stop watches, close the server */
  stop(): Promise<void>
  /** resolves when the operator has stopped */
  readonly stopped: Promise<void>
}

type FlowPolicyResource = KubeObject & { status?: FlowPolicyObject['status']; spec?: unknown }

const POLICIES_KEY = 'policies'
const TARGETS_KEY = 'targets'
const USAGE_KEY = 'usage'
/** rule usage reads in flight at once */
const USAGE_CONCURRENCY = 16

export async function runOperator(o: OperatorOptions): Promise<RunningOperator> {
  const log = o.logger ?? pino({ name: 'flowgate-operator' })
  const kc = o.kubeConfig ?? defaultKubeConfig()
  const identity = o.identity ?? `${hostname()}_${process.pid}`
  const metrics = createMetrics()
  const custom = kc.makeApiClient(CustomObjectsApi)
  const core = kc.makeApiClient(CoreV1Api)
  const events = kc.makeApiClient(EventsV1Api)
  const watch = new Watch(kc)
  const tokens = new TokenFile({ path: o.tokenFile })
  const appliancesClient = new ApplianceClient({
    tokens,
    scheme: o.adminScheme ?? 'https',
    ...(o.adminCa ? { ca: o.adminCa } : {}),
    ...(o.adminServerName ? { serverName: o.adminServerName } : {}),
    ...(o.adminTimeoutMs ? { timeoutMs: o.adminTimeoutMs } : {}),
  })
  const resyncMs = o.resyncMs ?? 60_000
  const targetsDelayMs = o.targetsDelayMs ?? 1000
  const backoff = { backoffBaseMs: o.backoffBaseMs ?? 200, backoffMaxMs: o.backoffMaxMs ?? 30_000 }
  const targetGroup: TargetGroupApi | undefined =
    o.targetGroup ??
    (o.targetGroupArn
      ? new TargetGroupClient({
          targetGroupArn: o.targetGroupArn,
          client: { ...(o.region ? { region: o.region } : {}), ...o.elbv2 },
          ...backoff,
          onRetry: (operation, reason) => metrics.awsRetries.inc({ operation, reason }),
        })
      : undefined)

  // ------------------------------------------------------------------ state shared by the reconcilers
  let bundle: ConfigBundle | undefined
  /** contents of the bundles we produced, by version (bounded), to tell what an appliance runs */
  const bundleContents = new Map<string, Set<string>>()
  /** last version each appliance reported, by pod key */
  const versions = new Map<string, string>()
  /** pod uid and restart count at the time the version was seen: a restart makes it stale */
  const versionSeenAt = new Map<string, string>()
  /** what we last wrote per policy, to skip a rewrite before our own watch event comes back */
  const lastWritten = new Map<string, { rv: string; status: string }>()

  // ------------------------------------------------------------------ queues
  const queueOpts = (name: string) => ({
    name,
    baseDelayMs: o.retryBaseMs ?? 50,
    maxDelayMs: o.retryMaxMs ?? 120_000,
    onProcessed: (_key: string, seconds: number, error: unknown) => {
      metrics.reconcileDuration.observe({ reconciler: name }, seconds)
      if (error) {
        metrics.reconcileErrors.inc({ reconciler: name })
        log.warn({ reconciler: name, key: _key, err: errorMessage(error) }, 'reconcile failed; will retry')
      }
    },
  })
  const policiesQ = new WorkQueue(queueOpts('policies'))
  const appliancesQ = new WorkQueue({ ...queueOpts('appliances'), concurrency: o.pushConcurrency ?? 32 })
  const targetsQ = new WorkQueue(queueOpts('targets'))
  const usageQ = new WorkQueue(queueOpts('usage'))
  const queues = [policiesQ, appliancesQ, targetsQ, usageQ]
  const usageIntervalMs = o.usageIntervalMs ?? 30_000
  metrics.queues.push(...queues)

  // ------------------------------------------------------------------ informers
  const onRestart = (resource: string) => (reason: string) => metrics.watchRestarts.inc({ resource, reason })
  const informerCommon = {
    watch,
    silenceMs: o.watchSilenceMs ?? 90_000,
    relistMs: o.relistMs ?? 600_000,
    ...backoff,
    log: (msg: string, fields?: Record<string, unknown>) => log.warn(fields ?? {}, msg),
  }
  const policies = new Informer<FlowPolicyResource>({
    ...informerCommon,
    name: 'flowpolicies',
    path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
    list: (q) =>
      custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        limit: q.limit,
        ...(q.continue ? { _continue: q.continue } : {}),
      }),
    onChange: () => policiesQ.add(POLICIES_KEY),
    onRestart: onRestart('flowpolicies'),
  })
  const selector = o.applianceSelector ?? 'app.kubernetes.io/name=flowgate-appliance'
  const pods = new Informer<V1Pod & KubeObject>({
    ...informerCommon,
    name: 'pods',
    path: `/api/v1/namespaces/${o.namespace}/pods`,
    query: { labelSelector: selector },
    list: (q) =>
      core.listNamespacedPod({
        namespace: o.namespace,
        labelSelector: selector,
        limit: q.limit,
        ...(q.continue ? { _continue: q.continue } : {}),
      }) as Promise<{
        items: (V1Pod & KubeObject)[]
        metadata?: { resourceVersion?: string; _continue?: string }
      }>,
    onChange: (_event, pod) => {
      appliancesQ.add(`${pod.metadata?.namespace}/${pod.metadata?.name}`)
      targetsQ.addAfter(TARGETS_KEY, targetsDelayMs)
      policiesQ.addAfter(POLICIES_KEY, o.statusDelayMs ?? 200)
    },
    onRestart: onRestart('pods'),
  })

  const appliances = (): ApplianceView[] => pods.list().map((p) => applianceView(p, o.adminPort ?? 9443))

  const mustLead = (signal: AbortSignal) => {
    if (signal.aborted) throw new OperatorError(OperatorErrorCodes.notLeader, 'not the leader any more')
  }

  // ------------------------------------------------------------------ policies reconciler
  async function reconcilePolicies(_key: string, signal: AbortSignal): Promise<undefined> {
    const objs = policies
      .list()
      .sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1))
    // Judge only what the user wrote: status and server-owned metadata (managedFields, timestamps) are
    // not the policy, and a malformed status written by someone else must not reject it.
    const docs = objs.map((x) => ({
      apiVersion: x.apiVersion,
      kind: x.kind,
      metadata: {
        name: x.metadata?.name,
        ...(x.metadata?.generation !== undefined ? { generation: x.metadata.generation } : {}),
      },
      spec: x.spec,
    }))
    const result = compile(docs, { fleetDefault: o.fleetDefault ?? 'Allow' })
    if (result.bundle.version !== bundle?.version) {
      bundle = result.bundle
      bundleContents.set(bundle.version, bundleRefs(bundle))
      // Remember the last few bundles only: an appliance older than that counts as not programmed.
      while (bundleContents.size > 16) bundleContents.delete(bundleContents.keys().next().value!)
      log.info({ version: bundle.version, policies: bundle.policies.length }, 'new bundle')
      for (const a of appliances()) if (isPushTarget(a)) appliancesQ.add(a.key)
    }
    const fleet = appliances().filter(isPushTarget)
    const now = new Date().toISOString()
    const failures: unknown[] = []
    for (let i = 0; i < objs.length; i++) {
      const obj = objs[i]!
      const name = obj.metadata?.name ?? ''
      const generation = obj.metadata?.generation ?? 0
      const validation = result.results[i]!
      const ref = policyRef({ name, generation })
      const programmed = fleet.filter((a) => {
        const v = versions.get(a.key)
        return v !== undefined && (bundleContents.get(v)?.has(ref) ?? false)
      }).length
      const desired = desiredStatus({
        generation,
        validation,
        total: fleet.length,
        programmed,
        bundleVersion: bundle!.version,
        existing: obj.status?.conditions,
        now,
      })
      const patch = statusPatch(obj.status, desired)
      if (!patch) continue
      const rv = obj.metadata?.resourceVersion ?? ''
      const text = JSON.stringify(patch)
      const last = lastWritten.get(name)
      if (last && last.rv === rv && last.status === text) continue
      mustLead(signal)
      try {
        await withTimeout(
          custom.patchClusterCustomObjectStatus(
            { group: GROUP, version: VERSION, plural: PLURAL, name, body: patch },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          ),
          30_000,
          `status of ${name}`,
        )
        metrics.statusWrites.inc()
        lastWritten.set(name, { rv, status: text })
        if (newlyRejected(obj.status, desired)) {
          const accepted = desired.conditions[0]!
          await emitEvent(obj, 'Invalid', accepted.message, signal).catch((err) =>
            log.warn({ policy: name, err: errorMessage(err) }, 'could not write the Event'),
          )
        }
      } catch (err) {
        // One policy's failed write never blocks the others; the whole key is retried.
        failures.push(err)
      }
    }
    for (const name of lastWritten.keys()) if (!policies.store.has(name)) lastWritten.delete(name)
    if (failures.length) throw failures[0]
  }

  async function emitEvent(obj: FlowPolicyResource, reason: string, note: string, signal: AbortSignal) {
    mustLead(signal)
    const name = obj.metadata?.name ?? ''
    const created = events.createNamespacedEvent({
      namespace: o.eventsNamespace ?? 'default',
      body: {
        metadata: { generateName: `${name}.`, namespace: o.eventsNamespace ?? 'default' },
        eventTime: new V1MicroTime(),
        reportingController: CONTROLLER_NAME,
        reportingInstance: identity,
        action: 'Validate',
        reason,
        note,
        type: 'Warning',
        regarding: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'FlowPolicy',
          name,
          ...(obj.metadata?.uid ? { uid: obj.metadata.uid } : {}),
          ...(obj.metadata?.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
        },
      },
    })
    await withTimeout(created, 30_000, `Event about ${name}`)
    metrics.events.inc({ reason })
  }

  // ------------------------------------------------------------------ appliances reconciler
  function recordVersion(a: ApplianceView, version: string | null) {
    const before = versions.get(a.key)
    if (version === null) versions.delete(a.key)
    else versions.set(a.key, version)
    versionSeenAt.set(a.key, `${a.uid}/${a.restarts}`)
    if (before !== (version ?? undefined)) {
      policiesQ.addAfter(POLICIES_KEY, o.statusDelayMs ?? 200)
      targetsQ.addAfter(TARGETS_KEY, targetsDelayMs)
    }
  }

  async function reconcileAppliance(key: string, signal: AbortSignal): Promise<undefined> {
    const pod = pods.store.get(key)
    const a = pod && applianceView(pod, o.adminPort ?? 9443)
    if (!a || !isPushTarget(a)) {
      if (!pod && (versions.delete(key) || versionSeenAt.delete(key)))
        targetsQ.addAfter(TARGETS_KEY, targetsDelayMs)
      return
    }
    // A restarted container (or a new pod under the same name) may run something else now.
    if (versionSeenAt.get(key) !== `${a.uid}/${a.restarts}`) versions.delete(key)
    const desired = bundle
    const action = pushAction(a, versions.get(key), desired?.version)
    if (action.kind === 'skip') return
    const ep = { host: a.address!, port: a.adminPort }
    mustLead(signal)
    try {
      if (action.kind === 'verify') {
        const running = await appliancesClient.version(ep, signal)
        recordVersion(a, running)
        if (running === desired!.version) return
      }
      mustLead(signal)
      const version = await appliancesClient.push(ep, desired!, signal)
      metrics.pushes.inc()
      recordVersion(a, version)
    } catch (err) {
      const status = (err as OperatorError).status
      metrics.pushFailures.inc({ reason: status ? String(status) : 'network' })
      throw err
    }
  }

  // ------------------------------------------------------------------ targets reconciler
  async function reconcileTargets(_key: string, signal: AbortSignal): Promise<{ requeueAfterMs: number }> {
    if (!targetGroup) return { requeueAfterMs: -1 }
    const registered = await targetGroup.describeTargets()
    const plan = planTargets({
      appliances: appliances(),
      versions,
      desiredVersion: bundle?.version,
      registered,
    })
    if (plan.deregister.length) {
      mustLead(signal)
      log.info({ targets: plan.deregister }, 'deregistering targets')
      await targetGroup.deregister(plan.deregister)
      metrics.targetChanges.inc({ change: 'deregister' }, plan.deregister.length)
    }
    if (plan.register.length) {
      mustLead(signal)
      log.info({ targets: plan.register }, 'registering targets')
      await targetGroup.register(plan.register)
      metrics.targetChanges.inc({ change: 'register' }, plan.register.length)
    }
    const active = registered.filter((t) => !t.state.includes('draining')).map((t) => t.id)
    const after = new Set(active)
    for (const id of plan.deregister) after.delete(id)
    for (const id of plan.register) after.add(id)
    metrics.targetsRegistered.set(after.size)
    // Strays appear without any event of ours: look again at the resync period.
    return { requeueAfterMs: resyncMs }
  }

  // ------------------------------------------------------------------ usage reconciler
  /** each appliance's last rule usage report, by pod key: one that fails to answer keeps its last one */
  const usageReports = new Map<string, RuleUsageReport>()

  async function reconcileUsage(_key: string, signal: AbortSignal): Promise<{ requeueAfterMs: number }> {
    const fleet = appliances().filter(isPushTarget)
    const live = new Set(fleet.map((a) => a.key))
    for (const k of usageReports.keys()) if (!live.has(k)) usageReports.delete(k)
    const pending = [...fleet]
    const read = async () => {
      for (let a = pending.shift(); a; a = pending.shift()) {
        mustLead(signal)
        try {
          const report = await appliancesClient.ruleUsage({ host: a.address!, port: a.adminPort }, signal)
          usageReports.set(a.key, report)
          metrics.usageReports.inc({ result: 'ok' })
        } catch (err) {
          metrics.usageReports.inc({ result: 'error' })
          log.debug({ appliance: a.key, err: errorMessage(err) }, 'could not read rule usage')
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(USAGE_CONCURRENCY, fleet.length) }, read))
    const current = bundle
    if (!current) return { requeueAfterMs: usageIntervalMs }
    const summed = sumUsage(usageReports.values())
    const names = ruleNamesByPolicy(current)
    for (const obj of policies.list()) {
      const name = obj.metadata?.name ?? ''
      const rules = names.get(name)
      if (!rules) continue // not in the bundle (invalid): no appliance counts its rules
      const existing = Array.isArray(obj.status?.rules) ? obj.status.rules : undefined
      const patch = rulesPatch(existing, desiredRules(rules, summed.get(name), existing))
      if (!patch) continue
      mustLead(signal)
      try {
        await withTimeout(
          custom.patchClusterCustomObjectStatus(
            { group: GROUP, version: VERSION, plural: PLURAL, name, body: patch },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          ),
          30_000,
          `status.rules of ${name}`,
        )
        metrics.statusWrites.inc()
      } catch (err) {
        // Not retried before the next interval: usage is refreshed then anyway, and the interval is the
        // bound on how often status is written.
        log.warn({ policy: name, err: errorMessage(err) }, 'could not write rule usage')
      }
    }
    return { requeueAfterMs: usageIntervalMs }
  }

  // ------------------------------------------------------------------ leadership
  const enqueueAll = () => {
    policiesQ.add(POLICIES_KEY)
    targetsQ.add(TARGETS_KEY)
    for (const a of appliances()) appliancesQ.add(a.key)
  }
  let resyncTimer: NodeJS.Timeout | undefined
  const startWork = () => {
    metrics.leader.set(1)
    if (targetGroup) {
      targetGroup.describeTargetGroup().then(
        (tg) => {
          if (tg.protocol !== 'GENEVE' || tg.targetType !== 'ip')
            log.error({ tg }, 'the target group should be GENEVE on 6081 with target type ip')
        },
        (err) => log.error({ err: errorMessage(err) }, 'could not describe the target group'),
      )
    }
    void Promise.all([policies.waitForSync(), pods.waitForSync()]).then(() => {
      if (!elector.isLeader) return
      policiesQ.start(reconcilePolicies)
      appliancesQ.start(reconcileAppliance)
      targetsQ.start(reconcileTargets)
      if (usageIntervalMs > 0) {
        usageQ.start(reconcileUsage)
        // the first read one interval in, when the appliances have had a bundle and traffic
        usageQ.addAfter(USAGE_KEY, usageIntervalMs)
      }
      enqueueAll()
      resyncTimer = setInterval(enqueueAll, resyncMs)
    })
  }
  const stopWork = () => {
    metrics.leader.set(0)
    clearInterval(resyncTimer)
    for (const q of queues) void q.stop()
  }
  const elector = new LeaderElector({
    api: kc.makeApiClient(CoordinationV1Api),
    namespace: o.namespace,
    name: o.leaseName ?? 'flowgate-operator',
    identity,
    ...(o.leaseDurationMs ? { leaseDurationMs: o.leaseDurationMs } : {}),
    ...(o.renewDeadlineMs ? { renewDeadlineMs: o.renewDeadlineMs } : {}),
    ...(o.retryPeriodMs ? { retryPeriodMs: o.retryPeriodMs } : {}),
    onStartedLeading: startWork,
    onStoppedLeading: stopWork,
    onNewLeader: (leader) => log.info({ leader }, 'leader observed'),
    log: (msg, fields) => log.info(fields ?? {}, msg),
  })

  // ------------------------------------------------------------------ start
  let stopping = false
  policies.start()
  pods.start()
  elector.start()
  let server: Awaited<ReturnType<typeof startServer>> | undefined
  if (o.listen !== false) {
    server = await startServer({
      registry: metrics.registry,
      healthy: () => !stopping,
      ready: () => policies.hasSynced && pods.hasSynced,
      ...(o.listen?.host ? { host: o.listen.host } : {}),
      ...(o.listen?.port !== undefined ? { port: o.listen.port } : {}),
    })
  }

  let resolveStopped!: () => void
  const stopped = new Promise<void>((r) => {
    resolveStopped = r
  })
  const onSignal = () => void stop()
  if (o.handleSignals) {
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  }
  async function stop(): Promise<void> {
    if (stopping) return stopped
    stopping = true
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    clearInterval(resyncTimer)
    await Promise.all(queues.map((q) => q.shutdown()))
    await elector.stop()
    await Promise.all([policies.stop(), pods.stop()])
    await server?.app.close()
    appliancesClient.destroy()
    if (!o.targetGroup && targetGroup instanceof TargetGroupClient) targetGroup.destroy()
    log.info('operator stopped')
    resolveStopped()
  }

  return {
    identity,
    metrics,
    url: server?.url,
    isLeader: () => elector.isLeader,
    bundle: () => bundle,
    applianceVersions: () => versions,
    stop,
    stopped,
  }
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromDefault()
  return kc
}
