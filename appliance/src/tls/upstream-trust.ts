// Whom the appliance trusts when it connects to the real server of an intercepted flow: Node's bundled
// Mozilla roots, the host's system store (Amazon Linux / Debian ca-certificates, where corporate roots are
// usually installed) and the roots given with --upstream-ca. Built once into a SecureContext: parsing
// ~150 roots per connection would cost milliseconds on every intercepted flow.

import { createSecureContext, getCACertificates, type SecureContext } from 'node:tls'

/** PEM blocks in a bundle (a file may hold several certificates). */
export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}

export interface UpstreamTrust {
  context: SecureContext
  /** roots in the context, for logs */
  roots: number
}

export function upstreamTrust(extraPem?: string | Buffer): UpstreamTrust {
  let system: string[] = []
  try {
    system = getCACertificates('system')
  } catch {
    // No readable system store (minimal images): the bundled roots still apply.
  }
  const extra = extraPem ? pemCertificates(extraPem.toString()) : []
  if (extraPem && extra.length === 0) throw new Error('--upstream-ca holds no PEM certificate')
  const roots = [...new Set([...getCACertificates('bundled'), ...system, ...extra])]
  return { context: createSecureContext({ ca: roots }), roots: roots.length }
}
