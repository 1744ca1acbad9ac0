// The mini-VPC's web PKI: a stand-in "public" CA, which the appliance is told to trust (--upstream-ca) as
// it trusts real public CAs through the system store, and the origin servers' certificate under it. Both
// keys live in memory only: the CA's is non-extractable, the origin's goes to its server through a pipe.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { issueCertificate } from '../../appliance/src/ca/certificate.ts'
import { LocalSigner } from '../../appliance/src/ca/local-signer.ts'
import { createRootCertificate } from '../../appliance/src/ca/root.ts'
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
} from '../../appliance/src/ca/x509.ts'

export interface OriginPki {
  /** the stand-in public CA's certificate (PEM) */
  caPem: string
  /** the origins' certificate (PEM), for every name asked for */
  certPem: string
  /** its private key: hand it over without writing it to disk */
  key: KeyObject
}

export async function originPki(
  names: readonly string[],
  subject = 'CN=flowgate demo public CA',
): Promise<OriginPki> {
  const signer = await LocalSigner.generate('stand-in public CA')
  const root = await createRootCertificate(signer, { subject, validityDays: 2 })
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const now = Date.now()
  const leaf = await issueCertificate(signer, {
    subject: `CN=${names[0]}`,
    issuer: root.cert.subject,
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + 86_400_000),
    extensions: [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
      new SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
      await AuthorityKeyIdentifierExtension.create(root.cert),
    ],
  })
  return { caPem: root.pem, certPem: leaf.toString('pem'), key: privateKey }
}
