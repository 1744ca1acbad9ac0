// The local signer through the shared suite, plus how it loads keys: PEM (PKCS#8 and SEC1), a Kubernetes
// Secret, a file — and what it refuses.

import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { CaError } from '../../appliance/src/ca/errors.ts'
import { LocalSigner } from '../../appliance/src/ca/local-signer.ts'
import type { CaSigner } from '../../appliance/src/ca/signer.ts'
import { signerSuite } from './signer-suite.ts'

/** Counts the signatures a signer makes. */
function counting(inner: CaSigner): CaSigner & { count: number } {
  const c = {
    count: 0,
    algorithm: inner.algorithm,
    publicKey: inner.publicKey,
    spki: () => inner.spki(),
    describe: () => inner.describe(),
    toJSON: () => inner.describe(),
    async sign(data: Uint8Array) {
      c.count++
      return inner.sign(data)
    },
  }
  return c
}

function p256Pem(format: 'pkcs8' | 'sec1' = 'pkcs8'): { pem: string; d: string } {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return {
    pem: privateKey.export({ type: format, format: 'pem' }) as string,
    d: privateKey.export({ format: 'jwk' }).d as string,
  }
}

signerSuite('local', async () => {
  const a = p256Pem()
  const b = p256Pem()
  const signer = counting(await LocalSigner.fromPem(a.pem, 'test'))
  const other = await LocalSigner.fromPem(b.pem, 'other')
  const body = a.pem.split('\n')[1] as string
  return {
    signer,
    other,
    secrets: [a.d, body, Buffer.from(a.d, 'base64url').toString('hex')],
    signCalls: () => signer.count,
    close: async () => {},
  }
})

test('local: SEC1 "EC PRIVATE KEY" PEM (openssl ecparam -genkey) loads as well as PKCS#8', async (t) => {
  const { pem } = p256Pem('sec1')
  t.regex(pem, /BEGIN EC PRIVATE KEY/)
  const s = await LocalSigner.fromPem(pem, 'sec1')
  const data = Buffer.from('x')
  t.true(crypto.verify('sha256', data, { key: s.publicKey, dsaEncoding: 'der' }, await s.sign(data)))
})

test("local: loads a Kubernetes Secret's tls.key, and names the Secret when it is missing", async (t) => {
  const { pem } = p256Pem()
  const secret = {
    metadata: { name: 'flowgate-ca', namespace: 'flowgate-system' },
    data: { 'tls.key': Buffer.from(pem).toString('base64'), 'tls.crt': '' },
  }
  const s = await LocalSigner.fromSecret(secret)
  t.regex(s.describe(), /secret:flowgate-system\/flowgate-ca/)
  const err = await t.throwsAsync(() => LocalSigner.fromSecret({ metadata: { name: 'x' }, data: {} }), {
    instanceOf: CaError,
  })
  t.is(err?.code, 'FG_ERR_CA_KEY_LOAD')
})

test('local: loads from a file path (a FIFO here, so the key never touches the disk)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flowgate-fifo-'))
  try {
    const fifo = join(dir, 'ca.key')
    execFileSync('mkfifo', ['-m', '600', fifo])
    const { pem } = p256Pem()
    const expected = crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' })
    const w = createWriteStream(fifo)
    w.end(pem)
    const s = await LocalSigner.fromFile(fifo)
    t.deepEqual(s.spki(), expected)
    t.regex(s.describe(), /file:.*ca\.key/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  const err = await t.throwsAsync(() => LocalSigner.fromFile('/nonexistent/flowgate/ca.key'), {
    instanceOf: CaError,
  })
  t.is(err?.code, 'FG_ERR_CA_KEY_LOAD')
})

test('local: refuses keys that are not P-256 private keys, without quoting the input', async (t) => {
  const rsa = crypto
    .generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
  const p384 = crypto
    .generateKeyPairSync('ec', { namedCurve: 'P-384' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
  const ed = crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' })
  for (const [pem, code] of [
    [rsa, 'FG_ERR_CA_KEY_TYPE'],
    [p384, 'FG_ERR_CA_KEY_TYPE'],
    [ed, 'FG_ERR_CA_KEY_TYPE'],
    [
      '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVzLWhlcmU=\n-----END PRIVATE KEY-----\n',
      'FG_ERR_CA_KEY_LOAD',
    ],
    ['not a key at all: secret-bytes-here', 'FG_ERR_CA_KEY_LOAD'],
  ] as const) {
    const err = await t.throwsAsync(() => LocalSigner.fromPem(pem as string, 'input'), {
      instanceOf: CaError,
    })
    t.is(err?.code, code)
    t.notRegex(
      `${err?.message} ${String((err?.cause as Error | undefined)?.message)}`,
      /secret-bytes|c2VjcmV0/,
    )
  }
  // A public key is not a signing key.
  const pub = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey
  const err = await t.throwsAsync(() => LocalSigner.fromKeyObject(pub, 'pub'), { instanceOf: CaError })
  t.is(err?.code, 'FG_ERR_CA_KEY_LOAD')
})
