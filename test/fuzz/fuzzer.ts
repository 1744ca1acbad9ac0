// A deterministic, seeded mutation fuzzer over the packet path (Geneve → inner headers → flow table → fast
// path, including rewrite and reject builders) and the ClientHello / request-line peek parsers. Inputs are
// corpus entries (test/fuzz/corpus) mutated by bit flips, interesting bytes, truncation, length-field
// corruption, splicing, insertion and deletion. A run fails on any throw or broken invariant; failures
// carry the seed and input number so they replay exactly.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Outcome } from '../../appliance/src/fastpath/counters.ts'
import { FastPath, FastPathResult } from '../../appliance/src/fastpath/fastpath.ts'
import { FlowTable } from '../../appliance/src/flow/table.ts'
import { HttpRequestInfo, peekHttpRequest } from '../../appliance/src/peek/http.ts'
import { StreamPrefix } from '../../appliance/src/peek/stream.ts'
import { ClientHelloInfo, peekClientHello } from '../../appliance/src/peek/tls.ts'
import { SeededRandom } from '../../appliance/src/tcp/clock.ts'
import { buildRstToReceiver } from '../../appliance/src/wire/build.ts'
import { l4ChecksumOk, ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { compile } from '../../policy/src/bundle.ts'
import { PolicyEngine } from '../../policy/src/engine/index.ts'

export const CORPUS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'corpus')

export interface Corpus {
  packets: Buffer[]
  streams: Buffer[]
}

/** Corpus files: pkt-*.bin are Geneve datagrams, tls-*.bin / http-*.bin are stream prefixes. */
export function loadCorpus(dir = CORPUS_DIR): Corpus {
  const c: Corpus = { packets: [], streams: [] }
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.bin')) continue
    const b = readFileSync(join(dir, f))
    if (f.startsWith('pkt-')) c.packets.push(b)
    else c.streams.push(b)
  }
  return c
}

export function rng(seed: number) {
  const r = new SeededRandom(seed)
  return {
    u32: (): number => r.u32(),
    below: (n: number): number => (n <= 0 ? 0 : r.u32() % n),
  }
}
type Rng = ReturnType<typeof rng>

const INTERESTING8 = [0, 1, 2, 4, 5, 8, 0x0f, 0x10, 0x1f, 0x20, 0x3f, 0x40, 0x7f, 0x80, 0xfe, 0xff]
const INTERESTING16 = [
  0, 1, 2, 3, 4, 7, 8, 20, 39, 40, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x7fff, 0x8000, 0xfffe, 0xffff,
]

/** Writes one mutation of `src` (with a splice partner `other`) into `dst`; returns the length. */
function mutateOnce(r: Rng, src: Uint8Array, len: number, other: Uint8Array, dst: Uint8Array): number {
  const kind = r.below(9)
  let n = len
  dst.set(src.subarray(0, len), 0)
  switch (kind) {
    case 0: {
      // bit flips
      const flips = 1 + r.below(4)
      for (let k = 0; k < flips && n > 0; k++) dst[r.below(n)]! ^= 1 << r.below(8)
      break
    }
    case 1:
      if (n > 0) dst[r.below(n)] = INTERESTING8[r.below(INTERESTING8.length)]!
      break
    case 2:
      n = r.below(len + 1) // truncation
      break
    case 3: {
      // length-field corruption: a 16-bit field, biased to the headers
      if (n < 2) break
      const o = r.below(Math.min(n - 1, 128))
      let v = INTERESTING16[r.below(INTERESTING16.length)]!
      if (r.below(3) === 0) v = (((dst[o]! << 8) | dst[o + 1]!) + r.below(17) - 8) & 0xffff
      dst[o] = v >> 8
      dst[o + 1] = v & 0xff
      break
    }
    case 4: {
      // splice: a prefix of this one with a suffix of another
      const cut = r.below(n + 1)
      const from = r.below(other.length + 1)
      const tail = Math.min(other.length - from, dst.length - cut)
      dst.set(other.subarray(from, from + tail), cut)
      n = cut + tail
      break
    }
    case 5: {
      // insert random bytes
      const at = r.below(n + 1)
      const k = Math.min(1 + r.below(16), dst.length - n)
      dst.copyWithin(at + k, at, n)
      for (let q = 0; q < k; q++) dst[at + q] = r.u32() & 0xff
      n += k
      break
    }
    case 6: {
      // delete a range
      if (n === 0) break
      const at = r.below(n)
      const k = Math.min(1 + r.below(16), n - at)
      dst.copyWithin(at, at + k, n)
      n -= k
      break
    }
    case 7: {
      // duplicate a chunk (repeated options / extension headers)
      if (n === 0) break
      const at = r.below(n)
      const k = Math.min(1 + r.below(24), n - at, dst.length - n)
      dst.copyWithin(at + k, at, n)
      n += k
      break
    }
    default: {
      // a byte in the first 8 bytes of the inner packet region (version/IHL/lengths), or anywhere
      const o = n > 48 && r.below(2) === 0 ? 40 + r.below(8) : r.below(Math.max(n, 1))
      if (o < n) dst[o] = r.u32() & 0xff
    }
  }
  return n
}

const doc = (name: string, spec: unknown) => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec,
})

/** A policy touching every fast-path branch: packet rules, reject, deny, pending (SNI), inspect. */
export function fuzzEngine(): PolicyEngine {
  const c = compile(
    [
      doc('a-censor', {
        priority: 1,
        rules: [
          {
            name: 'udp',
            when: { protocols: ['UDP'] },
            action: 'Allow',
            packet: {
              dropIfContains: ['drop me'],
              replace: [
                { from: 'a', to: 'bbbb' },
                { from: 'bb', to: '' },
                { from: 'weakly', to: 'strongly' },
              ],
              dropEveryNth: 7,
            },
          },
          {
            name: 'icmp',
            when: { protocols: ['ICMP', 'ICMPv6'] },
            action: 'Allow',
            packet: { dropEveryNth: 5, replace: [{ from: 'x', to: 'yy' }] },
          },
        ],
      }),
      doc('b-tcp', {
        priority: 2,
        match: { protocols: ['TCP'] },
        rules: [
          { name: 'rej', when: { ports: ['22'] }, action: 'Reject' },
          { name: 'deny', when: { ports: ['23'] }, action: 'Deny' },
          { name: 'sni', when: { ports: ['443'], sni: ['*.example.com'] }, action: 'Allow' },
          { name: 'insp', when: { ports: ['8080'] }, action: 'Inspect' },
        ],
      }),
      doc('c-audit', { priority: 3, mode: 'Audit', rules: [{ name: 'x', action: 'Deny' }] }),
    ],
    { fleetDefault: 'Reject' },
  )
  for (const r of c.results) if (!r.ok) throw new Error(JSON.stringify(r.errors))
  return new PolicyEngine(c.policies, 'Reject')
}

function fixIpv4Checksum(b: Buffer, len: number): void {
  if (len < 8) return
  const g = 8 + (b[0]! & 0x3f) * 4
  if (len < g + 20 || b[g]! >> 4 !== 4) return
  const ihl = (b[g]! & 15) * 4
  if (ihl < 20 || g + ihl > len) return
  b[g + 10] = 0
  b[g + 11] = 0
  let s = 0
  for (let i = g; i < g + ihl; i += 2) s += (b[i]! << 8) | b[i + 1]!
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  s = ~s & 0xffff
  b[g + 10] = s >> 8
  b[g + 11] = s & 0xff
}

export interface FuzzStats {
  inputs: number
  packetInputs: number
  streamInputs: number
  failures: { seed: number; input: number; target: string; error: string; hex: string }[]
  parsedOk: number
  malformed: number
  outcomes: number[]
  peekStatus: number[]
  ms: number
}

export interface FuzzOptions {
  seed: number
  inputs: number
  corpus?: Corpus
  /** share of inputs that go to the packet path (rest: peek); default 0.7 */
  packetShare?: number
  /** stop recording after this many failures */
  maxFailures?: number
}

export function runFuzz(o: FuzzOptions): FuzzStats {
  const corpus = o.corpus ?? loadCorpus()
  if (corpus.packets.length === 0 || corpus.streams.length === 0) throw new Error('empty fuzz corpus')
  const r = rng(o.seed)
  let now = 0
  const flows = new FlowTable({ capacity: 2048, seed: o.seed, now: () => now, protectActiveMs: 1000 })
  const fp = new FastPath({ flows, engine: fuzzEngine() })
  const res = new FastPathResult()
  const p = new ParsedPacket()
  const q = new ParsedPacket()
  const hello = new ClientHelloInfo()
  const req = new HttpRequestInfo()
  const rst = Buffer.alloc(4096)
  const stream = new StreamPrefix(4096)
  const a = Buffer.alloc(16_384)
  const b = Buffer.alloc(16_384)
  const share = Math.floor((o.packetShare ?? 0.7) * 1000)
  const maxFailures = o.maxFailures ?? 20
  const st: FuzzStats = {
    inputs: 0,
    packetInputs: 0,
    streamInputs: 0,
    failures: [],
    parsedOk: 0,
    malformed: 0,
    outcomes: [0, 0, 0, 0, 0, 0],
    peekStatus: [0, 0, 0, 0],
    ms: 0,
  }
  const t0 = performance.now()
  for (let i = 0; i < o.inputs; i++) {
    const isPacket = r.below(1000) < share
    const pool = isPacket ? corpus.packets : corpus.streams
    const seedInput = pool[r.below(pool.length)]!
    const other = (r.below(4) === 0 ? corpus.packets : pool)[r.below(pool.length)] ?? seedInput
    // stack 1-4 mutations, ping-ponging between two buffers
    let src: Buffer = seedInput
    // (mutations never write into corpus buffers: the first round copies into a)
    let len = seedInput.length
    let dst = a
    const rounds = 1 + r.below(4)
    for (let k = 0; k < rounds; k++) {
      len = mutateOnce(r, src, len, other, dst)
      src = dst
      dst = dst === a ? b : a
    }
    const input = src
    // Half the packet inputs get their IPv4 header checksum repaired so mutations reach the L4 parsers
    // and the fast path instead of stopping at the header checksum.
    if (isPacket && r.below(2) === 0) fixIpv4Checksum(input, len)
    try {
      if (isPacket) {
        st.packetInputs++
        now += r.below(50)
        const code = parsePacket(input, len, p)
        if (code === 0) {
          st.parsedOk++
          if (
            p.ipEnd > len ||
            p.l4Off > p.ipEnd ||
            p.payloadOff + p.payloadLen > p.ipEnd ||
            p.payloadLen < 0 ||
            p.ipOff !== p.geneveLen
          ) {
            throw new Error(
              `offset invariant: len ${len} ipEnd ${p.ipEnd} l4 ${p.l4Off} payload ${p.payloadOff}+${p.payloadLen}`,
            )
          }
        } else st.malformed++
        fp.processDatagram(input, len, 0x0a000001, 60000 + r.below(4), now, res)
        st.outcomes[res.outcome]!++
        // Whatever the fast path emits must itself be a well-formed datagram.
        // (a drop may carry a reply too: Deny's RST on TCP)
        const emits = res.outcome === Outcome.rewrite || res.outcome === Outcome.reject
        if (emits || (res.outcome === Outcome.drop && res.outLen > 0)) {
          const out = res.out
          const c2 = parsePacket(out as Buffer, res.outLen, q)
          if (c2 !== 0) throw new Error(`emitted datagram does not parse: reason ${c2}`)
          // RFC 1624 differential: a rewrite keeps a valid L4 checksum valid and an invalid one invalid.
          if (res.outcome === Outcome.rewrite && l4ChecksumOk(fp.lastPacket) !== l4ChecksumOk(q)) {
            throw new Error('rewrite changed L4 checksum validity')
          }
        }
        // The withheld-segment RST (SNI deny) must also build a well-formed datagram from any valid segment.
        if (code === 0 && p.protocol === 6 && r.below(8) === 0) {
          const n = buildRstToReceiver(p, rst)
          if (n > 0 && parsePacket(rst, n, q) !== 0) throw new Error('RST to receiver does not parse')
        }
        if (r.below(64) === 0) flows.sweep(now, 256)
      } else {
        st.streamInputs++
        const cut = r.below(len + 1)
        st.peekStatus[peekClientHello(input, 0, len, hello)]!++
        peekClientHello(input, 0, cut, hello)
        st.peekStatus[peekHttpRequest(input, 0, len, req)]!++
        peekHttpRequest(input, 0, cut, req, 1 + r.below(4096))
        if (r.below(4) === 0) {
          // Rebuild the stream from shuffled, overlapping segments; the contiguous prefix must be the input's.
          stream.reset()
          const isn = r.u32()
          stream.setStart(isn)
          for (let k = 0; k < 6; k++) {
            const o = r.below(len + 1)
            const n = r.below(len - o + 1)
            stream.add((isn + o) >>> 0, input, o, n)
          }
          stream.add(isn, input, 0, len)
          const c = stream.contiguous
          if (c !== Math.min(len, stream.max)) throw new Error(`stream prefix ${c} of ${len}`)
          for (let k = 0; k < c; k++)
            if (stream.bytes[k] !== input[k]) throw new Error('stream prefix differs')
          peekClientHello(stream.bytes, 0, c, hello)
        }
      }
    } catch (e) {
      if (st.failures.length < maxFailures) {
        st.failures.push({
          seed: o.seed,
          input: i,
          target: isPacket ? 'packet' : 'peek',
          error: String((e as Error)?.stack ?? e),
          hex: Buffer.from(input.subarray(0, len)).toString('hex'),
        })
      }
    }
    st.inputs++
  }
  st.ms = performance.now() - t0
  return st
}
