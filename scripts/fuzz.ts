// Fuzz the packet path and the peek parsers outside `npm test`:
//   node scripts/fuzz.ts --inputs 50000000 --seed 7
//   node scripts/fuzz.ts --write-corpus     (regenerates test/fuzz/corpus from real packets and clients)
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { CORPUS_DIR, runFuzz } from '../test/fuzz/fuzzer.ts'

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '10000000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    'packet-share': { type: 'string', default: '0.7' },
    'write-corpus': { type: 'boolean', default: false },
    chunk: { type: 'string', default: '1000000' },
  },
})

if (values['write-corpus']) {
  const { corpusEntries } = await import('../test/fuzz/corpus-gen.ts')
  mkdirSync(CORPUS_DIR, { recursive: true })
  const entries = await corpusEntries()
  for (const [name, bytes] of entries) writeFileSync(join(CORPUS_DIR, name), bytes)
  console.log(`wrote ${entries.length} corpus files to ${CORPUS_DIR}`)
  process.exit(0)
}

const total = Number(values.inputs)
const seed0 = Number(values.seed)
const chunk = Number(values.chunk)
let done = 0
let ms = 0
let failures = 0
for (let k = 0; done < total; k++) {
  const n = Math.min(chunk, total - done)
  const st = runFuzz({ seed: seed0 + k, inputs: n, packetShare: Number(values['packet-share']) })
  done += n
  ms += st.ms
  failures += st.failures.length
  for (const f of st.failures) console.log(JSON.stringify(f))
  console.log(
    `seed ${seed0 + k}: ${n} inputs in ${(st.ms / 1000).toFixed(1)} s (${Math.round(n / (st.ms / 1000))}/s) ok-parses ${st.parsedOk} malformed ${st.malformed} outcomes ${st.outcomes.join('/')} peek ${st.peekStatus.join('/')} failures ${st.failures.length}`,
  )
}
console.log(`total ${done} inputs, ${Math.round(done / (ms / 1000))} inputs/s, ${failures} failures`)
process.exit(failures ? 1 : 0)
