// Convergence: time from a FlowPolicy change (the API server accepting the update) until each of N
// simulated appliances runs the new bundle, for N = 10 and 100. The appliances are in-process admin API
// servers (the real plugin) on loopback; the operator is the real one, talking to the in-process
// Kubernetes API server through @kubernetes/client-node. Target: p99 ≤ 2 s at N = 100.
// Baseline, measured in the same run: one direct authenticated PUT of a bundle to one appliance.
//
//   node bench/operator-convergence.ts [changes-per-N]

import { TokenFile } from '../appliance/src/admin/tokens.ts'
import { ApplianceClient } from '../operator/src/appliance-client.ts'
import { compile } from '../policy/src/bundle.ts'
import { allowPolicy, Cluster, waitFor } from '../test/operator/harness.ts'

const CHANGES = Math.min(50, Number(process.argv[2] ?? 15))

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

/** The floor for the fleet: the same fan-out (32 at a time, as the operator) from a bare client. */
async function fanout(c: Cluster): Promise<{ p50: number; p99: number }> {
  const client = new ApplianceClient({ tokens: new TokenFile({ path: c.tokenPath }), scheme: 'http' })
  const doc = (port: string) => ({
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'fanout', generation: 1 },
    spec: allowPolicy(100, port),
  })
  const times: number[] = []
  for (let i = 0; i < 12; i++) {
    const bundle = compile([doc(String(2000 + i))]).bundle
    const t0 = performance.now()
    const queue = [...c.appliances]
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let a = queue.shift(); a; a = queue.shift())
          await client.push({ host: '127.0.0.1', port: a.port }, bundle)
      }),
    )
    if (i >= 2) times.push(performance.now() - t0)
  }
  client.destroy()
  return { p50: pct(times, 50), p99: pct(times, 99) }
}

async function baseline(c: Cluster): Promise<{ p50: number; p99: number }> {
  const client = new ApplianceClient({ tokens: new TokenFile({ path: c.tokenPath }), scheme: 'http' })
  const a = c.appliances[0]!
  const ep = { host: '127.0.0.1', port: a.port }
  const doc = (port: string) => ({
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'baseline', generation: 1 },
    spec: allowPolicy(100, port),
  })
  const bundles = [compile([doc('1')]).bundle, compile([doc('2')]).bundle]
  const times: number[] = []
  for (let i = 0; i < 60; i++) {
    const t0 = performance.now()
    await client.push(ep, bundles[i % 2]!)
    if (i >= 10) times.push(performance.now() - t0)
  }
  client.destroy()
  return { p50: pct(times, 50), p99: pct(times, 99) }
}

async function run(n: number) {
  const c = await Cluster.start()
  try {
    for (let i = 0; i < n; i++) await c.addAppliance(`app-${i}`, `10.0.${i >> 8}.${(i & 255) + 1}`)
    const base = await baseline(c)
    const fan = await fanout(c)
    // Production timings, except where the operator listens and the plain-HTTP admin scheme.
    const op = await c.startOperator({
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      resyncMs: 60_000,
      relistMs: 600_000,
      watchSilenceMs: 90_000,
      statusDelayMs: 200,
    })
    await c.applyPolicy('p', allowPolicy(100, '1000'))
    await waitFor(() => op.bundle() && c.allRun(op.bundle()!.version), 'initial convergence', 30_000)
    const describesBefore = c.elb.callsOf('DescribeTargetHealth').length
    const perAppliance: number[] = []
    const fleet: number[] = []
    for (let k = 1; k <= CHANGES; k++) {
      const marks = c.appliances.map((a) => a.applied.length)
      const t0 = Date.now()
      await c.applyPolicy('p', allowPolicy(100, String(1000 + k)))
      await waitFor(
        () =>
          op.bundle()?.policies[0]?.spec.match?.ports?.[0] === String(1000 + k) &&
          c.allRun(op.bundle()!.version),
        `convergence of change ${k}`,
        30_000,
      )
      const version = op.bundle()!.version
      const times = c.appliances.map(
        (a, i) => a.applied.slice(marks[i]).find((x) => x.version === version)!.at - t0,
      )
      perAppliance.push(...times)
      fleet.push(Math.max(...times))
    }
    // let status writes settle before teardown
    await waitFor(() => c.condition('p', 'Ready')?.status === 'True', 'Ready', 30_000)
    const describes = c.elb.callsOf('DescribeTargetHealth').length - describesBefore
    const p50 = pct(perAppliance, 50)
    const p99 = pct(perAppliance, 99)
    console.log(
      `N=${String(n).padStart(3)}  changes=${CHANGES}  per-appliance p50=${p50} ms p99=${p99} ms  ` +
        `whole fleet p50=${pct(fleet, 50)} ms p99=${pct(fleet, 99)} ms  ` +
        `baseline direct PUT p50=${base.p50.toFixed(2)} ms p99=${base.p99.toFixed(2)} ms  ` +
        `ratio p99/baseline-p50=${(p99 / base.p50).toFixed(1)}x  ` +
        `bare fan-out to all N p50=${fan.p50.toFixed(1)} ms p99=${fan.p99.toFixed(1)} ms  ` +
        `ratio fleet-p50/fan-out-p50=${(pct(fleet, 50) / fan.p50).toFixed(1)}x  ` +
        `target p99<=2000 ms: ${p99 <= 2000 ? 'met' : 'MISSED'}  ` +
        `DescribeTargetHealth calls per change=${(describes / CHANGES).toFixed(1)}`,
    )
  } finally {
    await c.close()
  }
}

for (const n of [10, 100]) await run(n)
