// Operator-managed mode: the real appliance with its admin API over TLS, driven over HTTPS as the
// operator drives it; the last good bundle survives a restart.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { pino } from 'pino'
import { gwlbDataplane } from '../../appliance/src/dataplane/gwlb-dataplane.ts'
import { startAppliance } from '../../appliance/src/main.ts'
import { compile } from '../../policy/src/bundle.ts'
import { loadPolicyText } from '../../policy/src/load.ts'
import { selfSignedCert } from '../support/certs.ts'

const bundleOf = (file: string) => {
  const text = readFileSync(new URL(`../../examples/${file}`, import.meta.url), 'utf8')
  return compile(loadPolicyText(text).docs.map((d) => d.value)).bundle
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-managed-'))
  selfSignedCert(dir, 'tls', '/CN=127.0.0.1', 'IP:127.0.0.1')
  writeFileSync(join(dir, 'token'), 'the-token\n')
  return dir
}

async function start(dir: string) {
  return startAppliance({
    admin: {
      port: 0,
      tokenFile: join(dir, 'token'),
      stateDir: join(dir, 'state'),
      tlsCert: join(dir, 'tls.crt'),
      tlsKey: join(dir, 'tls.key'),
    },
    genevePort: 0,
    httpPort: 0,
    bind: '127.0.0.1',
    drainSeconds: 0,
    dataplane: gwlbDataplane({ io: 'dgram' }),
    logger: pino({ level: 'silent' }),
  })
}

function call(dir: string, port: number, method: string, path: string, token: string | null, body?: unknown) {
  return new Promise<{ status: number; json: any }>((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca: readFileSync(join(dir, 'tls.crt')), // verified: no rejectUnauthorized: false here
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(data ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = ''
        res.on('data', (c) => {
          text += c
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null }))
      },
    )
    req.on('error', reject)
    req.end(data)
  })
}

const portOf = (a: Awaited<ReturnType<typeof start>>) => {
  const addr = a.admin!.server.address()
  return typeof addr === 'object' && addr ? addr.port : 0
}

test('the operator pushes a bundle over TLS; the appliance runs it, refuses bad calls, and keeps it across a restart', async (t) => {
  const dir = setup()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const a = await start(dir)
  try {
    t.is((await fetch(`${a.url}/healthz`)).status, 503, 'no policy yet')
    const port = portOf(a)
    const bundle = bundleOf('udp-censor.yaml')
    t.is((await call(dir, port, 'PUT', '/v1/config', null, bundle)).status, 401)
    t.is((await call(dir, port, 'PUT', '/v1/config', 'wrong', bundle)).status, 403)
    const ok = await call(dir, port, 'PUT', '/v1/config', 'the-token', bundle)
    t.is(ok.status, 200, JSON.stringify(ok.json))
    t.is(a.store.current?.bundle.version, bundle.version)
    t.is((await fetch(`${a.url}/healthz`)).status, 200)
    const bad = await call(dir, port, 'PUT', '/v1/config', 'the-token', {
      ...bundle,
      version: '0000000000000000',
    })
    t.is(bad.status, 422)
    t.is(a.store.current?.bundle.version, bundle.version, 'the running bundle is kept')
    const v = await call(dir, port, 'GET', '/v1/config/version', 'the-token')
    t.is(v.json.version, bundle.version)
  } finally {
    await a.close()
  }
  const again = await start(dir)
  try {
    t.is(
      again.store.current?.bundle.version,
      bundleOf('udp-censor.yaml').version,
      'restored from the state dir',
    )
    t.is((await fetch(`${again.url}/healthz`)).status, 200, 'serving before the operator calls again')
  } finally {
    await again.close()
  }
})
