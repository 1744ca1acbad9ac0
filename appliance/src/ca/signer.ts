// The CA signer: the one operation a certificate authority needs from its key. Two implementations pass
// one shared test suite (test/ca/signer-suite.ts): AWS KMS (kms-signer.ts), where the private key never
// leaves KMS, and a local key (local-signer.ts) for dev clusters, the demo, and the in-memory intermediate.
import crypto, { type KeyObject } from 'node:crypto'
import { CaError, CaErrorCodes } from './errors.ts'

/** The only algorithm flowgate's CA uses: ECDSA over NIST P-256 with SHA-256 (X.509 ecdsa-with-SHA256). */
export const CA_ALGORITHM = 'ECDSA_P256_SHA256'
export type CaAlgorithm = typeof CA_ALGORITHM

export interface CaSigner {
  readonly algorithm: CaAlgorithm
  /** The signing key's public half. */
  readonly publicKey: KeyObject
  /** SubjectPublicKeyInfo, DER: what a certificate issued to this key carries. */
  spki(): Buffer
  /**
   * Sign `data` (e.g. a TBSCertificate): SHA-256 over the data, then ECDSA P-256. Returns the DER
   * ECDSA-Sig-Value, as X.509 embeds it. Implementations verify what they return before returning it.
   */
  sign(data: Uint8Array): Promise<Buffer>
  /** Safe for logs: kind and key id or source, never key material. */
  describe(): string
}

/** Throws FG_ERR_CA_KEY_TYPE unless `key` is an EC key on P-256 (OpenSSL's name: prime256v1). */
export function assertP256(key: KeyObject, what: string): void {
  const curve = key.asymmetricKeyDetails?.namedCurve
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    const got = key.asymmetricKeyType === 'ec' ? `EC ${curve}` : (key.asymmetricKeyType ?? key.type)
    throw new CaError(CaErrorCodes.keyType, `${what}: need an ECDSA P-256 key, got ${got}`)
  }
}

/** DER SubjectPublicKeyInfo of a public key. */
export function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' })
}

/** Same key? Compared on the DER SubjectPublicKeyInfo, which is canonical for EC keys. */
export function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  return crypto.timingSafeEqual(spkiOf(a), spkiOf(b)) // equal lengths for P-256 SPKI; checked by assertP256
}

/** SHA-256 fingerprint of a public key (hex, colon-free), for logs and error messages. */
export function keyFingerprint(key: KeyObject): string {
  return crypto.createHash('sha256').update(spkiOf(key)).digest('hex')
}

/**
 * Throws FG_ERR_CA_SIGNATURE unless `signature` (DER) verifies over `data` under `key`. Every signer runs
 * this before handing a signature out: a remote signer that answers with another key's signature (wrong
 * key id, key rotated under us) is caught here, not by a client that refuses our chain later.
 */
export async function assertSignature(key: KeyObject, data: Uint8Array, signature: Buffer, who: string) {
  // The callback form runs in the libuv pool, so verification does not hold up the event loop.
  const ok = await new Promise<boolean>((resolve, reject) =>
    crypto.verify('sha256', data, { key, dsaEncoding: 'der' }, signature, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  )
  if (!ok) {
    throw new CaError(
      CaErrorCodes.badSignature,
      `${who}: signature does not verify under the signer's public key`,
    )
  }
}
