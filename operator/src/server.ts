// The operator's own HTTP surface: /healthz (the process and its loops are alive), /readyz (caches
// synced: a standby replica is ready too, it just does not write), /metrics (prom-client).
import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

export interface ServerOptions {
  registry: Registry
  healthy: () => boolean
  ready: () => boolean
  host?: string
  port?: number
}

export async function startServer(o: ServerOptions): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false })
  app.get('/healthz', async (_req, reply) =>
    reply.code(o.healthy() ? 200 : 503).send(o.healthy() ? 'ok' : 'unhealthy'),
  )
  app.get('/readyz', async (_req, reply) =>
    reply.code(o.ready() ? 200 : 503).send(o.ready() ? 'ok' : 'not ready'),
  )
  app.get('/metrics', async (_req, reply) =>
    reply.header('content-type', o.registry.contentType).send(await o.registry.metrics()),
  )
  const url = await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 0 })
  return { app, url }
}
