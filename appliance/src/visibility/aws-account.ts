// AWS account ids of intercepted AWS API requests, from the SigV4 access key id the request is signed with.
// Pure: no I/O, no clock.
//
// An access key id is a four-letter type prefix (AKIA: an IAM user's or the root user's long-term key;
// ASIA: temporary STS credentials — the two STS GetAccessKeyInfo documents) followed by 16 characters of
// RFC 4648 base32 (A–Z, 2–7). Decoded, the first 48 bits hold the account id in bits 46..7 (a 40-bit
// number, at most 999999999999); bit 47 is set on every key issued since March 2019. Older keys (fifth
// character I or J, bit 47 clear) do not carry the account id: for those, and for anything that is not an
// AKIA/ASIA key id, the functions below answer undefined rather than a wrong account.
// The decoding: Aidan Steele, "AWS Access Key ID formats" (2020), corrected for the one-bit shift by Tal
// Be'ery (2021); the test vectors are theirs and those of other public decoders.

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const KEY_ID = /^(AKIA|ASIA)[A-Z2-7]{16}$/
const MAX_ACCOUNT = 999_999_999_999

/** Whether `s` looks like an access key id flowgate can decode (AKIA/ASIA, 20 characters, base32). */
export function isAccessKeyId(s: string): boolean {
  return KEY_ID.test(s)
}

/** The 12-digit account id an access key id belongs to, or undefined when it does not encode one. */
export function accountIdFromAccessKeyId(keyId: string): string | undefined {
  if (!KEY_ID.test(keyId)) return undefined
  // Ten characters are 50 bits: below 2^53, so plain numbers hold them exactly.
  let v = 0
  for (let i = 4; i < 14; i++) v = v * 32 + BASE32.indexOf(keyId[i]!)
  const first48 = Math.floor(v / 4)
  if (first48 < 2 ** 47) return undefined // a pre-2019 key: no account id in it
  const account = Math.floor(first48 / 128) % 2 ** 40
  if (account > MAX_ACCOUNT) return undefined
  return String(account).padStart(12, '0')
}

/** What a SigV4 credential scope names: AKID/date/region/service/aws4_request. */
export interface SigV4Credential {
  accessKeyId: string
  date: string
  region: string
  service: string
}

// AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=…, Signature=…
// (also AWS4-ECDSA-P256-SHA256 for SigV4a, whose scope has no region: AKID/date/service/aws4_request).
const AUTH_SCHEME = /^\s*AWS4-(?:HMAC-SHA256|ECDSA-P256-SHA256)\s+(.*)$/s
const MAX_HEADER = 8192

function parseScope(scope: string): SigV4Credential | undefined {
  const parts = scope.split('/')
  if (parts.length === 5 && parts[4] === 'aws4_request') {
    const [accessKeyId, date, region, service] = parts as [string, string, string, string]
    if (!accessKeyId || !/^\d{8}$/.test(date)) return undefined
    return { accessKeyId, date, region, service }
  }
  if (parts.length === 4 && parts[3] === 'aws4_request') {
    const [accessKeyId, date, service] = parts as [string, string, string]
    if (!accessKeyId || !/^\d{8}$/.test(date)) return undefined
    return { accessKeyId, date, region: '', service }
  }
  return undefined
}

/** The credential of an `Authorization: AWS4-HMAC-SHA256 Credential=…, …` header; undefined if none. */
export function credentialFromAuthorization(header: string | undefined): SigV4Credential | undefined {
  if (!header || header.length > MAX_HEADER) return undefined
  const m = AUTH_SCHEME.exec(header)
  if (!m) return undefined
  for (const param of m[1]!.split(',')) {
    const eq = param.indexOf('=')
    if (eq < 0) continue
    if (param.slice(0, eq).trim() === 'Credential') return parseScope(param.slice(eq + 1).trim())
  }
  return undefined
}

/**
 * The credential of a presigned request: the `X-Amz-Credential` query parameter (percent-encoded, as
 * SigV4 query signing sends it) of a request target such as `/bucket/key?X-Amz-Credential=…&…`.
 */
export function credentialFromQuery(target: string | undefined): SigV4Credential | undefined {
  if (!target || target.length > MAX_HEADER) return undefined
  const q = target.indexOf('?')
  if (q < 0) return undefined
  let params: URLSearchParams
  try {
    params = new URLSearchParams(target.slice(q + 1))
  } catch {
    return undefined
  }
  // Parameter names are case-sensitive in SigV4; some clients lower-case them all the same.
  const value = params.get('X-Amz-Credential') ?? params.get('x-amz-credential')
  return value ? parseScope(value) : undefined
}

/** An AWS request's signing credential, from its Authorization header or else its query string. */
export function sigV4Credential(req: {
  authorization?: string | undefined
  target?: string | undefined
}): SigV4Credential | undefined {
  return credentialFromAuthorization(req.authorization) ?? credentialFromQuery(req.target)
}

/** The account id an AWS request was signed for, or undefined (unsigned, not SigV4, or a legacy key). */
export function awsAccountOfRequest(req: {
  authorization?: string | undefined
  target?: string | undefined
}): string | undefined {
  const c = sigV4Credential(req)
  return c ? accountIdFromAccessKeyId(c.accessKeyId) : undefined
}
