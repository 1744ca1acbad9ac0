// The real appliance (`flowgate appliance`) in the GWLB stand-in's appliance namespace, with the server
// namespace's peers: Node HTTP servers, a socat UDP echo, an openssl TLS server. Shared by the appliance
// suites; everything is removed afterwards, whatever happens.

import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { selfSignedCert } from '../support/certs.ts'
import { GwlbLab, type StandInReport } from '../support/netns/gwlb-stand-in.ts'

const FLOWGATE = new URL('../../bin/flowgate.js', import.meta.url).pathname
const HTTP = new URL('../support/netns/http-server.ts', import.meta.url).pathname

export interface Appliance {
  child: ChildProcess
  url: string
  output: () => string
}

export interface LabContext {
  lab: GwlbLab
  appliance: Appliance
  /** a temp dir for the test's files (removed afterwards) */
  dir: string
  client(cmd: string, args: string[], ms?: number): ReturnType<GwlbLab['ns']['exec']>
  metric(name: string): Promise<string[]>
}

export interface LabSetup {
  /** FlowPolicy YAML, or a function of the lab (for addresses only known once it exists) */
  policies: string | ((lab: GwlbLab) => string)
  /** HTTP servers in the server namespace (default 8080 and 8081) */
  httpPorts?: number[]
  applianceArgs?: string[] | ((dir: string) => string[])
  /** how the appliance gets its policy (default: --policies FILE); e.g. the admin API's state dir instead */
  policyArgs?: (policiesFile: string, dir: string) => string[]
  /** runs before the appliance starts (write files it needs into dir) */
  before?: (lab: GwlbLab, dir: string) => Promise<void> | void
  seed?: number
  loss?: number
  reorder?: number
}

export async function withAppliance(
  t: ExecutionContext,
  setup: LabSetup,
  fn: (ctx: LabContext) => Promise<void>,
): Promise<StandInReport> {
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-e2e-'))
  const lab = await GwlbLab.create({
    ...(setup.seed !== undefined ? { seed: setup.seed } : {}),
    ...(setup.loss !== undefined ? { loss: setup.loss } : {}),
    ...(setup.reorder !== undefined ? { reorder: setup.reorder } : {}),
  })
  try {
    const policies = join(dir, 'policies.yaml')
    writeFileSync(policies, typeof setup.policies === 'string' ? setup.policies : setup.policies(lab))
    // A certificate for the TLS server (a test fixture in a temp dir, removed below).
    selfSignedCert(dir, 'server', '/CN=allowed.example', 'DNS:allowed.example,DNS:denied.example')
    await setup.before?.(lab, dir)
    await Promise.all([
      ...(setup.httpPorts ?? [8080, 8081]).map((port) =>
        lab.ns.spawn(lab.server, process.execPath, [HTTP, String(port)], /listening/),
      ),
      lab.ns.spawn(lab.server, 'socat', ['-T', '5', 'UDP4-LISTEN:3000,fork,reuseaddr', 'PIPE']),
      lab.ns.spawn(lab.server, 'openssl', [
        's_server',
        '-quiet',
        '-www',
        '-accept',
        '8443',
        '-cert',
        join(dir, 'server.crt'),
        '-key',
        join(dir, 'server.key'),
      ]),
    ])
    let out = ''
    const child = await lab.ns.spawn(
      lab.appliance,
      process.execPath,
      [
        FLOWGATE,
        'appliance',
        ...(setup.policyArgs ? setup.policyArgs(policies, dir) : ['--policies', policies]),
        '--bind',
        lab.applianceAddr,
        '--http-port',
        '8080',
        ...(typeof setup.applianceArgs === 'function'
          ? setup.applianceArgs(dir)
          : (setup.applianceArgs ?? [])),
      ],
      /appliance started/,
      20_000,
    )
    const collect = (d: Buffer) => {
      out += d.toString()
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    const appliance: Appliance = { child, url: `http://${lab.applianceAddr}:8080`, output: () => out }
    const ctx: LabContext = {
      lab,
      appliance,
      dir,
      client: (cmd, args, ms = 30_000) => lab.ns.exec(lab.client, cmd, args, ms),
      metric: async (name) => {
        const text = await (await fetch(`${appliance.url}/metrics`)).text()
        return text.split('\n').filter((l) => l.startsWith(name))
      },
    }
    try {
      await fn(ctx)
    } catch (err) {
      t.log(out.split('\n').slice(-20).join('\n'))
      throw err
    }
    const report = lab.report()
    t.log(`stand-in: ${JSON.stringify({ ...report, samples: report.samples.slice(0, 3) })}`)
    return report
  } finally {
    await lab.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
