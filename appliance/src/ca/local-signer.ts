// A CA signer over a P-256 private key held in this process: from a PEM file or a Kubernetes Secret's
// `tls.key` (the dev-cluster and demo root), or generated in memory (the intermediate). The private key is
// held only as a non-extractable WebCrypto CryptoKey in a private field: it cannot be exported through
// this object, it is never logged, and describe()/toJSON()/inspect show only its source and fingerprint.
import crypto, { type KeyObject, type webcrypto } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { inspect } from 'node:util'
import { CaError, CaErrorCodes } from './errors.ts'
import { assertP256, assertSignature, CA_ALGORITHM, type CaSigner, keyFingerprint, spkiOf } from './signer.ts'
import { AsnEcSignatureFormatter } from './x509.ts'

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const
const formatter = new AsnEcSignatureFormatter()

/** The subset of a Kubernetes Secret (core/v1) this reads: base64 `data` as the API serves it. */
export interface SecretLike {
  metadata?: { name?: string; namespace?: string }
  data?: Record<string, string>
}

export class LocalSigner implements CaSigner {
  readonly algorithm = CA_ALGORITHM
  readonly publicKey: KeyObject
  readonly #privateKey: webcrypto.CryptoKey
  readonly #spki: Buffer
  readonly #source: string

  private constructor(privateKey: webcrypto.CryptoKey, publicKey: KeyObject, source: string) {
    this.#privateKey = privateKey
    this.publicKey = publicKey
    this.#spki = spkiOf(publicKey)
    this.#source = source
  }

  /** From a PEM (PKCS#8 or SEC1 "EC PRIVATE KEY"); `source` names where it came from, for describe(). */
  static async fromPem(pem: string | Buffer, source: string): Promise<LocalSigner> {
    let key: KeyObject
    try {
      key = crypto.createPrivateKey({ key: pem, format: 'pem' })
    } catch (e) {
      // The parser's message can quote input; say only what kind of failure it was.
      throw new CaError(
        CaErrorCodes.keyLoad,
        `${source}: not a PEM private key (unencrypted PKCS#8 or SEC1)`,
        {
          cause: new Error((e as { code?: string }).code ?? 'parse error'),
        },
      )
    }
    return LocalSigner.fromKeyObject(key, source)
  }

  static async fromKeyObject(key: KeyObject, source: string): Promise<LocalSigner> {
    if (key.type !== 'private') throw new CaError(CaErrorCodes.keyLoad, `${source}: not a private key`)
    assertP256(key, source)
    const cryptoKey = key.toCryptoKey(ECDSA_P256, false, ['sign'])
    return new LocalSigner(cryptoKey, crypto.createPublicKey(key), source)
  }

  static async fromFile(path: string): Promise<LocalSigner> {
    let pem: Buffer
    try {
      pem = await readFile(path)
    } catch (e) {
      throw new CaError(CaErrorCodes.keyLoad, `cannot read CA key file ${path}: ${(e as Error).message}`, {
        cause: e,
      })
    }
    try {
      return await LocalSigner.fromPem(pem, `file:${path}`)
    } finally {
      pem.fill(0) // don't leave the key's bytes in a buffer the GC may keep around for a while
    }
  }

  /** From a Secret of type kubernetes.io/tls (or any Secret with a PEM `tls.key`). */
  static async fromSecret(secret: SecretLike): Promise<LocalSigner> {
    const name = `secret:${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`
    const b64 = secret.data?.['tls.key']
    if (!b64) throw new CaError(CaErrorCodes.keyLoad, `${name}: no data["tls.key"]`)
    const pem = Buffer.from(b64, 'base64')
    try {
      return await LocalSigner.fromPem(pem, name)
    } finally {
      pem.fill(0)
    }
  }

  /** A fresh key that lives only in this process (the per-start intermediate CA). */
  static async generate(source = 'ephemeral'): Promise<LocalSigner> {
    const pair = await crypto.subtle.generateKey(ECDSA_P256, false, ['sign', 'verify'])
    const publicKey = crypto.KeyObject.from(pair.publicKey)
    return new LocalSigner(pair.privateKey, publicKey, source)
  }

  spki(): Buffer {
    return Buffer.from(this.#spki)
  }

  async sign(data: Uint8Array): Promise<Buffer> {
    // WebCrypto signs off the main thread (libuv pool) and answers IEEE P1363 r‖s; X.509 wants DER.
    const raw = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, this.#privateKey, data)
    const der = formatter.toAsnSignature(ECDSA_P256, raw)
    if (!der) throw new CaError(CaErrorCodes.badSignature, 'cannot encode ECDSA signature')
    const sig = Buffer.from(der)
    await assertSignature(this.publicKey, data, sig, this.describe())
    return sig
  }

  describe(): string {
    return `local-key(${this.#source}, sha256:${keyFingerprint(this.publicKey).slice(0, 16)})`
  }

  toJSON(): string {
    return this.describe()
  }

  [inspect.custom](): string {
    return `LocalSigner<${this.describe()}>`
  }
}
