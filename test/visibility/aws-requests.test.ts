// flowgate_aws_api_requests_total's source: which requests count (SigV4 Authorization, presigned
// X-Amz-Credential), and the bounds on its label values whatever clients send.
import test from 'ava'
import {
  AwsApiRequests,
  awsRequestOf,
  MAX_ACCOUNTS,
  MAX_SERVICES,
  OTHER,
  UNKNOWN_ACCOUNT,
} from '../../appliance/src/visibility/aws-requests.ts'

const auth = (key: string, service = 'sts', region = 'us-east-1') =>
  `AWS4-HMAC-SHA256 Credential=${key}/20261121/${region}/${service}/aws4_request, SignedHeaders=host, Signature=00`

test('SigV4 requests: from Authorization, from a presigned target; other requests are not', (t) => {
  t.deepEqual(awsRequestOf([['authorization', auth('ASIAY34FZKBOKMUTVV7A')]], '/'), {
    account: '609629065308',
    service: 'sts',
  })
  t.deepEqual(
    awsRequestOf(
      [['host', 'b.s3.amazonaws.com']],
      '/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIASP2TPHJSQH3FJXYZ%2F20261121%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0',
    ),
    { account: '171436882533', service: 's3' },
  )
  // A legacy key signs just as well: counted, account unknown.
  t.deepEqual(awsRequestOf([['authorization', auth('AKIAIOSFODNN7EXAMPLE', 's3')]], '/'), {
    account: undefined,
    service: 's3',
  })
  t.is(awsRequestOf([['authorization', 'Bearer abc']], '/?x=1'), undefined)
  t.is(awsRequestOf([], '/search?q=X-Amz-Credential'), undefined)
  t.is(awsRequestOf([['authorization', 'AWS4-HMAC-SHA256 SignedHeaders=host']], '/'), undefined)
})

test('label values are bounded: the first accounts and services seen, then "other"; unknown keys apart', (t) => {
  const c = new AwsApiRequests()
  const account = (i: number) => String(100_000_000_000 + i)
  for (let i = 0; i < MAX_ACCOUNTS + 10; i++) c.record({ account: account(i), service: 'sts' })
  c.record({ account: account(0), service: 'sts' }) // seen before: its own series still
  c.record({ account: undefined, service: 'sts' })
  for (let i = 0; i < MAX_SERVICES + 5; i++) c.record({ account: account(1), service: `svc${i}` })
  c.record({ account: account(1), service: 'Not A Service!' })
  const s = c.snapshot()
  const accounts = new Set(s.map((x) => x.account))
  const services = new Set(s.map((x) => x.service))
  t.is(accounts.size, MAX_ACCOUNTS + 2) // + other + unknown
  t.true(accounts.has(OTHER) && accounts.has(UNKNOWN_ACCOUNT))
  t.is(services.size, MAX_SERVICES + 1)
  t.true(services.has(OTHER))
  const get = (a: string, sv: string) => s.find((x) => x.account === a && x.service === sv)?.requests
  t.is(get(account(0), 'sts'), 2)
  t.is(get(OTHER, 'sts'), 10)
  t.is(get(UNKNOWN_ACCOUNT, 'sts'), 1)
  // sts took one of the 32: svc0–svc30 got theirs, svc31–svc36 and the invalid name count as other
  t.is(get(account(1), 'svc30'), 1)
  t.is(get(account(1), OTHER), 6 + 1)
})
