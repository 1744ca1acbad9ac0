// `flowgate ca init` end to end: through the KMS signer (real SDK client, endpoint override, credentials
// from the environment as in production) and through a local key file; the written root is then judged
// by openssl. Serial: the command prints through console.*, which these tests capture.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { caCommand } from '../../cli/src/ca.ts'
import { KmsServer } from '../support/kms-server.ts'
import { openssl } from './helpers.ts'

let srv: KmsServer
let dir: string
test.before(async () => {
  srv = await new KmsServer().start()
  dir = await mkdtemp(join(tmpdir(), 'flowgate-ca-cli-'))
  // The default credential chain reads these first; no profile or instance metadata is consulted.
  process.env.AWS_ACCESS_KEY_ID = 'AKIDTEST'
  process.env.AWS_SECRET_ACCESS_KEY = 'test-secret'
})
test.after.always(async () => {
  await srv?.close()
  await rm(dir, { recursive: true, force: true })
})

async function ca(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = []
  const err: string[] = []
  const { log, error } = console
  console.log = (...a: unknown[]) => out.push(a.join(' '))
  console.error = (...a: unknown[]) => err.push(a.join(' '))
  try {
    const code = await caCommand.run(args)
    return { code, stdout: out.join('\n'), stderr: err.join('\n') }
  } finally {
    console.log = log
    console.error = error
  }
}

test.serial(
  'ca init --kms-key-id writes a root self-signed by the KMS key and says how to trust it',
  async (t) => {
    const { keyId, arn } = srv.createKey()
    const out = join(dir, 'kms-root.pem')
    const r = await ca(
      'init',
      '--kms-key-id',
      keyId,
      '--region',
      'us-east-1',
      '--endpoint',
      srv.url,
      '--out',
      out,
    )
    t.is(r.code, 0, r.stderr)
    t.regex(r.stdout, new RegExp(`signed by aws-kms\\(${arn}`))
    // Amazon Linux and Debian/Ubuntu, as the certificate must be placed for each.
    t.regex(r.stdout, /\/etc\/pki\/ca-trust\/source\/anchors\/kms-root\.pem/)
    t.regex(r.stdout, /update-ca-trust/)
    t.regex(r.stdout, /\/usr\/local\/share\/ca-certificates\/kms-root\.crt/)
    t.regex(r.stdout, /update-ca-certificates/)
    const pem = await readFile(out, 'utf8')
    t.notRegex(pem, /PRIVATE/)
    t.is((await stat(out)).mode & 0o777, 0o644)
    const cert = new crypto.X509Certificate(pem)
    t.true(cert.ca)
    t.true(cert.publicKey.equals(srv.publicKey(keyId)), 'certifies the KMS key')
    t.is((await openssl(['verify', '-CAfile', out, out])).code, 0)
    t.is(srv.callsOf('Sign').length, 1)
  },
)

test.serial('ca init will not replace an existing root unless told to', async (t) => {
  const { keyId } = srv.createKey()
  const out = join(dir, 'existing.pem')
  await writeFile(out, 'old')
  const args = ['init', '--kms-key-id', keyId, '--region', 'us-east-1', '--endpoint', srv.url, '--out', out]
  const r = await ca(...args)
  t.is(r.code, 1)
  t.regex(r.stderr, /exists; pass --force/)
  t.is(await readFile(out, 'utf8'), 'old')
  t.is((await ca(...args, '--force')).code, 0)
  t.regex(await readFile(out, 'utf8'), /BEGIN CERTIFICATE/)
})

test.serial('ca init --key FILE uses a local P-256 key; --subject and --days shape the root', async (t) => {
  const fifo = join(dir, 'ca.key')
  execFileSync('mkfifo', ['-m', '600', fifo]) // a pipe: the test key never lands on disk
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  createWriteStream(fifo).end(privateKey.export({ type: 'pkcs8', format: 'pem' }))
  const out = join(dir, 'local-root.pem')
  const r = await ca(
    'init',
    '--key',
    fifo,
    '--out',
    out,
    '--subject',
    'CN=Example Inspection Root, O=Example',
    '--days',
    '30',
  )
  t.is(r.code, 0, r.stderr)
  const cert = new crypto.X509Certificate(await readFile(out))
  t.true(cert.publicKey.equals(publicKey))
  t.is(cert.subject, 'CN=Example Inspection Root\nO=Example')
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000
  t.true(days > 30 && days < 30.01, `${days}`)
})

test.serial('ca init refuses a KMS key that cannot be the CA, with its code', async (t) => {
  const { keyId } = srv.createKey({ spec: 'ECC_NIST_P384' })
  const out = join(dir, 'p384.pem')
  const r = await ca(
    'init',
    '--kms-key-id',
    keyId,
    '--region',
    'us-east-1',
    '--endpoint',
    srv.url,
    '--out',
    out,
  )
  t.is(r.code, 1)
  t.regex(r.stderr, /FG_ERR_CA_KEY_TYPE: .*ECC_NIST_P384/)
  await t.throwsAsync(stat(out), undefined, 'nothing written')
})

test.serial('ca init with a missing key file says how to make one', async (t) => {
  const r = await ca('init', '--key', join(dir, 'missing.key'), '--out', join(dir, 'never.pem'))
  t.is(r.code, 1)
  t.regex(r.stderr, /FG_ERR_CA_KEY_LOAD/)
  t.regex(r.stderr, /openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256/)
})

test.serial('ca: usage mistakes exit 2', async (t) => {
  t.is((await ca('init', '--out', join(dir, 'x.pem'))).code, 2)
  t.is((await ca('init', '--key', 'k', '--kms-key-id', 'id', '--out', join(dir, 'x.pem'))).code, 2)
  t.is((await ca('init', '--key', 'k')).code, 2)
  t.is((await ca('init', '--key', 'k', '--out', join(dir, 'x.pem'), '--days', '0')).code, 2)
  const r = await ca('frobnicate')
  t.is(r.code, 2)
  t.regex(r.stderr, /Usage: flowgate ca init/)
})
