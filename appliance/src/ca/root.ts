// The root certificate: self-signed by the CA signer (as flowdog's kmssigner/generate does with a KMS key),
// created once by `flowgate ca init` and then distributed to the clients' trust stores. At every start the
// appliance loads it and refuses to run unless the signer holds its key (FG_ERR_CA_KEY_MISMATCH): an
// intermediate signed by another key would chain to nothing the clients trust.
import type crypto from 'node:crypto'
import { issueCertificate, parseCertificate, toNodeCertificate } from './certificate.ts'
import { CaError, CaErrorCodes } from './errors.ts'
import { assertP256, type CaSigner, keyFingerprint, samePublicKey } from './signer.ts'
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  type X509Certificate,
  type X509CertificateCreateParamsName,
} from './x509.ts'

const DAY = 86_400_000

export const DEFAULT_ROOT_SUBJECT = 'CN=flowgate interception root CA, O=flowgate'

export interface RootOptions {
  /** Distinguished name, e.g. "CN=Example inspection root, O=Example"; default DEFAULT_ROOT_SUBJECT */
  subject?: X509CertificateCreateParamsName
  /** default 3650 (ten years, as flowdog's root) */
  validityDays?: number
  now?: () => number
}

export interface RootCa {
  cert: X509Certificate
  node: crypto.X509Certificate
  pem: string
}

export async function createRootCertificate(signer: CaSigner, o: RootOptions = {}): Promise<RootCa> {
  const days = o.validityDays ?? 3650
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new CaError(CaErrorCodes.config, `root validity must be 1..36500 days, got ${days}`)
  }
  const now = o.now?.() ?? Date.now()
  const spki = signer.spki()
  const subject = o.subject ?? DEFAULT_ROOT_SUBJECT
  const cert = await issueCertificate(signer, {
    subject,
    issuer: subject,
    publicKey: spki,
    // Back-dated a little so that clients with a slightly slow clock accept it right away.
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + days * DAY),
    extensions: [
      // pathLen 1: the root signs intermediates only; an intermediate (pathLen 0) signs leaves only.
      new BasicConstraintsExtension(true, 1, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await SubjectKeyIdentifierExtension.create(spki),
    ],
  })
  return loadRootCertificate(cert.toString('pem'), signer, o.now)
}

/**
 * Parse the root certificate and check it is one flowgate can issue under: a P-256 CA certificate,
 * currently valid, and — when a signer is given — certifying exactly the signer's public key.
 */
export async function loadRootCertificate(
  pem: string | Buffer,
  signer?: CaSigner,
  now: () => number = Date.now,
): Promise<RootCa> {
  const cert = parseCertificate(pem, 'root certificate')
  const node = toNodeCertificate(cert)
  if (!node.ca)
    throw new CaError(CaErrorCodes.root, `root certificate ${node.subject} is not a CA (basicConstraints)`)
  assertP256(node.publicKey, 'root certificate')
  const t = now()
  if (Date.parse(node.validTo) <= t) {
    throw new CaError(CaErrorCodes.root, `root certificate expired at ${node.validTo}`)
  }
  if (Date.parse(node.validFrom) > t + 10 * 60_000) {
    throw new CaError(CaErrorCodes.root, `root certificate is not valid before ${node.validFrom}`)
  }
  if (!node.verify(node.publicKey)) {
    throw new CaError(CaErrorCodes.root, 'root certificate is not self-signed by its own key')
  }
  if (signer) assertSignerHoldsRoot(signer, node)
  return { cert, node, pem: cert.toString('pem') }
}

/** FG_ERR_CA_KEY_MISMATCH unless the signer's public key is the root certificate's. */
export function assertSignerHoldsRoot(signer: CaSigner, root: crypto.X509Certificate): void {
  if (!samePublicKey(signer.publicKey, root.publicKey)) {
    throw new CaError(
      CaErrorCodes.keyMismatch,
      `signer ${signer.describe()} does not hold the root certificate's key ` +
        `(root key sha256:${keyFingerprint(root.publicKey).slice(0, 16)}, ` +
        `signer key sha256:${keyFingerprint(signer.publicKey).slice(0, 16)})`,
    )
  }
}
