import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { TokenFile } from '../../appliance/src/admin/tokens.ts'
import { ApplianceClient } from '../../operator/src/appliance-client.ts'
import { compile } from '../../policy/src/bundle.ts'
import { selfSignedCert } from '../support/certs.ts'
import { managedAdmin, startLoopbackAppliance } from '../support/loopback-appliance.ts'
import { tcp4, udp4 } from '../wire/packets.ts'

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name, generation: 1 },
  spec,
})
const BUNDLE = compile([
  doc('web', {
    priority: 10,
    match: { protocols: ['TCP'] },
    rules: [
      { name: 'http', when: { ports: ['80'] }, action: 'Allow' },
      { name: 'unused', when: { ports: ['9'] }, action: 'Allow' },
    ],
    defaultAction: 'Deny',
  }),
  doc('udp', { priority: 20, rules: [{ name: 'dns', when: { protocols: ['UDP'] }, action: 'Allow' }] }),
]).bundle

async function start(t: { teardown(fn: () => unknown): void }) {
  const { a, dir, adminPort, send } = await startLoopbackAppliance(t, 'usage', (dir) => {
    selfSignedCert(dir, 'tls', '/CN=127.0.0.1', 'IP:127.0.0.1')
    return managedAdmin(dir)
  })
  const ep = { host: '127.0.0.1', port: adminPort }
  const client = new ApplianceClient({
    tokens: new TokenFile({ path: join(dir, 'token') }),
    scheme: 'https',
    ca: readFileSync(join(dir, 'tls.crt')),
  })
  t.teardown(() => client.destroy())
  return { a, dir, ep, client, send }
}

/** Polls until `fn` is truthy: the packet loop runs on its own schedule. Bounded. */
async function until<T>(fn: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await fn()
    if (v) return v
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

test('GET /v1/rule-usage: hits per rule of the running bundle, authenticated; the same in /metrics', async (t) => {
  const { a, ep, client, send, dir } = await start(t)
  t.is(await client.push(ep, BUNDLE), BUNDLE.version)
  const t0 = Date.now()
  for (let n = 0; n < 3; n++) {
    await send(tcp4({ sport: 41000 + n, dport: 80, flags: 0x02 }))
    await send(tcp4({ sport: 41000 + n, dport: 80, flags: 0x10 })) // same flow: no second hit
  }
  await send(tcp4({ sport: 42000, dport: 22, flags: 0x02 })) // the policy's defaultAction
  await send(udp4({ dport: 53 }))
  const report = await until(async () => {
    const r = await client.ruleUsage(ep)
    return r.rules.reduce((n, x) => n + x.hits, 0) >= 5 ? r : undefined
  }, 'five hits')
  t.is(report.bundleVersion, BUNDLE.version)
  t.deepEqual(
    report.rules.map((r) => [r.policy, r.rule, r.hits]),
    [
      ['web', 'http', 3],
      ['web', 'unused', 0],
      ['web', null, 1],
      ['udp', 'dns', 1],
    ],
  )
  const http = report.rules[0]!
  t.true(Date.parse(http.lastHit!) >= t0 - 1000 && Date.parse(http.lastHit!) <= Date.now(), http.lastHit!)
  t.is(report.rules[1]!.lastHit, null)

  const metrics = await (await fetch(`${a.url}/metrics`)).text()
  t.regex(metrics, /^flowgate_rule_hits_total\{policy="web",rule="http"\} 3$/m)
  t.regex(metrics, /^flowgate_rule_hits_total\{policy="web",rule="unused"\} 0$/m)
  t.regex(metrics, /^flowgate_rule_hits_total\{policy="web",rule="defaultAction"\} 1$/m)
  t.regex(metrics, /^flowgate_rule_last_hit_timestamp_seconds\{policy="web",rule="http"\} \d+(\.\d+)?$/m)
  t.notRegex(metrics, /flowgate_rule_last_hit_timestamp_seconds\{policy="web",rule="unused"\}/)

  // no token: 401; a wrong one: 403 — over the same TLS listener
  const get = async (token?: string) =>
    await new Promise<number>((resolve, reject) => {
      import('node:https').then(({ request }) => {
        const req = request(
          {
            host: ep.host,
            port: ep.port,
            path: '/v1/rule-usage',
            ca: readFileSync(join(dir, 'tls.crt')),
            headers: token ? { authorization: `Bearer ${token}` } : {},
          },
          (res) => {
            res.resume()
            resolve(res.statusCode ?? 0)
          },
        )
        req.on('error', reject)
        req.end()
      }, reject)
    })
  t.is(await get(), 401)
  t.is(await get('wrong'), 403)
  t.is(await get('the-token'), 200)
})

test('GET /v1/rule-usage before the packet path is up: 503 with a code, after authentication', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-usage-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'token'), 'the-token\n')
  const { default: Fastify } = await import('fastify')
  const { adminApi } = await import('../../appliance/src/admin/plugin.ts')
  const app = Fastify({ logger: false })
  await app.register(adminApi, {
    tokens: new TokenFile({ path: join(dir, 'token') }),
    stateDir: join(dir, 'state'),
    apply: () => {},
    ruleUsage: () => undefined,
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  t.is((await fetch(`${url}/v1/rule-usage`)).status, 401)
  const r = await fetch(`${url}/v1/rule-usage`, { headers: { authorization: 'Bearer the-token' } })
  t.is(r.status, 503)
  t.is(((await r.json()) as { code: string }).code, 'FG_ERR_UNAVAILABLE')
})
