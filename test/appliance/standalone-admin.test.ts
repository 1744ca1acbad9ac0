import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import test from 'ava'
import { parseApplianceArgs } from '../../appliance/src/options.ts'
import { compile } from '../../policy/src/bundle.ts'
import { harProblems } from '../support/har.ts'
import { startLoopbackAppliance } from '../support/loopback-appliance.ts'
import { udp4 } from '../wire/packets.ts'

const POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata: { name: udp }
spec:
  priority: 10
  rules:
    - name: any
      when: { protocols: [UDP] }
      action: Allow
`

async function start(t: { teardown(fn: () => unknown): void }) {
  const {
    a,
    adminPort,
    send: sendInner,
  } = await startLoopbackAppliance(t, 'standalone-admin', (dir) => {
    writeFileSync(join(dir, 'policies.yaml'), POLICY)
    // What `flowgate appliance --policies F --admin-token-file T` parses into.
    const cli = parseApplianceArgs([
      '--policies',
      join(dir, 'policies.yaml'),
      '--admin-token-file',
      join(dir, 'token'),
      '--admin-port',
      '0',
    ])
    return { policies: cli.policies!, admin: cli.admin! }
  })
  const base = `http://127.0.0.1:${adminPort}`
  const call = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const { token = 'the-token', ...rest } = init
    return fetch(`${base}${path}`, {
      ...rest,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(rest.body ? { 'content-type': 'application/json' } : {}),
      },
    })
  }
  const send = () => sendInner(udp4({ payload: new Uint8Array(8) }))
  return { a, call, send }
}

test('standalone admin API: version from the file, pushes refused with 409, rule usage and capture served', async (t) => {
  const { a, call, send } = await start(t)
  const version = a.store.current!.bundle.version
  const v = await call('/v1/config/version')
  t.is(v.status, 200)
  const body = (await v.json()) as { version: string; appliedAt: string }
  t.is(body.version, version)
  t.true(!Number.isNaN(Date.parse(body.appliedAt)))

  const other = compile([
    {
      apiVersion: 'flowgate.io/v1alpha1',
      kind: 'FlowPolicy',
      metadata: { name: 'other' },
      spec: { defaultAction: 'Deny' },
    },
  ]).bundle
  t.is((await call('/v1/config', { method: 'PUT', body: JSON.stringify(other), token: null })).status, 401)
  const put = await call('/v1/config', { method: 'PUT', body: JSON.stringify(other) })
  t.is(put.status, 409)
  const err = (await put.json()) as { code: string; message: string }
  t.is(err.code, 'FG_ERR_CONFLICT')
  t.regex(err.message, /policies come from a file/)
  t.is(a.store.current!.bundle.version, version, 'the file’s policy is still in force')

  await send()
  let hits = 0
  for (let i = 0; i < 50 && hits === 0; i++) {
    const u = (await (await call('/v1/rule-usage')).json()) as {
      bundleVersion: string
      rules: { policy: string; rule: string; hits: number }[]
    }
    t.is(u.bundleVersion, version)
    hits = u.rules.find((r) => r.rule === 'any')?.hits ?? 0
    if (hits === 0) await new Promise((r) => setTimeout(r, 20))
  }
  t.is(hits, 1)

  const cap = await call('/v1/capture?seconds=1')
  t.is(cap.status, 200)
  t.is(cap.headers.get('content-type'), 'application/vnd.tcpdump.pcapng')
  const pcap = Buffer.from(await cap.arrayBuffer())
  t.is(pcap.readUInt32LE(0), 0x0a0d0d0a, 'a pcapng section header')
})

test('GET /v1/har: authenticated, bounded query, a HAR 1.2 document that ends on time; 429 past the limit', async (t) => {
  const { a, call } = await start(t)
  t.is((await call('/v1/har', { token: null })).status, 401)
  t.is((await call('/v1/har', { token: 'wrong' })).status, 403)
  for (const q of [
    'seconds=0',
    'seconds=3601',
    'maxEntries=0',
    'seconds=x',
    'nope=1',
    'seconds=1&seconds=2',
  ]) {
    const r = await call(`/v1/har?${q}`)
    t.is(r.status, 400, q)
    t.is(((await r.json()) as { code: string }).code, 'FG_ERR_QUERY')
  }
  const r = await call('/v1/har?seconds=1')
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), 'application/json; charset=utf-8')
  t.regex(r.headers.get('content-disposition') ?? '', /^attachment; filename="flowgate-\d{8}T\d{6}Z\.har"$/)
  const har = (await r.json()) as { log: { entries: unknown[]; _flowgate: unknown } }
  t.deepEqual(harProblems(har), [])
  t.deepEqual(har.log.entries, [])
  t.deepEqual(har.log._flowgate, { dropped: 0, ended: 'seconds' })

  const running = await Promise.all([1, 2, 3, 4].map(() => call('/v1/har?seconds=5')))
  for (const x of running) t.is(x.status, 200)
  const fifth = await call('/v1/har?seconds=5')
  t.is(fifth.status, 429)
  t.is(((await fifth.json()) as { code: string }).code, 'FG_ERR_HAR_LIMIT')
  const metrics = await (await fetch(`${a.url}/metrics`)).text()
  t.regex(metrics, /^flowgate_har_exports_active 4$/m)
  for (const x of running) await x.body?.cancel()
})
