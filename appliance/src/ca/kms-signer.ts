// A CA signer whose private key never leaves AWS KMS: an asymmetric ECC_NIST_P256 key with KeyUsage
// SIGN_VERIFY. The SHA-256 digest is computed here and sent with MessageType DIGEST (so the TBS bytes never
// travel, and the 4096-byte RAW limit does not matter); KMS answers a DER ECDSA-Sig-Value.
//
// At start GetPublicKey tells us the key's spec, usage and public key: we refuse to run with a key that
// cannot make ECDSA P-256 signatures, or whose public key is not the root certificate's. The ARN it returns
// is what we sign with from then on, so an alias re-pointed while we run cannot switch keys under us.
// Throttling and 5xx are retried by the SDK's standard retry strategy (exponential backoff with jitter);
// what still fails after that surfaces as FG_ERR_CA_KMS with the AWS error name.
import crypto, { type KeyObject } from 'node:crypto'
import { inspect } from 'node:util'
import {
  GetPublicKeyCommand,
  type GetPublicKeyCommandOutput,
  KMSClient,
  type KMSClientConfig,
  SignCommand,
} from '@aws-sdk/client-kms'
import { CaError, CaErrorCodes } from './errors.ts'
import { assertSignerHoldsRoot } from './root.ts'
import { assertP256, assertSignature, CA_ALGORITHM, type CaSigner, keyFingerprint, spkiOf } from './signer.ts'

export interface KmsSignerOptions {
  /** key id, key ARN, alias name ("alias/…") or alias ARN */
  keyId: string
  /** an SDK client to use (tests, shared configuration); otherwise one is made from region/endpoint */
  client?: KMSClient
  region?: string
  endpoint?: string
  /** further client configuration when no client is given (credentials, maxAttempts, ...) */
  clientConfig?: KMSClientConfig
  /**
   * when no client is given: abandon a KMS request after this long (default 10 s; connecting: 3 s). The
   * SDK's own default is to wait forever, and an appliance stuck at start is worse than one that fails
   * and is restarted. A timed-out request counts as transient and is retried like a 5xx.
   */
  timeoutMs?: number
  /** when given, refuse (FG_ERR_CA_KEY_MISMATCH) unless the KMS key is this certificate's key */
  rootCertificate?: crypto.X509Certificate
}

const awsName = (e: unknown): string => {
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  const status = err.$metadata?.httpStatusCode
  return `${err.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${err.message ?? String(e)}`
}

export class KmsSigner implements CaSigner {
  readonly algorithm = CA_ALGORITHM
  readonly publicKey: KeyObject
  /** the key's ARN, as KMS reported it */
  readonly keyArn: string
  readonly #client: KMSClient
  readonly #spki: Buffer

  readonly #ownClient: boolean

  private constructor(client: KMSClient, keyArn: string, publicKey: KeyObject, ownClient: boolean) {
    this.#client = client
    this.#ownClient = ownClient
    this.keyArn = keyArn
    this.publicKey = publicKey
    this.#spki = spkiOf(publicKey)
  }

  /** GetPublicKey, check the key (spec, usage, algorithm, optionally the root), return a ready signer. */
  static async open(o: KmsSignerOptions): Promise<KmsSigner> {
    const client =
      o.client ??
      new KMSClient({
        requestHandler: {
          connectionTimeout: Math.min(3000, o.timeoutMs ?? 3000),
          requestTimeout: o.timeoutMs ?? 10_000,
          throwOnRequestTimeout: true,
        },
        ...o.clientConfig,
        ...(o.region ? { region: o.region } : {}),
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      })
    let out: GetPublicKeyCommandOutput
    try {
      out = await client.send(new GetPublicKeyCommand({ KeyId: o.keyId }))
    } catch (e) {
      throw new CaError(CaErrorCodes.kms, `KMS GetPublicKey ${o.keyId}: ${awsName(e)}`, { cause: e })
    }
    const who = `KMS key ${out.KeyId ?? o.keyId}`
    if (out.KeySpec !== 'ECC_NIST_P256') {
      throw new CaError(CaErrorCodes.keyType, `${who}: KeySpec is ${out.KeySpec}, need ECC_NIST_P256`)
    }
    if (out.KeyUsage !== 'SIGN_VERIFY') {
      throw new CaError(CaErrorCodes.keyUsage, `${who}: KeyUsage is ${out.KeyUsage}, need SIGN_VERIFY`)
    }
    if (!out.SigningAlgorithms?.includes('ECDSA_SHA_256')) {
      throw new CaError(CaErrorCodes.keyUsage, `${who}: ECDSA_SHA_256 is not among its signing algorithms`)
    }
    if (!out.PublicKey || !out.KeyId)
      throw new CaError(CaErrorCodes.kms, `${who}: GetPublicKey returned no key`)
    let publicKey: KeyObject
    try {
      publicKey = crypto.createPublicKey({ key: Buffer.from(out.PublicKey), format: 'der', type: 'spki' })
    } catch (e) {
      throw new CaError(CaErrorCodes.kms, `${who}: unparseable public key`, { cause: e })
    }
    // The spec said P-256; the key material must agree.
    assertP256(publicKey, who)
    const signer = new KmsSigner(client, out.KeyId, publicKey, !o.client)
    if (o.rootCertificate) assertSignerHoldsRoot(signer, o.rootCertificate)
    return signer
  }

  spki(): Buffer {
    return Buffer.from(this.#spki)
  }

  async sign(data: Uint8Array): Promise<Buffer> {
    const digest = crypto.createHash('sha256').update(data).digest()
    let sig: Uint8Array | undefined
    try {
      const out = await this.#client.send(
        new SignCommand({
          KeyId: this.keyArn,
          Message: digest,
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      )
      sig = out.Signature
    } catch (e) {
      throw new CaError(CaErrorCodes.kms, `KMS Sign with ${this.keyArn}: ${awsName(e)}`, { cause: e })
    }
    if (!sig?.length)
      throw new CaError(CaErrorCodes.kms, `KMS Sign with ${this.keyArn}: no signature returned`)
    const der = Buffer.from(sig)
    await assertSignature(this.publicKey, data, der, this.describe())
    return der
  }

  /** Release the SDK client's sockets, if this signer made the client. */
  close(): void {
    if (this.#ownClient) this.#client.destroy()
  }

  describe(): string {
    return `aws-kms(${this.keyArn}, sha256:${keyFingerprint(this.publicKey).slice(0, 16)})`
  }

  toJSON(): string {
    return this.describe()
  }

  [inspect.custom](): string {
    return `KmsSigner<${this.describe()}>`
  }
}
