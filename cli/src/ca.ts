// `flowgate ca init`: create the interception root certificate through the CA signer — an AWS KMS key
// (self-signed by the KMS key; the private key never leaves KMS) or a local P-256 key — and say how to make
// clients trust it. The appliance later loads this certificate with the same signer and refuses to start
// if they do not match.
import { access, chmod, writeFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { CaError } from '../../appliance/src/ca/errors.ts'
import { KmsSigner } from '../../appliance/src/ca/kms-signer.ts'
import { LocalSigner } from '../../appliance/src/ca/local-signer.ts'
import { createRootCertificate, DEFAULT_ROOT_SUBJECT } from '../../appliance/src/ca/root.ts'
import type { CaSigner } from '../../appliance/src/ca/signer.ts'
import type { Command } from './main.ts'

const USAGE =
  'flowgate ca init (--kms-key-id ID [--region R] [--endpoint URL] | --key FILE) --out root.pem ' +
  `[--subject "${DEFAULT_ROOT_SUBJECT}"] [--days 3650] [--force]`

/** What an operator does with the root on the machines whose TLS clients should accept intercepted flows. */
export function trustInstructions(out: string): string {
  const name = basename(out).replace(/\.(pem|crt|cer)$/i, '') || 'flowgate-root'
  return [
    `Trust ${out} on the clients whose TLS flowgate inspects:`,
    '',
    '  Amazon Linux 2 / 2023, RHEL, Fedora:',
    `    sudo cp ${out} /etc/pki/ca-trust/source/anchors/${name}.pem`,
    '    sudo update-ca-trust',
    '',
    '  Debian, Ubuntu (the file name must end in .crt):',
    `    sudo cp ${out} /usr/local/share/ca-certificates/${name}.crt`,
    '    sudo update-ca-certificates',
    '',
    '  Node.js does not read the system store by default: NODE_EXTRA_CA_CERTS=<path> or node --use-system-ca.',
    `  One-off checks: curl --cacert ${out} https://…, openssl s_client -CAfile ${out} -verify_return_error.`,
    '',
    `Then run the appliance with --ca-cert ${out} and the same key (--kms-key-id or --ca-key): it refuses`,
    'to start if the key is not the one this certificate names.',
  ].join('\n')
}

async function init(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'kms-key-id': { type: 'string' },
      region: { type: 'string' },
      endpoint: { type: 'string' },
      key: { type: 'string' },
      out: { type: 'string' },
      subject: { type: 'string' },
      days: { type: 'string' },
      force: { type: 'boolean' },
    },
  })
  const kmsKeyId = values['kms-key-id']
  if (!values.out || Boolean(kmsKeyId) === Boolean(values.key)) {
    console.error(`flowgate ca init: give --out and exactly one of --kms-key-id or --key\nUsage: ${USAGE}`)
    return 2
  }
  const days = values.days === undefined ? 3650 : Number(values.days)
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    console.error('flowgate ca init: --days must be a whole number from 1 to 36500')
    return 2
  }
  if (!values.force) {
    // Overwriting a root that clients already trust would silently break every intercepted flow.
    const exists = await access(values.out).then(
      () => true,
      () => false,
    )
    if (exists) {
      console.error(`flowgate ca init: ${values.out} exists; pass --force to replace it`)
      return 1
    }
  }
  let signer: CaSigner | undefined
  try {
    signer = kmsKeyId
      ? await KmsSigner.open({
          keyId: kmsKeyId,
          ...(values.region ? { region: values.region } : {}),
          ...(values.endpoint ? { endpoint: values.endpoint } : {}),
        })
      : await LocalSigner.fromFile(values.key as string)
    const root = await createRootCertificate(signer, {
      validityDays: days,
      ...(values.subject ? { subject: values.subject } : {}),
    })
    // A certificate is public: world-readable is right.
    await writeFile(values.out, root.pem)
    await chmod(values.out, 0o644) // whatever the umask or an earlier file's mode
    console.log(
      `wrote ${values.out}: ${root.node.subject.replaceAll('\n', ', ')}, valid until ${root.node.validTo}`,
    )
    console.log(`signed by ${signer.describe()}; SHA-256 fingerprint ${root.node.fingerprint256}`)
    console.log('')
    console.log(trustInstructions(values.out))
    return 0
  } catch (e) {
    const code = e instanceof CaError ? e.code : 'FG_ERR_CA'
    console.error(`flowgate ca init: ${code}: ${(e as Error).message}`)
    if (code === 'FG_ERR_CA_KEY_LOAD' && values.key) {
      console.error(
        'A local CA key is an unencrypted P-256 PEM, e.g.: ' +
          'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key (keep it out of images and repos)',
      )
    }
    return 1
  } finally {
    if (signer instanceof KmsSigner) signer.close()
  }
}

export const caCommand: Command = {
  name: 'ca',
  summary: 'certificate authority for TLS interception: "ca init" creates the root certificate',
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args
    if (sub === 'init') return init(rest)
    console.error(`flowgate ca: unknown subcommand ${JSON.stringify(sub ?? '')}\nUsage: ${this.usage}`)
    return 2
  },
}
