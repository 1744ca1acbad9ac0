// Shared by the namespace suites: a lab with an appliance attached, torn down whatever happens.
import type { ExecutionContext } from 'ava'
import type { EchoMode } from '../support/echo-appliance.ts'
import { GwlbLab, type LabOptions, type StandInReport } from '../support/netns/gwlb-stand-in.ts'

const ECHO = new URL('../support/echo-appliance.ts', import.meta.url).pathname
const HTTP = new URL('../support/netns/http-server.ts', import.meta.url).pathname

export interface LabRun {
  lab: GwlbLab
  /** runs in the client namespace */
  client(cmd: string, args: string[], timeoutMs?: number): ReturnType<GwlbLab['ns']['exec']>
}

/**
 * Creates a lab, starts the echo appliance (`mode`: echo, or a faulty one) with `backend` in the
 * appliance namespace and an HTTP server (port 8080) and a socat UDP echo (port 9000, IPv4 and IPv6) in
 * the server namespace, runs `fn`, logs the stand-in's report and removes everything.
 */
export async function withLab(
  t: ExecutionContext,
  opts: LabOptions & { backend?: 'native' | 'dgram'; mode?: EchoMode | 'naive' },
  fn: (run: LabRun) => Promise<void>,
): Promise<StandInReport> {
  const lab = await GwlbLab.create(opts)
  try {
    const { backend = 'native', mode = 'echo' } = opts
    await Promise.all([
      lab.ns.spawn(
        lab.appliance,
        process.execPath,
        [ECHO, '--backend', backend, '--mode', mode, '--bind', lab.applianceAddr],
        /listening/,
      ),
      lab.ns.spawn(lab.server, process.execPath, [HTTP, '8080'], /listening/),
      lab.ns.spawn(lab.server, 'socat', ['-T', '5', 'UDP6-LISTEN:9000,fork,reuseaddr', 'PIPE']),
    ])
    // socat prints nothing when ready: wait until its UDP socket is bound, or the first datagram would meet
    // ICMP port-unreachable (seen on a loaded machine).
    for (let k = 0; k < 100; k++) {
      const ss = await lab.ns.exec(lab.server, 'ss', ['-Hlun', 'sport = :9000'], 5_000)
      if (ss.stdout.toString().trim()) break
      await new Promise((r) => setTimeout(r, 50))
    }
    await fn({ lab, client: (cmd, args, ms) => lab.ns.exec(lab.client, cmd, args, ms) })
    const report = lab.report()
    t.log(`stand-in: ${JSON.stringify({ ...report, samples: report.samples.slice(0, 3) })}`)
    return report
  } finally {
    await lab.close()
  }
}
