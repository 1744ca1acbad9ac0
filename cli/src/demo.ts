// `flowgate demo`: the appliance at work on one Linux machine, in a minute. Builds the mini-VPC (network
// namespaces, the GWLB stand-in, servers, the real appliance with the demo policies and a local CA), runs a
// scripted tour with real clients, prints what happened and the key metrics, and removes everything —
// also on Ctrl-C. Exit 0 when every step did what the policies say, 1 when one did not, 2 when the
// machine lacks something the demo needs (it says what and why).
import { parseArgs } from 'node:util'
import { type Need, unmet } from '../../standin/src/requirements.ts'
import { summarize } from './demo/metrics.ts'
import { Closed, MiniVpc } from './demo/mini-vpc.ts'
import { POLICY_SUMMARY } from './demo/policies.ts'
import { tour } from './demo/tour.ts'
import type { Command } from './main.ts'

const USAGE = [
  'flowgate demo [--keep] [--verbose]',
  '',
  '  Linux, as root: builds a mini-VPC in network namespaces with a GWLB stand-in, runs the appliance with',
  '  the demo policies and a local CA, tours allow, deny, TLS interception with scripts, the UDP censor and',
  '  the ICMP drop, prints the key metrics, and removes everything.',
  '',
  '  --keep      after the tour, leave the mini-VPC up to try your own commands, until Ctrl-C',
  '  --verbose   also print the appliance log',
].join('\n')

export const DEMO_NEEDS: readonly Need[] = ['root', 'tun', 'ip', 'addon', 'peers']
/** The real clients and servers of the tour, and `ss` to see when the UDP echo is up. */
export const DEMO_PEERS = ['curl', 'openssl', 'socat', 'ping', 'ss']
/** The whole run, setup and cleanup included, stays under a minute. */
const DEADLINE_MS = 50_000

/** What is missing, why the demo needs it, and how to get it. */
export function requirementsMessage(reasons: readonly string[]): string {
  return [
    'flowgate demo cannot run here:',
    ...reasons.map((r) => `  - ${r}`),
    '',
    'The demo builds a small network on this machine: three network namespaces (client, server, appliance),',
    'a veth pair and two TUN devices, with a GWLB stand-in forwarding Geneve between them. That needs:',
    '  - Linux and root (CAP_NET_ADMIN for namespaces and links, CAP_NET_RAW for the appliance):',
    '      sudo npx flowgate demo        (or: sudo npm run flowgate -- demo)',
    '    if sudo cannot find npx:  sudo env "PATH=$PATH" npx flowgate demo',
    '  - /dev/net/tun (in a container: --device /dev/net/tun --cap-add NET_ADMIN --cap-add NET_RAW)',
    "  - iproute2 (ip, ss) and the tour's real peers: curl, openssl, socat, ping",
    '      Debian/Ubuntu: sudo apt-get install iproute2 curl openssl socat iputils-ping',
    '  - the native addon, which `npm ci` builds (npm run build:native)',
  ].join('\n')
}

/** The reasons the demo cannot run on this machine; empty when it can. */
export function demoUnmet(): string[] {
  if (process.platform !== 'linux') return [`this is ${process.platform}: network namespaces are Linux only`]
  return unmet(DEMO_NEEDS, DEMO_PEERS)
}

const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`
const indent = (lines: string, by = '    ') =>
  lines
    .split('\n')
    .map((l) => by + l)
    .join('\n')

async function runDemo(o: { keep: boolean; verbose: boolean }): Promise<number> {
  const t0 = performance.now()
  const stop = new AbortController()
  const stopped = new Promise<never>((_, reject) => {
    stop.signal.addEventListener('abort', () => reject(stop.signal.reason))
  })
  stopped.catch(() => {}) // observed through the races below
  const until = <T>(p: Promise<T>) => Promise.race([p, stopped])
  let signals = 0
  const onSignal = (sig: NodeJS.Signals) => {
    signals++
    // A second Ctrl-C does not wait for the cleanup; the stand-in's exit hook still deletes the namespaces.
    if (signals > 1) process.exit(130)
    console.log(`\n${sig}: stopping and cleaning up…`)
    stop.abort(new Closed(sig))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const deadline = setTimeout(
    () => stop.abort(new Closed(`the demo did not finish within ${DEADLINE_MS / 1000} s`)),
    DEADLINE_MS,
  )

  const vpc = new MiniVpc()
  let passed = 0
  let total = 0
  let violations = 0
  let code = 0
  try {
    console.log('flowgate demo: a mini-VPC in network namespaces, a GWLB stand-in, the real appliance\n')
    console.log('Setting up')
    await until(vpc.start((what) => console.log(`  · ${what}`)))
    console.log(`  ready in ${since(t0)}\n`)
    console.log(`Policies (${vpc.files.policies}, from examples/)`)
    for (const p of POLICY_SUMMARY) console.log(`  ${p}`)
    console.log(
      `\nTour: commands run in the client namespace (${vpc.lab.client}, ${vpc.clientAddr}); files are in ${vpc.dir}/`,
    )
    const steps = tour(vpc)
    total = steps.length
    for (const [i, step] of steps.entries()) {
      console.log(`\n${i + 1}. ${step.title}`)
      for (const c of step.commands) console.log(`   $ ${c}`)
      const outcome = await until(step.run())
      for (const s of outcome.saw) console.log(`   ${s}`)
      console.log(outcome.ok ? '   ✔ as the policy says' : '   ✘ not what the policy says')
      if (outcome.ok) passed++
    }

    console.log(`\nMetrics (${vpc.metricsUrl})`)
    for (const line of summarize(await until(vpc.metrics()))) console.log(`  ${line}`)
    const r = vpc.lab.report()
    console.log(
      `\nGWLB stand-in: ${r.flows} flows, ${r.encapsulated} packets encapsulated to the appliance, ` +
        `${r.returned} returned; GWLB contract violations: ${r.violations}`,
    )
    for (const s of r.samples.slice(0, 5)) console.log(`  ${s.reason}: ${s.detail}`)
    violations = r.violations

    if (o.keep) {
      clearTimeout(deadline)
      console.log(
        [
          '',
          'The mini-VPC stays up until Ctrl-C. Try, in another shell (as root):',
          `  ip netns exec ${vpc.lab.client} curl -i --resolve www.youtube.com:443:${vpc.serverAddr} \\`,
          `    --cacert ${vpc.files.interceptionRoot} 'https://www.youtube.com/watch?v=anything'`,
          `  ip netns exec ${vpc.lab.client} ping -c 10 ${vpc.serverAddr}`,
          `  curl -s ${vpc.metricsUrl}`,
          `  edit ${vpc.files.policies}: the appliance reloads it`,
        ].join('\n'),
      )
      await stopped.catch(() => {})
    }
    code = passed === total && !violations ? 0 : 1
  } catch (e) {
    if (e instanceof Closed) {
      console.log(`\nstopped: ${e.message}`)
      code = signals ? 130 : 1
    } else {
      console.error(`\nflowgate demo: ${(e as Error).message}`)
      code = 1
    }
  } finally {
    clearTimeout(deadline)
    // The log explains a failed step; not wanted after a Ctrl-C.
    if ((code === 1 && !signals) || o.verbose) {
      const out = vpc.applianceOutput().trim()
      if (out) {
        console.log(o.verbose ? '\nAppliance log' : '\nAppliance log (last 20 lines)')
        console.log(indent((o.verbose ? out : out.split('\n').slice(-20).join('\n')) || '(empty)'))
      }
    }
    await vpc.close()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  console.log(
    `\n${code === 0 ? 'Done' : 'Not done'}: ${passed} of ${total || 'the'} steps passed, ` +
      `${violations} GWLB contract violations, in ${since(t0)}. ` +
      'Removed the namespaces, links, processes and temporary files.',
  )
  return code
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'a mini-VPC on this machine (Linux, root): the appliance behind a GWLB stand-in, a scripted tour',
  usage: USAGE,
  async run(args) {
    let values: { keep?: boolean; verbose?: boolean }
    try {
      values = parseArgs({
        args,
        options: { keep: { type: 'boolean' }, verbose: { type: 'boolean' } },
      }).values
    } catch (e) {
      console.error(`flowgate demo: ${(e as Error).message}\n\nUsage: ${USAGE}`)
      return 2
    }
    const reasons = demoUnmet()
    if (reasons.length) {
      console.error(requirementsMessage(reasons))
      return 2
    }
    return runDemo({ keep: Boolean(values.keep), verbose: Boolean(values.verbose) })
  },
}
