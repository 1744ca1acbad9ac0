// The mini-VPC's web PKI: a stand-in "public" CA, which the appliance is told to trust (--upstream-ca) as
// it trusts real public CAs through the system store, and origin server certificates under it. Keys live in
// memory only: the CA's is non-extractable, an origin's goes to its server through a pipe (or, in tests, a
// temp file). Used by the demo, the lab tests (also for certificates that must fail: expired, wrong name,
// another CA's) and the interception benchmark.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { issueCertificate } from '../../appliance/src/ca/certificate.ts'
import { LocalSigner } from '../../appliance/src/ca/local-signer.ts'
import { createRootCertificate, type RootCa } from '../../appliance/src/ca/root.ts'
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
} from '../../appliance/src/ca/x509.ts'

export interface OriginCertificate {
  certPem: string
  /** the private key: hand it over without writing it to disk where that matters */
  key: KeyObject
  /** the key as PKCS#8 PEM, for test servers that read it from a file */
  keyPem(): string
}

export class StandInCa {
  readonly #signer: LocalSigner
  readonly #root: RootCa

  private constructor(signer: LocalSigner, root: RootCa) {
    this.#signer = signer
    this.#root = root
  }

  static async create(subject = 'CN=flowgate demo public CA'): Promise<StandInCa> {
    const signer = await LocalSigner.generate('stand-in public CA')
    return new StandInCa(signer, await createRootCertificate(signer, { subject, validityDays: 2 }))
  }

  /** the CA's certificate (PEM) */
  get pem(): string {
    return this.#root.pem
  }

  /** A P-256 server certificate for `names` (DNS names or IP addresses), valid for a day unless told. */
  async issue(
    names: readonly string[],
    o: { notBefore?: Date; notAfter?: Date } = {},
  ): Promise<OriginCertificate> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const now = Date.now()
    const leaf = await issueCertificate(this.#signer, {
      subject: `CN=${names[0]}`,
      issuer: this.#root.cert.subject,
      publicKey: publicKey.export({ type: 'spki', format: 'der' }),
      notBefore: o.notBefore ?? new Date(now - 5 * 60_000),
      notAfter: o.notAfter ?? new Date(now + 86_400_000),
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
        new SubjectAlternativeNameExtension(
          names.map((value) => ({ type: isIP(value) ? ('ip' as const) : ('dns' as const), value })),
        ),
        await AuthorityKeyIdentifierExtension.create(this.#root.cert),
      ],
    })
    return {
      certPem: leaf.toString('pem'),
      key: privateKey,
      keyPem: () => privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    }
  }
}

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
  const ca = await StandInCa.create(subject)
  const { certPem, key } = await ca.issue(names)
  return { caPem: ca.pem, certPem, key }
}
