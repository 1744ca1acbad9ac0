// The intermediate CA: a P-256 key generated in memory at every start and certified by the root — the one
// call to the root's signer (one KMS Sign) per start. Leaves are signed by this key, so a KMS round trip
// never sits on a connection's path, and a memory image of an appliance exposes a key that is valid for
// days, not the root. pathLen 0 (it may sign leaves only); validity bounded and never beyond the root.
import type crypto from 'node:crypto'
import os from 'node:os'
import { issueCertificate, toNodeCertificate } from './certificate.ts'
import { CaError, CaErrorCodes } from './errors.ts'
import { LocalSigner } from './local-signer.ts'
import { assertSignerHoldsRoot, type RootCa } from './root.ts'
import type { CaSigner } from './signer.ts'
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  type X509Certificate,
} from './x509.ts'

export const DEFAULT_INTERMEDIATE_VALIDITY_MS = 7 * 86_400_000
/** Certificates are back-dated by this much: clients whose clocks lag ours still accept them. */
export const DEFAULT_BACKDATE_MS = 5 * 60_000

export interface IntermediateOptions {
  /** default 7 days; the certificate ends at the root's notAfter if that comes first */
  validityMs?: number
  backdateMs?: number
  /** default "CN=flowgate intermediate CA, OU=<host name>" */
  subject?: string
  now?: () => number
}

export interface IntermediateCa {
  /** signs leaves; the private key exists only inside it, in this process */
  signer: CaSigner
  cert: X509Certificate
  node: crypto.X509Certificate
  pem: string
  /** ms since the epoch */
  notBefore: number
  notAfter: number
}

export async function createIntermediate(
  rootSigner: CaSigner,
  root: RootCa,
  o: IntermediateOptions = {},
): Promise<IntermediateCa> {
  const validity = o.validityMs ?? DEFAULT_INTERMEDIATE_VALIDITY_MS
  const backdate = o.backdateMs ?? DEFAULT_BACKDATE_MS
  if (!(validity > 0) || !(backdate >= 0)) {
    throw new CaError(CaErrorCodes.config, `intermediate validity must be > 0 and back-dating ≥ 0`)
  }
  assertSignerHoldsRoot(rootSigner, root.node)
  const now = o.now?.() ?? Date.now()
  const rootNotAfter = Date.parse(root.node.validTo)
  if (rootNotAfter <= now)
    throw new CaError(CaErrorCodes.root, `root certificate expired at ${root.node.validTo}`)
  const notBefore = Math.max(now - backdate, Date.parse(root.node.validFrom))
  const notAfter = Math.min(now + validity, rootNotAfter)

  const signer = await LocalSigner.generate('intermediate')
  const spki = signer.spki()
  const host =
    os
      .hostname()
      .replace(/[^A-Za-z0-9.-]/g, '')
      .slice(0, 64) || 'appliance'
  const cert = await issueCertificate(rootSigner, {
    subject: o.subject ?? [{ CN: ['flowgate intermediate CA'] }, { OU: [host] }],
    issuer: root.cert.subjectName,
    publicKey: spki,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    extensions: [
      new BasicConstraintsExtension(true, 0, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      // An EKU on a CA certificate limits what it may issue for (RFC 5280 leaves it open, but browsers,
      // OpenSSL and Go enforce it down the chain): this key can only ever vouch for TLS servers.
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
      await SubjectKeyIdentifierExtension.create(spki),
      await AuthorityKeyIdentifierExtension.create(root.cert.publicKey),
    ],
  })
  const node = toNodeCertificate(cert)
  // Never hand out a chain we have not checked ourselves: the root's key must verify this certificate.
  if (!node.verify(root.node.publicKey) || !node.checkIssued(root.node)) {
    throw new CaError(CaErrorCodes.badSignature, `intermediate certificate does not verify under the root`)
  }
  // Read the validity back from the certificate: X.509 times have whole seconds.
  const validFrom = Date.parse(node.validFrom)
  const validTo = Date.parse(node.validTo)
  return { signer, cert, node, pem: cert.toString('pem'), notBefore: validFrom, notAfter: validTo }
}
