// Issue 8 items 4 and 5 end to end: curl in the client namespace, through the GWLB stand-in and TLS
// interception by the real appliance (standalone: --policies, with an admin API), to a Node TLS origin in
// the server namespace named like an AWS endpoint (sts.us-east-1.amazonaws.com, resolved with --resolve,
// its certificate from a test CA the appliance trusts through --upstream-ca). The request carries a SigV4
// Authorization header: the flow's record must name the account its access key id encodes and
// flowgate_aws_api_requests_total must count it. The policy asks for HAR: the --har-dir file and a live
// export from GET /v1/har must be valid HAR 1.2 with the request line, the body cut to the policy's limit
// and the Authorization value redacted.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FlowRecord } from '../../appliance/src/flowlog/index.ts'
import type { HarEntry } from '../../appliance/src/visibility/har.ts'
import { harProblems } from '../support/har.ts'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { interceptionArgs, setUpInterception } from './interception.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])
const STS = 'sts.us-east-1.amazonaws.com'
const KEY_ID = 'ASIAY34FZKBOKMUTVV7A'
const ACCOUNT = '609629065308'
const SIGNATURE = '5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7'
const AUTHORIZATION = `AWS4-HMAC-SHA256 Credential=${KEY_ID}/20261121/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=${SIGNATURE}`
const MAX_BODY = 64

const POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: aws-apis
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["443"] }
  rules:
    - name: inspect-aws
      when: { sni: ["*.amazonaws.com"] }
      action: Inspect
  har:
    enabled: true
    maxBodyBytes: ${MAX_BODY}
  defaultAction: Allow
`

type Har = { log: { entries: HarEntry[]; _flowgate?: unknown } }

netTest(
  'AWS account id in the flow record and the metric; HAR of the exchanges in --har-dir and from GET /v1/har',
  async (t) => {
    t.timeout(180_000)
    await withAppliance(
      t,
      {
        policies: POLICY,
        httpPorts: [8080],
        before: async (lab, dir) => {
          await setUpInterception(lab, dir, { names: [STS], origins: [{ port: 443, mode: 'h2' }] })
          writeFileSync(join(dir, 'token'), 'lab-token\n')
        },
        applianceArgs: (dir) => [
          ...interceptionArgs(dir),
          '--flow-log',
          join(dir, 'flows.jsonl'),
          '--har-dir',
          join(dir, 'har'),
          '--admin-token-file',
          join(dir, 'token'),
          '--admin-port',
          '9443',
        ],
      },
      async ({ client, dir, metric, lab }) => {
        const admin = `http://${lab.applianceAddr}:9443`
        // A live export first, so it sees the exchanges below.
        const live = fetch(`${admin}/v1/har?seconds=20&maxEntries=2`, {
          headers: { authorization: 'Bearer lab-token' },
        })
        const curl = (path: string, extra: string[] = []) =>
          client('curl', [
            '-sS',
            '--max-time',
            '15',
            '--cacert',
            join(dir, 'root.pem'),
            '--resolve',
            `${STS}:443:${LAB.server4}`,
            ...extra,
            `https://${STS}${path}`,
          ])
        await new Promise((r) => setTimeout(r, 200)) // the export is open before the first request
        const get = await curl('/', [
          '-H',
          `Authorization: ${AUTHORIZATION}`,
          '-H',
          'X-Amz-Date: 20261121T120000Z',
        ])
        t.is(get.code, 0, get.stderr.toString())
        const greeting = `hello from the origin over HTTP/2.0 to ${STS}\n`
        t.is(get.stdout.toString(), greeting)
        const post = await curl('/echo', ['--data-binary', 'Action=GetCallerIdentity&Version=2011-06-15'])
        t.is(post.code, 0, post.stderr.toString())

        // The flow record names the account (within 5 s of the flow's end).
        const file = join(dir, 'flows.jsonl')
        let record: FlowRecord | undefined
        for (let i = 0; i < 100 && !record; i++) {
          if (existsSync(file))
            record = readFileSync(file, 'utf8')
              .split('\n')
              .filter((l) => l.trim())
              .map((l) => JSON.parse(l) as FlowRecord)
              .find((r) => r['aws-account-id'] !== null)
          if (!record) await new Promise((r) => setTimeout(r, 50))
        }
        // Why not, if not: the records there are, and the user-space TCP connections' states.
        if (!record)
          t.log(
            existsSync(file) ? readFileSync(file, 'utf8') : 'no flow log',
            await metric('flowgate_tcp_conn'),
          )
        t.truthy(record, 'a flow record with the account id')
        t.log(JSON.stringify(record))
        t.like(record, {
          dstport: 443,
          sni: STS,
          intercepted: true,
          policy: 'aws-apis',
          // Decided per request: the flow stands as Inspect, and its bytes went through.
          verdict: 'Inspect',
          action: 'ACCEPT',
          'aws-account-id': ACCOUNT,
          'aws-account-ids': [ACCOUNT],
        })

        const aws = await metric('flowgate_aws_api_requests_total')
        t.deepEqual(aws, [`flowgate_aws_api_requests_total{account="${ACCOUNT}",service="sts"} 1`])

        // The --har-dir file: a whole HAR document, the two exchanges, secrets redacted.
        const harDir = join(dir, 'har')
        let har: Har | undefined
        for (let i = 0; i < 100; i++) {
          const names = existsSync(harDir) ? readdirSync(harDir).filter((n) => n.endsWith('.har')) : []
          if (names.length === 1) {
            har = JSON.parse(readFileSync(join(harDir, names[0]!), 'utf8')) as Har
            if (har.log.entries.length >= 2) break
          }
          await new Promise((r) => setTimeout(r, 50))
        }
        t.truthy(har, 'a HAR file')
        t.deepEqual(harProblems(har), [])
        const entries = har!.log.entries
        t.is(entries.length, 2)
        const [first, second] = entries as [HarEntry, HarEntry]
        t.log(JSON.stringify(first, null, 1))
        t.like(first.request, { method: 'GET', url: `https://${STS}/`, httpVersion: 'HTTP/2.0' })
        t.is(first.response.status, 200)
        t.is(first.response.content.size, Buffer.byteLength(greeting))
        t.is(first.response.content.text, greeting.slice(0, MAX_BODY), 'the body, cut to maxBodyBytes')
        t.true(first.response.content._truncated)
        t.is(
          first.request.headers.find((h) => h.name === 'authorization')?.value,
          'AWS4-HMAC-SHA256 [redacted]',
        )
        t.like(first._flowgate, {
          policy: 'aws-apis',
          rule: 'inspect-aws',
          action: 'Inspect',
          awsAccountId: ACCOUNT,
          complete: true,
        })
        t.like(second.request, { method: 'POST', url: `https://${STS}/echo` })
        t.is(second.request.postData?.text, 'Action=GetCallerIdentity&Version=2011-06-15')
        t.is(second.response.content.text, 'Action=GetCallerIdentity&Version=2011-06-15')
        const text = readFileSync(join(harDir, readdirSync(harDir)[0]!), 'utf8')
        t.false(text.includes(SIGNATURE), 'no signature in the HAR file')
        t.false(text.includes(KEY_ID), 'no access key id in the HAR file')

        // The live export ended at its two entries: the same exchanges.
        const res = await live
        t.is(res.status, 200)
        const exported = (await res.json()) as Har
        t.deepEqual(harProblems(exported), [])
        t.deepEqual(
          exported.log.entries.map((e) => `${e.request.method} ${e.request.url} ${e.response.status}`),
          [`GET https://${STS}/ 200`, `POST https://${STS}/echo 200`],
        )
        t.deepEqual(exported.log._flowgate, { dropped: 0, ended: 'entries' })
        const harMetrics = await metric('flowgate_har_entries_total')
        t.true(harMetrics.includes('flowgate_har_entries_total{result="recorded"} 2'), harMetrics.join('\n'))
        t.true(harMetrics.includes('flowgate_har_entries_total{result="written"} 4'), harMetrics.join('\n'))
      },
    )
  },
)
