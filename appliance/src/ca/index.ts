// The appliance's certificate authority, assembled: load the root certificate, check the signer holds its
// key, create the per-start intermediate (one root signature), and mint leaves under it. The intermediate is
// renewed before it expires — with one more root signature — and the leaf cache follows it.
//
// For the TLS layer: `ca.minter.SNICallback` and `await ca.minter.get(host)` (→ secureContext, chainPem,
// key), e.g. new tls.TLSSocket(stream, { isServer: true, SNICallback: ca.minter.SNICallback,
// secureContext: (await ca.minter.get(destinationIp)).secureContext }).
import type { KMSClient } from '@aws-sdk/client-kms'
import { CaError, CaErrorCodes } from './errors.ts'
import {
  createIntermediate,
  DEFAULT_INTERMEDIATE_VALIDITY_MS,
  type IntermediateOptions,
} from './intermediate.ts'
import { KmsSigner } from './kms-signer.ts'
import { LeafMinter, type LeafMinterOptions } from './leaf-minter.ts'
import { LocalSigner } from './local-signer.ts'
import { loadRootCertificate, type RootCa } from './root.ts'
import type { CaSigner } from './signer.ts'

export type { MintedLeaf } from './leaf-minter.ts'
export { LeafMinter, normalizeHost } from './leaf-minter.ts'
export { createRootCertificate, loadRootCertificate } from './root.ts'
export type { CaSigner } from './signer.ts'
export { CaError, CaErrorCodes, KmsSigner, LocalSigner }

/** How `flowgate appliance` names its CA key: `--ca-key FILE` (local) or `--kms-key-id ID` (KMS). */
export interface SignerSpec {
  /** PEM file: a path, or a mounted Secret's `tls.key` */
  keyFile?: string
  kmsKeyId?: string
  region?: string
  endpoint?: string
  /** for KMS: an SDK client to use instead of one made from region/endpoint */
  kmsClient?: KMSClient
}

/** The signer a spec names; FG_ERR_CA_CONFIG unless exactly one of keyFile / kmsKeyId is given. */
export async function openSigner(spec: SignerSpec): Promise<CaSigner> {
  if (Boolean(spec.keyFile) === Boolean(spec.kmsKeyId)) {
    throw new CaError(CaErrorCodes.config, 'give exactly one CA key: a local key file or a KMS key id')
  }
  if (spec.keyFile) return LocalSigner.fromFile(spec.keyFile)
  return KmsSigner.open({
    keyId: spec.kmsKeyId as string,
    ...(spec.kmsClient ? { client: spec.kmsClient } : {}),
    ...(spec.region ? { region: spec.region } : {}),
    ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
  })
}

export interface CertificateAuthorityOptions {
  /** the root certificate, PEM (what `flowgate ca init` wrote) */
  rootCertPem: string | Buffer
  /** holds the root's key: KmsSigner or LocalSigner */
  signer: CaSigner
  intermediate?: IntermediateOptions
  leaves?: LeafMinterOptions
  /** a failed renewal is retried after this long (default 60 s) while the current intermediate lasts */
  retryMs?: number
  /** told about renewals and failed renewals; must not log key material (none is passed) */
  onEvent?: (e: { event: 'renewed' | 'renew-failed'; notAfter?: number; error?: Error }) => void
}

export interface CertificateAuthority {
  root: RootCa
  minter: LeafMinter
  /** create a new intermediate now (one root signature) and switch leaves to it */
  renew(): Promise<void>
  /** stop the renewal timer */
  close(): void
}

export async function startCertificateAuthority(
  o: CertificateAuthorityOptions,
): Promise<CertificateAuthority> {
  const now = o.intermediate?.now ?? Date.now
  const root = await loadRootCertificate(o.rootCertPem, o.signer, now)
  const first = await createIntermediate(o.signer, root, o.intermediate)
  const minter = new LeafMinter(first, o.leaves)
  const validity = o.intermediate?.validityMs ?? DEFAULT_INTERMEDIATE_VALIDITY_MS
  let timer: NodeJS.Timeout | undefined
  let closed = false

  // Renew when a third of the intended validity is left: leaves minted late in an intermediate's life would
  // otherwise be cut short, and a KMS outage then has days, not minutes, to clear.
  const schedule = (notAfter: number, delay?: number) => {
    if (closed) return
    const wait = delay ?? Math.max(1000, notAfter - now() - validity / 3)
    timer = setTimeout(() => void renewing(notAfter), Math.min(wait, 2 ** 31 - 1))
    timer.unref()
  }
  const renew = async () => {
    const next = await createIntermediate(o.signer, root, o.intermediate)
    minter.setIntermediate(next)
    clearTimeout(timer)
    schedule(next.notAfter)
    o.onEvent?.({ event: 'renewed', notAfter: next.notAfter })
  }
  const renewing = async (currentNotAfter: number) => {
    try {
      await renew()
    } catch (e) {
      o.onEvent?.({ event: 'renew-failed', error: e as Error })
      schedule(currentNotAfter, o.retryMs ?? 60_000)
    }
  }
  schedule(first.notAfter)
  return {
    root,
    minter,
    renew,
    close() {
      closed = true
      clearTimeout(timer)
    },
  }
}
