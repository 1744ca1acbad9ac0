// Shared setup for the operator tests: the in-process Kubernetes API and ELBv2 servers, appliances that
// run the real admin API plugin, and operators with short, injected timings. Nothing of ours is stubbed:
// the operator talks through the real @kubernetes/client-node and the real ELBv2 SDK client.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node'
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
import { adminApi } from '../../appliance/src/admin/plugin.ts'
import { TokenFile } from '../../appliance/src/admin/tokens.ts'
import { RuleUsage } from '../../appliance/src/visibility/rule-usage.ts'
import { type OperatorOptions, type RunningOperator, runOperator } from '../../operator/src/main.ts'
import type { ConfigBundle } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'
import type { CheckedPolicy } from '../../policy/src/validate.ts'
import { Elbv2Server } from '../support/elbv2-server.ts'
import { KubeApiServer, type Obj } from '../support/kube-api-server.ts'

export const NS = 'flowgate-system'
export const SELECTOR = 'app.kubernetes.io/name=flowgate-appliance'
export const TOKEN = 'operator-token-0123456789abcdef'

/** Polls `fn` until it returns a truthy value; bounded in time. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  for (let i = 0; i < 100_000; i++) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > end) break
    await sleep(25)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export interface Appliance {
  name: string
  nodeIP: string
  port: number
  stateDir: string
  /** versions applied, in order, with the time they were applied */
  applied: { version: string; at: number }[]
  running(): string | undefined
  /** while true, the appliance's engine refuses every bundle (the admin API answers 500) */
  refuse: boolean
  app: FastifyInstance | undefined
  /** the rule hit counters its admin API reports, over the engine of the running bundle */
  usage: RuleUsage
  /** the engine of the running bundle (decisions to count with usage.record) */
  engine: PolicyEngine | undefined
  stop(): Promise<void>
  start(): Promise<void>
}

export class Cluster {
  kube!: KubeApiServer
  elb!: Elbv2Server
  dir = mkdtempSync(join(tmpdir(), 'flowgate-op-'))
  tokenPath = join(this.dir, 'token')
  kc = new KubeConfig()
  custom!: CustomObjectsApi
  appliances: Appliance[] = []
  operators: RunningOperator[] = []

  static async start(
    o: { podTerminationMs?: number; deregistrationDelayMs?: number } = {},
  ): Promise<Cluster> {
    const c = new Cluster()
    c.kube = await new KubeApiServer({
      podTerminationMs: o.podTerminationMs ?? 1500,
      bookmarkMs: 300,
    }).start()
    c.elb = await new Elbv2Server({
      deregistrationDelayMs: o.deregistrationDelayMs ?? 400,
      initialMs: 30,
    }).start()
    writeFileSync(c.tokenPath, `${TOKEN}\n`)
    c.kc.loadFromOptions(c.kube.kubeconfig())
    c.custom = c.kc.makeApiClient(CustomObjectsApi)
    return c
  }

  async close(): Promise<void> {
    await Promise.all(this.operators.map((o) => o.stop()))
    await Promise.all(this.appliances.map((a) => a.stop()))
    await this.kube.close()
    await this.elb.close()
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** `user` is the bearer token the operator presents, so faults can target one operator */
  operatorOptions(over: Partial<OperatorOptions> = {}, user = 'operator'): OperatorOptions {
    const kc = new KubeConfig()
    kc.loadFromOptions(this.kube.kubeconfig(user))
    return {
      kubeConfig: kc,
      namespace: NS,
      applianceSelector: SELECTOR,
      adminScheme: 'http',
      adminTimeoutMs: 2000,
      tokenFile: this.tokenPath,
      targetGroupArn: this.elb.targetGroupArn,
      elbv2: this.elb.clientConfig(),
      leaseDurationMs: 1200,
      renewDeadlineMs: 800,
      retryPeriodMs: 200,
      resyncMs: 1500,
      relistMs: 10_000,
      watchSilenceMs: 2000,
      retryBaseMs: 20,
      retryMaxMs: 400,
      backoffBaseMs: 20,
      backoffMaxMs: 300,
      statusDelayMs: 50,
      targetsDelayMs: 50,
      // rule usage writes status.rules; only the tests about it turn it on
      usageIntervalMs: 0,
      listen: false,
      logger: pino({ level: process.env.FLOWGATE_TEST_LOG ?? 'silent' }),
      ...over,
    }
  }

  async startOperator(over: Partial<OperatorOptions> = {}, user = 'operator'): Promise<RunningOperator> {
    const op = await runOperator(this.operatorOptions(over, user))
    this.operators.push(op)
    return op
  }

  async stopOperator(op: RunningOperator): Promise<void> {
    await op.stop()
    this.operators = this.operators.filter((x) => x !== op)
  }

  /** Starts an appliance (the real admin API plugin) and creates its Pod, Running and Ready. */
  async addAppliance(name: string, nodeIP: string, o: { ready?: boolean } = {}): Promise<Appliance> {
    const stateDir = join(this.dir, `state-${name}`)
    let current: ConfigBundle | undefined
    const a: Appliance = {
      name,
      nodeIP,
      port: 0,
      stateDir,
      applied: [],
      running: () => current?.version,
      refuse: false,
      app: undefined,
      usage: new RuleUsage(),
      engine: undefined,
      stop: async () => {
        const app = a.app
        a.app = undefined
        current = undefined
        // a restarted appliance process counts from zero
        a.usage = new RuleUsage()
        a.engine = undefined
        await app?.close()
      },
      start: async () => {
        const app = Fastify({ logger: false })
        await app.register(adminApi, {
          tokens: new TokenFile({ path: this.tokenPath, checkMs: 50 }),
          stateDir,
          ruleUsage: () => a.usage,
          apply: (bundle: ConfigBundle, policies: CheckedPolicy[]) => {
            if (a.refuse) throw new Error('engine refused the bundle')
            a.engine = new PolicyEngine(policies, bundle.fleetDefault)
            a.usage.setEntries(a.engine.entries)
            current = bundle
            a.applied.push({ version: bundle.version, at: Date.now() })
          },
        })
        await app.listen({ host: '127.0.0.1', port: a.port })
        a.port = (app.server.address() as { port: number }).port
        a.app = app
      },
    }
    await a.start()
    this.appliances.push(a)
    this.kube.put('pods', this.podFor(a, o.ready ?? true))
    return a
  }

  podFor(a: Appliance, ready: boolean, restarts = 0): Obj {
    return {
      metadata: { name: a.name, namespace: NS, labels: { 'app.kubernetes.io/name': 'flowgate-appliance' } },
      spec: {
        hostNetwork: true,
        nodeName: `node-${a.nodeIP}`,
        containers: [
          { name: 'appliance', image: 'flowgate', ports: [{ name: 'admin', containerPort: a.port }] },
        ],
      },
      status: {
        phase: 'Running',
        // hostNetwork: in a cluster podIP and hostIP are both the node IP. Here the admin API listens on
        // loopback (podIP) while the node IP registered with GWLB is a private address (hostIP).
        podIP: '127.0.0.1',
        hostIP: a.nodeIP,
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
        containerStatuses: [
          { name: 'appliance', ready, restartCount: restarts, image: 'flowgate', imageID: '' },
        ],
      },
    }
  }

  /** Restarts an appliance process: down for `downMs`, then up again on the same port and state dir. */
  async restartAppliance(a: Appliance, restarts: number, during?: () => Promise<void>): Promise<void> {
    await a.stop()
    this.kube.put('pods', this.podFor(a, false, restarts))
    await during?.()
    await a.start()
    this.kube.put('pods', this.podFor(a, true, restarts))
  }

  /** Creates or updates a FlowPolicy through the API, retrying a 409 with a fresh read as kubectl does. */
  async applyPolicy(name: string, spec: unknown): Promise<Obj> {
    const body = { apiVersion: 'flowgate.io/v1alpha1', kind: 'FlowPolicy', metadata: { name }, spec }
    const api = { group: 'flowgate.io', version: 'v1alpha1', plural: 'flowpolicies' }
    for (let attempt = 0; ; attempt++) {
      const existing = this.kube.get('flowpolicies', name)
      try {
        if (!existing) return (await this.custom.createClusterCustomObject({ ...api, body })) as Obj
        return (await this.custom.replaceClusterCustomObject({
          ...api,
          name,
          body: { ...existing, spec },
        })) as Obj
      } catch (err) {
        if ((err as { code?: number }).code !== 409 || attempt >= 10) throw err
      }
    }
  }

  async deletePolicy(name: string): Promise<void> {
    await this.custom.deleteClusterCustomObject({
      group: 'flowgate.io',
      version: 'v1alpha1',
      plural: 'flowpolicies',
      name,
    })
  }

  policy(name: string): Obj | undefined {
    return this.kube.get('flowpolicies', name)
  }

  condition(name: string, type: string): Obj | undefined {
    return this.policy(name)?.status?.conditions?.find((c: Obj) => c.type === type)
  }

  /** All appliances run this version. */
  allRun(version: string | undefined): boolean {
    return version !== undefined && this.appliances.every((a) => a.running() === version)
  }

  leader(): RunningOperator | undefined {
    const leaders = this.operators.filter((o) => o.isLeader())
    return leaders.length === 1 ? leaders[0] : undefined
  }
}

export function allowPolicy(priority = 100, port = '443'): Obj {
  return {
    priority,
    match: { protocols: ['TCP'], ports: [port] },
    rules: [{ name: 'aws', action: 'Allow', when: { sni: ['*.amazonaws.com'] } }],
    defaultAction: 'Deny',
  }
}
