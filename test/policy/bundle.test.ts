import test from 'ava'
import { bundleVersion, canonicalJson, compile, verifyBundle } from '../../policy/src/bundle.ts'
import { FlowgateError } from '../../policy/src/errors.ts'
import { randomPolicies, rng } from '../support/random-policies.ts'

const doc = (name: string, spec: unknown, generation?: number) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name, ...(generation ? { generation } : {}) },
  spec,
})

function shuffle<T>(xs: T[], r: () => number): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys)
  if (v === null || typeof v !== 'object') return v
  return Object.fromEntries(
    Object.entries(v)
      .reverse()
      .map(([k, x]) => [k, reverseKeys(x)]),
  )
}

test('same policies in any order, and any key order, give the same bytes and version', (t) => {
  const r = rng(7)
  const docs = randomPolicies(r, 20, 6)
  const first = JSON.stringify(compile(docs).bundle)
  for (let i = 0; i < 10; i++) {
    const shuffled = shuffle(docs, r).map(reverseKeys)
    t.is(JSON.stringify(compile(shuffled).bundle), first)
  }
})

test('equivalent spellings normalize to the same bundle', (t) => {
  const a = compile([
    doc('p', {
      match: { ports: [443, '80'], sources: ['10.0.0.0/8'] },
      rules: [{ name: 'r', action: 'Allow', when: { sni: ['Example.COM.'] } }],
    }),
  ])
  const b = compile([
    doc('p', {
      priority: 1000,
      mode: 'Enforce',
      match: { ports: ['80', '443'], sources: ['10.0.0.0/8'] },
      rules: [{ name: 'r', action: 'Allow', when: { sni: ['example.com'] } }],
    }),
  ])
  t.is(a.bundle.version, b.bundle.version)
})

test('any change of content changes the version', (t) => {
  const base = compile([doc('p', { rules: [{ name: 'r', action: 'Allow' }] })]).bundle.version
  t.not(compile([doc('p', { rules: [{ name: 'r', action: 'Deny' }] })]).bundle.version, base)
  t.not(compile([doc('p', { rules: [{ name: 'r', action: 'Allow' }] }, 2)]).bundle.version, base)
  t.not(
    compile([doc('p', { rules: [{ name: 'r', action: 'Allow' }] })], { fleetDefault: 'Deny' }).bundle.version,
    base,
  )
})

test('bundles are ordered by priority then name', (t) => {
  const b = compile([doc('b', { priority: 5 }), doc('a', { priority: 5 }), doc('c', { priority: 1 })]).bundle
  t.deepEqual(
    b.policies.map((p) => p.name),
    ['c', 'a', 'b'],
  )
})

test('one invalid policy is left out and the others still compile', (t) => {
  const c = compile([doc('good', { defaultAction: 'Allow' }), doc('bad', { match: { ports: ['9-1'] } })])
  t.deepEqual(
    c.bundle.policies.map((p) => p.name),
    ['good'],
  )
  t.true(c.results[0]!.ok)
  t.false(c.results[1]!.ok)
})

test('a compiled bundle verifies and round-trips through JSON', (t) => {
  const c = compile(randomPolicies(rng(3), 15, 5))
  const { bundle, policies } = verifyBundle(JSON.parse(JSON.stringify(c.bundle)))
  t.is(bundle.version, c.bundle.version)
  t.deepEqual(
    policies.map((p) => p.name),
    c.policies.map((p) => p.name),
  )
})

test('spec.har goes into the bundle normalized and comes back out of verifyBundle', (t) => {
  const c = compile([
    doc('recorded', {
      rules: [{ name: 'r', action: 'Inspect' }],
      har: { enabled: true, redactHeaders: ['X-Api-Key'] },
    }),
    doc('off', { rules: [{ name: 'r', action: 'Inspect' }], har: { enabled: false, maxBodyBytes: 5 } }),
  ])
  const specs = Object.fromEntries(c.bundle.policies.map((p) => [p.name, p.spec]))
  t.deepEqual(specs.recorded!.har, { enabled: true, maxBodyBytes: 65_536, redactHeaders: ['x-api-key'] })
  t.is(specs.off!.har, undefined)
  const { policies } = verifyBundle(JSON.parse(JSON.stringify(c.bundle)))
  t.deepEqual(policies.find((p) => p.name === 'recorded')!.har, {
    maxBodyBytes: 65_536,
    redactHeaders: ['x-api-key'],
  })
})

const tampered: [string, (b: Record<string, any>) => void, RegExp][] = [
  [
    'edited content, stale version',
    (b) => {
      b.policies[0].spec.priority = 7
    },
    /version: .* does not match/,
  ],
  [
    'wrong apiVersion',
    (b) => {
      b.apiVersion = 'x'
    },
    /apiVersion: must be/,
  ],
  [
    'bad fleet default',
    (b) => {
      b.fleetDefault = 'Maybe'
    },
    /fleetDefault/,
  ],
  [
    'invalid policy inside',
    (b) => {
      b.policies[0].spec.match = { ports: ['2-1'] }
    },
    /policies\[0\]\.spec\.match\.ports\[0\]: "2-1" is a reversed range/,
  ],
  [
    'out of order',
    (b) => {
      b.policies.reverse()
      b.version = bundleVersion(b.fleetDefault, b.policies)
    },
    /ordered by priority/,
  ],
  [
    'policies not a list',
    (b) => {
      b.policies = {}
    },
    /policies: must be a list/,
  ],
]
for (const [title, mutate, message] of tampered) {
  test(`verifyBundle rejects: ${title}`, (t) => {
    const b = JSON.parse(
      JSON.stringify(
        compile([
          doc('a', { priority: 1, defaultAction: 'Allow' }),
          doc('b', { priority: 2, defaultAction: 'Deny' }),
        ]).bundle,
      ),
    )
    mutate(b)
    const err = t.throws(() => verifyBundle(b), { instanceOf: FlowgateError })
    t.is(err?.code, 'FG_ERR_BUNDLE')
    t.regex(err!.errors.map((e) => `${e.path}: ${e.message}`).join('\n'), message)
  })
}

test('canonical JSON sorts keys at every depth and keeps array order', (t) => {
  t.is(canonicalJson({ b: 1, a: { d: [3, 1], c: null } }), '{"a":{"c":null,"d":[3,1]},"b":1}')
})

test('1,000 FlowPolicies compile in well under the 1 s budget', (t) => {
  // Timing is the benchmark's job (bench/policy-matcher.ts); this only guards against a blow-up.
  const docs = randomPolicies(rng(11), 1000, 8)
  const start = performance.now()
  const c = compile(docs)
  const ms = performance.now() - start
  t.is(c.bundle.policies.length, 1000)
  t.log(`compiled 1,000 policies in ${ms.toFixed(0)} ms`)
  t.true(ms < 10_000)
})
