// tshark as a real IPFIX decoder: capture UDP to a port on loopback into a pcap while `fn` runs, then
// decode the pcap with Wireshark's cflow (NetFlow/IPFIX) dissector. Every wait is bounded.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

export const hasTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0
/**
 * `test` for tests that decode with tshark: where it is missing they are skipped with a warning saying so,
 * except in CI, which installs it — there they run and fail.
 */
export function tsharkTest(what: string): typeof test | typeof test.skip {
  if (hasTshark || process.env.CI) return test
  console.warn(`SKIPPING ${what}: tshark is not installed`)
  return test.skip
}

/** capturing on lo needs root (or dumpcap's capabilities, which a CI container does not set up) */
export const canCapture = hasTshark && process.getuid?.() === 0

function waitForStderr(c: ChildProcess, re: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`tshark did not start within ${ms} ms: ${text}`)), ms)
    c.stderr!.on('data', (d: Buffer) => {
      text += d.toString()
      if (re.test(text)) {
        clearTimeout(timer)
        resolve()
      }
    })
    c.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`tshark exited (${code}) before capturing: ${text}`))
    })
  })
}

// biome-ignore lint/suspicious/noExplicitAny: tshark's JSON
export type Layers = Record<string, any>

/** Runs `fn` while tshark captures UDP port `port` on lo; returns the cflow layer of each packet. */
export async function captureIpfix(port: number, fn: () => Promise<void>): Promise<Layers[]> {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-tshark-'))
  const pcap = join(dir, 'ipfix.pcap')
  const c = spawn('tshark', ['-i', 'lo', '-f', `udp port ${port}`, '-w', pcap], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  try {
    // "Capturing on" comes before the capture is open; "Capture started" once packets are being taken
    await waitForStderr(c, /Capture started/, 20_000)
    await fn()
    // let the last datagram reach the capture buffer, then stop tshark and wait for it to write the file
    await new Promise((r) => setTimeout(r, 300))
  } finally {
    const exited = new Promise<void>((r) => {
      if (c.exitCode !== null) r()
      else c.once('exit', () => r())
    })
    c.kill('SIGINT')
    const killer = setTimeout(() => c.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(killer)
  }
  try {
    const r = spawnSync(
      'tshark',
      ['-r', pcap, '-d', `udp.port==${port},cflow`, '-T', 'json', '--no-duplicate-keys'],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 30_000 },
    )
    if (r.status !== 0) throw new Error(`tshark -r failed: ${r.stderr}`)
    return (JSON.parse(r.stdout) as { _source: { layers: Layers } }[]).map((p) => p._source.layers.cflow)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The flows of decoded messages, each with its set's template id. */
export function flowsOf(messages: Layers[]): (Layers & { template: number })[] {
  const out: (Layers & { template: number })[] = []
  for (const m of messages) {
    for (const [k, v] of Object.entries(m)) {
      const set = /^Set \d+ \[id=(\d+)\]/.exec(k)
      if (!set || Number(set[1]) < 256) continue
      for (const [fk, flow] of Object.entries(v as Layers))
        if (/^Flow \d+$/.test(fk)) out.push({ ...flow, template: Number(set[1]) })
    }
  }
  return out
}

/** tshark shows enterprise-specific elements it does not know as hex bytes: decode them as UTF-8. */
export function enterpriseStrings(flow: Layers): string[] {
  const v = flow['cflow.enterprise_private_entry']
  const list: string[] = Array.isArray(v) ? v : v === undefined ? [] : [v]
  return list.map((h) => Buffer.from(h.replaceAll(':', ''), 'hex').toString('utf8'))
}
