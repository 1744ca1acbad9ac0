// The appliance's HTTP control surface (fastify): health for GWLB and Kubernetes, Prometheus metrics,
// and whatever plugins the caller registers (the admin API).
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  LogController,
} from 'fastify'
import type { Logger } from 'pino'
import { type HealthInputs, health } from './health.ts'
import type { ApplianceMetrics } from './metrics.ts'

export interface ControlServerOptions {
  host: string
  port: number
  metrics: ApplianceMetrics
  state: () => HealthInputs
  logger: Logger
  plugins?: FastifyPluginAsync[]
}

export async function startControlServer(opts: ControlServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'control' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  })
  const probe = async (_req: unknown, reply: { code(n: number): { send(b: unknown): unknown } }) => {
    const h = health(opts.state())
    return reply.code(h.status).send(h.body)
  }
  app.get('/healthz', probe)
  app.get('/readyz', probe)
  app.get('/livez', async () => ({ status: 'ok' }))
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.metrics.registry.contentType)
    return opts.metrics.registry.metrics()
  })
  for (const p of opts.plugins ?? []) await app.register(p)
  await app.listen({ host: opts.host, port: opts.port })
  return app
}
