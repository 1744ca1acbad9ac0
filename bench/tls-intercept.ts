// TLS interception throughput (issue 5 item 6): requests/s over keep-alive and new TLS connections/s
// through flowgate's interception, beside two baselines measured with the same client in the same run:
//   - flowgate:  client → GWLB stand-in → `flowgate appliance` (Inspect: user-space TCP, TLS terminated with
//                a leaf minted for the SNI, TLS to the origin verified against --upstream-ca, HTTP layer)
//                → origin;
//   - bare-node: a Node tls.createServer that terminates with one fixed leaf (same root, same chain shape),
//                connects TLS to the origin (verified) and pipes bytes — no HTTP parsing (bench/tls/);
//   - mitmproxy: Debian's mitmdump in reverse mode, the same root as its CA, upstream verified
//                (ssl_verify_upstream_trusted_ca).
// The two baselines listen in the server namespace and are reached through the same lab path as an Allow
// flow; their upstream leg crosses the lab again (to a twin of the origin in the client namespace), so all
// three pay the stand-in's per-packet cost on both legs and the appliance sees every packet of both legs
// (forwarded for the baselines, terminated for flowgate). Origins: Node http2 (allowHTTP1) servers with an
// ECDSA P-256 certificate and a 1 KB answer. Rounds are interleaved (targets in rotating order), medians
// and spread reported; CPU time of every process is read from /proc around each measurement.
//
// CPU placement (PIN, default "split"; the machine has 2 cores): CPU 0 holds the box under test —
// the appliance and the baseline proxies; CPU 1 holds the world around it — this process (the GWLB
// stand-in), the client and the origins. PIN=none lets the scheduler place everything.
//
//   npm run bench -- tls-intercept                       (root: namespaces, TUN; mitmdump if installed)
//   ROUNDS=5 MS=3000 KA_CONNS=32 NEW_CONNS=16 npm run bench -- tls-intercept
//   PROFILE=keepalive|newconn npm run bench -- tls-intercept
//       flowgate only, one longer load, the appliance under --cpu-prof; prints where its time went
import { type ChildProcess, execFileSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRootCertificate, LocalSigner, startCertificateAuthority } from '../appliance/src/ca/index.ts'
import { GwlbLab, LAB } from '../standin/src/gwlb-stand-in.ts'
import { StandInCa } from '../standin/src/origin-pki.ts'
import { hasCommand, missing } from '../standin/src/requirements.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const MS = Number(process.env.MS ?? 3000)
const KA_CONNS = Number(process.env.KA_CONNS ?? 32)
const NEW_CONNS = Number(process.env.NEW_CONNS ?? 16)
const KA_MAX = Number(process.env.KA_MAX ?? 200_000)
// Bounded in count as well as time: every new connection is a flow (two for the baselines, whose upstream
// leg crosses the lab too), and the stand-in keeps a socket per flow for the lab's life.
const NEW_MAX = Number(process.env.NEW_MAX ?? 500)
const PIN = process.env.PIN ?? 'split'
/** which loads to run (comma-separated), for a quicker look at one of them */
const MODES = (process.env.MODES ?? 'keepalive,newconn').split(',') as ('keepalive' | 'newconn')[]
if (MODES.some((m) => m !== 'keepalive' && m !== 'newconn')) throw new Error('MODES=keepalive,newconn')
const PROFILE = process.env.PROFILE as 'keepalive' | 'newconn' | undefined
const PROFILE_MS = Number(process.env.PROFILE_MS ?? 10_000)
if (PROFILE && PROFILE !== 'keepalive' && PROFILE !== 'newconn') throw new Error('PROFILE=keepalive|newconn')

const root = new URL('..', import.meta.url).pathname
const FLOWGATE = join(root, 'bin/flowgate.js')
const ORIGIN = join(root, 'bench/tls/origin.ts')
const BARE = join(root, 'bench/tls/bare-proxy.ts')
const CLIENT = join(root, 'bench/tls/client.ts')
const NAME = 'origin.bench.test'

const PORT_INSPECT = 443 // flowgate's origin, server namespace
const PORT_BARE = 8443 // bare Node proxy, server namespace
const PORT_MITM = 8444 // mitmdump, server namespace
const PORT_TWIN = 9443 // the baselines' origin, client namespace
/** Flows the stand-in may hold: one UDP socket each, never closed while the lab lives; within our fd limit. */
const FLOW_BUDGET = (() => {
  const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))
  return (m ? Number(m[1]) : 20_000) - 2_000
})()

// What building the lab needs (the namespace suites and `flowgate demo` check the same).
const why = missing(['root', 'tun', 'ip', 'addon'])
if (why) {
  console.log(`tls-intercept bench skipped: ${why}`)
  process.exit(0)
}
// NO_MITM=1 leaves mitmproxy out even where it is installed (a quicker flowgate-vs-bare look).
const HAVE_MITM = !process.env.NO_MITM && hasCommand('mitmdump')

// A hard bound on the whole run: nothing here may hang a CI box or a laptop.
let lab: GwlbLab | undefined
let dir: string | undefined
const cleanup = async () => {
  await lab?.close()
  lab = undefined
  if (dir) rmSync(dir, { recursive: true, force: true })
  dir = undefined
}
const deadline = setTimeout(
  () => {
    console.error('tls-intercept bench: over its time limit, aborting')
    void cleanup().finally(() => process.exit(1))
  },
  PROFILE ? PROFILE_MS + 180_000 : 180_000 + ROUNDS * 6 * (MS + 8_000),
)
deadline.unref()
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => void cleanup().finally(() => process.exit(130)))
}

// ---------------------------------------------------------------------------------------------- PKI

/** The origins' CA (trusted by the proxies, not by the client) and the origin's P-256 leaf: DNS + both IPs. */
async function originPki(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const ca = await StandInCa.create('CN=bench origin CA')
  // mitmproxy's reverse mode verifies the upstream by the address in its --mode spec.
  const leaf = await ca.issue([NAME, LAB.server4, LAB.client4])
  return { caPem: ca.pem, certPem: leaf.certPem, keyPem: leaf.keyPem() }
}

// ------------------------------------------------------------------------------------- measurement

/** utime + stime of a process, ms (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMsOf(pid: number | undefined): number {
  if (!pid) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) * 10
  } catch {
    return 0
  }
}
/** CPU `cpu`'s busy time in ms from /proc/stat: user + nice + system + irq + softirq (not idle, iowait, steal). */
function cpuBusyMs(cpu: number): number {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `))
  if (!line) return Number.NaN
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number)
  return ((user! + nice! + system! + irq! + softirq!) * 1000) / 100 // USER_HZ
}

/**
 * Receive Packet Steering: the CPU whose softirq processes what `dev` receives. A packet written into a TUN
 * or sent over a veth is otherwise received (TCP and all) in the writer's context — the kernel TCP of a
 * proxy fed by the stand-in would be charged to the stand-in's CPU.
 */
function steer(ns: string | null, dev: string, cpu: 0 | 1): void {
  const file = `/sys/class/net/${dev}/queues/rx-0/rps_cpus`
  const mask = String(1 << cpu)
  if (ns === null) writeFileSync(file, mask)
  else execFileSync('ip', ['netns', 'exec', ns, 'sh', '-c', `echo ${mask} > ${file}`])
}

const selfCpuMs = () => {
  const c = process.cpuUsage()
  return (c.user + c.system) / 1000
}

type Mode = 'keepalive' | 'newconn'
interface Target {
  name: 'flowgate' | 'bare-node' | 'mitmproxy'
  host: string
  port: number
  /** the process doing the proxying (besides the appliance) */
  proxy?: ChildProcess
}
interface Sample {
  rate: number
  failed: number
  /** CPU ms per 1,000 requests or connections, by process */
  cpu: Record<'appliance' | 'proxy' | 'standin' | 'client' | 'origin', number>
  /** share of one CPU each used over the window */
  busy: Record<'appliance' | 'proxy' | 'standin' | 'client' | 'origin', number>
  /** all of CPU 0's busy time (user, system, irq, softirq) per 1,000, with RPS steering (PIN=split only) */
  cpu0: number
  /** CLOCK_MONOTONIC µs around the client's run (V8 CPU profiles use the same clock) */
  window: [number, number]
  /** ms per request or connection as the client saw it; slow: how many took over 500 ms */
  latency: { p50: number; p99: number; max: number; slow: number }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  if (!s.length) return Number.NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '—')

function pinned(cpu: 0 | 1, cmd: string, args: string[]): [string, string[]] {
  return PIN === 'none' ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]
}

// ----------------------------------------------------------------------------------------- the run

async function main(): Promise<void> {
  if (PIN !== 'none')
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })

  dir = mkdtempSync(join(tmpdir(), 'flowgate-bench-tls-'))
  const file = (name: string, text: string) => {
    const p = join(dir!, name)
    writeFileSync(p, text, { mode: 0o600 })
    return p
  }

  // Our interception root: key in memory; flowgate reads it from a pipe.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const signer = await LocalSigner.fromKeyObject(privateKey, 'bench')
  const interceptRoot = await createRootCertificate(signer, { subject: 'CN=flowgate bench root' })
  const rootFile = file('root.pem', interceptRoot.pem)
  const caKeyFifo = join(dir, 'ca.key')
  execFileSync('mkfifo', ['-m', '600', caKeyFifo])
  // The bare proxy's one leaf: minted by flowgate's own CA code under the same root (leaf + intermediate).
  const ca = await startCertificateAuthority({ rootCertPem: interceptRoot.pem, signer })
  const bareLeaf = await ca.minter.get(NAME)
  ca.close()
  const bareChain = file('bare-chain.pem', bareLeaf.chainPem)
  const bareKey = file('bare.key', bareLeaf.key.export({ type: 'pkcs8', format: 'pem' }).toString())
  // mitmproxy's CA: the same root (key and certificate in one PEM, as mitmproxy reads it).
  const mitmDir = join(dir, 'mitm')
  mkdirSync(mitmDir, { mode: 0o700 })
  writeFileSync(join(mitmDir, 'mitmproxy-ca.pem'), keyPem + interceptRoot.pem, { mode: 0o600 })

  const origin = await originPki()
  const originCa = file('origin-ca.pem', origin.caPem)
  const originCrt = file('origin.crt', origin.certPem)
  const originKey = file('origin.key', origin.keyPem)

  const policies = file(
    'policies.yaml',
    `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: bench-inspect
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["${PORT_INSPECT}"] }
  rules:
    - name: inspect
      when: { sni: ["*.bench.test"] }
      action: Inspect
  defaultAction: Deny
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: bench-allow
spec:
  priority: 20
  match: { protocols: [TCP], ports: ["${PORT_BARE}", "${PORT_MITM}", "${PORT_TWIN}"] }
  rules:
    - name: allow
      action: Allow
  defaultAction: Deny
`,
  )

  lab = await GwlbLab.create({ firstPort: 10_000 })
  const L = lab
  if (PIN !== 'none') {
    steer(L.appliance, `fg${L.ns.id}a`, 0)
    steer(null, `fg${L.ns.id}g`, 1)
    steer(L.client, `fg${L.ns.id}c`, 1)
  }
  // Client-initiated closes leave TIME_WAIT behind at the rates measured here.
  for (const ns of [L.client, L.server]) {
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1'])
  }

  const spawnNode = (ns: string, cpu: 0 | 1, args: string[], nodeFlags: string[] = []) =>
    L.ns.spawn(
      ns,
      ...pinned(cpu, process.execPath, [...nodeFlags, ...args]),
      /listening|appliance started/,
      20_000,
    )
  const [originFlowgate, originTwin] = await Promise.all([
    spawnNode(L.server, 1, [ORIGIN, String(PORT_INSPECT), originCrt, originKey]),
    spawnNode(L.client, 1, [ORIGIN, String(PORT_TWIN), originCrt, originKey]),
  ])

  const profDir = PROFILE ? mkdtempSync(join(tmpdir(), 'flowgate-bench-prof-')) : undefined
  const applianceReady = spawnNode(
    L.appliance,
    0,
    [
      FLOWGATE,
      'appliance',
      '--policies',
      policies,
      '--bind',
      L.applianceAddr,
      '--http-port',
      '8080',
      '--drain-seconds',
      '0',
      '--ca-cert',
      rootFile,
      '--ca-key',
      caKeyFifo,
      '--upstream-ca',
      originCa,
    ],
    [
      ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
      // e.g. APPLIANCE_NODE_FLAGS=--perf-basic-prof, for `perf record -p` on the appliance
      ...(process.env.APPLIANCE_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
    ],
  )
  createWriteStream(caKeyFifo).end(keyPem)
  const appliance = await applianceReady
  const metricsUrl = `http://${L.applianceAddr}:8080/metrics`

  const targets: Target[] = [{ name: 'flowgate', host: LAB.server4, port: PORT_INSPECT }]
  if (!PROFILE) {
    const bare = await spawnNode(L.server, 0, [
      BARE,
      String(PORT_BARE),
      bareChain,
      bareKey,
      LAB.client4,
      String(PORT_TWIN),
      NAME,
      originCa,
    ])
    targets.push({ name: 'bare-node', host: LAB.server4, port: PORT_BARE, proxy: bare })
    if (HAVE_MITM) {
      const mitm = await L.ns.spawn(
        L.server,
        ...pinned(0, 'mitmdump', [
          '--mode',
          `reverse:https://${LAB.client4}:${PORT_TWIN}`,
          '--listen-port',
          String(PORT_MITM),
          '--set',
          `confdir=${mitmDir}`,
          '--set',
          `ssl_verify_upstream_trusted_ca=${originCa}`,
          '--set',
          'flow_detail=0',
        ]),
        /listening/i,
        60_000,
      )
      targets.push({ name: 'mitmproxy', host: LAB.server4, port: PORT_MITM, proxy: mitm })
    }
  }

  const measure = async (t: Target, mode: Mode, ms: number): Promise<Sample> => {
    const pids = {
      appliance: appliance.pid,
      proxy: t.proxy?.pid,
      origin: (t.name === 'flowgate' ? originFlowgate : originTwin).pid,
    }
    if (PIN !== 'none') {
      // Everything the box receives is processed on CPU 0, everything the world receives on CPU 1: the
      // server namespace holds flowgate's origin (world) but the baselines' proxy (box).
      steer(L.server, `fg${L.ns.id}s`, t.name === 'flowgate' ? 1 : 0)
    }
    const cpu0At = cpuBusyMs(0)
    const c0 = {
      appliance: cpuMsOf(pids.appliance),
      proxy: cpuMsOf(pids.proxy),
      origin: cpuMsOf(pids.origin),
      standin: selfCpuMs(),
    }
    const conns = mode === 'keepalive' ? KA_CONNS : NEW_CONNS
    const max = mode === 'keepalive' ? KA_MAX : NEW_MAX
    const [cmd, args] = pinned(1, process.execPath, [
      CLIENT,
      mode,
      t.host,
      String(t.port),
      NAME,
      rootFile,
      String(conns),
      String(max),
      String(ms),
    ])
    const w0 = Number(process.hrtime.bigint() / 1000n)
    const r = await L.ns.exec(L.client, cmd, args, ms + 40_000)
    const w1 = Number(process.hrtime.bigint() / 1000n)
    if (r.code !== 0) throw new Error(`client ${t.name} ${mode}: exit ${r.code} ${r.stderr}`)
    const out = JSON.parse(r.stdout.toString().trim().split('\n').at(-1)!) as {
      ok: number
      failed: number
      ms: number
      cpuMs: number
      p50: number
      p99: number
      max: number
      slow: number
    }
    // The client's window starts after its own start-up (and, for keep-alive, after its connections are
    // open); the others' CPU is read around the whole client run, which slightly over-counts their share.
    const d = {
      appliance: cpuMsOf(pids.appliance) - c0.appliance,
      proxy: cpuMsOf(pids.proxy) - c0.proxy,
      origin: cpuMsOf(pids.origin) - c0.origin,
      standin: selfCpuMs() - c0.standin,
      client: out.cpuMs,
    }
    const per = (x: number) => (out.ok ? (x / out.ok) * 1000 : Number.NaN)
    const busy = (x: number) => x / out.ms
    return {
      rate: out.ok / (out.ms / 1000),
      failed: out.failed,
      cpu: {
        appliance: per(d.appliance),
        proxy: per(d.proxy),
        origin: per(d.origin),
        standin: per(d.standin),
        client: per(d.client),
      },
      window: [w0, w1],
      cpu0: PIN === 'none' ? Number.NaN : per(cpuBusyMs(0) - cpu0At),
      latency: { p50: out.p50, p99: out.p99, max: out.max, slow: out.slow },
      busy: {
        appliance: busy(d.appliance),
        proxy: busy(d.proxy),
        origin: busy(d.origin),
        standin: busy(d.standin),
        client: busy(d.client),
      },
    }
  }

  // Warm-up (JIT, ARP/ND, the leaf cache, mitmproxy's certificate) and a check that every target works.
  for (const t of targets) {
    for (const mode of ['keepalive', 'newconn'] as const) {
      const s = await measure(t, mode, 1000)
      if (!(s.rate > 0)) throw new Error(`${t.name} ${mode}: no successful request in the warm-up`)
    }
  }

  if (PROFILE) {
    const s = await measure(targets[0]!, PROFILE, PROFILE_MS)
    console.log(
      `flowgate under --cpu-prof, ${PROFILE}: ${fmt(s.rate)}/s, ${s.failed} failed; appliance busy ${fmt(s.busy.appliance * 100)}%`,
    )
    const exited = new Promise((r) => appliance.once('exit', r))
    appliance.kill('SIGTERM')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))])
    const prof = readdirSync(profDir!).find((f) => f.endsWith('.cpuprofile'))
    if (!prof) throw new Error('the appliance wrote no profile')
    const path = join(profDir!, prof)
    summarizeProfile(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, s.window)
    console.log(`profile kept at ${path} (open it in Chrome DevTools → Performance)`)
    return
  }

  const modes = MODES
  const samples = new Map<string, Sample[]>()
  const key = (t: string, m: Mode) => `${t}/${m}`
  let failures = 0
  let rounds = 0
  for (let r = 0; r < ROUNDS; r++) {
    if (L.report().flows > FLOW_BUDGET - 4_000) {
      console.log(`(stopping after ${r} rounds: the stand-in holds ${L.report().flows} flows)`)
      break
    }
    for (const mode of modes) {
      // Rotate the order every round so no target always runs first (or right after mitmproxy).
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!)
      for (const t of order) {
        const s = await measure(t, mode, MS)
        failures += s.failed
        const k = key(t.name, mode)
        samples.set(k, [...(samples.get(k) ?? []), s])
      }
    }
    rounds++
  }
  const intercepted = (await (await fetch(metricsUrl)).text())
    .split('\n')
    .find((l) => l.startsWith('flowgate_l7_flows_total') && l.includes('result="intercepted"'))

  const unit = { keepalive: 'requests/s (keep-alive)', newconn: 'new TLS connections/s' }
  console.log(
    `\ntls-intercept: ${rounds} interleaved rounds of ${MS} ms per target and load; keep-alive over ${KA_CONNS} connections, ` +
      `new connections ${NEW_CONNS} at a time (handshake + 1 GET of 1 KB, no resumption); HTTP/1.1 over TLS 1.3, ` +
      `ECDSA P-256 everywhere; placement ${PIN === 'none' ? 'unpinned' : 'CPU 0: appliance + proxies, CPU 1: stand-in + client + origins'}; shared 2-CPU machine`,
  )
  if (!HAVE_MITM)
    console.log(
      process.env.NO_MITM
        ? '  mitmproxy: left out (NO_MITM)'
        : '  mitmproxy: not installed (apt-get install -y mitmproxy): its column is left out',
    )
  for (const mode of modes) {
    console.log(`\n${unit[mode]}: median [min–max] over rounds`)
    for (const t of targets) {
      const xs = (samples.get(key(t.name, mode)) ?? []).map((s) => s.rate)
      console.log(
        `  ${t.name.padEnd(10)} ${fmt(median(xs)).padStart(7)}  [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`,
      )
    }
    const ratio = (a: string, b: string) => {
      const xa = samples.get(key(a, mode)) ?? []
      const xb = samples.get(key(b, mode)) ?? []
      // Same-round ratios: the two ran back to back, under the same background load.
      const rs = xa.map((s, i) => s.rate / (xb[i]?.rate ?? Number.NaN)).filter(Number.isFinite)
      if (!rs.length) return
      console.log(
        `  ${`${a} / ${b}`.padEnd(24)} ${fmt(median(rs), 2).padStart(6)}×  [${fmt(Math.min(...rs), 2)}–${fmt(Math.max(...rs), 2)}] (same-round ratios)`,
      )
    }
    ratio('flowgate', 'bare-node')
    ratio('flowgate', 'mitmproxy')
    ratio('bare-node', 'mitmproxy')
    console.log(
      `  latency as the client saw it, ms per ${mode === 'keepalive' ? 'request' : 'connection'} (median over rounds; slow: over 500 ms, all rounds):`,
    )
    for (const t of targets) {
      const ss = samples.get(key(t.name, mode)) ?? []
      const l = (q: 'p50' | 'p99' | 'max') => fmt(median(ss.map((s) => s.latency[q])), 1)
      const slow = ss.reduce((n, s) => n + s.latency.slow, 0)
      console.log(`    ${t.name.padEnd(10)} p50 ${l('p50')}  p99 ${l('p99')}  max ${l('max')}  slow ${slow}`)
    }
    console.log(`  CPU ms per 1,000 (median) and share of a CPU used during the window:`)
    for (const t of targets) {
      const ss = samples.get(key(t.name, mode)) ?? []
      const c = (p: keyof Sample['cpu']) =>
        `${p} ${fmt(median(ss.map((s) => s.cpu[p])))} (${fmt(median(ss.map((s) => s.busy[p])) * 100)}%)`
      const parts = [c('appliance'), ...(t.proxy ? [c('proxy')] : []), c('standin'), c('client'), c('origin')]
      console.log(`    ${t.name.padEnd(10)} ${parts.join('  ')}`)
    }
    // Capacity from CPU cost, which background load disturbs far less than rates do: the box under test is
    // the appliance (flowgate), or the proxy plus the appliance forwarding its packets (baselines). The
    // baselines' kernel TCP runs partly in softirq on the stand-in's TUN writes and is counted there: the
    // stand-in's extra CPU per request over flowgate's bounds what the baselines' figure leaves out.
    const box = (t: string) =>
      median(
        (samples.get(key(t, mode)) ?? []).map((s) => s.cpu.appliance + (t === 'flowgate' ? 0 : s.cpu.proxy)),
      )
    const standin = (t: string) => median((samples.get(key(t, mode)) ?? []).map((s) => s.cpu.standin))
    console.log(`  box under test, CPU ms per 1,000 → capacity ratio (inverse cost):`)
    for (const t of targets) console.log(`    ${t.name.padEnd(10)} ${fmt(box(t.name)).padStart(6)}`)
    const adjusted = (t: string) =>
      box(t) + (t === 'flowgate' ? 0 : Math.max(0, standin(t) - standin('flowgate')))
    const cap = (a: string, b: string) => {
      if (!samples.has(key(a, mode)) || !samples.has(key(b, mode))) return
      console.log(
        `    ${`${a} / ${b}`.padEnd(24)} ${fmt(box(b) / box(a), 2).padStart(6)}×  (${fmt(adjusted(b) / adjusted(a), 2)}× counting a baseline's extra stand-in CPU as its kernel TCP)`,
      )
    }
    cap('flowgate', 'bare-node')
    cap('flowgate', 'mitmproxy')
    cap('bare-node', 'mitmproxy')
    if (PIN !== 'none') {
      // The steadier capacity figure: everything on CPU 0, where the box runs and (RPS) receives its packets.
      const c0 = (t: string) => median((samples.get(key(t, mode)) ?? []).map((x) => x.cpu0))
      console.log(
        `  all of CPU 0 (the box, its packet receive steered there by RPS), CPU ms per 1,000 → capacity ratio:`,
      )
      for (const t of targets) console.log(`    ${t.name.padEnd(10)} ${fmt(c0(t.name)).padStart(6)}`)
      for (const [a, b] of [
        ['flowgate', 'bare-node'],
        ['flowgate', 'mitmproxy'],
        ['bare-node', 'mitmproxy'],
      ] as const) {
        if (samples.has(key(a, mode)) && samples.has(key(b, mode)))
          console.log(`    ${`${a} / ${b}`.padEnd(24)} ${fmt(c0(b) / c0(a), 2).padStart(6)}×`)
      }
    }
  }
  const report = L.report()
  console.log(
    `\nfailed requests/connections: ${failures}; stand-in: ${report.flows} flows, ${report.violations} contract violations; ${intercepted ?? 'no intercepted count'}`,
  )
}

// ----------------------------------------------------------------------------------------- profile

interface CpuProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface CpuProfile {
  nodes: CpuProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

/** Where the time went: self time by function and by source area, and inclusive time of the big steps. */
function summarizeProfile(p: CpuProfile, [from, to]: [number, number]): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  // Only the samples taken while the client ran (not start-up, not the warm-up).
  const self = new Map<number, number>()
  let ts = p.startTime
  let kept = 0
  for (let i = 0; i < p.samples.length; i++) {
    ts += p.timeDeltas[i] ?? 0
    if (ts < from || ts > to) continue
    kept++
    const id = p.samples[i]!
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0))
  }
  if (kept === 0) throw new Error('no profile sample inside the load window (clocks differ?)')
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const idle = [...self.entries()]
    .filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)')
    .reduce((a, [, v]) => a + v, 0)
  const busy = total - idle
  const short = (url: string) =>
    url.replace(`file://${root}`, '').replace(/^node:internal\//, 'node:') || '(native/VM)'
  const area = (url: string) => {
    const u = short(url)
    const m = /^(appliance\/src\/[^/]+|policy\/src|node_modules\/[^/]+|standin)/.exec(u)
    if (m) return m[1]!
    // node:internal/streams/readable → node:streams; node:_http_client → node:http
    if (u.startsWith('node:')) return u.split('/')[0]!.replace(/^node:_?(http|tls|stream)_\w+$/, 'node:$1')
    return u.startsWith('wasm:') ? 'wasm' : u
  }
  const fnKey = (n: CpuProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v)
  const fns = new Map<string, number>()
  const areas = new Map<string, number>()
  for (const [id, us] of self) {
    const n = byId.get(id)!
    if (n.callFrame.functionName === '(idle)') continue
    add(fns, fnKey(n), us)
    add(areas, n.callFrame.url ? area(n.callFrame.url) : n.callFrame.functionName || '(native/VM)', us)
  }
  // Inclusive time: a node's self time plus its subtree's, counted once per (function) on a path.
  const inclusive = new Map<string, number>()
  const walk = (id: number, onPath: Set<string>): number => {
    const n = byId.get(id)!
    let sum = self.get(id) ?? 0
    const k = fnKey(n)
    const fresh = !onPath.has(k)
    if (fresh) onPath.add(k)
    for (const c of n.children ?? []) sum += walk(c, onPath)
    if (fresh) {
      onPath.delete(k)
      add(inclusive, k, sum)
    }
    return sum
  }
  walk(p.nodes[0]!.id, new Set())
  const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`
  const top = (m: Map<string, number>, n: number) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
  console.log(
    `\nprofile of the load window: ${(busy / 1000).toFixed(0)} ms on the CPU of ${(total / 1000).toFixed(0)} ms sampled (${kept} samples); shares below are of the CPU time`,
  )
  console.log('\nself time by area:')
  for (const [k, v] of top(areas, 20)) console.log(`  ${pct(v)}  ${k}`)
  console.log('\nself time by function:')
  for (const [k, v] of top(fns, 30)) console.log(`  ${pct(v)}  ${k}`)
  console.log('\ninclusive time by function (top 40 below the roots):')
  for (const [k, v] of top(inclusive, 48)
    .filter(([k]) => !/^\((root|program|idle)\)/.test(k))
    .slice(0, 40))
    console.log(`  ${pct(v)}  ${k}`)
}

try {
  await main()
} finally {
  await cleanup()
  clearTimeout(deadline)
}
