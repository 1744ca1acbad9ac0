// `flowgate demo` as a person runs it: a separate process through bin/flowgate.js. As root it builds the
// mini-VPC and must pass every step of its tour and leave nothing behind (also after a Ctrl-C); without
// root or without its tools it must say what is missing, why, and exit 2 having touched nothing.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { parseAllDocuments } from 'yaml'
import { summarize } from '../../cli/src/demo/metrics.ts'
import { DEMO_POLICIES } from '../../cli/src/demo/policies.ts'
import { expectedPingLoss, parseCurlI } from '../../cli/src/demo/tour.ts'
import { requirementsMessage } from '../../cli/src/demo.ts'
import { privilegedTest } from '../support/netns/privileges.ts'

const bin = new URL('../../bin/flowgate.js', import.meta.url).pathname
const netTest = privilegedTest(['root', 'tun', 'ip', 'addon', 'peers'])

interface Run {
  child: ChildProcess
  /** stdout and stderr so far */
  out: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>
}

function demo(args: string[], opts: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Run {
  const t0 = Date.now()
  const child = spawn(process.execPath, [bin, 'demo', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  // Bounded: the demo has its own deadline under a minute; this kills it if that ever fails.
  const guard = setTimeout(() => child.kill('SIGKILL'), 100_000)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((r) =>
    child.once('exit', (code, signal) => {
      clearTimeout(guard)
      r({ code, signal, ms: Date.now() - t0 })
    }),
  )
  return { child, out: () => out, exited }
}

/** What a demo run could have left behind: its namespaces (named in its output) and their links. */
function leftovers(out: string): string[] {
  const m = /\((fgt-\d+-([0-9a-f]+))-cli, /.exec(out)
  if (!m) throw new Error('the output names no client namespace')
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n')
    .filter((l) => l.startsWith(`${m[1]}-`))
  const links = execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith(`fg${m[2]}`))
  return [...ns, ...links]
}

const tempDirOf = (out: string) => /files are in (\/\S+)\//.exec(out)?.[1]

netTest(
  'flowgate demo: every step of the tour passes, the metrics say so, nothing is left behind',
  async (t) => {
    t.timeout(120_000)
    const run = demo([])
    const { code, ms } = await run.exited
    const out = run.out()
    // Logged only when wrong: its ✔ lines would otherwise count as passed tests in .ci/run's fallback tally.
    if (code !== 0 || !/Done: 7 of 7/.test(out)) t.log(out)
    t.is(code, 0, 'exit 0')
    t.true(ms < 60_000, `finished in ${ms} ms`)
    // Each of the seven steps is followed by its verdict.
    const verdicts = [...out.matchAll(/^(\d)\. [\s\S]*?^ {3}([✔✘])/gm)].map((m) => `${m[1]}${m[2]}`)
    t.deepEqual(verdicts, ['1✔', '2✔', '3✔', '4✔', '5✔', '6✔', '7✔'])
    t.notRegex(out, /✘/)
    t.regex(out, /HTTP\/2 302, location: https:\/\/www\.youtube\.com\/watch\?v=dQw4w9WgXcQ/)
    t.regex(out, /x-flowgate: inspected/)
    t.regex(out, /"TypeScript is weakly typed" → the echo server returned "TypeScript is strongly typed"/)
    t.regex(out, /10 packets transmitted, 7 received, 30% packet loss/)
    // The metrics block reports what the tour did: one datagram dropped for its content, three ICMP packets,
    // three intercepted connections (s_client and two curls), two requests through onRequest, one response
    // through onResponse (the other request was answered by the script).
    t.regex(out, /drops by reason: .*drop_if_contains 1/)
    t.regex(out, /drops by reason: .*drop_every_nth 3/)
    t.regex(out, /L7 flows by result: .*intercepted 3/)
    t.regex(out, /script runs by hook: on_request 2, on_response 1/)
    t.regex(out, /GWLB contract violations: 0\n/)
    t.regex(out, /Done: 7 of 7 steps passed, 0 GWLB contract violations/)
    t.deepEqual(leftovers(out), [])
    const dir = tempDirOf(out)
    t.truthy(dir, 'the output names its temp dir')
    t.false(existsSync(dir!), `${dir} removed`)
  },
)

netTest('flowgate demo: Ctrl-C during the tour stops it and still removes everything', async (t) => {
  t.timeout(120_000)
  const run = demo([])
  // Once the tour has begun, everything exists: namespaces, processes, the temp dir with its pipes.
  for (let k = 0; k < 600 && !/^1\. /m.test(run.out()); k++) await new Promise((r) => setTimeout(r, 50))
  t.regex(run.out(), /^1\. /m, 'the tour began')
  const dir = tempDirOf(run.out())
  t.true(existsSync(dir!), 'the temp dir exists while the demo runs')
  t.true(
    execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes(
      `fgt-${run.child.pid}-`,
    ),
    'its namespaces exist while the demo runs',
  )
  run.child.kill('SIGINT')
  const { code, ms } = await run.exited
  if (code !== 130) t.log(run.out())
  t.is(code, 130)
  t.regex(run.out(), /SIGINT: stopping and cleaning up/)
  t.regex(run.out(), /Removed the namespaces, links, processes and temporary files/)
  t.true(ms < 60_000)
  t.deepEqual(leftovers(run.out()), [])
  t.false(existsSync(dir!), `${dir} removed`)
  const orphans = spawnSync('pgrep', ['-f', dir!], { encoding: 'utf8' }).stdout.trim()
  t.is(orphans, '', 'no process of the demo (origin, appliance) survives it')
})

test('without root: says so, explains what it needs and how to run it, exit 2, builds nothing', async (t) => {
  // As root, the demo runs as nobody (a real unprivileged process) if nobody can reach this checkout.
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const probe = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(bin)})`], {
      uid: 65534,
      gid: 65534,
    })
    if (probe.status !== 0) {
      // Checkouts under /root: nobody cannot read them. The message itself is still checked.
      t.log(`nobody (65534) cannot read ${bin}; checking the message only`)
      const m = requirementsMessage(['not running as root'])
      t.regex(m, /not running as root/)
      t.regex(m, /sudo npx flowgate demo/)
      return
    }
  }
  const run = demo([], asRoot ? { uid: 65534, gid: 65534 } : {})
  const { code } = await run.exited
  const out = run.out()
  t.is(code, 2, out)
  t.regex(out, /flowgate demo cannot run here:\n {2}- not running as root/)
  t.regex(out, /CAP_NET_ADMIN/)
  t.regex(out, /sudo npx flowgate demo/)
  t.notRegex(out, /Setting up/, 'nothing was built')
})

test('without its tools: names each missing one, exit 2', async (t) => {
  // A PATH with a shell (and `ip` where there is one) but none of the tour's peers.
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-demo-path-'))
  try {
    symlinkSync('/bin/sh', join(dir, 'sh'))
    const ip = spawnSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).stdout.trim()
    if (ip) symlinkSync(ip, join(dir, 'ip'))
    const run = demo([], { env: { PATH: dir } })
    const { code } = await run.exited
    const out = run.out()
    t.is(code, 2, out)
    t.regex(out, /missing peer tools: curl, openssl, socat, ping, ss/)
    t.regex(out, /apt-get install iproute2 curl openssl socat iputils-ping/)
    t.notRegex(out, /Setting up/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('an unknown option is a usage error', async (t) => {
  const run = demo(['--frobnicate'])
  const { code } = await run.exited
  t.is(code, 2)
  t.regex(run.out(), /Usage: flowgate demo \[--keep\] \[--verbose\]/)
})

test("the demo's policies are the examples', the allow-list moved after the YouTube policy", (t) => {
  const example = (name: string) =>
    parseAllDocuments(
      readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), 'utf8'),
    )[0]!.toJS()
  const demoDocs = parseAllDocuments(DEMO_POLICIES).map((d) => d.toJS())
  const byName = new Map(demoDocs.map((d) => [d.metadata.name as string, d]))
  t.deepEqual(
    [...byName.keys()],
    ['youtube-one-video', 'aws-api-allowlist', 'udp-censor', 'icmp-every-fifth'],
  )
  for (const name of ['youtube-one-video', 'udp-censor', 'icmp-every-fifth']) {
    t.deepEqual(byName.get(name), example(name), name)
  }
  const aws = example('aws-api-allowlist')
  t.is(aws.spec.priority, 100)
  aws.spec.priority = 300
  t.deepEqual(byName.get('aws-api-allowlist'), aws)
  t.true(300 > byName.get('youtube-one-video').spec.priority, 'YouTube is decided before the allow-list')
})

test('ping loss when every 5th packet of the flow is dropped: requests 3, 6, 9… lose their reply', (t) => {
  t.deepEqual(
    expectedPingLoss(10, 5).map((l) => l.seq),
    [3, 6, 9],
  )
  t.deepEqual(
    expectedPingLoss(10, 5).map((l) => l.packet),
    [5, 10, 15],
  )
  // gwlb.test.ts sees 14 of 20 replies through the real appliance
  t.is(20 - expectedPingLoss(20, 5).length, 14)
  // every 2nd packet: every reply
  t.deepEqual(
    expectedPingLoss(3, 2).map((l) => l.seq),
    [1, 2, 3],
  )
})

test('curl -i output and the metrics summary are read as they are printed', (t) => {
  const r = parseCurlI('HTTP/2 302 \r\nlocation: https://x/\r\nX-Flowgate: inspected\r\n\r\nbody\n')
  t.is(r?.status, 302)
  t.is(r?.headers.get('location'), 'https://x/')
  t.is(r?.headers.get('x-flowgate'), 'inspected')
  t.is(r?.body, 'body\n')
  t.is(parseCurlI('no header end'), undefined)
  const lines = summarize(
    [
      '# HELP flowgate_drops_total x',
      'flowgate_drops_total{reason="drop_every_nth"} 3',
      'flowgate_drops_total{reason="policy_deny"} 1',
      'flowgate_flows_created_total 9',
      'flowgate_packets_total{direction="from-client",verdict="pass"} 10',
      'flowgate_packets_total{direction="from-server",verdict="pass"} 7',
    ].join('\n'),
  )
  t.true(lines.includes('flows created: 9'))
  t.true(lines.includes('packets by verdict: pass 17'))
  t.true(lines.includes('drops by reason: drop_every_nth 3, policy_deny 1'))
  t.true(lines.includes('L7 flows by result: none (flowgate_l7_flows_total absent)'))
})
