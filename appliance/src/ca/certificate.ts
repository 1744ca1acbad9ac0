// Issue an X.509 certificate through any CaSigner. @peculiar/x509 builds and DER-encodes the certificate;
// it signs through a WebCrypto-shaped provider, so we hand it one whose subtle.sign() calls our signer.
// The library wants the WebCrypto (r‖s) form back and re-encodes it as the DER ECDSA-Sig-Value.
import crypto, { type webcrypto } from 'node:crypto'
import { CaError, CaErrorCodes } from './errors.ts'
import type { CaSigner } from './signer.ts'
import {
  AsnEcSignatureFormatter,
  type Extension,
  X509Certificate,
  type X509CertificateCreateParamsName,
  X509CertificateGenerator,
} from './x509.ts'

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const
const formatter = new AsnEcSignatureFormatter()

export interface IssueParams {
  subject: X509CertificateCreateParamsName
  issuer: X509CertificateCreateParamsName
  /** DER SubjectPublicKeyInfo of the key being certified */
  publicKey: Buffer
  notBefore: Date
  notAfter: Date
  extensions: Extension[]
}

/** A WebCrypto provider for the library: random serial numbers, digests, and signing through `signer`. */
function signerCrypto(signer: CaSigner): webcrypto.Crypto {
  const subtle = {
    async sign(_alg: unknown, _key: unknown, data: webcrypto.BufferSource): Promise<ArrayBuffer> {
      const bytes = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : new Uint8Array(data)
      const der = await signer.sign(bytes)
      const raw = formatter.toWebSignature(ECDSA_P256, der)
      if (!raw) throw new CaError(CaErrorCodes.badSignature, `${signer.describe()}: unusable signature`)
      return raw
    },
    digest: (alg: webcrypto.AlgorithmIdentifier, data: webcrypto.BufferSource) =>
      crypto.subtle.digest(alg, data),
  }
  return {
    subtle,
    getRandomValues: <T extends ArrayBufferView | null>(a: T) => crypto.getRandomValues(a as never) as T,
    randomUUID: () => crypto.randomUUID(),
  } as unknown as webcrypto.Crypto
}

/** A stand-in for the signer's private key: the library reads only `algorithm` from it. */
const SIGNING_KEY = {
  algorithm: ECDSA_P256,
  type: 'private',
  extractable: false,
  usages: ['sign'],
} as unknown as webcrypto.CryptoKey

/** Sign a certificate with `signer` (one signer.sign call). */
export async function issueCertificate(signer: CaSigner, p: IssueParams): Promise<X509Certificate> {
  return X509CertificateGenerator.create(
    {
      subject: p.subject,
      issuer: p.issuer,
      publicKey: p.publicKey,
      signingKey: SIGNING_KEY,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      extensions: p.extensions,
    },
    signerCrypto(signer) as never,
  )
}

/** Node's view of a certificate (for validity, key checks and verify()). */
export function toNodeCertificate(cert: X509Certificate): crypto.X509Certificate {
  return new crypto.X509Certificate(Buffer.from(cert.rawData))
}

/** Parse one PEM or DER certificate, with a coded error. */
export function parseCertificate(input: string | Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(typeof input === 'string' ? input : new Uint8Array(input))
  } catch (e) {
    throw new CaError(CaErrorCodes.root, `${what}: not an X.509 certificate (${(e as Error).message})`, {
      cause: e,
    })
  }
}

export { X509Certificate }
