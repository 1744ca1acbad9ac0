// The appliance's admin API over real HTTP: authentication, validation, atomic apply, persistence and
// token rotation — and the operator's client for it.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import Fastify from 'fastify'
import { adminApi } from '../../appliance/src/admin/plugin.ts'
import { STATE_FILE } from '../../appliance/src/admin/state.ts'
import { TokenFile } from '../../appliance/src/admin/tokens.ts'
import { ApplianceClient } from '../../operator/src/appliance-client.ts'
import { type ConfigBundle, compile } from '../../policy/src/bundle.ts'
import { allowPolicy } from './harness.ts'

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name, generation: 1 },
  spec,
})
const bundleA = compile([doc('a', allowPolicy(100, '443'))]).bundle
const bundleB = compile([doc('a', allowPolicy(100, '443')), doc('b', allowPolicy(200, '80'))]).bundle

async function appliance(
  t: { teardown(fn: () => unknown): void },
  o: { token?: string; dir?: string; fail?: () => boolean } = {},
) {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'flowgate-admin-'))
  const tokenPath = join(dir, 'token')
  if (o.token !== undefined) writeFileSync(tokenPath, o.token)
  const applied: string[] = []
  const app = Fastify({ logger: false })
  await app.register(adminApi, {
    tokens: new TokenFile({ path: tokenPath, checkMs: 0 }),
    stateDir: join(dir, 'state'),
    apply: (b: ConfigBundle) => {
      if (o.fail?.()) throw new Error('engine refused it')
      applied.push(b.version)
    },
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await app.close()
    if (!o.dir) rmSync(dir, { recursive: true, force: true })
  })
  const call = async (method: string, path: string, token: string | undefined, body?: unknown) => {
    const r = await fetch(url + path, {
      method,
      headers: {
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> }
  }
  return { app, url, dir, tokenPath, applied, call, port: Number(new URL(url).port) }
}

test('refuses missing (401), wrong (403) and unconfigured (503) credentials', async (t) => {
  const a = await appliance(t, { token: 'secret-1\n' })
  const none = await a.call('GET', '/v1/config/version', undefined)
  t.is(none.status, 401)
  t.regex(none.headers.get('www-authenticate') ?? '', /^Bearer/)
  t.is((await a.call('GET', '/v1/config/version', 'secret-2')).status, 403)
  t.is((await a.call('PUT', '/v1/config', 'secret-2', bundleA)).status, 403)
  t.is((await a.call('GET', '/v1/config/version', 'secret-1')).status, 200)
  t.deepEqual(a.applied, [], 'a refused PUT applied nothing')
  const b = await appliance(t)
  t.is((await b.call('GET', '/v1/config/version', 'anything')).status, 503)
})

test('applies a valid bundle once, persists it, and reports its version', async (t) => {
  const a = await appliance(t, { token: 'tok' })
  t.deepEqual((await a.call('GET', '/v1/config/version', 'tok')).body, { version: null, appliedAt: null })
  const put = await a.call('PUT', '/v1/config', 'tok', bundleA)
  t.is(put.status, 200)
  t.like(put.body, { version: bundleA.version, changed: true })
  t.like((await a.call('PUT', '/v1/config', 'tok', bundleA)).body, { changed: false })
  t.deepEqual(a.applied, [bundleA.version])
  t.is((await a.call('GET', '/v1/config/version', 'tok')).body.version, bundleA.version)
  const saved = JSON.parse(readFileSync(join(a.dir, 'state', STATE_FILE), 'utf8'))
  t.is(saved.version, bundleA.version)
})

test('an invalid bundle is refused with its field errors and the old one is kept', async (t) => {
  const a = await appliance(t, { token: 'tok' })
  await a.call('PUT', '/v1/config', 'tok', bundleA)
  const tampered = structuredClone(bundleB)
  tampered.policies[1]!.spec.match!.ports = ['99999']
  const r = await a.call('PUT', '/v1/config', 'tok', tampered)
  t.is(r.status, 422)
  t.is(r.body.code, 'FG_ERR_BUNDLE')
  const paths = (r.body.errors as { path: string }[]).map((e) => e.path)
  t.true(
    paths.some((p) => p.startsWith('policies[1].spec.match.ports')),
    paths.join(', '),
  )
  const wrongHash = { ...bundleB, version: '0000000000000000' }
  const r2 = await a.call('PUT', '/v1/config', 'tok', wrongHash)
  t.is(r2.status, 422)
  t.true((r2.body.errors as { path: string }[]).some((e) => e.path === 'version'))
  t.is((await a.call('GET', '/v1/config/version', 'tok')).body.version, bundleA.version)
  t.deepEqual(a.applied, [bundleA.version])
})

test('an apply that fails keeps the old bundle running and on disk', async (t) => {
  let fail = false
  const a = await appliance(t, { token: 'tok', fail: () => fail })
  await a.call('PUT', '/v1/config', 'tok', bundleA)
  fail = true
  const r = await a.call('PUT', '/v1/config', 'tok', bundleB)
  t.is(r.status, 500)
  t.is(r.body.code, 'FG_ERR_APPLY')
  t.is((await a.call('GET', '/v1/config/version', 'tok')).body.version, bundleA.version)
  t.is(JSON.parse(readFileSync(join(a.dir, 'state', STATE_FILE), 'utf8')).version, bundleA.version)
})

test('a restarted appliance restores its last good bundle; a corrupt state file is survived', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-admin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await appliance(t, { token: 'tok', dir })
  await first.call('PUT', '/v1/config', 'tok', bundleB)
  await first.app.close()
  const second = await appliance(t, { token: 'tok', dir })
  t.deepEqual(second.applied, [bundleB.version], 'applied from disk before any call')
  t.is((await second.call('GET', '/v1/config/version', 'tok')).body.version, bundleB.version)
  await second.app.close()
  writeFileSync(join(dir, 'state', STATE_FILE), '{"apiVersion": "flowgate.io/bundle/v1", "trunc')
  const third = await appliance(t, { token: 'tok', dir })
  t.deepEqual(third.applied, [])
  t.is((await third.call('GET', '/v1/config/version', 'tok')).body.version, null)
  t.is((await third.call('PUT', '/v1/config', 'tok', bundleA)).status, 200)
})

test('token rotation without downtime: either side may see the new Secret first', async (t) => {
  const a = await appliance(t, { token: 'old-token\n' })
  const opDir = mkdtempSync(join(tmpdir(), 'flowgate-op-token-'))
  t.teardown(() => rmSync(opDir, { recursive: true, force: true }))
  const opToken = join(opDir, 'token')
  writeFileSync(opToken, 'old-token\n')
  const client = new ApplianceClient({ tokens: new TokenFile({ path: opToken, checkMs: 0 }), scheme: 'http' })
  t.teardown(() => client.destroy())
  const ep = { host: '127.0.0.1', port: a.port }
  t.is(await client.push(ep, bundleA), bundleA.version)

  // The operator's copy of the Secret changes first (kubelet-style: write elsewhere, rename into place):
  // the appliance still expects the old token, and the client falls back to it.
  writeFileSync(`${opToken}.new`, 'new-token\n')
  renameSync(`${opToken}.new`, opToken)
  t.is(await client.version(ep), bundleA.version)
  // Then the appliance's copy changes: the new token works, and the old one still does for a while.
  writeFileSync(a.tokenPath, 'new-token\n')
  t.is(await client.push(ep, bundleB), bundleB.version)
  t.is((await a.call('GET', '/v1/config/version', 'old-token')).status, 200, 'old token in its grace period')
  t.is((await a.call('GET', '/v1/config/version', 'wrong')).status, 403)
})

test('TokenFile: a removed token is accepted only for the grace period; comparison needs the whole token', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-tok-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'token')
  let now = 1_000_000
  writeFileSync(path, '# comment\nfirst\nsecond\n')
  const tf = new TokenFile({ path, graceMs: 5000, checkMs: 0, now: () => now })
  t.is(tf.token(), 'first')
  t.true(tf.accepts('first'))
  t.true(tf.accepts('second'))
  t.false(tf.accepts('firs'))
  t.false(tf.accepts('first '))
  t.false(tf.accepts(''))
  writeFileSync(path, 'third\n')
  now += 10
  t.is(tf.token(), 'third')
  t.is(tf.previousToken(), 'first')
  t.true(tf.accepts('first'))
  t.true(tf.accepts('third'))
  now += 5000
  t.false(tf.accepts('first'), 'grace over')
  t.false(tf.accepts('second'))
  t.true(tf.accepts('third'))
  rmSync(path)
  now += 10
  t.is(tf.token(), undefined)
  t.true(tf.configured(), 'the removed token is still in its grace period')
  now += 6000
  t.false(tf.configured())
})

test('over TLS: the operator verifies the appliance certificate against the configured name, not the IP it dials', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sh = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  sh(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca'])
  sh(['req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=fg-appliance.test.svc'])
  writeFileSync(join(dir, 'ext'), 'subjectAltName=DNS:fg-appliance.test.svc\n')
  sh([
    'x509',
    '-req',
    '-in',
    'srv.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'srv.crt',
    '-days',
    '1',
    '-extfile',
    'ext',
  ])
  sh([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'other.key',
    '-out',
    'other.crt',
    '-days',
    '1',
    '-subj',
    '/CN=other-ca',
  ])
  const read = (f: string) => readFileSync(join(dir, f))
  writeFileSync(join(dir, 'token'), 'tls-token\n')
  const app = Fastify({ logger: false, https: { key: read('srv.key'), cert: read('srv.crt') } })
  await app.register(adminApi, {
    tokens: new TokenFile({ path: join(dir, 'token') }),
    stateDir: join(dir, 'state'),
    apply: () => {},
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const ep = { host: '127.0.0.1', port: (app.server.address() as { port: number }).port }
  const tokens = new TokenFile({ path: join(dir, 'token') })
  const client = (o: { ca: Buffer; serverName?: string }) => {
    const c = new ApplianceClient({ tokens, scheme: 'https', ...o })
    t.teardown(() => c.destroy())
    return c
  }
  t.is(
    await client({ ca: read('ca.crt'), serverName: 'fg-appliance.test.svc' }).push(ep, bundleA),
    bundleA.version,
  )
  const byIp = await t.throwsAsync(client({ ca: read('ca.crt') }).version(ep))
  t.regex(byIp!.message, /IP|altnames|match/i)
  const wrongCa = await t.throwsAsync(
    client({ ca: read('other.crt'), serverName: 'fg-appliance.test.svc' }).version(ep),
  )
  t.regex(wrongCa!.message, /certificate/i)
})
