// Replays the TCP simulator (test/tcp/simulator.ts) for one seed or a range, printing the verdict and, with
// --trace, every segment with its fate. Usage:
//   node scripts/tcp-sim.ts --seed N [--trace]
//   node scripts/tcp-sim.ts --from N --count K [--harsh]
//   node scripts/tcp-sim.ts --lab [--from N --count K] [--loss 0.02] [--mb 5] [--trace]
// --lab runs one bulk transfer over a path like the GWLB stand-in's (0.1 ms one way, reordering jitter,
// --loss each way) and prints simulated throughput and the sender's recovery counters: for studying loss
// recovery, e.g. against a trace.
import { parseArgs } from 'node:util'
import { labScenario, runSeed } from '../test/tcp/simulator.ts'

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    from: { type: 'string' },
    count: { type: 'string' },
    trace: { type: 'boolean', default: false },
    /** Loss up to 30% and no size cap: slower, for hunting bugs beyond what CI runs. */
    harsh: { type: 'boolean', default: false },
    lab: { type: 'boolean', default: false },
    loss: { type: 'string', default: '0.02' },
    mb: { type: 'string', default: '5' },
  },
})
if (values.lab) {
  const from = Number(values.seed ?? values.from ?? 1)
  const count = values.seed !== undefined ? 1 : Number(values.count ?? 10)
  const bytes = Number(values.mb) * 1_000_000
  for (let s = from; s < from + count; s++) {
    const r = runSeed(s, {
      trace: values.trace,
      scenario: labScenario(s, { bytes, loss: Number(values.loss) }),
    })
    if (values.trace) for (const line of r.trace) console.log(line)
    const m = r.metrics.a
    console.log(
      `seed ${s}: ${r.ok ? 'ok' : r.error} ${(bytes / 1e3 / r.transferMs).toFixed(1)} MB/s simulated (${r.transferMs.toFixed(1)} ms), ${m.retransmits} retransmitted, ${m.fastRecoveries} fast recoveries, ${m.tailLossProbes} TLPs, ${m.rtoExpiries} RTOs`,
    )
  }
  process.exit(0)
}
if (values.seed === undefined && values.from === undefined) {
  console.error('usage: node scripts/tcp-sim.ts --seed N [--trace] | --from N --count K [--harsh] | --lab')
  process.exit(2)
}
const from = Number(values.seed ?? values.from)
const count = values.seed !== undefined ? 1 : Number(values.count ?? 1000)
let failed = 0
const t0 = performance.now()
for (let s = from; s < from + count; s++) {
  const r = runSeed(s, { trace: values.trace, profile: values.harsh ? 'harsh' : 'ci' })
  if (values.trace) for (const line of r.trace) console.log(line)
  if (!r.ok) {
    failed++
    console.log(r.error)
  } else if (count === 1) {
    console.log(`seed ${s}: ok, ${r.segments} segments, ${(r.simulatedMs / 1000).toFixed(1)} s simulated`)
    console.log(JSON.stringify(r.scenario))
  }
}
if (count > 1)
  console.log(`${count - failed}/${count} seeds ok in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
process.exitCode = failed ? 1 : 0
