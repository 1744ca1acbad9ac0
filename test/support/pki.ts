// Throwaway PKIs for tests: a "public" CA the origin servers' certificates chain to (the appliance is told
// to trust it with --upstream-ca, as a corporate root would be), leaves signed by it — valid, expired, for
// the wrong name — and an unrelated self-signed one. Keys stay in memory until a test writes a server's
// key into its temp dir (test servers need one; the product never writes keys).
import { webcrypto } from 'node:crypto'

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair

import * as x509 from '../../appliance/src/ca/x509.ts'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY = 86_400_000

export interface Issued {
  certPem: string
  keyPem: string
}

export interface TestCa extends Issued {
  cert: x509.X509Certificate
  keys: CryptoKeyPair
  issue(o: { dns: string[]; notBefore?: Date; notAfter?: Date; cn?: string }): Promise<Issued>
}

async function keyPem(k: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', k))
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`
}

let serial = 1
const nextSerial = () => (serial++).toString(16).padStart(8, '0')

export async function testCa(name: string): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${name}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const ca: TestCa = {
    cert,
    keys,
    certPem: cert.toString('pem'),
    keyPem: await keyPem(keys.privateKey),
    async issue(o) {
      const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
      const t = Date.now()
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: nextSerial(),
        subject: `CN=${o.cn ?? o.dns[0]}`,
        issuer: cert.subject,
        notBefore: o.notBefore ?? new Date(t - DAY),
        notAfter: o.notAfter ?? new Date(t + 10 * DAY),
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(o.dns.map((value) => ({ type: 'dns' as const, value }))),
          await x509.AuthorityKeyIdentifierExtension.create(cert),
        ],
      })
      return { certPem: leaf.toString('pem'), keyPem: await keyPem(leafKeys.privateKey) }
    },
  }
  return ca
}
