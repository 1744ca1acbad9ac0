// Account ids from SigV4 access key ids, against key → account pairs published with the public decoders
// (one of them, AKIASP2TPHJSQH3FJXYZ, is the canarytokens.org key trufflehog reports as account
// 171436882533), and the credential parsers on headers and presigned URLs as the AWS SDKs send them.
import test from 'ava'
import {
  accountIdFromAccessKeyId,
  awsAccountOfRequest,
  credentialFromAuthorization,
  credentialFromQuery,
  isAccessKeyId,
} from '../../appliance/src/visibility/aws-account.ts'

const KNOWN: [string, string][] = [
  ['ASIAY34FZKBOKMUTVV7A', '609629065308'],
  ['AKIASP2TPHJSQH3FJXYZ', '171436882533'],
  ['ASIAQNZGKIQY56JQ7WML', '029608264753'],
  ['AKIAVJTCYHPL6QWFVZ4Q', '364205587415'],
  ['AKIA6ODU5DHT7HGWSLU5', '992382622183'],
]

test('known access key ids decode to their accounts (12 digits, zero-padded)', (t) => {
  for (const [key, account] of KNOWN) t.is(accountIdFromAccessKeyId(key), account, key)
})

test('the last seven characters do not change the account (they are not part of it)', (t) => {
  t.is(accountIdFromAccessKeyId('ASIAY34FZKBOKAAAAAAA'), '609629065308')
  t.is(accountIdFromAccessKeyId('ASIAY34FZKBOK2222222'), '609629065308')
})

test('legacy keys (fifth character I or J) and non-keys give undefined, never a wrong account', (t) => {
  // AWS's documentation example key is of the pre-2019 kind
  t.is(accountIdFromAccessKeyId('AKIAIOSFODNN7EXAMPLE'), undefined)
  t.is(accountIdFromAccessKeyId('AKIAJ34FZKBOKMUTVV7A'), undefined)
  for (const bad of [
    '',
    'AKIA',
    'ASIAY34FZKBOKMUTVV7', // 19 characters
    'ASIAY34FZKBOKMUTVV7AA',
    'asiay34fzkbokmutvv7a', // key ids are upper case
    'ASIAY34FZKBOKMUTVV1A', // 1 is not base32
    'AROAY34FZKBOKMUTVV7A', // a role id, not a signing key
  ]) {
    t.is(accountIdFromAccessKeyId(bad), undefined, bad)
    t.false(isAccessKeyId(bad), bad)
  }
  // 40 bits reach past 12 digits: such a value is not an account
  t.is(accountIdFromAccessKeyId('AKIA7777777777777777'), undefined)
})

test('Authorization header: SigV4 and SigV4a credential scopes', (t) => {
  const h =
    'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/20240501/eu-west-1/s3/aws4_request, ' +
    'SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024'
  t.deepEqual(credentialFromAuthorization(h), {
    accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
    date: '20240501',
    region: 'eu-west-1',
    service: 's3',
  })
  t.is(awsAccountOfRequest({ authorization: h }), '609629065308')
  // no spaces after the commas (botocore writes them, others do not)
  const tight =
    'AWS4-HMAC-SHA256 Credential=AKIASP2TPHJSQH3FJXYZ/20240501/us-east-1/sts/aws4_request,SignedHeaders=host,Signature=00'
  t.is(awsAccountOfRequest({ authorization: tight }), '171436882533')
  const v4a =
    'AWS4-ECDSA-P256-SHA256 Credential=AKIAVJTCYHPL6QWFVZ4Q/20240501/s3/aws4_request, SignedHeaders=host, Signature=3045'
  t.deepEqual(credentialFromAuthorization(v4a), {
    accessKeyId: 'AKIAVJTCYHPL6QWFVZ4Q',
    date: '20240501',
    region: '',
    service: 's3',
  })
})

test('Authorization header: other schemes and malformed scopes give undefined', (t) => {
  for (const h of [
    undefined,
    '',
    'Bearer abc',
    'AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=', // SigV2
    'AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00',
    'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/20240501/eu-west-1/s3, Signature=00',
    'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/yesterday/eu-west-1/s3/aws4_request',
    'AWS4-HMAC-SHA256 Credential=/20240501/eu-west-1/s3/aws4_request',
    `AWS4-HMAC-SHA256 Credential=${'A'.repeat(10_000)}`,
  ]) {
    t.is(credentialFromAuthorization(h), undefined, String(h).slice(0, 60))
  }
  // a well-formed scope with a key id that is not decodable: a credential, but no account
  const legacy =
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, Signature=0'
  t.is(credentialFromAuthorization(legacy)?.accessKeyId, 'AKIAIOSFODNN7EXAMPLE')
  t.is(awsAccountOfRequest({ authorization: legacy }), undefined)
})

test('presigned URLs: X-Amz-Credential, percent-encoded as SigV4 query signing sends it', (t) => {
  const target =
    '/examplebucket/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256' +
    '&X-Amz-Credential=AKIA6ODU5DHT7HGWSLU5%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
    '&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeee'
  t.deepEqual(credentialFromQuery(target), {
    accessKeyId: 'AKIA6ODU5DHT7HGWSLU5',
    date: '20130524',
    region: 'us-east-1',
    service: 's3',
  })
  t.is(awsAccountOfRequest({ target }), '992382622183')
  // the header wins over the query when both are present
  const h = 'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/20240501/eu-west-1/s3/aws4_request, Signature=0'
  t.is(awsAccountOfRequest({ authorization: h, target }), '609629065308')
  for (const bad of ['/a', '/a?b=c', '/a?X-Amz-Credential=', '/a?X-Amz-Credential=%E0%A4%A', undefined])
    t.is(credentialFromQuery(bad), undefined, String(bad))
})
