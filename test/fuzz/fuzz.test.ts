// Bounded fuzz run inside `npm test`: ≥ 1,000,000 mutated inputs over the packet path and the peek
// parsers, zero throws and zero broken invariants. Longer runs: node scripts/fuzz.ts --inputs N.
import test from 'ava'
import { ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { loadCorpus, runFuzz } from './fuzzer.ts'

const corpus = loadCorpus()
const BASE_SEED = Number(process.env.FLOWGATE_FUZZ_SEED ?? 20261121)
const CHUNKS = 4
const PER_CHUNK = 262_144

test('corpus: every packet entry is a valid datagram, streams are present', (t) => {
  const p = new ParsedPacket()
  t.true(corpus.packets.length >= 20)
  t.true(corpus.streams.length >= 4)
  for (const b of corpus.packets) t.is(parsePacket(b, b.length, p), 0)
})

let total = 0
let totalMs = 0
for (let k = 0; k < CHUNKS; k++) {
  test.serial(`fuzz chunk ${k + 1}/${CHUNKS} (seed ${BASE_SEED + k}): no throws, invariants hold`, (t) => {
    const st = runFuzz({ seed: BASE_SEED + k, inputs: PER_CHUNK, corpus })
    total += st.inputs
    totalMs += st.ms
    for (const f of st.failures.slice(0, 3)) t.log(JSON.stringify(f))
    t.deepEqual(st.failures, [])
    t.is(st.inputs, PER_CHUNK)
    t.true(st.parsedOk > 0 && st.malformed > 0, 'both valid and malformed packets were exercised')
    t.true(
      st.outcomes.every((n) => n > 0),
      `every fast-path outcome reached: ${st.outcomes.join('/')}`,
    )
    t.true(
      st.peekStatus.every((n) => n > 0),
      `every peek status reached: ${st.peekStatus.join('/')}`,
    )
    if (k === CHUNKS - 1)
      t.log(
        `${total} inputs in ${(totalMs / 1000).toFixed(1)} s: ${Math.round(total / (totalMs / 1000))} inputs/s`,
      )
  })
}
