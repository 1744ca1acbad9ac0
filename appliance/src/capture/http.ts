// GET /v1/capture on the admin API (admin/plugin.ts authenticates first): the query's filter and bounds,
// then a pcapng stream that ends on its own when the time or byte bound is reached, or when the caller
// goes away.
//
//   filter    the capture filter (filter.ts); empty: everything
//   seconds   1-3600, default 60
//   maxBytes  65536-1073741824, default 104857600 (100 MiB)
//
// 400 for a bad query, 429 when the appliance already runs its maximum of captures, 503 before the packet
// path is up.

import type { FastifyReply, FastifyRequest } from 'fastify'
import { type CaptureFilter, FilterError, parseFilter } from './filter.ts'
import type { CaptureTap } from './tap.ts'

export const PCAPNG_MEDIA_TYPE = 'application/vnd.tcpdump.pcapng'

export const CAPTURE_BOUNDS = {
  seconds: { min: 1, max: 3600, default: 60 },
  maxBytes: { min: 64 * 1024, max: 1024 * 1024 * 1024, default: 100 * 1024 * 1024 },
} as const

export interface CaptureRequest {
  filter: CaptureFilter
  seconds: number
  maxBytes: number
}

/** The query of GET /v1/capture; throws an Error whose message is for the caller. */
export function parseCaptureQuery(q: Record<string, unknown>): CaptureRequest {
  const one = (name: string): string | undefined => {
    const v = q[name]
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new Error(`${name}: give it once`)
    return v
  }
  const int = (name: 'seconds' | 'maxBytes'): number => {
    const b = CAPTURE_BOUNDS[name]
    const v = one(name)
    if (v === undefined || v === '') return b.default
    if (!/^\d{1,10}$/.test(v) || Number(v) < b.min || Number(v) > b.max)
      throw new Error(`${name}: expected an integer ${b.min}-${b.max}`)
    return Number(v)
  }
  return { filter: parseFilter(one('filter') ?? ''), seconds: int('seconds'), maxBytes: int('maxBytes') }
}

export function serveCapture(
  req: FastifyRequest,
  reply: FastifyReply,
  tap: CaptureTap | undefined,
): FastifyReply {
  let r: CaptureRequest
  try {
    r = parseCaptureQuery(req.query as Record<string, unknown>)
  } catch (err) {
    const e = err as Error
    return reply
      .code(400)
      .send({ code: e instanceof FilterError ? e.code : 'FG_ERR_QUERY', message: e.message })
  }
  if (!tap) {
    return reply.code(503).send({ code: 'FG_ERR_UNAVAILABLE', message: 'the packet path is not running yet' })
  }
  const session = tap.open(r.filter, { seconds: r.seconds, maxBytes: r.maxBytes })
  if (!session) {
    return reply
      .code(429)
      .header('retry-after', '10')
      .send({
        code: 'FG_ERR_CAPTURE_LIMIT',
        message: `${tap.maxCaptures} captures are already running; try again when one ends`,
      })
  }
  req.log.info({ filter: r.filter.text, seconds: r.seconds, maxBytes: r.maxBytes }, 'capture started')
  session.stream.once('close', () => {
    req.log.info(
      {
        filter: r.filter.text,
        ended: session.ended,
        bytes: session.written,
        packets: session.received[0]! + session.received[1]!,
        dropped: session.dropped[0]! + session.dropped[1]!,
        secrets: session.secrets,
      },
      'capture ended',
    )
  })
  // The response closed (the caller went away, or the capture ended): stop taking packets for it.
  reply.raw.once('close', () => {
    if (!session.ended) session.stream.destroy()
  })
  const stamp = new Date(session.started)
    .toISOString()
    .replaceAll(':', '')
    .replace(/\.\d+Z$/, 'Z')
  return reply
    .header('content-type', PCAPNG_MEDIA_TYPE)
    .header('content-disposition', `attachment; filename="flowgate-${stamp}.pcapng"`)
    .header('cache-control', 'no-store')
    .send(session.stream)
}
