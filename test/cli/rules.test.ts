// `flowgate rules unused`, run as a person runs it (a separate process through bin/flowgate.js) against
// the in-process Kubernetes API, whose FlowPolicy status.rules the real operator wrote from appliances'
// counters; and its pure parts.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import test from 'ava'
import { parseSince, unusedRules } from '../../cli/src/rules-unused.ts'
import type { FlowFacts } from '../../policy/src/engine/index.ts'
import { Cluster, waitFor } from '../operator/harness.ts'

const run = promisify(execFile)
const bin = new URL('../../bin/flowgate.js', import.meta.url).pathname

async function flowgate(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { timeout: 30_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

const facts = (dstPort: number): FlowFacts => ({
  endpoint: 'vpce-01234567890abcdef',
  family: 4,
  src: Uint8Array.of(10, 0, 0, 1),
  dst: Uint8Array.of(203, 0, 113, 9),
  protocol: 6,
  dstPort,
})

test('rules unused: from the status the operator wrote, as a table and as JSON', async (t) => {
  const c = await Cluster.start()
  t.teardown(() => c.close())
  const a = await c.addAppliance('app-a', '10.0.0.1')
  const op = await c.startOperator({ usageIntervalMs: 200 })
  await c.applyPolicy('web', {
    priority: 10,
    match: { protocols: ['TCP'] },
    rules: [
      { name: 'http', when: { ports: ['80'] }, action: 'Allow' },
      { name: 'old', when: { ports: ['8080'] }, action: 'Allow' },
      { name: 'never', when: { ports: ['9'] }, action: 'Allow' },
    ],
  })
  await waitFor(() => op.bundle() && c.allRun(op.bundle()!.version), 'the appliance to run the bundle')
  const now = Date.now()
  a.usage.record(a.engine!.decide(facts(80)), now - 60_000) // a minute ago
  a.usage.record(a.engine!.decide(facts(8080)), now - 10 * 86_400_000) // ten days ago
  await waitFor(
    () => c.policy('web')?.status?.rules?.filter((r: { hits: number }) => r.hits > 0).length === 2,
    'status.rules with both hits',
  )
  // a policy the operator has not read usage for yet (it is invalid: not in the bundle)
  c.kube.put('flowpolicies', {
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'broken' },
    spec: { rules: [{ name: 'x', action: 'Allow', when: { ports: ['99999'] } }] },
  })

  const kubeconfig = join(c.dir, 'kubeconfig')
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: c.kube.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'test', user: { token: 'cli-token' } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
      'current-context': 'test',
    }),
  )
  const table = await flowgate('rules', 'unused', '--since', '7d', '--kubeconfig', kubeconfig)
  t.is(table.code, 0, table.stderr)
  const lines = table.stdout.trimEnd().split('\n')
  t.regex(lines[0]!, /^POLICY\s+RULE\s+HITS\s+LAST HIT$/)
  t.is(lines.length, 3, table.stdout)
  t.regex(lines[1]!, /^web\s+old\s+1\s+\d{4}-\d{2}-\d{2}T/)
  t.regex(lines[2]!, /^web\s+never\s+0\s+never$/)
  t.regex(table.stderr, /no usage in status yet .*: broken\/x/)

  const json = await flowgate(
    'rules',
    'unused',
    '--since',
    '30d',
    '--output',
    'json',
    '--kubeconfig',
    kubeconfig,
  )
  t.is(json.code, 0, json.stderr)
  t.deepEqual(JSON.parse(json.stdout), [{ policy: 'web', rule: 'never', hits: 0, lastHit: null }])

  const since = new Date(now - 1000).toISOString()
  const rfc = await flowgate('rules', 'unused', '--since', since, '-o', 'json', '--kubeconfig', kubeconfig)
  t.deepEqual(
    JSON.parse(rfc.stdout).map((r: { rule: string }) => r.rule),
    ['http', 'old', 'never'],
    'hit a minute ago is before a second ago',
  )
})

test('rules unused: bad arguments and an unreachable API server are clear errors', async (t) => {
  t.is((await flowgate('rules')).code, 2)
  t.is((await flowgate('rules', 'used', '--since', '7d')).code, 2)
  const noSince = await flowgate('rules', 'unused')
  t.is(noSince.code, 2)
  t.regex(noSince.stderr, /--since is required/)
  const bad = await flowgate('rules', 'unused', '--since', 'last tuesday')
  t.is(bad.code, 2)
  t.regex(bad.stderr, /neither an RFC 3339 time .* nor a duration/)
  t.is((await flowgate('rules', 'unused', '--since', '7d', '--output', 'yaml')).code, 2)
  const c = await Cluster.start()
  const kubeconfig = join(c.dir, 'kubeconfig')
  const url = c.kube.url
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      clusters: [{ name: 'x', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'x', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }],
      'current-context': 'x',
    }),
  )
  await c.close() // nothing listens there any more
  const down = await flowgate('rules', 'unused', '--since', '7d', '--kubeconfig', kubeconfig)
  t.is(down.code, 1)
  t.regex(down.stderr, /could not list FlowPolicies/)
})

test('parseSince: durations back from now, RFC 3339 times and dates', (t) => {
  const now = Date.parse('2026-05-10T12:00:00Z')
  t.is(parseSince('7d', now), Date.parse('2026-05-03T12:00:00Z'))
  t.is(parseSince('1w2d', now), Date.parse('2026-05-01T12:00:00Z'))
  t.is(parseSince('90m', now), Date.parse('2026-05-10T10:30:00Z'))
  t.is(parseSince('2026-01-31T00:00:00Z', now), Date.parse('2026-01-31T00:00:00Z'))
  t.is(parseSince('2026-01-31T02:00:00+02:00', now), Date.parse('2026-01-31T00:00:00Z'))
  t.is(parseSince('2026-01-31', now), Date.parse('2026-01-31T00:00:00Z'))
  for (const bad of ['', '7', 'd', '7x', '-7d', '2026-13-45', '2026-01-31T00:00', 'yesterday'])
    t.throws(() => parseSince(bad, now), undefined, bad)
})

test('unusedRules: never hit, hit before the time, and no status yet', (t) => {
  const p = (name: string, rules: string[], status?: unknown[]) => ({
    metadata: { name },
    spec: { rules: rules.map((n) => ({ name: n })) },
    ...(status ? { status: { rules: status } } : {}),
  })
  const since = Date.parse('2026-05-01T00:00:00Z')
  const r = unusedRules(
    [
      p(
        'b',
        ['x', 'y', 'z', 'new'],
        [
          { name: 'x', hits: 5, lastHit: '2026-05-02T00:00:00Z' },
          { name: 'y', hits: 3, lastHit: '2026-04-02T00:00:00Z' },
          { name: 'z', hits: 0 },
        ],
      ),
      p('a', ['q']),
      { metadata: { name: 'junk' }, spec: { rules: 'nope' } },
    ],
    since,
  )
  t.deepEqual(r.unused, [
    { policy: 'b', rule: 'y', hits: 3, lastHit: '2026-04-02T00:00:00Z' },
    { policy: 'b', rule: 'z', hits: 0, lastHit: null },
  ])
  t.deepEqual(r.unknown, [
    { policy: 'a', rule: 'q' },
    { policy: 'b', rule: 'new' },
  ])
})
