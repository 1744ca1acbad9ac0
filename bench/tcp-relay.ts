// TCP relay through the real appliance data path (issue 4 item 5): throughput (MB/s, one bulk download)
// and connection rate (connections/s, short request/response connections) of flows the appliance
// terminates in its user-space TCP stack (`tcpProxy: true`), beside baselines measured in the same
// namespaces and the same run:
//   - kernel relay: a Node `net` pipe (kernel TCP on both legs) in the server namespace, reached through the
//     appliance with a plain Allow — the same relay work with the kernel's TCP and its default congestion
//     control (printed: on this machine BBR, which does not back off on random loss);
//   - kernel relay, CUBIC: the same pipe in Python with TCP_CONGESTION=cubic on its sockets (when python3 is
//     there; Node cannot set it), so that a loss-based kernel sender is compared with ours (CUBIC too);
//   - allow: kernel TCP end to end through the appliance's fast path (no relay at all), a reference.
// Everything runs in the GWLB stand-in (test/support/netns, this process is the stand-in): client and server
// are Node processes in their namespaces, the appliance is `flowgate appliance` with a policy file. Rounds are
// interleaved across the targets and medians reported (the machine is shared and noisy); once without loss
// and once with the stand-in dropping 2% and reordering 2% of packets in each direction.
// Loss exposure differs: with tcpProxy each leg (client–appliance, appliance–server) crosses the stand-in
// once; with a kernel relay (its server leg is loopback) and with allow, one connection crosses it twice.
// CPU placement (PIN=split, the default on 2+ CPUs): CPU 0 for the box doing the relaying (the appliance, the
// kernel relays), CPU 1 for the world around it (this process = the stand-in, client, server).
//
//   npm run bench -- tcp-relay          (root: namespaces, TUN)
//   MB=20 ROUNDS=3 CONNS=300 PARALLEL=8 LOSS=0,0.02 PIN=split|none npm run bench -- tcp-relay
//   PROFILE=/tmp/prof npm run bench -- tcp-relay     (the appliance writes a V8 CPU profile there)
import { type ChildProcess, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { GwlbLab, LAB } from '../standin/src/gwlb-stand-in.ts'
import { missing } from '../standin/src/requirements.ts'

const MB = Number(process.env.MB ?? 20)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const CONNS = Number(process.env.CONNS ?? 300)
const PARALLEL = Number(process.env.PARALLEL ?? 8)
const LOSSES = (process.env.LOSS ?? '0,0.02').split(',').map(Number)
const PROFILE = process.env.PROFILE
const PIN = process.env.PIN ?? (availableParallelism() >= 2 && has('taskset', ['-V']) ? 'split' : 'none')
const PYTHON = has('python3', ['-c', 'import socket; socket.TCP_CONGESTION'])
const KERNEL_CC = (() => {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim()
  } catch {
    return 'unknown'
  }
})()
const BYTES = MB * 1_000_000
/** One transfer or connection batch may take this long before it counts as failed. */
const STEP_MS = 60_000

const root = new URL('..', import.meta.url).pathname
const FLOWGATE = join(root, 'bin/flowgate.js')

function has(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function pinned(cpu: 0 | 1, cmd: string, args: string[]): [string, string[]] {
  return PIN === 'none' ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]
}

// What building the lab needs (the namespace suites and `flowgate demo` check the same).
const why = missing(['root', 'tun', 'ip', 'addon'])
if (why) {
  console.log(`tcp-relay bench skipped: ${why}`)
  process.exit(0)
}

// A hard bound on the whole run: nothing here may hang a CI box or a laptop.
let lab: GwlbLab | undefined
const deadline = setTimeout(
  () => {
    console.error('tcp-relay bench: over its time limit, aborting')
    void lab?.close().finally(() => process.exit(1))
  },
  Math.max(300_000, LOSSES.length * ROUNDS * 3 * 2 * STEP_MS),
)
deadline.unref()

const PORT_ALLOW = 9001
const PORT_RELAY = 9002
const PORT_PROXY = 9003
const PORT_CUBIC = 9004

const POLICIES = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: relayed
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["${PORT_PROXY}"] }
  rules:
    - name: relayed
      action: Allow
      tcpProxy: true
  defaultAction: Deny
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: direct
spec:
  priority: 20
  match: { protocols: [TCP], ports: ["${PORT_ALLOW}", "${PORT_RELAY}", "${PORT_CUBIC}"] }
  rules:
    - name: direct
      action: Allow
  defaultAction: Deny
`

// Request "N\n" → N bytes, then FIN.
const SERVER = `import { createServer } from 'node:net'
const block = Buffer.alloc(64 * 1024, 7)
for (const port of process.argv.slice(2).map(Number)) {
  createServer((s) => {
    let line = ''
    s.on('error', () => {})
    s.on('data', function onData(d) {
      line += d.toString('latin1')
      const nl = line.indexOf('\\n')
      if (nl < 0) return
      s.off('data', onData)
      let left = Number(line.slice(0, nl))
      const write = () => {
        while (left > 0) {
          const n = Math.min(left, block.length)
          left -= n
          if (!s.write(n === block.length ? block : block.subarray(0, n))) return void s.once('drain', write)
        }
        s.end()
      }
      write()
    })
  }).listen(port, '::', () => console.log('listening ' + port))
}
`

// The kernel relay: every connection piped to the server on loopback, both legs kernel TCP.
const RELAY = `import { createServer, connect } from 'node:net'
const [listenPort, port] = process.argv.slice(2).map(Number)
createServer((c) => {
  const u = connect(port, '127.0.0.1')
  c.on('error', () => u.destroy())
  u.on('error', () => c.destroy())
  c.pipe(u)
  u.pipe(c)
}).listen(listenPort, '::', () => console.log('listening ' + listenPort))
`

// The same relay with CUBIC on the client-facing sockets (accepted sockets inherit the listener's).
const RELAY_PY = `import socket, sys, threading
listen_port, port = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket(socket.AF_INET6)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'cubic')
ls.bind(('::', listen_port))
ls.listen(256)
print('listening', listen_port, flush=True)
def pump(a, b):
    try:
        while True:
            d = a.recv(262144)
            if not d: break
            b.sendall(d)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    c, _ = ls.accept()
    try:
        u = socket.create_connection(('127.0.0.1', port))
    except OSError:
        c.close()
        continue
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
`

// bulk HOST PORT BYTES → {"ms","bytes"}; conns HOST PORT COUNT PARALLEL BYTES → {"ms","ok","failed"}
const CLIENT = `import { connect } from 'node:net'
const [mode, host, port, ...rest] = process.argv.slice(2)
const fetch = (n) => new Promise((resolve) => {
  let got = 0
  const s = connect(Number(port), host, () => s.write(n + '\\n'))
  s.on('data', (d) => { got += d.length })
  s.on('end', () => { s.end(); resolve(got) })
  s.on('error', () => resolve(-1))
  s.setTimeout(${STEP_MS}, () => { s.destroy(); resolve(-1) })
})
const t0 = performance.now()
if (mode === 'bulk') {
  const bytes = await fetch(Number(rest[0]))
  console.log(JSON.stringify({ ms: performance.now() - t0, bytes }))
} else {
  const [count, parallel, size] = rest.map(Number)
  let next = 0, ok = 0, failed = 0
  const worker = async () => {
    while (next < count) {
      next++
      if ((await fetch(size)) === size) ok++
      else failed++
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  console.log(JSON.stringify({ ms: performance.now() - t0, ok, failed }))
}
process.exit(0)
`

interface Target {
  name: string
  port: number
}
const ALLOW: Target = { name: 'allow (kernel TCP end to end)', port: PORT_ALLOW }
const RELAY_DEFAULT: Target = { name: `kernel relay (Node net pipe, ${KERNEL_CC})`, port: PORT_RELAY }
const RELAY_CUBIC: Target = { name: 'kernel relay (Python, cubic)', port: PORT_CUBIC }
const PROXY: Target = { name: 'tcpProxy (user-space TCP relay)', port: PORT_PROXY }
const TARGETS: Target[] = [ALLOW, RELAY_DEFAULT, ...(PYTHON ? [RELAY_CUBIC] : []), PROXY]

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  if (!s.length) return Number.NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function scrape(url: string, names: string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const n of names) {
    const line = text.split('\n').find((l) => l.startsWith(`${n} `) || l.startsWith(`${n}{`))
    out[n] = line ? Number(line.split(' ').at(-1)) : 0
  }
  return out
}

const STACK_METRICS = [
  'flowgate_tcp_rto_expiries_total',
  'flowgate_tcp_fast_recoveries_total',
  'flowgate_tcp_tail_loss_probes_total',
  'flowgate_tcp_retransmitted_segments_total',
]

async function run(loss: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-bench-relay-'))
  lab = await GwlbLab.create({ seed: 7, loss, reorder: loss })
  try {
    const file = (name: string, text: string) => {
      const p = join(dir, name)
      writeFileSync(p, text)
      return p
    }
    const policies = file('policies.yaml', POLICIES)
    await lab.ns.spawn(
      lab.server,
      process.execPath,
      [file('server.mjs', SERVER), String(PORT_ALLOW), String(PORT_PROXY)],
      new RegExp(`listening ${PORT_PROXY}`),
    )
    await lab.ns.spawn(
      lab.server,
      ...pinned(0, process.execPath, [file('relay.mjs', RELAY), String(PORT_RELAY), String(PORT_ALLOW)]),
      /listening/,
    )
    if (PYTHON)
      await lab.ns.spawn(
        lab.server,
        ...pinned(0, 'python3', [file('relay.py', RELAY_PY), String(PORT_CUBIC), String(PORT_ALLOW)]),
        /listening/,
      )
    const client = file('client.mjs', CLIENT)
    const appliance: ChildProcess = await lab.ns.spawn(
      lab.appliance,
      ...pinned(0, process.execPath, [
        ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : []),
        FLOWGATE,
        'appliance',
        '--policies',
        policies,
        '--bind',
        lab.applianceAddr,
        '--http-port',
        '8080',
        '--drain-seconds',
        '0',
      ]),
      /appliance started/,
      20_000,
    )
    appliance.stdout?.resume()
    const url = `http://${lab.applianceAddr}:8080`
    const exec = async (args: string[]) => {
      const r = await lab!.ns.exec(lab!.client, process.execPath, [client, ...args], STEP_MS + 10_000)
      if (r.code !== 0) throw new Error(`client ${args.join(' ')}: exit ${r.code} ${r.stderr}`)
      return JSON.parse(r.stdout.toString()) as { ms: number; bytes?: number; ok?: number; failed?: number }
    }

    const mbps: number[][] = TARGETS.map(() => [])
    const cps: number[][] = TARGETS.map(() => [])
    let failures = 0
    // Warm-up: JIT, ARP/ND, the appliance's first flows.
    for (const t of TARGETS) await exec(['bulk', LAB.server4, String(t.port), String(1_000_000)])
    // The stack's counters over the bulk transfers only (the other targets do not touch it).
    const bulkStats: Record<string, number> = Object.fromEntries(STACK_METRICS.map((n) => [n, 0]))
    for (let r = 0; r < ROUNDS; r++) {
      // The order rotates each round, so that no target always runs first (or last) in a round.
      const order = TARGETS.map((_, i) => (i + r) % TARGETS.length)
      for (const i of order) {
        const before = await scrape(url, STACK_METRICS)
        const b = await exec(['bulk', LAB.server4, String(TARGETS[i]!.port), String(BYTES)])
        const after = await scrape(url, STACK_METRICS)
        for (const n of STACK_METRICS) bulkStats[n]! += after[n]! - before[n]!
        if (b.bytes === BYTES) mbps[i]![r] = BYTES / 1e6 / (b.ms / 1000)
        else failures++
      }
      for (const i of order) {
        const args = ['conns', LAB.server4, String(TARGETS[i]!.port), String(CONNS), String(PARALLEL), '100']
        const c = await exec(args)
        failures += c.failed ?? 0
        cps[i]![r] = (c.ok ?? 0) / (c.ms / 1000)
      }
    }
    const report = lab.report()
    if (PROFILE) {
      // An orderly exit writes the profile.
      const exited = new Promise((r) => appliance.once('exit', r))
      appliance.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
    }

    console.log(
      `\nloss ${(loss * 100).toFixed(0)}% + reordering ${(loss * 100).toFixed(0)}% each way (stand-in seed ${report.seed})`,
    )
    const spread = (xs: number[], d: number) => {
      const v = xs.filter(Number.isFinite)
      return `${median(v).toFixed(d)} [${Math.min(...v).toFixed(d)}–${Math.max(...v).toFixed(d)}]`
    }
    for (const [i, t] of TARGETS.entries())
      console.log(
        `  ${t.name.padEnd(36)}: ${spread(mbps[i]!, 1).padEnd(20)} MB/s   ${spread(cps[i]!, 0)} conn/s`,
      )
    // Same-round ratios: the two targets ran back to back under the same background load.
    const p = TARGETS.indexOf(PROXY)
    for (const base of TARGETS.filter((x) => x !== PROXY)) {
      const b = TARGETS.indexOf(base)
      const ratio = (xs: number[][]) => median(xs[p]!.map((x, r) => x / xs[b]![r]!).filter(Number.isFinite))
      console.log(
        `  tcpProxy / ${base.name.split(' (')[0]!.padEnd(25)}: ${ratio(mbps).toFixed(2)}× throughput, ${ratio(cps).toFixed(2)}× connections/s  (${base.name.split(' (')[1]?.replace(')', '') ?? ''})`,
      )
    }
    const d = (n: string) => bulkStats[n]!
    console.log(
      `  user-space stack, ${ROUNDS} bulk transfers  : ${d('flowgate_tcp_retransmitted_segments_total')} retransmitted, ${d('flowgate_tcp_fast_recoveries_total')} fast recoveries, ${d('flowgate_tcp_tail_loss_probes_total')} tail loss probes, ${d('flowgate_tcp_rto_expiries_total')} RTO expiries`,
    )
    console.log(
      `  failed transfers/connections: ${failures}; contract violations: ${report.violations}${report.violations ? ` ${JSON.stringify(report.byReason)} e.g. ${JSON.stringify(report.samples.slice(0, 2))}` : ''}; injected loss ${report.injectedLoss}, reordering ${report.injectedReorder}`,
    )
  } finally {
    await lab.close()
    lab = undefined
    rmSync(dir, { recursive: true, force: true })
  }
}

// The stand-in gives every flow its own GWLB source port, from 60000 up: a lab holds at most 5,535 flows.
const flowsPerLab = ROUNDS * TARGETS.length * (CONNS + 1) + TARGETS.length
if (flowsPerLab > 5000) {
  console.error(
    `tcp-relay: ${flowsPerLab} flows per lab is more than the stand-in's 5,000; lower ROUNDS or CONNS`,
  )
  process.exit(2)
}
console.log(
  `tcp-relay: ${MB} MB downloads and ${CONNS} connections of 100 bytes (${PARALLEL} at a time), median [min–max] of ${ROUNDS} rounds; MSS 1448 (TUN MTU 1500); kernel congestion control ${KERNEL_CC}; PIN=${PIN}${PYTHON ? '' : '; no python3: no CUBIC kernel relay'}`,
)
if (PIN !== 'none') execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
for (const loss of LOSSES) await run(loss)
clearTimeout(deadline)
