// The scripted tour: each step runs real clients in the client namespace against the servers behind the
// appliance and says what it saw and whether that is what the demo policies should make happen.
import type { ExecResult } from '../../../standin/src/namespaces.ts'
import type { MiniVpc } from './mini-vpc.ts'
import { ALLOWED_VIDEO, EVERY_NTH_ICMP } from './policies.ts'

export interface Outcome {
  ok: boolean
  /** what happened, one line each */
  saw: string[]
}

export interface Step {
  title: string
  /** the commands as run in the client namespace, files named relative to the demo's temp dir */
  commands: string[]
  run(): Promise<Outcome>
}

const SAFE = /^[\w@%+=:,./-]+$/
const quote = (a: string) => (SAFE.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)

interface HttpResponse {
  status: number
  statusLine: string
  headers: Map<string, string>
  body: string
}

/** `curl -i` output: status line, headers (last response only), body. */
export function parseCurlI(out: string): HttpResponse | undefined {
  const end = out.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const [statusLine = '', ...lines] = out.slice(0, end).split('\r\n')
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)?.[1] ?? Number.NaN)
  const headers = new Map<string, string>()
  for (const l of lines) {
    const i = l.indexOf(':')
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim())
  }
  return { status, statusLine: statusLine.trim(), headers, body: out.slice(end + 4) }
}

/**
 * Which echo requests of `count` get no reply when every `nth` packet of the flow is dropped, requests and
 * replies counted together (a dropped request has no reply to count), and which packet of the flow it was.
 */
export function expectedPingLoss(count: number, nth: number): Array<{ seq: number; packet: number }> {
  const lost: Array<{ seq: number; packet: number }> = []
  let packets = 0
  for (let seq = 1; seq <= count; seq++) {
    packets++ // the request
    if (packets % nth === 0) {
      lost.push({ seq, packet: packets })
      continue
    }
    packets++ // the reply
    if (packets % nth === 0) lost.push({ seq, packet: packets })
  }
  return lost
}

const curlError = (r: ExecResult) => r.stderr.trim().split('\n').at(-1) || `exit ${r.code ?? r.signal}`
const firstLine = (s: string) => JSON.stringify(s.split('\n')[0] ?? '')

export function tour(v: MiniVpc): Step[] {
  const server = v.serverAddr
  const rel = (a: string) => a.replaceAll(`${v.dir}/`, '')
  const shown = (cmd: string, args: string[]) => [cmd, ...args].map((a) => quote(rel(a))).join(' ')
  const curlArgs = (name: string, path: string, ca: string) => [
    '-sS',
    '-i',
    '--max-time',
    '10',
    '--resolve',
    `${name}:443:${server}`,
    '--cacert',
    ca,
    `https://${name}${path}`,
  ]
  const curlStep = (
    title: string,
    name: string,
    path: string,
    ca: string,
    judge: (r: ExecResult, res: HttpResponse | undefined) => Outcome,
  ): Step => {
    const args = curlArgs(name, path, ca)
    return {
      title,
      commands: [shown('curl', args)],
      run: async () => {
        const r = await v.client('curl', args)
        return judge(r, r.code === 0 ? parseCurlI(r.stdout.toString()) : undefined)
      },
    }
  }
  const aws = 'sts.us-east-1.amazonaws.com'
  const other = 'oHg5SJYRHA0'
  const sClient = `openssl s_client -connect ${server}:443 -servername www.youtube.com -CAfile ${v.files.interceptionRoot} </dev/null`
  const udpTexts: Array<[string, string | null]> = [
    ['hello there', 'hello there'],
    ['please drop me now', null],
    ['TypeScript is weakly typed', 'TypeScript is strongly typed'],
  ]
  const udpCmd = (text: string) => `printf '%s' '${text}' | socat -t1 - UDP4:${server}:3000`
  const pings = 10
  const pingArgs = ['-c', String(pings), '-i', '0.1', '-W', '1', server]
  const lossExpected = expectedPingLoss(pings, EVERY_NTH_ICMP)

  return [
    curlStep(
      'An allowed request: HTTPS to an AWS API, allowed on its TLS SNI (aws-api-allowlist, rule aws-apis)',
      aws,
      '/',
      v.files.publicCa,
      (r, res) => {
        if (!res) return { ok: false, saw: [`curl failed: ${curlError(r)}`] }
        const ok = res.status === 200 && res.body.includes(`to ${aws}`)
        return {
          ok,
          saw: [
            `${res.statusLine}, body ${firstLine(res.body)}`,
            "curl trusted only the origins' own CA, so this is the origin's certificate: not intercepted",
          ],
        }
      },
    ),
    {
      title:
        'A denied request: HTTPS to a name not on the allow-list (aws-api-allowlist, defaultAction Reject)',
      commands: [shown('curl', curlArgs('www.example.org', '/', v.files.publicCa))],
      run: async () => {
        const r = await v.client('curl', curlArgs('www.example.org', '/', v.files.publicCa))
        const fast = r.ms < 3000
        const ok = r.code !== 0 && r.stdout.length === 0 && /reset|refused/i.test(r.stderr) && fast
        return {
          ok,
          saw: [
            r.code === 0 ? `curl got an answer: ${firstLine(r.stdout.toString())}` : curlError(r),
            `${fast ? 'at once' : 'slowly'}: after ${Math.round(r.ms)} ms (a TCP RST from the appliance, not a timeout)`,
          ],
        }
      },
    },
    {
      title:
        'Intercepted HTTPS (youtube-one-video, Inspect): the client sees a certificate the appliance minted',
      commands: [rel(sClient)],
      run: async () => {
        const r = await v.client('sh', ['-c', sClient])
        const out = r.stdout.toString()
        const chain = [...out.matchAll(/^\s*\d+ s:(.*)\n\s*i:(.*)$/gm)].map((m) => [m[1]!, m[2]!] as const)
        const verified = /Verify return code: 0 \(ok\)/.test(out)
        const path = chain.length ? [...chain.map((c) => c[0]), chain.at(-1)![1]].join(' ← ') : '(no chain)'
        const ok = verified && /www\.youtube\.com/.test(chain[0]?.[0] ?? '') && /flowgate demo/.test(path)
        return {
          ok,
          saw: [
            `chain: ${path}`,
            verified
              ? 'verified against the demo interception root alone (the origin has a certificate from another CA)'
              : `not verified: ${out.match(/Verify return code: .*/)?.[0] ?? r.stderr.trim().split('\n').at(-1)}`,
          ],
        }
      },
    },
    curlStep(
      'A script rewrites the request: onRequest redirects any other video to the one allowed',
      'www.youtube.com',
      `/watch?v=${other}`,
      v.files.interceptionRoot,
      (r, res) => {
        if (!res) return { ok: false, saw: [`curl failed: ${curlError(r)}`] }
        const location = res.headers.get('location')
        const want = `https://www.youtube.com/watch?v=${ALLOWED_VIDEO}`
        if (res.status === 302 && location === want) {
          return {
            ok: true,
            saw: [
              `${res.statusLine}, location: ${location}`,
              'the 302 came from the onRequest script: the origin answers every path with 200',
            ],
          }
        }
        return {
          ok: false,
          saw: [
            `${res.statusLine}${location ? `, location: ${location}` : ''}, body ${firstLine(res.body)}`,
            `expected 302 to ${want} from the onRequest script${res.body.includes('hello from the origin') ? ': the origin answered, so the script did not run' : ''}`,
          ],
        }
      },
    ),
    curlStep(
      'A script rewrites the response: the allowed video passes, onResponse adds x-flowgate: inspected',
      'www.youtube.com',
      `/watch?v=${ALLOWED_VIDEO}`,
      v.files.interceptionRoot,
      (r, res) => {
        if (!res) return { ok: false, saw: [`curl failed: ${curlError(r)}`] }
        const mark = res.headers.get('x-flowgate')
        const fromOrigin = res.body.includes('hello from the origin')
        return {
          ok: res.status === 200 && fromOrigin && mark === 'inspected',
          saw: [
            `${res.statusLine}, x-flowgate: ${mark ?? '(absent)'}, body ${firstLine(res.body)}`,
            mark === 'inspected'
              ? 'the header was added by the script: the origin does not send it'
              : 'expected x-flowgate: inspected from the onResponse script',
          ],
        }
      },
    ),
    {
      title:
        'The UDP censor (udp-censor): datagrams to port 3000 pass, "drop me" is dropped, "weakly" becomes "strongly"',
      commands: udpTexts.map(([t]) => udpCmd(t)),
      run: async () => {
        // One at a time: socat's forking UDP listener may hand a datagram arriving while it forks for
        // another peer to the wrong child.
        const results: ExecResult[] = []
        for (const [t] of udpTexts) results.push(await v.client('sh', ['-c', udpCmd(t)], 10_000))
        let ok = true
        const saw = udpTexts.map(([sent, want], i) => {
          const got = results[i]!.stdout.toString()
          const right = want === null ? got === '' : got === want
          ok &&= right
          const what = got === '' ? 'nothing came back' : `the echo server returned ${JSON.stringify(got)}`
          return `${JSON.stringify(sent)} → ${what}${want === null && got === '' ? ' (dropped)' : ''}${right ? '' : ` (expected ${want === null ? 'nothing' : JSON.stringify(want)})`}`
        })
        return { ok, saw }
      },
    },
    {
      title:
        'The ICMP drop (icmp-every-fifth): every 5th packet of a flow is dropped, requests and replies counted together',
      commands: [shown('ping', pingArgs)],
      run: async () => {
        const r = await v.client('ping', pingArgs, 15_000)
        const out = r.stdout.toString()
        const replied = new Set([...out.matchAll(/bytes from .* icmp_seq=(\d+)/g)].map((m) => Number(m[1])))
        const lost = Array.from({ length: pings }, (_, i) => i + 1).filter((s) => !replied.has(s))
        const summary = /\d+ packets transmitted.*/.exec(out)?.[0] ?? r.stderr.trim()
        const want = lossExpected.map((l) => l.seq)
        const ok = lost.join() === want.join()
        const packets = lossExpected.map((l) => l.packet).join(', ')
        return {
          ok,
          saw: [
            summary,
            `no reply to icmp_seq ${lost.join(', ') || '(none)'}${ok ? ` (packets ${packets} of the flow)` : `; expected ${want.join(', ')} (packets ${packets} of the flow)`}`,
          ],
        }
      },
    },
  ]
}
