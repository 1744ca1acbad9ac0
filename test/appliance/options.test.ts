import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { pino } from 'pino'
import { gwlbDataplane } from '../../appliance/src/dataplane/gwlb-dataplane.ts'
import { startAppliance } from '../../appliance/src/main.ts'
import { parseApplianceArgs } from '../../appliance/src/options.ts'

test('standalone and operator-managed flags parse into one options object', (t) => {
  t.like(parseApplianceArgs(['--policies', 'p.yaml']), {
    policies: 'p.yaml',
    genevePort: 6081,
    httpPort: 8080,
    drainSeconds: 300,
    io: 'auto',
    fleetDefault: 'Allow',
    flowCapacity: 262_144,
    tcpIdleSeconds: 350,
    idleSeconds: 120,
  })
  const m = parseApplianceArgs([
    '--admin-token-file=/t',
    '--state-dir=/s',
    '--admin-tls-cert=/c',
    '--admin-tls-key=/k',
    '--ca-cert=/ca.crt',
    '--kms-key-id=alias/fg',
    '--kms-region=eu-west-1',
    '--io=dgram',
    '--admin-port=9555',
  ])
  t.deepEqual(m.admin, { port: 9555, tokenFile: '/t', stateDir: '/s', tlsCert: '/c', tlsKey: '/k' })
  t.deepEqual(m.ca, { cert: '/ca.crt', kms: { keyId: 'alias/fg', region: 'eu-west-1' } })
})

test('standalone with an admin API: --policies with --admin-token-file (no state dir); --har-dir and its bounds', (t) => {
  const o = parseApplianceArgs(['--policies', 'p.yaml', '--admin-token-file', '/t', '--admin-port', '0'])
  t.is(o.policies, 'p.yaml')
  t.deepEqual(o.admin, { port: 0, tokenFile: '/t' })
  t.is(o.har, undefined)
  t.deepEqual(parseApplianceArgs(['--policies', 'p', '--har-dir', '/var/lib/har']).har, {
    dir: '/var/lib/har',
    maxFileBytes: 64 * 1024 * 1024,
    keepFiles: 10,
  })
  t.deepEqual(
    parseApplianceArgs(['--policies', 'p', '--har-dir', 'h', '--har-file-mb', '2', '--har-keep-files', '3'])
      .har,
    { dir: 'h', maxFileBytes: 2 * 1024 * 1024, keepFiles: 3 },
  )
})

test('--flow-log: off by default; a file or - (stdout), with its interval', (t) => {
  const off = parseApplianceArgs(['--policies', 'p'])
  t.is(off.flowLog, undefined)
  t.is(off.flowLogIntervalSeconds, 60)
  t.like(parseApplianceArgs(['--policies', 'p', '--flow-log', '-']), { flowLog: '-' })
  t.like(
    parseApplianceArgs([
      '--policies',
      'p',
      '--flow-log=/var/log/flows.jsonl',
      '--flow-log-interval-seconds',
      '10',
    ]),
    { flowLog: '/var/log/flows.jsonl', flowLogIntervalSeconds: 10 },
  )
})

const usage: [string[], RegExp][] = [
  [[], /either --policies FILE/],
  [['--policies', 'p', '--admin-token-file', 't', '--state-dir', 's'], /--state-dir is for operator-managed/],
  [['--policies', 'p', '--har-dir='], /--har-dir needs a directory/],
  [['--policies', 'p', '--har-keep-files', '3'], /go with --har-dir/],
  [['--policies', 'p', '--har-dir', 'd', '--har-file-mb', '0'], /--har-file-mb must be a whole number/],
  [['--admin-token-file', 't'], /needs --state-dir/],
  [['--policies', 'p', '--admin-tls-cert', 'c'], /go together/],
  [['--policies', 'p', '--io', 'turbo'], /--io must be auto, native or dgram/],
  [['--policies', 'p', '--ca-cert', 'c'], /exactly one of --ca-key FILE or --kms-key-id/],
  [['--policies', 'p', '--ca-cert', 'c', '--ca-key', 'k', '--kms-key-id', 'i'], /exactly one/],
  [['--policies', 'p', '--ca-key', 'k'], /need --ca-cert/],
  [['--policies', 'p', '--kms-region', 'r'], /go with --kms-key-id/],
  [['--policies', 'p', '--drain-seconds=-1'], /--drain-seconds must be a whole number/],
  [['--policies', 'p', '--fleet-default', 'Maybe'], /--fleet-default must be one of/],
  [['--policies', 'p', '--nope'], /Unknown option '--nope'/],
  [['--policies', 'p', '--flow-log='], /--flow-log needs a file path/],
  [['--policies', 'p', '--flow-log-interval-seconds', '5'], /goes with --flow-log/],
  [['--policies', 'p', '--flow-log', '-', '--flow-log-interval-seconds', '0'], /from 1 to 3600/],
  [
    ['--policies', 'p', '--tcp-idle-seconds', '30'],
    /--tcp-idle-seconds must be a whole number from 60 to 6000/,
  ],
]
for (const [args, message] of usage) {
  test(`usage error: ${args.join(' ') || '(nothing)'}`, (t) => {
    t.throws(() => parseApplianceArgs(args), { message, instanceOf: Error })
  })
}

test('a configured CA is checked at start and mints leaves; a root that is not the key’s is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  // Test fixtures: a root made by openssl (as an operator might), and a second, unrelated key.
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'root.key'))
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    join(dir, 'root.key'),
    '-days',
    '30',
    '-subj',
    '/CN=test root',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    join(dir, 'root.crt'),
  )
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'other.key'))
  writeFileSync(
    join(dir, 'p.yaml'),
    'apiVersion: flowgate.io/v1alpha1\nkind: FlowPolicy\nmetadata: {name: p}\nspec: {defaultAction: Allow}\n',
  )
  const base = {
    policies: join(dir, 'p.yaml'),
    genevePort: 0,
    httpPort: 0,
    bind: '127.0.0.1',
    drainSeconds: 0,
    dataplane: gwlbDataplane({ io: 'dgram' }),
    logger: pino({ level: 'silent' }),
  }
  const a = await startAppliance({ ...base, ca: { cert: join(dir, 'root.crt'), key: join(dir, 'root.key') } })
  try {
    const leaf = await a.ca!.minter.get('www.example.com')
    writeFileSync(join(dir, 'chain.pem'), leaf.chainPem)
    const out = execFileSync(
      'openssl',
      [
        'verify',
        '-CAfile',
        join(dir, 'root.crt'),
        '-untrusted',
        join(dir, 'chain.pem'),
        join(dir, 'chain.pem'),
      ],
      { encoding: 'utf8' },
    )
    t.regex(out, /OK/)
  } finally {
    await a.close()
  }
  await t.throwsAsync(
    startAppliance({ ...base, ca: { cert: join(dir, 'root.crt'), key: join(dir, 'other.key') } }),
    {
      message: /root|key|match/i,
    },
  )
})
