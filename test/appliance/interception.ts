// What an interception lab test needs besides the lab: our interception root (its key handed to the
// appliance through a pipe, never on disk), a "public" CA the origins' certificates chain to (the
// appliance trusts it with --upstream-ca, as it would a corporate root), and TLS origins in the server
// namespace (standin/src/tls-origin.ts). Shared by the interception, capture and visibility lab tests.
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRootCertificate, LocalSigner } from '../../appliance/src/ca/index.ts'
import { type OriginCertificate, StandInCa } from '../../standin/src/origin-pki.ts'
import { SecretPipe } from '../../standin/src/secret-pipe.ts'
import type { GwlbLab } from '../support/netns/gwlb-stand-in.ts'

const ORIGIN = new URL('../../standin/src/tls-origin.ts', import.meta.url).pathname

export interface Origin {
  port: number
  /** h2: HTTP/2 with HTTP/1.1 fallback; h1: HTTP/1.1 only */
  mode: 'h1' | 'h2'
  /** default: a certificate from the public CA for every name in `names` */
  cert?: OriginCertificate
}

export interface InterceptionSetup {
  /** file names in the test's dir */
  rootFile: string
  originCaFile: string
  rootPem: string
  /** the public CA, to issue more certificates */
  pub: StandInCa
}

/** The appliance flags for the setup's CA and upstream trust (LabSetup.applianceArgs). */
export function interceptionArgs(dir: string): string[] {
  return [
    '--ca-cert',
    join(dir, 'root.pem'),
    '--ca-key',
    join(dir, 'ca.key'),
    '--upstream-ca',
    join(dir, 'origin-ca.pem'),
  ]
}

/** Call from LabSetup.before; `origins` may issue their own certificates from the public CA. */
export async function setUpInterception(
  lab: GwlbLab,
  dir: string,
  o: {
    names: string[]
    origins: Origin[] | ((pub: StandInCa) => Promise<Origin[]>)
    rootSubject?: string
  },
): Promise<InterceptionSetup> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const root = await createRootCertificate(await LocalSigner.fromKeyObject(privateKey, 'test'), {
    subject: o.rootSubject ?? 'CN=flowgate test root',
  })
  writeFileSync(join(dir, 'root.pem'), root.pem)
  // Taken once by the appliance at start; the lab removes the directory afterwards.
  new SecretPipe(join(dir, 'ca.key'), Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' })))

  const pub = await StandInCa.create('CN=Test Public CA')
  writeFileSync(join(dir, 'origin-ca.pem'), pub.pem)
  const good = await pub.issue(o.names)
  const origins = typeof o.origins === 'function' ? await o.origins(pub) : o.origins
  await Promise.all(
    origins.map(async ({ port, mode, cert = good }) => {
      // Test servers need their key in a file (the test's temp dir, removed with it).
      const [crt, key] = [join(dir, `origin-${port}.crt`), join(dir, `origin-${port}.key`)]
      writeFileSync(crt, cert.certPem)
      writeFileSync(key, cert.keyPem())
      await lab.ns.spawn(lab.server, process.execPath, [ORIGIN, String(port), crt, key, mode], /listening/)
    }),
  )
  return { rootFile: join(dir, 'root.pem'), originCaFile: join(dir, 'origin-ca.pem'), rootPem: root.pem, pub }
}
