// The appliance process: policy (file or admin API), packet path, control surface, and the drain that
// lets GWLB move new flows elsewhere while existing ones finish (GWLB.md, "Failover").

import { readFile } from 'node:fs/promises'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { type Logger, pino } from 'pino'
import type { DefaultAction } from '../../policy/src/schema.ts'
import { type CertificateAuthority, openSigner, startCertificateAuthority } from './ca/index.ts'
import { startAdminServer } from './control/admin-server.ts'
import { ApplianceMetrics } from './control/metrics.ts'
import { startControlServer } from './control/server.ts'
import type { Dataplane, DataplaneFactory } from './dataplane/dataplane.ts'
import { PolicyFile } from './policy/policy-file.ts'
import { PolicyStore } from './policy/policy-store.ts'

export interface AdminOptions {
  port: number
  tokenFile: string
  /** operator-managed: where pushed bundles are kept; absent with `policies` (the API refuses pushes) */
  stateDir?: string
  tlsCert?: string
  tlsKey?: string
}

export interface CaOptions {
  /** root certificate PEM file */
  cert: string
  /** the root's key as a PEM file (a mounted Secret) */
  key?: string
  kms?: { keyId: string; region?: string; endpoint?: string }
}

export interface ApplianceOptions {
  /** the interception CA; checked and its intermediate created at start */
  ca?: CaOptions
  /** multi-document FlowPolicy YAML (standalone mode) */
  policies?: string
  /**
   * the admin API: the operator pushes bundles to it (operator-managed mode); with `policies` it serves
   * capture, rule usage and HAR, and refuses configuration
   */
  admin?: AdminOptions
  genevePort: number
  httpPort: number
  bind: string
  drainSeconds: number
  fleetDefault?: DefaultAction
  dataplane: DataplaneFactory
  /** extra control-surface plugins (the admin API) */
  plugins?: (store: PolicyStore) => FastifyPluginAsync[]
  logger?: Logger
}

export interface ApplianceHandle {
  store: PolicyStore
  metrics: ApplianceMetrics
  policyFile?: PolicyFile
  control: FastifyInstance
  admin?: FastifyInstance
  /** the interception CA, when configured: the L7 path mints leaves with ca.minter */
  ca?: CertificateAuthority
  /** http://host:port of the control surface */
  url: string
  isDraining(): boolean
  /** fail health checks, keep serving flows for drainSeconds, then stop */
  drain(): Promise<void>
  /** stop now */
  close(): Promise<void>
}

export async function startAppliance(opts: ApplianceOptions): Promise<ApplianceHandle> {
  const log = opts.logger ?? pino({ name: 'flowgate-appliance' })
  const store = new PolicyStore()
  const metrics = new ApplianceMetrics()
  store.onChange((next) => metrics.setPolicy(next.bundle.version, next.source))

  // Everything started so far is stopped again if a later step fails, so a failed start leaves no
  // watcher, timer or socket behind.
  let policyFile: PolicyFile | undefined
  let ca: CertificateAuthority | undefined
  let admin: FastifyInstance | undefined
  let control: FastifyInstance | undefined
  let dataplane: Dataplane | undefined
  let draining = false
  const teardown = async () => {
    policyFile?.close()
    ca?.close()
    await dataplane?.close()
    await admin?.close()
    await control?.close()
  }
  try {
    // The CA first: a root that does not match its key (or an unreachable KMS) must stop the start, not
    // surface on the first intercepted flow. One root signature per start, for the intermediate.
    if (opts.ca) {
      const signer = await openSigner({
        ...(opts.ca.key ? { keyFile: opts.ca.key } : {}),
        ...(opts.ca.kms ? { kmsKeyId: opts.ca.kms.keyId } : {}),
        ...(opts.ca.kms?.region ? { region: opts.ca.kms.region } : {}),
        ...(opts.ca.kms?.endpoint ? { endpoint: opts.ca.kms.endpoint } : {}),
      })
      ca = await startCertificateAuthority({
        rootCertPem: await readFile(opts.ca.cert),
        signer,
        onEvent: (e) =>
          e.event === 'renewed'
            ? log.info({ notAfter: new Date(e.notAfter ?? 0).toISOString() }, 'intermediate CA renewed')
            : log.error({ err: e.error }, 'intermediate CA renewal failed; retrying'),
      })
      log.info({ subject: ca.root.node.subject, signer: signer.describe() }, 'interception CA ready')
    }
    if (opts.policies) {
      policyFile = new PolicyFile(
        opts.policies,
        store,
        log,
        (r) => metrics.policyReloads.inc({ result: r.ok ? 'ok' : 'rejected' }),
        opts.fleetDefault,
      )
      await policyFile.reload()
      policyFile.watch()
    }
    if (opts.admin) {
      if (!opts.policies && !opts.admin.stateDir)
        throw new Error('an operator-managed admin API needs stateDir')
      // Registering the admin API restores the last good bundle from the state directory, so a restarted
      // appliance serves its policy before the operator calls again.
      admin = await startAdminServer({
        host: opts.bind,
        ...opts.admin,
        ...(opts.policies ? { policiesFile: opts.policies } : {}),
        store,
        logger: log,
        ruleUsage: () => metrics.ruleUsage,
        capture: () => metrics.capture,
        har: () => metrics.har,
      })
    }
    control = await startControlServer({
      host: opts.bind,
      port: opts.httpPort,
      metrics,
      logger: log,
      plugins: opts.plugins?.(store) ?? [],
      state: () => ({
        policyVersion: store.current?.bundle.version,
        loopAlive: dataplane?.alive() ?? false,
        loopDetail: dataplane?.detail() ?? 'starting',
        draining,
      }),
    })
    dataplane = await opts.dataplane({
      store,
      metrics,
      log,
      bind: opts.bind,
      genevePort: opts.genevePort,
      ...(ca ? { ca } : {}),
    })
  } catch (err) {
    await teardown().catch(() => undefined)
    throw err
  }
  const addr = control!.server.address()
  const url =
    typeof addr === 'object' && addr
      ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
      : ''

  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= teardown()
    return closing
  }
  let drainPromise: Promise<void> | undefined
  const drain = () => {
    drainPromise ??= (async () => {
      draining = true
      metrics.setDraining(true)
      log.info(
        { drainSeconds: opts.drainSeconds },
        'draining: health checks fail, existing flows keep being served',
      )
      await new Promise((r) => setTimeout(r, opts.drainSeconds * 1000))
      log.info('drain period over; stopping')
      await close()
    })()
    return drainPromise
  }
  log.info(
    { url, genevePort: opts.genevePort, policy: store.current?.bundle.version ?? null },
    'appliance started',
  )
  const handle: ApplianceHandle = {
    store,
    metrics,
    control: control!,
    url,
    isDraining: () => draining,
    drain,
    close,
  }
  if (policyFile) handle.policyFile = policyFile
  if (admin) handle.admin = admin
  if (ca) handle.ca = ca
  return handle
}
