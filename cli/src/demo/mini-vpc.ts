// The demo's mini-VPC: the GWLB stand-in's three namespaces (client, server, appliance), a TLS origin and a
// UDP echo in the server namespace, and the real `flowgate appliance` in its own, with the demo policies,
// a fresh local interception CA and the stand-in's "public" CA as its upstream trust. Private keys exist in
// memory and in pipes only; the temp dir holds certificates and the policy file, and goes at close().
import type { ChildProcess } from 'node:child_process'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LocalSigner } from '../../../appliance/src/ca/local-signer.ts'
import { createRootCertificate } from '../../../appliance/src/ca/root.ts'
import { GwlbLab, LAB } from '../../../standin/src/gwlb-stand-in.ts'
import type { ExecResult } from '../../../standin/src/namespaces.ts'
import { originPki } from '../../../standin/src/origin-pki.ts'
import { SecretPipe } from '../../../standin/src/secret-pipe.ts'
import { DEMO_POLICIES } from './policies.ts'

/** Names the origin answers for; the client reaches them with curl --resolve (no DNS in the mini-VPC). */
export const ORIGIN_NAMES = ['www.youtube.com', 'sts.us-east-1.amazonaws.com', 'www.example.org']
export const UDP_PORT = 3000
const METRICS_PORT = 8080

// Sibling modules are run as scripts: .ts in a checkout, .js once compiled to dist/.
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
const script = (rel: string) => fileURLToPath(new URL(`${rel}${EXT}`, import.meta.url))

/** bin/flowgate.js: beside cli/ in a checkout, beside dist/ in an install or image. */
function flowgateBin(): string {
  for (const rel of ['../../../bin/flowgate.js', '../../../../bin/flowgate.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(p)) return p
  }
  throw new Error('cannot find bin/flowgate.js next to the flowgate sources')
}

/** Thrown by start() when close() was called meanwhile (Ctrl-C, the demo's deadline). */
export class Closed extends Error {}

/** Resolves when `child` prints `ready`; rejects with its output if it exits or takes longer than `ms`. */
function readyOrFail(child: ChildProcess, ready: RegExp, ms: number, output: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer)
      child.stdout?.off('data', check)
      child.off('exit', exited)
      if (err) reject(err)
      else resolve()
    }
    const check = () => {
      if (ready.test(output())) done()
    }
    const exited = (code: number | null) =>
      done(new Error(`the appliance exited (${code}) before it was ready:\n${output().slice(-3000)}`))
    const timer = setTimeout(
      () => done(new Error(`the appliance was not ready after ${ms} ms:\n${output().slice(-3000)}`)),
      ms,
    )
    child.stdout?.on('data', check)
    child.once('exit', exited)
    check()
  })
}

/**
 * The mini-VPC. start() builds it step by step; close() removes everything that exists, and may be called
 * at any time, also while start() is still running (start then fails with Closed and removes the rest).
 */
export class MiniVpc {
  /** the temp dir: certificates, the policy file */
  readonly dir = mkdtempSync(join(tmpdir(), 'flowgate-demo-'))
  readonly files = {
    policies: join(this.dir, 'demo-policies.yaml'),
    interceptionRoot: join(this.dir, 'flowgate-demo-root.pem'),
    publicCa: join(this.dir, 'public-ca.pem'),
  }
  readonly clientAddr = LAB.client4
  readonly serverAddr = LAB.server4
  #lab: GwlbLab | undefined
  #pipes: SecretPipe[] = []
  #out = ''
  #closed = false

  get lab(): GwlbLab {
    if (!this.#lab) throw new Error('the mini-VPC is not built')
    return this.#lab
  }

  get metricsUrl(): string {
    return `http://${this.lab.applianceAddr}:${METRICS_PORT}/metrics`
  }

  /** Runs a command in the client namespace. */
  client(cmd: string, args: string[], timeoutMs = 15_000): Promise<ExecResult> {
    return this.lab.ns.exec(this.lab.client, cmd, args, timeoutMs)
  }

  /** The appliance's /metrics. */
  async metrics(): Promise<string> {
    return (await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5_000) })).text()
  }

  /** What the appliance printed (pino JSON lines), the last 200 KB. */
  applianceOutput(): string {
    return this.#out
  }

  #check(): void {
    if (this.#closed) throw new Closed('stopped while building the mini-VPC')
  }

  async start(step: (what: string) => void): Promise<void> {
    try {
      await this.#build(step)
    } catch (e) {
      // close() may have run before the lab existed: remove what was built since.
      if (this.#closed) await this.close()
      throw e
    }
  }

  async #build(step: (what: string) => void): Promise<void> {
    const { files, dir } = this
    writeFileSync(files.policies, DEMO_POLICIES)

    step('a local interception CA: a P-256 key in memory, its root certificate valid for a day')
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const root = await createRootCertificate(await LocalSigner.fromKeyObject(privateKey, 'demo'), {
      subject: 'CN=flowgate demo interception root, O=flowgate demo',
      validityDays: 1,
    })
    this.#check()
    writeFileSync(files.interceptionRoot, root.pem)
    const caKey = this.#pipe('ca.key', privateKey)

    const pki = await originPki(ORIGIN_NAMES)
    this.#check()
    writeFileSync(files.publicCa, pki.caPem)
    writeFileSync(join(dir, 'origin.crt'), pki.certPem)
    const originKey = this.#pipe('origin.key', pki.key)

    step('namespaces client, server and appliance; the GWLB stand-in between them (Geneve, UDP 6081)')
    const lab = await GwlbLab.create({})
    this.#lab = lab
    this.#check()

    step(
      `servers: a TLS origin (HTTP/2) on ${LAB.server4}:443, a UDP echo (socat) on ${LAB.server4}:${UDP_PORT}`,
    )
    await Promise.all([
      lab.ns.spawn(
        lab.server,
        process.execPath,
        [script('../../../standin/src/tls-origin'), '443', join(dir, 'origin.crt'), originKey, 'h2'],
        /listening/,
        20_000,
      ),
      lab.ns.spawn(lab.server, 'socat', ['-T', '5', `UDP4-LISTEN:${UDP_PORT},fork,reuseaddr`, 'PIPE']),
    ])
    // socat says nothing when ready: wait until its socket is bound, or the first datagram meets ICMP
    // port-unreachable.
    for (let k = 0; k < 100; k++) {
      this.#check()
      const ss = await lab.ns.exec(lab.server, 'ss', ['-Hlun', `sport = :${UDP_PORT}`], 5_000)
      if (ss.stdout.toString().trim()) break
      await new Promise((r) => setTimeout(r, 50))
    }
    this.#check()

    step(
      'flowgate appliance with the demo policies, the local CA and the stand-in public CA as upstream trust',
    )
    const child = await lab.ns.spawn(lab.appliance, process.execPath, [
      flowgateBin(),
      'appliance',
      '--policies',
      files.policies,
      '--bind',
      lab.applianceAddr,
      '--http-port',
      String(METRICS_PORT),
      '--ca-cert',
      files.interceptionRoot,
      '--ca-key',
      caKey,
      '--upstream-ca',
      files.publicCa,
      '--drain-seconds',
      '0',
    ])
    const collect = (d: Buffer) => {
      this.#out = (this.#out + d.toString()).slice(-200_000)
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    await readyOrFail(child, /appliance started/, 30_000, () => this.#out)
    this.#check()
  }

  /** A private key handed over through a pipe in the temp dir; returns the pipe's path. */
  #pipe(name: string, key: KeyObject): string {
    const pipe = new SecretPipe(
      join(this.dir, name),
      Buffer.from(key.export({ type: 'pkcs8', format: 'pem' })),
    )
    this.#pipes.push(pipe)
    return pipe.path
  }

  /** Kills the processes, deletes namespaces and links, removes the pipes and the temp dir. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#lab?.close()
    for (const p of this.#pipes) p.close()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
