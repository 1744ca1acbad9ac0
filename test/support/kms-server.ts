// An in-process AWS KMS endpoint speaking the JSON 1.1 protocol (POST /, `X-Amz-Target:
// TrentService.<Operation>`, `Content-Type: application/x-amz-json-1.1`, blobs as base64), for the calls
// the CA makes: GetPublicKey and Sign. The real SDK v3 KMSClient talks to it through an endpoint override.
//
// Keys are real: P-256 (and P-384, for the wrong-spec case) key pairs made with node:crypto, so the
// certificates it signs verify with openssl. Sign implements MessageType DIGEST as KMS does — ECDSA over the
// 32 bytes given, no further hashing. Node's crypto cannot sign a pre-computed digest (it always hashes),
// so the signing step is done here with BigInt arithmetic on P-256; the signer under test verifies every
// signature with node:crypto, so a slip here fails the tests rather than hiding.
//
// Errors use AWS's JSON error shape (`{"__type": …, "message": …}` plus `x-amzn-ErrorType`) with KMS's
// statuses: InvalidSignatureException / UnrecognizedClientException (SigV4 is checked), NotFoundException,
// KMSInvalidStateException, DisabledException, ValidationException,
// InvalidKeyUsageException, UnsupportedOperationException (400), ThrottlingException (400, which the SDK
// classes as throttling and retries), KMSInternalException (500).
import crypto, { type KeyObject } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AsnEcSignatureFormatter } from '../../appliance/src/ca/x509.ts'

const REGION = 'us-east-1'
const ACCOUNT = '111122223333'

export type KeySpec = 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'SYMMETRIC_DEFAULT'
export type KeyUsage = 'SIGN_VERIFY' | 'KEY_AGREEMENT' | 'ENCRYPT_DECRYPT'
export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion'

interface Key {
  id: string
  arn: string
  spec: KeySpec
  usage: KeyUsage
  state: KeyState
  privateKey?: KeyObject
  publicKey?: KeyObject
}

export interface KmsCall {
  operation: string
  keyId: string | undefined
  status: number
  errorType?: string
  /** Sign: MessageType and the decoded message length */
  messageType?: string
  messageLength?: number
}

type FaultKind = 'throttle' | 'internal' | 'bad-signature' | 'hang'

// ---- ECDSA P-256 over a given digest (SEC 1 §4.1.3), Jacobian coordinates, a = -3 ----
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
const GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n
const GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n
type Jac = { x: bigint; y: bigint; z: bigint } | null
const md = (a: bigint, m = P) => {
  const r = a % m
  return r < 0n ? r + m : r
}
function inv(a: bigint, m: bigint): bigint {
  let [r0, r1, t0, t1] = [md(a, m), m, 1n, 0n]
  while (r1 !== 0n) {
    const q = r0 / r1
    ;[r0, r1, t0, t1] = [r1, r0 - q * r1, t1, t0 - q * t1]
  }
  return md(t0, m)
}
function dbl(p: Jac): Jac {
  if (!p || p.y === 0n) return null
  const delta = md(p.z * p.z)
  const gamma = md(p.y * p.y)
  const beta = md(p.x * gamma)
  const alpha = md(3n * (p.x - delta) * (p.x + delta))
  const x = md(alpha * alpha - 8n * beta)
  const z = md((p.y + p.z) ** 2n - gamma - delta)
  const y = md(alpha * (4n * beta - x) - 8n * gamma * gamma)
  return { x, y, z }
}
function addAffine(p: Jac, qx: bigint, qy: bigint): Jac {
  if (!p) return { x: qx, y: qy, z: 1n }
  const z1z1 = md(p.z * p.z)
  const u2 = md(qx * z1z1)
  const s2 = md(qy * p.z * z1z1)
  const h = md(u2 - p.x)
  const r = md(s2 - p.y)
  if (h === 0n) return r === 0n ? dbl(p) : null
  const hh = md(h * h)
  const hhh = md(h * hh)
  const v = md(p.x * hh)
  const x = md(r * r - hhh - 2n * v)
  const y = md(r * (v - x) - p.y * hhh)
  return { x, y, z: md(p.z * h) }
}
function mulG(k: bigint): { x: bigint; y: bigint } {
  let acc: Jac = null
  for (let i = 255; i >= 0; i--) {
    acc = dbl(acc)
    if ((k >> BigInt(i)) & 1n) acc = addAffine(acc, GX, GY)
  }
  if (!acc) throw new Error('point at infinity')
  const zi = inv(acc.z, P)
  return { x: md(acc.x * zi * zi), y: md(acc.y * zi * zi * zi) }
}
const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`)
const bytes32 = (n: bigint) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex')
const formatter = new AsnEcSignatureFormatter()

/** DER ECDSA-Sig-Value over a 32-byte digest with a P-256 private key, as KMS Sign (DIGEST) does. */
export function signP256Digest(privateKey: KeyObject, digest: Uint8Array): Buffer {
  const d = big(Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url'))
  const z = big(digest) // 256-bit digest, 256-bit order: no truncation (SEC 1 §4.1.3 step 5)
  for (;;) {
    const k = md(big(crypto.randomBytes(40)), N - 1n) + 1n
    const r = md(mulG(k).x, N)
    if (r === 0n) continue
    const s = md(inv(k, N) * (z + r * d), N)
    if (s === 0n) continue
    const der = formatter.toAsnSignature(
      { name: 'ECDSA', namedCurve: 'P-256' } as never,
      Buffer.concat([bytes32(r), bytes32(s)]),
    )
    return Buffer.from(der as ArrayBuffer)
  }
}

const CREDENTIALS: Record<string, string> = { AKIDTEST: 'test-secret' }
const hmac = (key: crypto.BinaryLike, data: string) => crypto.createHmac('sha256', key).update(data).digest()
const sha256hex = (data: crypto.BinaryLike) => crypto.createHash('sha256').update(data).digest('hex')

/**
 * Check the request's AWS Signature Version 4 as KMS does (AWS General Reference, "Create a signed AWS API
 * request"): credential scope <date>/us-east-1/kms/aws4_request, then the canonical request over the signed
 * headers and the payload hash, the string to sign, the derived key, and the signature.
 */
function verifySigV4(req: http.IncomingMessage, payload: Buffer): void {
  const auth = String(req.headers.authorization ?? '')
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      auth,
    )
  if (!m) throw new AwsError(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token')
  const [, accessKey, date, region, service, signedHeaders, signature] = m as unknown as string[]
  const secret = CREDENTIALS[accessKey as string]
  if (!secret)
    throw new AwsError(
      400,
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
    )
  if (region !== REGION || service !== 'kms')
    throw new AwsError(
      400,
      'InvalidSignatureException',
      `Credential should be scoped to a valid region and service (${region}/${service}).`,
    )
  const amzDate = String(req.headers['x-amz-date'] ?? '')
  if (!amzDate.startsWith(date as string))
    throw new AwsError(
      400,
      'InvalidSignatureException',
      'Date in Credential scope does not match X-Amz-Date.',
    )
  const names = (signedHeaders as string).split(';')
  if (!names.includes('host') || !names.includes('x-amz-date'))
    throw new AwsError(400, 'InvalidSignatureException', 'host and x-amz-date must be signed.')
  const canonicalHeaders = names
    .map(
      (h) =>
        `${h}:${String(req.headers[h] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}\n`,
    )
    .join('')
  const [path, query = ''] = (req.url ?? '/').split('?')
  const canonicalQuery = query.split('&').filter(Boolean).sort().join('&')
  const payloadHash = String(req.headers['x-amz-content-sha256'] ?? sha256hex(payload))
  const canonicalRequest = [
    req.method,
    path,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n')
  const scope = `${date}/${region}/${service}/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonicalRequest)].join('\n')
  const key = hmac(
    hmac(hmac(hmac(`AWS4${secret}`, date as string), region as string), service as string),
    'aws4_request',
  )
  const expected = hmac(key, stringToSign)
  if (!crypto.timingSafeEqual(expected, Buffer.from(signature as string, 'hex')))
    throw new AwsError(
      400,
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided.',
    )
}

class AwsError extends Error {
  readonly status: number
  readonly type: string
  constructor(status: number, type: string, message: string) {
    super(message)
    this.status = status
    this.type = type
  }
}

export class KmsServer {
  readonly server: http.Server
  url = ''
  readonly calls: KmsCall[] = []
  readonly #keys = new Map<string, Key>()
  readonly #aliases = new Map<string, string>() // "alias/name" → key id
  #faults: { operations: string[] | undefined; kind: FaultKind; count: number }[] = []

  constructor() {
    this.server = http.createServer((req, res) => void this.#handle(req, res))
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  /** SDK client configuration pointing here, with dummy credentials. */
  clientConfig() {
    return {
      endpoint: this.url,
      region: REGION,
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
    }
  }

  /** Create a key; returns its id and ARN. P-256 SIGN_VERIFY Enabled unless told otherwise. */
  createKey(o: { spec?: KeySpec; usage?: KeyUsage; state?: KeyState } = {}): { keyId: string; arn: string } {
    const id = crypto.randomUUID()
    const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`
    const spec = o.spec ?? 'ECC_NIST_P256'
    const key: Key = { id, arn, spec, usage: o.usage ?? 'SIGN_VERIFY', state: o.state ?? 'Enabled' }
    if (spec !== 'SYMMETRIC_DEFAULT') {
      const pair = crypto.generateKeyPairSync('ec', {
        namedCurve: spec === 'ECC_NIST_P256' ? 'P-256' : 'P-384',
      })
      key.privateKey = pair.privateKey
      key.publicKey = pair.publicKey
    }
    this.#keys.set(id, key)
    return { keyId: id, arn }
  }

  /** The key's public half (what a test puts in a root certificate it makes by other means). */
  publicKey(keyId: string): KeyObject {
    const k = this.#find(keyId)
    if (!k.publicKey) throw new Error('symmetric key')
    return k.publicKey
  }

  /** Point `alias/<name>` at a key (creating or re-pointing it, as CreateAlias/UpdateAlias do). */
  setAlias(name: string, keyId: string): string {
    const alias = name.startsWith('alias/') ? name : `alias/${name}`
    this.#aliases.set(alias, this.#find(keyId).id)
    return alias
  }

  setState(keyId: string, state: KeyState): void {
    this.#find(keyId).state = state
  }

  /** The next `count` calls (of these operations, or any) fail with ThrottlingException (400). */
  throttle(count: number, operations?: string[]): void {
    this.#faults.push({ operations, kind: 'throttle', count })
  }

  /** The next `count` calls fail with KMSInternalException (500). */
  fail(count: number, operations?: string[]): void {
    this.#faults.push({ operations, kind: 'internal', count })
  }

  /** The next `count` calls get no answer at all (until the server closes): a KMS that hangs. */
  hang(count: number, operations?: string[]): void {
    this.#faults.push({ operations, kind: 'hang', count })
  }

  /** The next `count` Sign calls answer a valid-looking signature made by another key. */
  badSignatures(count: number): void {
    this.#faults.push({ operations: ['Sign'], kind: 'bad-signature', count })
  }

  callsOf(operation: string, status = 200): KmsCall[] {
    return this.calls.filter((c) => c.operation === operation && c.status === status)
  }

  #find(keyId: string | undefined): Key {
    // Key id, key ARN, alias name or alias ARN (arn:aws:kms:…:alias/name), as KMS accepts them.
    const aliasName = keyId?.startsWith('alias/') ? keyId : /:(alias\/.+)$/.exec(keyId ?? '')?.[1]
    const id = aliasName
      ? this.#aliases.get(aliasName)
      : keyId?.startsWith('arn:')
        ? keyId.split('/').pop()
        : keyId
    const k = id ? this.#keys.get(id) : undefined
    if (!k) throw new AwsError(400, 'NotFoundException', `Key '${keyId}' does not exist`)
    return k
  }

  #usable(k: Key): void {
    if (k.state === 'Disabled') throw new AwsError(400, 'DisabledException', `${k.arn} is disabled.`)
    if (k.state !== 'Enabled')
      throw new AwsError(400, 'KMSInvalidStateException', `${k.arn} is pending deletion.`)
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const target = String(req.headers['x-amz-target'] ?? '')
    const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : target
    let body: Record<string, unknown> = {}
    const call: KmsCall = { operation, keyId: undefined, status: 200 }
    const send = (status: number, payload: unknown, errorType?: string) => {
      call.status = status
      if (errorType) call.errorType = errorType
      this.calls.push(call)
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'x-amzn-requestid': crypto.randomUUID(),
        ...(errorType ? { 'x-amzn-errortype': `${errorType}:` } : {}),
      })
      res.end(JSON.stringify(payload))
    }
    try {
      if (req.method !== 'POST' || req.url !== '/')
        throw new AwsError(404, 'UnknownOperationException', 'POST / only')
      if (!String(req.headers['content-type']).startsWith('application/x-amz-json-1.1'))
        throw new AwsError(400, 'SerializationException', 'expected application/x-amz-json-1.1')
      // The SDK signs every request (SigV4); KMS refuses unsigned, mis-scoped or mis-signed ones.
      verifySigV4(req, Buffer.concat(chunks))
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>
      call.keyId = typeof body.KeyId === 'string' ? body.KeyId : undefined
      const fault = this.#faults.find(
        (f) => f.count > 0 && (!f.operations || f.operations.includes(operation)),
      )
      if (fault && fault.kind !== 'bad-signature') {
        fault.count--
        if (fault.kind === 'hang') {
          call.status = 0
          this.calls.push(call)
          return
        }
        if (fault.kind === 'throttle') throw new AwsError(400, 'ThrottlingException', 'Rate exceeded')
        throw new AwsError(500, 'KMSInternalException', 'An internal error occurred')
      }
      switch (operation) {
        case 'GetPublicKey': {
          const k = this.#find(call.keyId)
          this.#usable(k)
          if (!k.publicKey)
            throw new AwsError(
              400,
              'UnsupportedOperationException',
              `${k.arn} key type does not support GetPublicKey`,
            )
          return send(200, {
            KeyId: k.arn,
            PublicKey: k.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
            CustomerMasterKeySpec: k.spec,
            KeySpec: k.spec,
            KeyUsage: k.usage,
            ...(k.usage === 'SIGN_VERIFY'
              ? { SigningAlgorithms: [k.spec === 'ECC_NIST_P256' ? 'ECDSA_SHA_256' : 'ECDSA_SHA_384'] }
              : {}),
            ...(k.usage === 'KEY_AGREEMENT' ? { KeyAgreementAlgorithms: ['ECDH'] } : {}),
          })
        }
        case 'Sign': {
          const k = this.#find(call.keyId)
          this.#usable(k)
          if (k.usage !== 'SIGN_VERIFY')
            throw new AwsError(
              400,
              'InvalidKeyUsageException',
              `${k.arn} key usage is ${k.usage} which is not valid for Sign.`,
            )
          const alg = body.SigningAlgorithm
          if (alg !== 'ECDSA_SHA_256' || k.spec !== 'ECC_NIST_P256')
            throw new AwsError(
              400,
              'InvalidKeyUsageException',
              `Algorithm ${String(alg)} is incompatible with key spec ${k.spec}.`,
            )
          const message = Buffer.from(String(body.Message ?? ''), 'base64')
          call.messageType = String(body.MessageType ?? 'RAW')
          call.messageLength = message.length
          let digest: Buffer
          if (body.MessageType === 'DIGEST') {
            if (message.length !== 32)
              throw new AwsError(
                400,
                'ValidationException',
                'Digest is invalid length for algorithm ECDSA_SHA_256.',
              )
            digest = message
          } else {
            if (message.length < 1 || message.length > 4096)
              throw new AwsError(400, 'ValidationException', 'Message length must be between 1 and 4096')
            digest = crypto.createHash('sha256').update(message).digest()
          }
          let signer = k.privateKey as KeyObject
          if (fault?.kind === 'bad-signature') {
            fault.count--
            signer = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
          }
          return send(200, {
            KeyId: k.arn,
            Signature: signP256Digest(signer, digest).toString('base64'),
            SigningAlgorithm: 'ECDSA_SHA_256',
          })
        }
        default:
          throw new AwsError(400, 'UnknownOperationException', `unknown operation ${target}`)
      }
    } catch (e) {
      if (e instanceof AwsError) return send(e.status, { __type: e.type, message: e.message }, e.type)
      return send(500, { __type: 'KMSInternalException', message: String(e) }, 'KMSInternalException')
    }
  }
}
