// Memory per flow: fills a FlowTable of 1,000,000 flows (half IPv4, half IPv6, each with a 40-byte Geneve
// header) and reports bytes/flow from process.memoryUsage(), beside a baseline measured in the same run: the
// same flows in a plain JS Map of small objects (what a straightforward implementation would hold).
// Target (issue 3): ≤ 300 bytes/flow. Run: node --expose-gc bench/flow-memory.ts [--flows N]
import { parseArgs } from 'node:util'
import { FlowTable } from '../appliance/src/flow/table.ts'
import { ParsedPacket, parsePacket } from '../appliance/src/wire/packet.ts'
import { datagram, tcp4, tcp6 } from '../test/wire/packets.ts'

const { values } = parseArgs({ options: { flows: { type: 'string', default: '1000000' } } })
const N = Number(values.flows)
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})

function used() {
  gc()
  gc()
  const m = process.memoryUsage()
  // external already includes arrayBuffers (typed-array backing stores)
  return { rss: m.rss, js: m.heapUsed + m.external }
}

const samples = [datagram(tcp4()), datagram(tcp6())].map((d) => {
  const p = new ParsedPacket()
  parsePacket(d, d.length, p)
  return { d, p }
})

function fill(add: (s: (typeof samples)[number], k: number) => void) {
  for (let k = 0; k < N; k++) {
    const s = samples[k & 1]!
    // vary source address (4 bytes) and source port per flow
    const x = k >>> 1
    s.d.writeUInt32BE((0x0a000000 | x) >>> 0, s.p.srcOff + (s.p.family === 4 ? 0 : 12))
    add(s, 1024 + (x % 60000))
  }
}

const before = used()
const ft = new FlowTable({ capacity: N, seed: 1, now: () => 0 })
fill((s, sport) => {
  const p = s.p
  ft.stage(s.d, p.endpointOff, p.family, p.srcOff, p.dstOff, p.protocol, sport, p.dstPort)
  const i = ft.insert(0)
  if (i < 0) throw new Error('table full')
  ft.touch(i, 0, 100, 0x02, 0)
  ft.setGeneve(i, s.d, 0, p.geneveLen)
  ft.setOuter(i, 0x0a000001, 60000)
})
const after = used()
if (ft.size !== N) throw new Error(`size ${ft.size}`)
const perFlow = (after.js - before.js) / N
const perFlowRss = (after.rss - before.rss) / N
console.log(
  `flowgate FlowTable: ${N} flows, ${perFlow.toFixed(1)} bytes/flow (heapUsed+external), ${perFlowRss.toFixed(1)} bytes/flow (rss)`,
)

// Baseline: Map<string, object> holding the same information naively.
const base0 = used()
const m = new Map<
  string,
  {
    geneve: Uint8Array
    verdict: number
    last: number
    created: number
    packets: number[]
    bytes: number[]
    outerIp: number
    outerPort: number
    state: number
  }
>()
fill((s, sport) => {
  const p = s.p
  const key = `${p.endpointId()}|${Buffer.from(p.src()).toString('hex')}|${Buffer.from(p.dst()).toString('hex')}|${p.protocol}|${sport}|${p.dstPort}`
  m.set(key, {
    geneve: Uint8Array.prototype.slice.call(s.d, 0, 40),
    verdict: 1,
    last: 0,
    created: 0,
    packets: [1, 0],
    bytes: [100, 0],
    outerIp: 0x0a000001,
    outerPort: 60000,
    state: 1,
  })
})
const base1 = used()
const basePerFlow = (base1.js - base0.js) / N
console.log(`baseline Map<string, object>: ${basePerFlow.toFixed(1)} bytes/flow (heapUsed+external)`)
console.log(
  `ratio flowgate/baseline: ${(perFlow / basePerFlow).toFixed(2)} (target ≤ 300 bytes/flow: ${perFlow <= 300 ? 'met' : 'NOT met'})`,
)
if (m.size !== N) throw new Error('baseline size')
