// Leaf certificate minting: mints/s and per-mint latency (p50/p99) beside baselines measured in the same
// run, as ratios (these machines are noisy; compare the ratios):
//   bare-sync  — crypto.generateKeyPairSync('ec', P-256) + crypto.sign over 400 bytes (a TBS-sized blob):
//                the cryptographic floor of a mint, on the main thread.
//   bare-async — the same two steps through the libuv pool (what a mint does), one at a time.
// Ours adds the X.509 DER (@peculiar/x509), the signature check, PEM export and tls.createSecureContext.
// Also: the cache-hit cost, and the longest event-loop stall while 200 mints are requested at once.
import crypto from 'node:crypto'
import { promisify } from 'node:util'
import { createIntermediate } from '../appliance/src/ca/intermediate.ts'
import { LeafMinter } from '../appliance/src/ca/leaf-minter.ts'
import { LocalSigner } from '../appliance/src/ca/local-signer.ts'
import { createRootCertificate } from '../appliance/src/ca/root.ts'

const N = Number(process.env.MINTS ?? 400)
const generateKeyPair = promisify(crypto.generateKeyPair)
const signAsync = promisify(crypto.sign)
const tbs = crypto.randomBytes(400)

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}
async function measure(label: string, n: number, op: (i: number) => unknown) {
  for (let i = 0; i < Math.min(50, n); i++) await op(-1 - i) // warm-up
  const lat: number[] = []
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const a = performance.now()
    await op(i)
    lat.push(performance.now() - a)
  }
  const total = performance.now() - t0
  const r = { label, perSec: (n * 1000) / total, p50: pct(lat, 50), p99: pct(lat, 99) }
  console.log(
    `${label.padEnd(34)} ${r.perSec.toFixed(0).padStart(7)}/s   p50 ${r.p50.toFixed(3)} ms   p99 ${r.p99.toFixed(3)} ms`,
  )
  return r
}

const signer = await LocalSigner.generate('bench-root')
const root = await createRootCertificate(signer)
const inter = await createIntermediate(signer, root)

const bareSync = await measure('bare-sync keygen+sign', N, () => {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return crypto.sign('sha256', tbs, privateKey)
})
const signKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const bareAsync = await measure('bare-async keygen+sign', N, async () => {
  await generateKeyPair('ec', { namedCurve: 'P-256' })
  return signAsync('sha256', tbs, signKey)
})
const sequential = new LeafMinter(inter, { cacheSize: 4 * N + 100 })
const ours = await measure('flowgate mint (one at a time)', N, (i) => sequential.get(`s${i}.bench.example`))
const hit = await measure('flowgate cache hit', N, () => sequential.get('s0.bench.example'))

/** Longest gap between 1 ms timer ticks while `work` runs: how long the event loop was held. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; ms: number; stall: number }> {
  let last = performance.now()
  let stall = 0
  const tick = setInterval(() => {
    const now = performance.now()
    stall = Math.max(stall, now - last)
    last = now
  }, 1)
  const t0 = performance.now()
  const result = await work()
  const ms = performance.now() - t0
  clearInterval(tick)
  return { result, ms, stall }
}

// Throughput with many requests outstanding (the default concurrency cap), and the event loop meanwhile,
// beside the stall an idle event loop shows on this machine over the same time (scheduler, GC).
const burst = new LeafMinter(inter, { cacheSize: 4 * N + 100 })
await Promise.all(Array.from({ length: 50 }, (_, i) => burst.get(`w${i}.bench.example`)))
const {
  result: leaves,
  ms: burstMs,
  stall: maxGap,
} = await longestStall(() =>
  Promise.all(Array.from({ length: 200 }, (_, i) => burst.get(`b${i}.bench.example`))),
)
const idle = await longestStall(() => new Promise((r) => setTimeout(r, burstMs)))
const burstRate = (200 * 1000) / burstMs
console.log(
  `${'flowgate mint (200 requested at once)'.padEnd(34)} ${burstRate.toFixed(0).padStart(7)}/s   ` +
    `request→leaf p50 ${pct(
      leaves.map((l) => l.mintMs),
      50,
    ).toFixed(
      1,
    )} ms   longest event-loop stall ${maxGap.toFixed(1)} ms (idle loop: ${idle.stall.toFixed(1)} ms)`,
)

console.log('')
console.log(`mint latency p50 vs bare-sync:   ${(ours.p50 / bareSync.p50).toFixed(1)}×`)
console.log(`mint latency p50 vs bare-async:  ${(ours.p50 / bareAsync.p50).toFixed(1)}×`)
console.log(`mints/s (one at a time) vs bare-async: ${(ours.perSec / bareAsync.perSec).toFixed(2)}×`)
console.log(`mints/s (burst) vs bare-sync:    ${(burstRate / bareSync.perSec).toFixed(2)}×`)
console.log(`cache hit p50: ${(hit.p50 * 1000).toFixed(1)} µs`)
