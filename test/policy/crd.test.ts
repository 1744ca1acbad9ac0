import { readFileSync } from 'node:fs'
import { evaluate } from '@marcbachmann/cel-js'
import test from 'ava'
import { parse } from 'yaml'
import { generateCrd, RULE_VALIDATIONS, renderCrdYaml, SPEC_VALIDATIONS } from '../../policy/src/crd.ts'
import { loadPolicyText } from '../../policy/src/load.ts'
import { renderReference } from '../../policy/src/reference.ts'

const committed = readFileSync(new URL('../../crds/flowpolicy.yaml', import.meta.url), 'utf8')

test('crds/flowpolicy.yaml is exactly what the schema generates (run npm run gen:crd)', (t) => {
  t.is(committed, renderCrdYaml())
})

test('docs/flowpolicy-reference.md is what the schema generates (run npm run gen:crd)', (t) => {
  t.is(
    readFileSync(new URL('../../docs/flowpolicy-reference.md', import.meta.url), 'utf8'),
    renderReference(),
  )
})

type Node = Record<string, unknown>
function walk(node: Node, path: string, visit: (n: Node, path: string) => void) {
  visit(node, path)
  for (const [k, v] of Object.entries((node.properties as Record<string, Node>) ?? {}))
    walk(v, `${path}.${k}`, visit)
  if (node.items) walk(node.items as Node, `${path}[]`, visit)
  if (typeof node.additionalProperties === 'object')
    walk(node.additionalProperties as Node, `${path}{}`, visit)
}

test('the schema is structural: every node typed, no anyOf/const/$id, arrays have items', (t) => {
  const crd = parse(committed)
  const root = crd.spec.versions[0].schema.openAPIV3Schema
  const problems: string[] = []
  walk(root, '', (n, path) => {
    if (!n.type && !n['x-kubernetes-int-or-string'] && path !== '.metadata') problems.push(`${path}: no type`)
    for (const k of ['anyOf', 'oneOf', 'allOf', 'const', '$id', 'not'])
      if (k in n) problems.push(`${path}: ${k}`)
    if (n.type === 'array' && !n.items) problems.push(`${path}: array without items`)
    if (n.properties && n.additionalProperties !== undefined)
      problems.push(`${path}: additionalProperties with properties`)
    if (n['x-kubernetes-list-type'] === 'map') {
      const item = n.items as Node
      for (const key of n['x-kubernetes-list-map-keys'] as string[]) {
        if (!(item.required as string[] | undefined)?.includes(key))
          problems.push(`${path}: map key ${key} not required`)
      }
    }
  })
  t.deepEqual(problems, [])
})

test('the CRD is cluster-scoped with status subresource and the printer columns', (t) => {
  const crd = generateCrd() as any
  t.is(crd.spec.scope, 'Cluster')
  t.deepEqual(crd.spec.versions[0].subresources, { status: {} })
  t.deepEqual(
    crd.spec.versions[0].additionalPrinterColumns.map((c: { name: string }) => c.name),
    ['Priority', 'Mode', 'Ready', 'Age'],
  )
  t.is(crd.metadata.name, 'flowpolicies.flowgate.io')
})

// The CEL rules are evaluated here with a CEL implementation, so a rule that never holds (or never
// fails) is caught before an API server sees it.
const cel = (rule: string, self: unknown) => evaluate(rule, { self })
const exampleSpecs = [
  'aws-api-allowlist',
  'youtube-one-video',
  'authorizer',
  'udp-censor',
  'icmp-every-fifth',
  'audit-mode',
  'tenant-isolation',
  'http-rules',
].flatMap((name) =>
  loadPolicyText(readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), 'utf8')).docs.map(
    (d) => (d.value as { spec: Record<string, any> }).spec,
  ),
)

test('every CEL rule holds for every example', (t) => {
  t.true(exampleSpecs.length >= 8)
  for (const spec of exampleSpecs) {
    for (const v of SPEC_VALIDATIONS) t.true(cel(v.rule, spec), v.message)
    for (const r of spec.rules ?? [])
      for (const v of RULE_VALIDATIONS) t.true(cel(v.rule, r), `${v.message}: ${r.name}`)
  }
})

const celRejects: [string, 'spec' | 'rule', unknown, RegExp][] = [
  [
    'Authorize without authorizer',
    'spec',
    { rules: [{ name: 'a', action: 'Authorize' }] },
    /need spec.authorizer/,
  ],
  [
    'packet rules on TCP',
    'spec',
    { rules: [{ name: 'a', action: 'Allow', when: { protocols: ['TCP'] }, packet: { dropEveryNth: 2 } }] },
    /protocols limited/,
  ],
  [
    'packet rules, protocols from match',
    'spec',
    {
      match: { protocols: ['TCP', 'UDP'] },
      rules: [{ name: 'a', action: 'Allow', packet: { dropEveryNth: 2 } }],
    },
    /protocols limited/,
  ],
  ['http authorizer', 'spec', { authorizer: { url: 'http://a/' } }, /must use https/],
  [
    'hooks without Inspect',
    'rule',
    { name: 'a', action: 'Allow', http: { onRequest: 'x' } },
    /use action Inspect/,
  ],
  ['packet on Deny', 'rule', { name: 'a', action: 'Deny', packet: { dropEveryNth: 2 } }, /use action Allow/],
  [
    'SNI on UDP',
    'rule',
    { name: 'a', action: 'Allow', when: { protocols: ['UDP'], sni: ['a.com'] } },
    /need TCP/,
  ],
  [
    'packet with L7',
    'rule',
    { name: 'a', action: 'Allow', when: { hosts: ['a.com'] }, packet: { dropEveryNth: 2 } },
    /cannot be combined/,
  ],
]
for (const [title, level, self, message] of celRejects) {
  test(`CEL rejects: ${title}`, (t) => {
    const rules = level === 'spec' ? SPEC_VALIDATIONS : RULE_VALIDATIONS
    const failed = rules.filter((v) => cel(v.rule, self) !== true).map((v) => v.message)
    t.true(
      failed.some((m) => message.test(m)),
      `failed: ${failed.join('; ')}`,
    )
  })
}
