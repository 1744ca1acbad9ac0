// The ELBv2 calls the targets reconciler makes, wrapped with our own retry policy: ThrottlingException
// (ELBv2 says "Throttling"; Describe* calls share a per-account bucket of 40 refilling at 10/s, GWLB.md)
// and 5xx are retried with exponential backoff and full jitter, everything else fails at once. The SDK's
// built-in retries are turned off (maxAttempts 1) so there is one retry policy, one set of metrics, and
// tests that count calls see exactly what we sent. Register/Deregister are batched.
import {
  DeregisterTargetsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  type ElasticLoadBalancingV2ClientConfig,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2'
import { errorMessage, OperatorError, OperatorErrorCodes } from '../errors.ts'
import { backoffDelay, sleep } from '../kube/backoff.ts'

/** GENEVE target groups listen on 6081 only (GWLB.md). */
export const GENEVE_PORT = 6081

/** Our own cap per Register/DeregisterTargets call: keeps each request small and its failure cheap. */
export const TARGET_BATCH = 100

export interface TargetDescription {
  id: string
  port: number
  /** initial | healthy | unhealthy | unhealthy.draining | unused | draining | unavailable */
  state: string
}

export interface TargetGroupInfo {
  arn: string
  protocol: string | undefined
  port: number | undefined
  targetType: string | undefined
}

/** What the targets reconciler needs from ELBv2; the real implementation is TargetGroupClient. */
export interface TargetGroupApi {
  describeTargetGroup(): Promise<TargetGroupInfo>
  describeTargets(): Promise<TargetDescription[]>
  register(ids: string[]): Promise<void>
  deregister(ids: string[]): Promise<void>
}

export interface TargetGroupClientOptions {
  targetGroupArn: string
  /** SDK client config: region, and in tests endpoint and credentials */
  client?: ElasticLoadBalancingV2ClientConfig
  /** per-request timeout */
  requestTimeoutMs?: number
  /** attempts per call, including the first */
  maxAttempts?: number
  backoffBaseMs?: number
  backoffMaxMs?: number
  random?: () => number
  onRetry?: (operation: string, reason: 'throttled' | 'server') => void
  onCall?: (operation: string, ok: boolean) => void
  signal?: AbortSignal
}

export function retryReason(err: unknown): 'throttled' | 'server' | undefined {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } }
  const name = e?.name ?? e?.Code
  if (name === 'Throttling' || name === 'ThrottlingException' || name === 'RequestLimitExceeded')
    return 'throttled'
  const status = e?.$metadata?.httpStatusCode
  if (status !== undefined && status >= 500) return 'server'
  // No status at all: the connection failed (reset, refused); as transient as a 5xx.
  if (status === undefined && err instanceof Error && !name?.endsWith('Exception')) return 'server'
  return undefined
}

export class TargetGroupClient implements TargetGroupApi {
  readonly client: ElasticLoadBalancingV2Client
  readonly arn: string
  readonly #o: TargetGroupClientOptions

  constructor(o: TargetGroupClientOptions) {
    this.#o = o
    this.arn = o.targetGroupArn
    // Bounded calls: a hung connection must end as a retryable error, not hold the targets reconciler.
    this.client = new ElasticLoadBalancingV2Client({
      requestHandler: {
        requestTimeout: o.requestTimeoutMs ?? 10_000,
        connectionTimeout: 3_000,
        throwOnRequestTimeout: true,
      },
      ...o.client,
      maxAttempts: 1,
    })
  }

  destroy(): void {
    this.client.destroy()
  }

  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.#o.maxAttempts ?? 8
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await fn()
        this.#o.onCall?.(operation, true)
        return r
      } catch (err) {
        this.#o.onCall?.(operation, false)
        const reason = retryReason(err)
        if (!reason || attempt + 1 >= attempts || this.#o.signal?.aborted) {
          throw new OperatorError(OperatorErrorCodes.aws, `${operation}: ${errorMessage(err)}`, {
            cause: err,
            ...((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
              ? { status: (err as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode }
              : {}),
          })
        }
        this.#o.onRetry?.(operation, reason)
        await sleep(
          backoffDelay(attempt, {
            baseMs: this.#o.backoffBaseMs ?? 100,
            maxMs: this.#o.backoffMaxMs ?? 20_000,
            ...(this.#o.random ? { random: this.#o.random } : {}),
          }),
          this.#o.signal,
        )
      }
    }
  }

  async describeTargetGroup(): Promise<TargetGroupInfo> {
    const r = await this.#call('DescribeTargetGroups', () =>
      this.client.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [this.arn] })),
    )
    const tg = r.TargetGroups?.[0]
    if (!tg) throw new OperatorError(OperatorErrorCodes.aws, `target group ${this.arn} not found`)
    return { arn: this.arn, protocol: tg.Protocol, port: tg.Port, targetType: tg.TargetType }
  }

  async describeTargets(): Promise<TargetDescription[]> {
    const r = await this.#call('DescribeTargetHealth', () =>
      this.client.send(new DescribeTargetHealthCommand({ TargetGroupArn: this.arn })),
    )
    return (r.TargetHealthDescriptions ?? []).flatMap((d) =>
      d.Target?.Id
        ? [
            {
              id: d.Target.Id,
              port: d.Target.Port ?? GENEVE_PORT,
              state: d.TargetHealth?.State ?? 'unavailable',
            },
          ]
        : [],
    )
  }

  async register(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += TARGET_BATCH) {
      const Targets = ids.slice(i, i + TARGET_BATCH).map((Id) => ({ Id, Port: GENEVE_PORT }))
      await this.#call('RegisterTargets', () =>
        this.client.send(new RegisterTargetsCommand({ TargetGroupArn: this.arn, Targets })),
      )
    }
  }

  async deregister(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += TARGET_BATCH) {
      const Targets = ids.slice(i, i + TARGET_BATCH).map((Id) => ({ Id, Port: GENEVE_PORT }))
      await this.#call('DeregisterTargets', () =>
        this.client.send(new DeregisterTargetsCommand({ TargetGroupArn: this.arn, Targets })),
      )
    }
  }
}
