// The admin API's own listener. It is apart from the health/metrics port because it carries a secret
// (the bearer token) and accepts configuration: it speaks TLS when given a serving certificate (the
// chart's default), and plain HTTP only when told to (tests, a laptop).
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import type { ConfigBundle } from '../../../policy/src/bundle.ts'
import type { CheckedPolicy } from '../../../policy/src/validate.ts'
import { adminApi } from '../admin/plugin.ts'
import { TokenFile } from '../admin/tokens.ts'
import type { CaptureTap } from '../capture/tap.ts'
import type { PolicyStore } from '../policy/policy-store.ts'
import type { HarHub } from '../visibility/har-hub.ts'
import type { RuleUsageSource } from './metrics.ts'

export interface AdminServerOptions {
  host: string
  port: number
  tokenFile: string
  /** operator-managed: where pushed bundles are kept */
  stateDir?: string
  /** standalone: the policy file the policy comes from; PUT /v1/config is refused (409) */
  policiesFile?: string
  /** PEM files of the serving certificate and key; both or neither */
  tlsCert?: string
  tlsKey?: string
  store: PolicyStore
  logger: Logger
  /** the packet path's rule hit counters, for GET /v1/rule-usage */
  ruleUsage?: () => RuleUsageSource | undefined
  /** the packet path's live captures, for GET /v1/capture */
  capture?: () => CaptureTap | undefined
  /** the packet path's HAR entries, for GET /v1/har */
  har?: () => HarHub | undefined
}

export async function startAdminServer(o: AdminServerOptions): Promise<FastifyInstance> {
  const loggerInstance = o.logger.child({ component: 'admin' }) as FastifyBaseLogger
  // The key is read into memory once; it is never logged or copied elsewhere.
  const https = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : null
  const app = (https
    ? Fastify({ loggerInstance, logController: new LogController({ disableRequestLogging: true }), https })
    : Fastify({
        loggerInstance,
        logController: new LogController({ disableRequestLogging: true }),
      })) as unknown as FastifyInstance
  const tokens = new TokenFile({ path: o.tokenFile })
  await app.register(adminApi, {
    tokens,
    ...(o.policiesFile
      ? {
          policiesFile: o.policiesFile,
          running: () => {
            const p = o.store.current
            return { version: p?.bundle.version ?? null, appliedAt: p?.loadedAt.toISOString() ?? null }
          },
        }
      : { stateDir: o.stateDir! }),
    ...(o.ruleUsage ? { ruleUsage: o.ruleUsage } : {}),
    ...(o.capture ? { capture: o.capture } : {}),
    ...(o.har ? { har: o.har } : {}),
    apply: (bundle: ConfigBundle, policies: CheckedPolicy[]) => {
      o.store.apply(bundle, policies, 'admin-api')
    },
  })
  await app.listen({ host: o.host, port: o.port })
  return app
}
