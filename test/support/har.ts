// A HAR 1.2 validator written from the format's text (W3C Web Performance WG draft "HTTP Archive (HAR)
// format", the 1.2 spec by Jan Odvarko), independent of flowgate's builder: JSON Schema for the structure —
// required fields, types, no fields but the spec's and custom ones starting with "_" — checked with ajv,
// plus what a schema cannot say (an entry's time is the sum of its timings other than -1).
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'

const custom = { '^_': {} }
const obj = (required: string[], properties: Record<string, unknown>) => ({
  type: 'object',
  required,
  properties: { ...properties, comment: { type: 'string' } },
  patternProperties: custom,
  additionalProperties: false,
})
const str = { type: 'string' }
const num = { type: 'number' }
const timing = { type: 'number', minimum: -1 }
const nameValue = obj(['name', 'value'], { name: str, value: str })
const cookie = obj(['name', 'value'], {
  name: str,
  value: str,
  path: str,
  domain: str,
  expires: { type: 'string', format: 'date-time' },
  httpOnly: { type: 'boolean' },
  secure: { type: 'boolean' },
})
const list = (item: unknown) => ({ type: 'array', items: item })
const cacheEntry = {
  oneOf: [
    { type: 'null' },
    obj(['lastAccess', 'eTag', 'hitCount'], {
      expires: { type: 'string', format: 'date-time' },
      lastAccess: { type: 'string', format: 'date-time' },
      eTag: str,
      hitCount: { type: 'integer' },
    }),
  ],
}

export const HAR_SCHEMA = {
  type: 'object',
  required: ['log'],
  properties: {
    log: obj(['version', 'creator', 'entries'], {
      version: { type: 'string', const: '1.2' },
      creator: obj(['name', 'version'], { name: str, version: str }),
      browser: obj(['name', 'version'], { name: str, version: str }),
      pages: list(
        obj(['startedDateTime', 'id', 'title', 'pageTimings'], {
          startedDateTime: { type: 'string', format: 'date-time' },
          id: str,
          title: str,
          pageTimings: obj([], { onContentLoad: num, onLoad: num }),
        }),
      ),
      entries: list(
        obj(['startedDateTime', 'time', 'request', 'response', 'cache', 'timings'], {
          pageref: str,
          startedDateTime: { type: 'string', format: 'date-time' },
          time: { type: 'number', minimum: 0 },
          request: obj(
            ['method', 'url', 'httpVersion', 'cookies', 'headers', 'queryString', 'headersSize', 'bodySize'],
            {
              method: str,
              url: str,
              httpVersion: str,
              cookies: list(cookie),
              headers: list(nameValue),
              queryString: list(nameValue),
              postData: obj(['mimeType'], {
                mimeType: str,
                params: list(obj(['name'], { name: str, value: str, fileName: str, contentType: str })),
                text: str,
              }),
              headersSize: { type: 'integer', minimum: -1 },
              bodySize: { type: 'integer', minimum: -1 },
            },
          ),
          response: obj(
            [
              'status',
              'statusText',
              'httpVersion',
              'cookies',
              'headers',
              'content',
              'redirectURL',
              'headersSize',
              'bodySize',
            ],
            {
              status: { type: 'integer' },
              statusText: str,
              httpVersion: str,
              cookies: list(cookie),
              headers: list(nameValue),
              content: obj(['size', 'mimeType'], {
                size: { type: 'integer', minimum: 0 },
                compression: { type: 'integer' },
                mimeType: str,
                text: str,
                encoding: str,
              }),
              redirectURL: str,
              headersSize: { type: 'integer', minimum: -1 },
              bodySize: { type: 'integer', minimum: -1 },
            },
          ),
          cache: obj([], { beforeRequest: cacheEntry, afterRequest: cacheEntry }),
          timings: obj(['send', 'wait', 'receive'], {
            blocked: timing,
            dns: timing,
            connect: timing,
            send: { type: 'number', minimum: 0 },
            wait: { type: 'number', minimum: 0 },
            receive: { type: 'number', minimum: 0 },
            ssl: timing,
          }),
          serverIPAddress: str,
          connection: str,
        }),
      ),
    }),
  },
  additionalProperties: false,
}

const ajv = new Ajv({ allErrors: true, strict: false })
addFormats.default(ajv)
const check = ajv.compile(HAR_SCHEMA)

/** Problems with a HAR document ([] when it is valid HAR 1.2). */
export function harProblems(doc: unknown): string[] {
  const out: string[] = []
  if (!check(doc)) for (const e of check.errors ?? []) out.push(`${e.instancePath || '/'} ${e.message}`)
  const entries = (doc as { log?: { entries?: unknown } })?.log?.entries
  if (Array.isArray(entries)) {
    entries.forEach((e: { time?: number; timings?: Record<string, number> }, i) => {
      const t = e.timings ?? {}
      let sum = 0
      for (const k of ['blocked', 'dns', 'connect', 'send', 'wait', 'receive']) {
        const v = t[k]
        if (typeof v === 'number' && v !== -1) sum += v
      }
      // ssl is included in connect (the spec), so it is not added again
      if (typeof e.time === 'number' && Math.abs(e.time - sum) > 0.01)
        out.push(`/log/entries/${i}/time ${e.time} is not the sum of its timings (${sum})`)
    })
  }
  return out
}
