// The KMS signer through the shared suite — the real SDK v3 KMSClient against an in-process server speaking
// the KMS JSON protocol with real P-256 keys — plus what is particular to KMS: the key checks at start,
// DIGEST signing, retries on throttling and 5xx, and refusal of a signature that does not verify.
import crypto from 'node:crypto'
import { KMSClient } from '@aws-sdk/client-kms'
import test from 'ava'
import { CaError } from '../../appliance/src/ca/errors.ts'
import { openSigner, startCertificateAuthority } from '../../appliance/src/ca/index.ts'
import { createIntermediate } from '../../appliance/src/ca/intermediate.ts'
import { KmsSigner } from '../../appliance/src/ca/kms-signer.ts'
import { createRootCertificate } from '../../appliance/src/ca/root.ts'
import { KmsServer } from '../support/kms-server.ts'
import { signerSuite } from './signer-suite.ts'

signerSuite('kms', async () => {
  const srv = await new KmsServer().start()
  const client = new KMSClient(srv.clientConfig())
  const a = srv.createKey()
  const b = srv.createKey()
  return {
    signer: await KmsSigner.open({ client, keyId: a.keyId }),
    other: await KmsSigner.open({ client, keyId: b.keyId }),
    secrets: [], // the private key is in the server, never in the signer
    signCalls: () => srv.callsOf('Sign').length,
    close: async () => {
      client.destroy()
      await srv.close()
    },
  }
})

/** A server of its own, so injected faults touch only the test that injects them. */
async function kms(clientConfig: { maxAttempts?: number } = {}) {
  const srv = await new KmsServer().start()
  const client = new KMSClient({ ...srv.clientConfig(), ...clientConfig })
  return {
    srv,
    client,
    [Symbol.asyncDispose]: async () => {
      client.destroy()
      await srv.close()
    },
  }
}

test('kms: GetPublicKey at start; Sign sends a 32-byte SHA-256 DIGEST with ECDSA_SHA_256 to the key ARN', async (t) => {
  await using k = await kms()
  const { keyId, arn } = k.srv.createKey()
  const signer = await KmsSigner.open({ client: k.client, keyId })
  t.is(signer.keyArn, arn, 'signs with the ARN KMS reported, not the alias or id it was given')
  t.deepEqual(signer.spki(), k.srv.publicKey(keyId).export({ type: 'spki', format: 'der' }))
  const data = crypto.randomBytes(5000) // larger than KMS's 4096-byte RAW limit: DIGEST is what makes this work
  const sig = await signer.sign(data)
  t.true(crypto.verify('sha256', data, { key: k.srv.publicKey(keyId), dsaEncoding: 'der' }, sig))
  const sign = k.srv.callsOf('Sign')
  t.is(sign.length, 1)
  t.is(sign[0]?.messageType, 'DIGEST')
  t.is(sign[0]?.messageLength, 32)
  t.is(sign[0]?.keyId, arn)
  t.regex(signer.describe(), new RegExp(`aws-kms\\(${arn}`))
})

test("kms: a key that is not the root certificate's is refused at start (FG_ERR_CA_KEY_MISMATCH)", async (t) => {
  await using k = await kms()
  const a = k.srv.createKey()
  const b = k.srv.createKey()
  const root = await createRootCertificate(await KmsSigner.open({ client: k.client, keyId: a.keyId }))
  const ok = await KmsSigner.open({ client: k.client, keyId: a.keyId, rootCertificate: root.node })
  t.is(ok.keyArn, a.arn)
  const err = await t.throwsAsync(
    () => KmsSigner.open({ client: k.client, keyId: b.keyId, rootCertificate: root.node }),
    {
      instanceOf: CaError,
    },
  )
  t.is(err?.code, 'FG_ERR_CA_KEY_MISMATCH')
  t.regex(err?.message ?? '', new RegExp(b.arn), 'names the key it refused')
})

test('kms: keys of the wrong spec or usage, and unusable keys, are refused with their own codes', async (t) => {
  await using k = await kms({ maxAttempts: 1 })
  const cases = [
    [k.srv.createKey({ spec: 'ECC_NIST_P384' }).keyId, 'FG_ERR_CA_KEY_TYPE', /KeySpec is ECC_NIST_P384/],
    [k.srv.createKey({ usage: 'KEY_AGREEMENT' }).keyId, 'FG_ERR_CA_KEY_USAGE', /KeyUsage is KEY_AGREEMENT/],
    [
      k.srv.createKey({ spec: 'SYMMETRIC_DEFAULT', usage: 'ENCRYPT_DECRYPT' }).keyId,
      'FG_ERR_CA_KMS',
      /UnsupportedOperationException/,
    ],
    [k.srv.createKey({ state: 'PendingDeletion' }).keyId, 'FG_ERR_CA_KMS', /KMSInvalidStateException/],
    [k.srv.createKey({ state: 'Disabled' }).keyId, 'FG_ERR_CA_KMS', /DisabledException/],
    ['0b0e0e0e-0000-4000-8000-000000000000', 'FG_ERR_CA_KMS', /NotFoundException \(HTTP 400\)/],
  ] as const
  for (const [keyId, code, message] of cases) {
    const err = await t.throwsAsync(() => KmsSigner.open({ client: k.client, keyId }), {
      instanceOf: CaError,
    })
    t.is(err?.code, code, keyId)
    t.regex(err?.message ?? '', message)
  }
})

test('kms: a key disabled after start fails the next signature with FG_ERR_CA_KMS', async (t) => {
  await using k = await kms()
  const { keyId } = k.srv.createKey()
  const signer = await KmsSigner.open({ client: k.client, keyId })
  k.srv.setState(keyId, 'Disabled')
  const err = await t.throwsAsync(() => signer.sign(Buffer.from('tbs')), { instanceOf: CaError })
  t.is(err?.code, 'FG_ERR_CA_KMS')
  t.regex(err?.message ?? '', /DisabledException/)
})

test('kms: throttling and 5xx are retried by the SDK, and the start still costs one good Sign', async (t) => {
  await using k = await kms()
  const { keyId } = k.srv.createKey()
  const signer = await KmsSigner.open({ client: k.client, keyId })
  const root = await createRootCertificate(signer)
  k.srv.throttle(1, ['Sign'])
  k.srv.fail(1, ['Sign'])
  const before = k.srv.calls.length
  const inter = await createIntermediate(signer, root)
  t.true(inter.node.verify(root.node.publicKey))
  const tried = k.srv.calls.slice(before).map((c) => `${c.operation} ${c.status} ${c.errorType ?? ''}`.trim())
  t.deepEqual(tried, ['Sign 400 ThrottlingException', 'Sign 500 KMSInternalException', 'Sign 200'])
})

test('kms: when retries run out the error says which AWS error it was (FG_ERR_CA_KMS)', async (t) => {
  await using k = await kms({ maxAttempts: 2 })
  const { keyId } = k.srv.createKey()
  const signer = await KmsSigner.open({ client: k.client, keyId })
  k.srv.throttle(5, ['Sign'])
  const err = await t.throwsAsync(() => signer.sign(Buffer.from('tbs')), { instanceOf: CaError })
  t.is(err?.code, 'FG_ERR_CA_KMS')
  t.regex(err?.message ?? '', /ThrottlingException/)
  t.is(k.srv.calls.filter((c) => c.operation === 'Sign').length, 2, 'maxAttempts honoured')
})

test('kms: a signature that does not verify under the key is refused (FG_ERR_CA_SIGNATURE), not embedded', async (t) => {
  await using k = await kms()
  const { keyId } = k.srv.createKey()
  const signer = await KmsSigner.open({ client: k.client, keyId })
  const root = await createRootCertificate(signer)
  k.srv.badSignatures(1)
  const err = await t.throwsAsync(() => createIntermediate(signer, root), { instanceOf: CaError })
  t.is(err?.code, 'FG_ERR_CA_SIGNATURE')
})

test('kms: openSigner({ kmsKeyId }) opens the KMS signer the appliance flags name', async (t) => {
  await using k = await kms()
  const { keyId, arn } = k.srv.createKey()
  const signer = await openSigner({ kmsKeyId: keyId, kmsClient: k.client })
  t.true(signer instanceof KmsSigner)
  t.is((signer as KmsSigner).keyArn, arn)
})

test('kms: a KMS that does not answer times out and is retried; then FG_ERR_CA_KMS, not a hung start', async (t) => {
  await using k = await kms()
  const { keyId } = k.srv.createKey()
  k.srv.hang(1, ['GetPublicKey'])
  // No client given: the signer builds its own, with its request timeout (shortened here, yet long
  // enough for the retry to succeed on a loaded machine).
  const open = (timeoutMs: number) =>
    KmsSigner.open({
      keyId,
      endpoint: k.srv.url,
      region: 'us-east-1',
      timeoutMs,
      clientConfig: {
        credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
        maxAttempts: 2,
      },
    })
  const t0 = Date.now()
  const signer = await open(1500)
  t.true(Date.now() - t0 >= 1500, 'waited for the timeout once')
  t.deepEqual(
    k.srv.calls.map((c) => `${c.operation} ${c.status}`),
    ['GetPublicKey 0', 'GetPublicKey 200'],
  )
  k.srv.hang(2, ['Sign'])
  const err = await t.throwsAsync(signer.sign(Buffer.from('tbs')), { instanceOf: CaError })
  t.is(err?.code, 'FG_ERR_CA_KMS')
  t.regex(err?.message ?? '', /Timeout/i)
  signer.close()
})

test('kms: an appliance start is one GetPublicKey and one Sign, however many leaves follow', async (t) => {
  await using k = await kms()
  const { keyId } = k.srv.createKey()
  const root = await createRootCertificate(await KmsSigner.open({ client: k.client, keyId }))
  const before = k.srv.calls.length
  const signer = await KmsSigner.open({ client: k.client, keyId, rootCertificate: root.node })
  const ca = await startCertificateAuthority({ rootCertPem: root.pem, signer })
  try {
    await Promise.all(
      ['a.example.test', 'b.example.test', '192.0.2.7', 'a.example.test'].map((h) => ca.minter.get(h)),
    )
    t.deepEqual(
      k.srv.calls.slice(before).map((c) => `${c.operation} ${c.status}`),
      ['GetPublicKey 200', 'Sign 200'],
    )
  } finally {
    ca.close()
  }
})

test('kms: opened by alias, the signer keeps signing with the key the alias named at start', async (t) => {
  await using k = await kms()
  const a = k.srv.createKey()
  const b = k.srv.createKey()
  const alias = k.srv.setAlias('flowgate-ca', a.keyId)
  const signer = await KmsSigner.open({ client: k.client, keyId: alias })
  t.is(signer.keyArn, a.arn)
  k.srv.setAlias('flowgate-ca', b.keyId) // someone re-points the alias while the appliance runs
  const data = Buffer.from('tbs')
  const sig = await signer.sign(data)
  t.true(crypto.verify('sha256', data, { key: k.srv.publicKey(a.keyId), dsaEncoding: 'der' }, sig))
  t.is(k.srv.callsOf('Sign')[0]?.keyId, a.arn)
  // A fresh start follows the alias — and is refused against the old root, as it should be.
  const root = await createRootCertificate(signer)
  const err = await t.throwsAsync(
    KmsSigner.open({ client: k.client, keyId: alias, rootCertificate: root.node }),
    {
      instanceOf: CaError,
    },
  )
  t.is(err?.code, 'FG_ERR_CA_KEY_MISMATCH')
})

test('kms: requests are SigV4-checked like KMS does: wrong region or secret is refused', async (t) => {
  await using k = await kms()
  const { keyId } = k.srv.createKey()
  const cases = [
    [{ region: 'eu-west-1' }, /InvalidSignatureException.*scoped/],
    [
      { credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'wrong' } },
      /InvalidSignatureException.*does not match/,
    ],
    [{ credentials: { accessKeyId: 'AKIDOTHER', secretAccessKey: 'x' } }, /UnrecognizedClientException/],
  ] as const
  for (const [override, message] of cases) {
    const client = new KMSClient({ ...k.srv.clientConfig(), ...override, maxAttempts: 1 })
    const err = await t.throwsAsync(KmsSigner.open({ client, keyId }), { instanceOf: CaError })
    t.is(err?.code, 'FG_ERR_CA_KMS')
    t.regex(err?.message ?? '', message)
    client.destroy()
  }
})
