import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import test from 'ava'
import { verifyBundle } from '../../policy/src/bundle.ts'

const run = promisify(execFile)
const bin = new URL('../../bin/flowgate.js', import.meta.url).pathname
const examples = new URL('../../examples/', import.meta.url).pathname

// The CLI is run as a person runs it: a separate process through bin/flowgate.js.
async function flowgate(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args])
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

test('--help lists the commands that exist', async (t) => {
  const r = await flowgate('--help')
  t.is(r.code, 0)
  t.regex(r.stdout, /validate/)
  t.regex(r.stdout, /compile/)
})

test('an unknown command fails with the help text', async (t) => {
  const r = await flowgate('frobnicate')
  t.is(r.code, 2)
  t.regex(r.stderr, /unknown command "frobnicate"/)
})

test('validate: every example is valid', async (t) => {
  const r = await flowgate(
    'validate',
    `${examples}aws-api-allowlist.yaml`,
    `${examples}udp-censor.yaml`,
    `${examples}http-rules.yaml`,
  )
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /3 policies valid/)
})

test('validate: every error as file:line:field: message, non-zero exit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'bad.yaml')
  await writeFile(
    file,
    [
      'apiVersion: flowgate.io/v1alpha1',
      'kind: FlowPolicy',
      'metadata:',
      '  name: bad',
      'spec:',
      '  rules:',
      '    - name: web',
      '      when:',
      '        ports: ["90-80"]',
      '      action: Allow',
      '---',
      'apiVersion: flowgate.io/v1alpha1',
      'kind: FlowPolicy',
      'metadata:',
      '  name: worse',
      'spec:',
      '  mode: audit',
      '',
    ].join('\n'),
  )
  const r = await flowgate('validate', file)
  t.is(r.code, 1)
  const lines = r.stderr.trim().split('\n')
  t.true(lines.includes(`${file}:9: spec.rules[0].when.ports[0]: "90-80" is a reversed range`), r.stderr)
  t.true(
    lines.includes(`${file}:17: spec.mode: "audit" is not one of Enforce, Audit; did you mean "Audit"?`),
    r.stderr,
  )
  t.is(lines.at(-1), '2 errors')
})

test('validate: YAML syntax errors point at their line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'broken.yaml')
  await writeFile(file, 'apiVersion: flowgate.io/v1alpha1\nkind: FlowPolicy\nmetadata: {name: x\n')
  const r = await flowgate('validate', file)
  t.is(r.code, 1)
  t.regex(r.stderr, new RegExp(`${file}:\\d+: `))
})

test('validate: a missing file is an error, not a crash', async (t) => {
  const r = await flowgate('validate', '/nonexistent/policy.yaml')
  t.is(r.code, 1)
  t.regex(r.stderr, /ENOENT|no such file/)
})

test('compile --out writes a bundle that verifies; same input, same bytes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const out1 = join(dir, 'b1.json')
  const out2 = join(dir, 'b2.json')
  const files = ['udp-censor.yaml', 'aws-api-allowlist.yaml', 'tenant-isolation.yaml'].map(
    (f) => examples + f,
  )
  t.is((await flowgate('compile', ...files, '--out', out1)).code, 0)
  t.is((await flowgate('compile', ...files.reverse(), '--out', out2)).code, 0)
  const [a, b] = await Promise.all([readFile(out1, 'utf8'), readFile(out2, 'utf8')])
  t.is(a, b)
  const { bundle } = verifyBundle(JSON.parse(a))
  t.deepEqual(
    bundle.policies.map((p) => p.name),
    ['tenant-isolation', 'aws-api-allowlist', 'udp-censor'],
  )
})

test('compile refuses to write a partial bundle', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const bad = join(dir, 'bad.yaml')
  await writeFile(
    bad,
    'apiVersion: flowgate.io/v1alpha1\nkind: FlowPolicy\nmetadata: {name: b}\nspec: {priority: -3}\n',
  )
  const r = await flowgate('compile', `${examples}udp-censor.yaml`, bad, '--out', join(dir, 'out.json'))
  t.is(r.code, 1)
  t.regex(r.stderr, /no bundle written/)
  await t.throwsAsync(readFile(join(dir, 'out.json')))
})

test('appliance: a missing --policies or a bad port is a usage error, not a crash', async (t) => {
  const r = await flowgate('appliance')
  t.is(r.code, 2)
  t.regex(r.stderr, /give either --policies FILE \(standalone\) or --admin-token-file FILE/)
  const p = await flowgate('appliance', '--policies', 'x.yaml', '--geneve-port', '70000')
  t.is(p.code, 2)
  t.regex(p.stderr, /--geneve-port must be a whole number from 1 to 65535/)
})

test('operator: configuration mistakes are usage errors naming the option', async (t) => {
  const r = await flowgate('operator', '--bogus', 'x')
  t.is(r.code, 2)
  t.regex(r.stderr, /unknown option --bogus/)
  t.regex(r.stderr, /--target-group-arn/)
})
