// GET /v1/har on the admin API (admin/plugin.ts authenticates first): a HAR 1.2 document of the exchanges
// recorded from now on — of policies with spec.har — streamed as they end, closed when the time or the
// entry count is reached or when the caller goes away.
//
//   seconds     1-3600, default 60
//   maxEntries  1-100000, default 10000
//
// 400 for a bad query, 429 when the appliance already runs its maximum of exports, 503 before the packet
// path is up. The document's log carries `_flowgate: { dropped, ended }` after the entries: entries the
// caller was too slow for, and why the export ended.

import type { FastifyReply, FastifyRequest } from 'fastify'
import type { HarHub } from './har-hub.ts'

export const HAR_BOUNDS = {
  seconds: { min: 1, max: 3600, default: 60 },
  maxEntries: { min: 1, max: 100_000, default: 10_000 },
} as const

export interface HarRequest {
  seconds: number
  maxEntries: number
}

/** The query of GET /v1/har; throws an Error whose message is for the caller. */
export function parseHarQuery(q: Record<string, unknown>): HarRequest {
  const int = (name: keyof typeof HAR_BOUNDS): number => {
    const b = HAR_BOUNDS[name]
    const v = q[name]
    if (v === undefined || v === '') return b.default
    if (typeof v !== 'string') throw new Error(`${name}: give it once`)
    if (!/^\d{1,10}$/.test(v) || Number(v) < b.min || Number(v) > b.max)
      throw new Error(`${name}: expected an integer ${b.min}-${b.max}`)
    return Number(v)
  }
  for (const k of Object.keys(q))
    if (!(k in HAR_BOUNDS)) throw new Error(`unknown parameter ${JSON.stringify(k)} (seconds, maxEntries)`)
  return { seconds: int('seconds'), maxEntries: int('maxEntries') }
}

export function serveHar(req: FastifyRequest, reply: FastifyReply, hub: HarHub | undefined): FastifyReply {
  let r: HarRequest
  try {
    r = parseHarQuery(req.query as Record<string, unknown>)
  } catch (err) {
    return reply.code(400).send({ code: 'FG_ERR_QUERY', message: (err as Error).message })
  }
  if (!hub) {
    return reply.code(503).send({ code: 'FG_ERR_UNAVAILABLE', message: 'the packet path is not running yet' })
  }
  const session = hub.open(r)
  if (!session) {
    return reply
      .code(429)
      .header('retry-after', '10')
      .send({
        code: 'FG_ERR_HAR_LIMIT',
        message: `${hub.maxSessions} HAR exports are already running; try again when one ends`,
      })
  }
  req.log.info({ seconds: r.seconds, maxEntries: r.maxEntries }, 'HAR export started')
  session.stream.once('close', () => {
    req.log.info(
      { ended: session.ended, entries: session.entries, dropped: session.dropped },
      'HAR export ended',
    )
  })
  reply.raw.once('close', () => {
    if (!session.stream.readableEnded) session.stream.destroy()
  })
  const stamp = new Date(session.started)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
  return reply
    .header('content-type', 'application/json; charset=utf-8')
    .header('content-disposition', `attachment; filename="flowgate-${stamp}.har"`)
    .header('cache-control', 'no-store')
    .send(session.stream)
}
