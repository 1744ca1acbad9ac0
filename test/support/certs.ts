// Throwaway certificates for test servers (public and private material in a test's temp dir, removed
// with it). The product never writes a private key; tests of it need servers that have one.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

/** A self-signed P-256 certificate valid for a day: `<name>.crt` and `<name>.key` in `dir`. */
export function selfSignedCert(
  dir: string,
  name: string,
  subject: string,
  subjectAltName: string,
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      subject,
      '-addext',
      `subjectAltName=${subjectAltName}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  )
  return { cert, key }
}
