// The appliance's admin API, as a fastify plugin the appliance mounts:
//   PUT /v1/config          body: a ConfigBundle → verified, applied atomically, persisted
//   GET /v1/config/version  → { version, appliedAt } of the bundle running now
//   GET /v1/rule-usage      → { bundleVersion, rules: [{ policy, rule, hits, lastHit }] }: hits per rule of
//                             the running bundle since this process started (rule null: defaultAction)
//   GET /v1/capture?filter=&seconds=&maxBytes=  → a live pcapng stream of inner packets with the TLS
//                             secrets of intercepted flows (capture/http.ts)
//   GET /v1/har?seconds=&maxEntries=  → a live HAR 1.2 document of the exchanges of policies with
//                             spec.har (visibility/har-http.ts)
// A standalone appliance (policies from a file) serves the same API but for configuration: PUT /v1/config
// is refused with 409, and the version is the file's.
// Authentication: a bearer token from a mounted Secret file (tokens.ts), compared in constant time.
// Why a bearer token and not mTLS: the token rotates by editing one Secret, which kubelet propagates to
// every pod with no restart and no certificate authority for the operator to run; the server's TLS (the
// appliance's serving certificate) still protects it on the wire. mTLS would need the operator to issue
// and rotate a client certificate per pod and the appliance to reload its TLS context — more moving
// parts for the same guarantee here (one caller, the operator).
// Missing credentials → 401, wrong credentials → 403, invalid bundle → 422 with the field errors and the
// old configuration kept.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { type ConfigBundle, verifyBundle } from '../../../policy/src/bundle.ts'
import { FlowgateError } from '../../../policy/src/errors.ts'
import type { CheckedPolicy } from '../../../policy/src/validate.ts'
import { serveCapture } from '../capture/http.ts'
import type { CaptureTap } from '../capture/tap.ts'
import type { RuleUsageSource } from '../control/metrics.ts'
import { serveHar } from '../visibility/har-http.ts'
import type { HarHub } from '../visibility/har-hub.ts'
import { loadState, prepareState } from './state.ts'
import type { TokenFile } from './tokens.ts'

export const AdminErrorCodes = {
  unauthenticated: 'FG_ERR_AUTH',
  forbidden: 'FG_ERR_FORBIDDEN',
  bundle: 'FG_ERR_BUNDLE',
  apply: 'FG_ERR_APPLY',
  state: 'FG_ERR_STATE',
  unavailable: 'FG_ERR_UNAVAILABLE',
  conflict: 'FG_ERR_CONFLICT',
} as const

export type ApplyFn = (bundle: ConfigBundle, policies: CheckedPolicy[]) => void | Promise<void>

export interface AdminApiOptions {
  tokens: TokenFile
  /** where the last good bundle is kept across restarts (operator-managed) */
  stateDir?: string
  /**
   * standalone: the policy comes from this file, so configuration pushes are refused (409) and `running`
   * says which version is in force; stateDir is then not used
   */
  policiesFile?: string
  running?: () => AdminState
  /** swaps the running configuration; throwing keeps the old one */
  apply: ApplyFn
  /** largest accepted bundle, bytes */
  bodyLimit?: number
  /** load and apply the persisted bundle while the plugin registers (default true) */
  restore?: boolean
  /** the packet path's rule hit counters; undefined until it is up */
  ruleUsage?: () => RuleUsageSource | undefined
  /** the packet path's live captures; undefined until it is up */
  capture?: () => CaptureTap | undefined
  /** the packet path's HAR entries; undefined until it is up */
  har?: () => HarHub | undefined
}

/** GET /v1/rule-usage */
export interface RuleUsageReport {
  bundleVersion: string | null
  rules: { policy: string; rule: string | null; hits: number; lastHit: string | null }[]
}

export interface AdminState {
  version: string | null
  appliedAt: string | null
}

const BEARER = /^Bearer\s+(\S+)\s*$/i

export async function adminApi(app: FastifyInstance, o: AdminApiOptions): Promise<void> {
  const pushed: AdminState = { version: null, appliedAt: null }
  const fromFile = o.policiesFile !== undefined
  if (!fromFile && o.stateDir === undefined) throw new Error('the admin API needs stateDir or policiesFile')
  const state = (): AdminState => (fromFile ? (o.running?.() ?? pushed) : pushed)
  // One change at a time, so "apply then persist" of two PUTs never interleaves.
  let chain: Promise<unknown> = Promise.resolve()

  if (!fromFile && o.restore !== false) {
    try {
      const saved = await loadState(o.stateDir!)
      if (saved) {
        await o.apply(saved.bundle, saved.policies)
        pushed.version = saved.bundle.version
        pushed.appliedAt = new Date().toISOString()
        app.log.info({ version: saved.bundle.version }, 'restored the last good bundle')
      }
    } catch (err) {
      // A corrupt state file must not keep the appliance down: it waits for the operator's push.
      app.log.error({ err, code: AdminErrorCodes.state }, 'could not restore the persisted bundle')
    }
  }

  function authenticate(req: FastifyRequest, reply: FastifyReply): boolean {
    const header = req.headers.authorization
    const m = header ? BEARER.exec(header) : null
    if (!o.tokens.configured()) {
      void reply
        .code(503)
        .send({ code: AdminErrorCodes.unauthenticated, message: 'no admin token configured' })
      return false
    }
    if (!m) {
      void reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="flowgate-admin"')
        .send({ code: AdminErrorCodes.unauthenticated, message: 'a bearer token is required' })
      return false
    }
    if (!o.tokens.accepts(m[1]!)) {
      void reply.code(403).send({ code: AdminErrorCodes.forbidden, message: 'the token is not accepted' })
      return false
    }
    return true
  }

  app.get('/v1/config/version', async (req, reply) => {
    if (!authenticate(req, reply)) return reply
    return { ...state() }
  })

  app.get('/v1/rule-usage', async (req, reply) => {
    if (!authenticate(req, reply)) return reply
    const usage = o.ruleUsage?.()
    if (!usage) {
      return reply
        .code(503)
        .send({ code: AdminErrorCodes.unavailable, message: 'the packet path is not running yet' })
    }
    const report: RuleUsageReport = {
      bundleVersion: state().version,
      rules: usage.snapshot().map((u) => ({
        policy: u.policy,
        rule: u.rule,
        hits: u.hits,
        lastHit: u.lastHit === null ? null : new Date(u.lastHit).toISOString(),
      })),
    }
    return report
  })

  // Carries TLS secrets of intercepted flows: the same token as configuration, never unauthenticated.
  app.get('/v1/capture', async (req, reply) => {
    if (!authenticate(req, reply)) return reply
    return serveCapture(req, reply, o.capture?.())
  })

  // The same token: HAR entries hold request and response heads and bodies (secrets redacted).
  app.get('/v1/har', async (req, reply) => {
    if (!authenticate(req, reply)) return reply
    return serveHar(req, reply, o.har?.())
  })

  app.put('/v1/config', { bodyLimit: o.bodyLimit ?? 16 * 1024 * 1024 }, async (req, reply) => {
    if (!authenticate(req, reply)) return reply
    if (fromFile) {
      return reply.code(409).send({
        code: AdminErrorCodes.conflict,
        message: `policies come from a file on this appliance (--policies ${o.policiesFile}); edit the file instead`,
      })
    }
    const stateDir = o.stateDir!
    let verified: ReturnType<typeof verifyBundle>
    try {
      verified = verifyBundle(req.body)
    } catch (err) {
      const e = err as FlowgateError
      return reply.code(422).send({
        code: AdminErrorCodes.bundle,
        message: e.message,
        errors: err instanceof FlowgateError ? e.errors : [],
      })
    }
    const run = chain.then(async () => {
      const { bundle, policies } = verified
      if (pushed.version === bundle.version) return { status: 200, body: { ...pushed, changed: false } }
      const prepared = await prepareState(stateDir, bundle).catch((err) => {
        req.log.error({ err }, 'could not write the state file')
        return undefined
      })
      if (!prepared) {
        return { status: 500, body: { code: AdminErrorCodes.state, message: 'could not persist the bundle' } }
      }
      try {
        await o.apply(bundle, policies)
      } catch (err) {
        await prepared.discard()
        return {
          status: 500,
          body: { code: AdminErrorCodes.apply, message: `apply failed: ${(err as Error).message}` },
        }
      }
      try {
        await prepared.commit()
      } catch (err) {
        // Running the new bundle but could not persist it: report it, the operator will retry; a restart
        // would come back with the previous bundle and be pushed again.
        req.log.error({ err }, 'applied but could not persist the bundle')
      }
      pushed.version = bundle.version
      pushed.appliedAt = new Date().toISOString()
      return { status: 200, body: { ...pushed, changed: true } }
    })
    chain = run.catch(() => undefined)
    const r = await run
    return reply.code(r.status).send(r.body)
  })
}
