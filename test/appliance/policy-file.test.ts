import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { pino } from 'pino'
import { health } from '../../appliance/src/control/health.ts'
import { PolicyFile, type ReloadResult } from '../../appliance/src/policy/policy-file.ts'
import { PolicyStore } from '../../appliance/src/policy/policy-store.ts'

const policy = (name: string, action: string) => `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: ${name}
spec:
  rules:
    - name: all
      action: ${action}
`

async function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-policy-'))
  const file = join(dir, 'policies.yaml')
  const store = new PolicyStore()
  const results: ReloadResult[] = []
  const pf = new PolicyFile(file, store, pino({ level: 'silent' }), (r) => results.push(r))
  t.teardown(async () => {
    pf.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { dir, file, store, pf, results }
}

const waitFor = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('loads a valid file and swaps in a new engine', async (t) => {
  const { file, store, pf } = await setup(t)
  await writeFile(file, policy('a', 'Deny'))
  const r = await pf.reload()
  t.true(r.ok)
  t.is(store.current?.bundle.policies[0]?.name, 'a')
  t.is(store.current?.engine.entries[0]?.action, 'Deny')
})

test('an invalid file is refused with field errors and the last good policy stays', async (t) => {
  const { file, store, pf } = await setup(t)
  await writeFile(file, policy('a', 'Deny'))
  await pf.reload()
  const good = store.current
  await writeFile(file, `${policy('a', 'Deny')}---\n${policy('b', 'Explode')}`)
  const r = await pf.reload()
  t.false(r.ok)
  if (!r.ok)
    t.regex(r.errors.join('\n'), /policies\.yaml:17: spec\.rules\[0\]\.action: "Explode" is not one of/)
  t.is(store.current, good, 'the valid document in the same file is not applied either: all or nothing')
})

test('a file that does not exist at start leaves no policy, and health says so', async (t) => {
  const { store, pf } = await setup(t)
  const r = await pf.reload()
  t.false(r.ok)
  t.is(store.current, undefined)
  const h = health({
    policyVersion: store.current?.bundle.version,
    loopAlive: true,
    loopDetail: '',
    draining: false,
  })
  t.is(h.status, 503)
  t.deepEqual(h.body.reasons, ['no policy loaded'])
})

test('a change to the file is picked up, including a rename over it (ConfigMap style)', async (t) => {
  const { dir, file, store, pf, results } = await setup(t)
  await writeFile(file, policy('a', 'Deny'))
  await pf.reload()
  pf.watch(50)
  await writeFile(file, policy('a', 'Allow'))
  await waitFor(() => store.current?.engine.entries[0]?.action === 'Allow')
  const tmp = join(dir, '.next.yaml')
  await writeFile(tmp, policy('renamed', 'Reject'))
  await rename(tmp, file)
  await waitFor(() => store.current?.bundle.policies[0]?.name === 'renamed')
  t.true(results.every((r) => r.ok))
})

test('health: every reason to refuse new flows is reported', (t) => {
  const ok = health({ policyVersion: 'v1', loopAlive: true, loopDetail: '', draining: false })
  t.is(ok.status, 200)
  const bad = health({
    policyVersion: undefined,
    loopAlive: false,
    loopDetail: 'socket closed',
    draining: true,
  })
  t.is(bad.status, 503)
  t.deepEqual(bad.body.reasons, ['no policy loaded', 'packet loop not running: socket closed', 'draining'])
})
