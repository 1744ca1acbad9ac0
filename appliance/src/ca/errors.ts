// Errors of the certificate authority. Callers branch on `code`, never on the message. No message ever
// carries key material: at most a key id, a file name, a host name or a certificate fingerprint.

export const CaErrorCodes = {
  /** the signing key is not ECDSA P-256 (local PEM of another type, or a KMS key of another spec) */
  keyType: 'FG_ERR_CA_KEY_TYPE',
  /** the KMS key cannot sign (KeyUsage is not SIGN_VERIFY or ECDSA_SHA_256 is not offered) */
  keyUsage: 'FG_ERR_CA_KEY_USAGE',
  /** the signer's public key is not the one in the root certificate */
  keyMismatch: 'FG_ERR_CA_KEY_MISMATCH',
  /** the key file or Secret cannot be read or parsed */
  keyLoad: 'FG_ERR_CA_KEY_LOAD',
  /** a KMS call failed after the SDK's retries (the AWS error name is in the message) */
  kms: 'FG_ERR_CA_KMS',
  /** a signature returned by the signer does not verify under its public key */
  badSignature: 'FG_ERR_CA_SIGNATURE',
  /** the root certificate is unusable: not parseable, not a CA, expired or not yet valid */
  root: 'FG_ERR_CA_ROOT',
  /** a host name that cannot go into a certificate */
  name: 'FG_ERR_CA_NAME',
  /** too many leaf mints are waiting already (a flood of new names): refused rather than queued */
  busy: 'FG_ERR_CA_BUSY',
  /** a validity or option that makes no sense */
  config: 'FG_ERR_CA_CONFIG',
} as const
export type CaErrorCode = (typeof CaErrorCodes)[keyof typeof CaErrorCodes]

export class CaError extends Error {
  readonly code: CaErrorCode
  constructor(code: CaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CaError'
    this.code = code
  }
}
