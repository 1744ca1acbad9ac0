// The usage reconciler's pure part and its flag: sums, the desired status.rules, and when a patch is due.
import test from 'ava'
import type { RuleUsageReport } from '../../appliance/src/admin/plugin.ts'
import { parseOperatorArgs } from '../../operator/src/options.ts'
import { desiredRules, rulesPatch, sumUsage } from '../../operator/src/reconcilers/usage.ts'

const report = (rules: RuleUsageReport['rules']): RuleUsageReport => ({ bundleVersion: 'v', rules })

test('sums hits over appliances and keeps the latest hit; malformed entries are skipped', (t) => {
  const s = sumUsage([
    report([
      { policy: 'p', rule: 'a', hits: 2, lastHit: '2026-01-01T00:00:00.000Z' },
      { policy: 'p', rule: null, hits: 1, lastHit: '2026-01-01T00:00:00.000Z' },
    ]),
    report([
      { policy: 'p', rule: 'a', hits: 3, lastHit: '2026-01-02T00:00:00.000Z' },
      { policy: 'p', rule: 'b', hits: -1, lastHit: null },
      { policy: 'p', rule: 'c', hits: Number.NaN, lastHit: null },
      { policy: 'p', rule: 'd', hits: 1, lastHit: 'not a date' },
      // biome-ignore lint/suspicious/noExplicitAny: what a broken appliance could send
      null as any,
    ]),
    { bundleVersion: null } as unknown as RuleUsageReport,
  ])
  t.deepEqual(s.get('p')?.get('a'), { hits: 5, lastHit: Date.parse('2026-01-02T00:00:00.000Z') })
  t.deepEqual(s.get('p')?.get(null), { hits: 1, lastHit: Date.parse('2026-01-01T00:00:00.000Z') })
  t.false(s.get('p')!.has('b'))
  t.false(s.get('p')!.has('c'))
  t.deepEqual(s.get('p')?.get('d'), { hits: 1, lastHit: 0 })
})

test('desired status.rules: spec order, zeros for rules nobody reported, lastHit never moves back', (t) => {
  const summed = new Map([['a', { hits: 2, lastHit: Date.parse('2026-01-01T00:00:00.000Z') }]])
  const existing = [
    { name: 'a', hits: 9, lastHit: '2026-02-01T00:00:00.000Z' },
    { name: 'gone', hits: 1, lastHit: '2026-02-01T00:00:00.000Z' },
  ]
  t.deepEqual(desiredRules(['b', 'a'], summed, existing), [
    { name: 'b', hits: 0 },
    { name: 'a', hits: 2, lastHit: '2026-02-01T00:00:00.000Z' },
  ])
  t.deepEqual(desiredRules(['a'], undefined, undefined), [{ name: 'a', hits: 0 }])
})

test('a patch only when status.rules would change', (t) => {
  const d = [{ name: 'a', hits: 1, lastHit: '2026-01-01T00:00:00.000Z' }]
  t.is(rulesPatch([{ ...d[0]! }], d), undefined)
  t.deepEqual(rulesPatch(undefined, d), { status: { rules: d } })
  t.deepEqual(rulesPatch([], []), undefined)
  t.truthy(rulesPatch([{ name: 'a', hits: 2, lastHit: '2026-01-01T00:00:00.000Z' }], d))
  t.truthy(rulesPatch([{ name: 'a', hits: 1 }], d))
})

test('--usage-interval-seconds: seconds, 0 turns usage off, nonsense is refused', (t) => {
  const base = ['--namespace', 'ns', '--token-file', '/t']
  t.is(parseOperatorArgs(base, {}).usageIntervalMs, undefined)
  t.is(parseOperatorArgs([...base, '--usage-interval-seconds', '60'], {}).usageIntervalMs, 60_000)
  t.is(parseOperatorArgs([...base, '--usage-interval-seconds', '0'], {}).usageIntervalMs, 0)
  for (const bad of ['1', '-5', 'x', '1.5', '100000'])
    t.throws(() => parseOperatorArgs([...base, '--usage-interval-seconds', bad], {}), undefined, bad)
})
