// The operator's client for an appliance's admin API (appliance/src/admin): GET the running version,
// PUT a bundle, GET the rule hit counters. Plain node:http/https with keep-alive agents (one connection per appliance is reused
// across pushes) and a per-request timeout. A 401/403 is retried once with the previous token, which
// covers a rotation the appliance has not seen yet (TokenFile keeps the token it replaced).
import http from 'node:http'
import https from 'node:https'
import type { RuleUsageReport } from '../../appliance/src/admin/plugin.ts'
import type { TokenFile } from '../../appliance/src/admin/tokens.ts'
import type { ConfigBundle } from '../../policy/src/bundle.ts'
import { OperatorError, OperatorErrorCodes } from './errors.ts'

export interface ApplianceClientOptions {
  tokens: TokenFile
  scheme?: 'http' | 'https'
  /** PEM bundle that signs the appliances' serving certificates */
  ca?: string | Buffer
  /** verify the certificate against this name (and send it as SNI) instead of the address dialled */
  serverName?: string
  timeoutMs?: number
}

export interface Endpoint {
  host: string
  port: number
}

export class ApplianceClient {
  readonly #o: ApplianceClientOptions
  readonly #agent: http.Agent

  constructor(o: ApplianceClientOptions) {
    this.#o = o
    this.#agent =
      o.scheme === 'https'
        ? new https.Agent({ keepAlive: true, maxSockets: 2, ...(o.ca ? { ca: o.ca } : {}) })
        : new http.Agent({ keepAlive: true, maxSockets: 2 })
  }

  destroy(): void {
    this.#agent.destroy()
  }

  async version(ep: Endpoint, signal?: AbortSignal): Promise<string | null> {
    const r = await this.#call(ep, 'GET', '/v1/config/version', undefined, signal)
    return (r as { version: string | null }).version
  }

  async push(ep: Endpoint, bundle: ConfigBundle, signal?: AbortSignal): Promise<string> {
    const r = await this.#call(ep, 'PUT', '/v1/config', JSON.stringify(bundle), signal)
    return (r as { version: string }).version
  }

  async ruleUsage(ep: Endpoint, signal?: AbortSignal): Promise<RuleUsageReport> {
    return (await this.#call(ep, 'GET', '/v1/rule-usage', undefined, signal)) as RuleUsageReport
  }

  async #call(ep: Endpoint, method: string, path: string, body: string | undefined, signal?: AbortSignal) {
    const token = this.#o.tokens.token()
    if (!token) throw new OperatorError(OperatorErrorCodes.auth, 'no admin token configured')
    try {
      return await this.#request(ep, method, path, body, token, signal)
    } catch (err) {
      const prev = this.#o.tokens.previousToken()
      const status = (err as OperatorError).status
      if ((status === 401 || status === 403) && prev && prev !== token)
        return await this.#request(ep, method, path, body, prev, signal)
      throw err
    }
  }

  #request(
    ep: Endpoint,
    method: string,
    path: string,
    body: string | undefined,
    token: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const mod = this.#o.scheme === 'https' ? https : http
    return new Promise((resolve, reject) => {
      const req = mod.request(
        {
          host: ep.host,
          port: ep.port,
          method,
          path,
          agent: this.#agent,
          ...(this.#o.serverName ? { servername: this.#o.serverName } : {}),
          timeout: this.#o.timeoutMs ?? 5000,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(body !== undefined
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
              : {}),
          },
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', reject)
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let parsed: unknown
            try {
              parsed = text ? JSON.parse(text) : {}
            } catch {
              parsed = { message: text }
            }
            const status = res.statusCode ?? 0
            if (status >= 200 && status < 300) return resolve(parsed)
            const msg = (parsed as { message?: string }).message ?? text
            reject(
              new OperatorError(
                status === 401 || status === 403 ? OperatorErrorCodes.auth : OperatorErrorCodes.push,
                `${method} ${path} on ${ep.host}:${ep.port}: ${status} ${msg}`,
                { status },
              ),
            )
          })
        },
      )
      req.on('timeout', () => req.destroy(new Error(`timed out after ${this.#o.timeoutMs ?? 5000} ms`)))
      req.on('error', (err) =>
        reject(
          err instanceof OperatorError
            ? err
            : new OperatorError(
                OperatorErrorCodes.push,
                `${method} ${path} on ${ep.host}:${ep.port}: ${err.message}`,
                {
                  cause: err,
                },
              ),
        ),
      )
      req.end(body)
    })
  }
}
