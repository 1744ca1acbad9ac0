// An in-process ELBv2 endpoint speaking the AWS Query protocol (form-encoded POST, XML answers, API
// version 2015-12-01), for the calls the operator makes: DescribeTargetGroups, RegisterTargets,
// DeregisterTargets, DescribeTargetHealth. The real SDK v3 client talks to it through an endpoint
// override. It models what the operator depends on: target states (initial → healthy; deregistered →
// draining for the deregistration delay, then gone), TargetGroupNotFound, and errors in AWS's XML error
// shape, including the Throttling error (HTTP 400) that ELBv2 returns when its per-account bucket runs
// dry, and 5xx.
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

const NS = 'http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/'

export type TargetState = 'initial' | 'healthy' | 'unhealthy' | 'draining' | 'unused' | 'unavailable'

interface Target {
  id: string
  port: number
  state: TargetState
  since: number
  timer?: NodeJS.Timeout
}

export interface Elbv2Call {
  action: string
  targets: string[]
  at: number
  status: number
}

export interface Elbv2ServerOptions {
  /** how long a deregistered target stays draining (the target group's deregistration delay) */
  deregistrationDelayMs?: number
  /** how long a newly registered target stays 'initial' before it turns healthy */
  initialMs?: number
}

export class Elbv2Server {
  readonly server: http.Server
  url = ''
  readonly targetGroupArn: string
  readonly calls: Elbv2Call[] = []
  #targets = new Map<string, Target>()
  #faults: { actions: string[] | undefined; kind: 'throttle' | 'server' | 'hang'; count: number }[] = []
  readonly #o: Elbv2ServerOptions

  constructor(o: Elbv2ServerOptions = {}) {
    this.#o = o
    this.targetGroupArn =
      'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/flowgate-appliances/0123456789abcdef'
    this.server = http.createServer((req, res) => void this.#handle(req, res))
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async close(): Promise<void> {
    for (const t of this.#targets.values()) clearTimeout(t.timer)
    this.server.closeAllConnections()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  /** SDK client configuration pointing here, with dummy credentials. */
  clientConfig() {
    return {
      endpoint: this.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
    }
  }

  /** Answer the next `count` calls (of these actions, or any) with Throttling (400). */
  throttle(count: number, actions?: string[]): void {
    this.#faults.push({ actions, kind: 'throttle', count })
  }

  /** Answer the next `count` calls with 503 ServiceUnavailable. */
  fail(count: number, actions?: string[]): void {
    this.#faults.push({ actions, kind: 'server', count })
  }

  clearFaults(): void {
    this.#faults = []
  }

  /** Hold the next `count` calls for 5 s before answering (a stuck connection). */
  hang(count: number, actions?: string[]): void {
    this.#faults.push({ actions, kind: 'hang', count })
  }

  /** Registers a target directly (a stray left by someone else, or state from before a restart). */
  addTarget(id: string, port = 6081, state: TargetState = 'healthy'): void {
    this.#targets.set(`${id}:${port}`, { id, port, state, since: Date.now() })
  }

  /** Targets and their states, sorted by id. */
  targets(): { id: string; port: number; state: TargetState }[] {
    return [...this.#targets.values()]
      .map(({ id, port, state }) => ({ id, port, state }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** Ids of targets in a state that receives new flows (not draining). */
  activeIds(): string[] {
    return this.targets()
      .filter((t) => t.state !== 'draining')
      .map((t) => t.id)
  }

  callsOf(action: string): Elbv2Call[] {
    return this.calls.filter((c) => c.action === action && c.status === 200)
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
    const action = form.get('Action') ?? ''
    const targets = this.#members(form, 'Targets')
    const send = (status: number, xml: string) => {
      this.calls.push({ action, targets: targets.map((t) => t.id), at: Date.now(), status })
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() })
      res.end(xml)
    }
    const error = (status: number, type: string, code: string, message: string) =>
      send(
        status,
        `<ErrorResponse xmlns="${NS}"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      )
    if (req.method !== 'POST' || form.get('Version') !== '2015-12-01')
      return error(400, 'Sender', 'InvalidAction', 'expected a POST with Version=2015-12-01')
    const fault = this.#faults.find((f) => f.count > 0 && (!f.actions || f.actions.includes(action)))
    if (fault) {
      fault.count--
      if (fault.kind === 'throttle') return error(400, 'Sender', 'Throttling', 'Rate exceeded')
      if (fault.kind === 'hang') {
        await new Promise((r) => setTimeout(r, 5000))
        if (res.destroyed) return
      }
      if (fault.kind === 'server')
        return error(503, 'Receiver', 'ServiceUnavailable', 'Service is unavailable')
    }
    const arn = form.get('TargetGroupArn')
    const ok = (result: string) =>
      send(
        200,
        `<${action}Response xmlns="${NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
      )
    switch (action) {
      case 'DescribeTargetGroups': {
        const arns = this.#list(form, 'TargetGroupArns')
        if (arns.length && !arns.includes(this.targetGroupArn))
          return error(400, 'Sender', 'TargetGroupNotFound', `Target groups '${arns.join(', ')}' not found`)
        return ok(
          `<TargetGroups><member><TargetGroupArn>${this.targetGroupArn}</TargetGroupArn><TargetGroupName>flowgate-appliances</TargetGroupName><Protocol>GENEVE</Protocol><Port>6081</Port><VpcId>vpc-0123456789abcdef0</VpcId><TargetType>ip</TargetType><HealthCheckProtocol>HTTP</HealthCheckProtocol><HealthCheckPort>8080</HealthCheckPort><HealthCheckPath>/healthz</HealthCheckPath></member></TargetGroups>`,
        )
      }
      case 'RegisterTargets':
      case 'DeregisterTargets':
      case 'DescribeTargetHealth': {
        if (arn !== this.targetGroupArn)
          return error(400, 'Sender', 'TargetGroupNotFound', `Target groups '${arn}' not found`)
        if (action === 'DescribeTargetHealth') {
          const body = [...this.#targets.values()]
            .filter((t) => !targets.length || targets.some((q) => q.id === t.id))
            .map(
              (t) =>
                `<member><Target><Id>${t.id}</Id><Port>${t.port}</Port></Target><HealthCheckPort>8080</HealthCheckPort><TargetHealth><State>${t.state}</State>${t.state === 'draining' ? '<Reason>Target.DeregistrationInProgress</Reason>' : ''}</TargetHealth></member>`,
            )
            .join('')
          return ok(`<TargetHealthDescriptions>${body}</TargetHealthDescriptions>`)
        }
        if (!targets.length) return error(400, 'Sender', 'ValidationError', 'Targets must not be empty')
        for (const t of targets) {
          if (!/^(10\.|127\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(t.id))
            return error(
              400,
              'Sender',
              'InvalidTarget',
              `The IP address '${t.id}' is not a valid private address`,
            )
        }
        for (const t of targets) {
          const key = `${t.id}:${t.port}`
          const cur = this.#targets.get(key)
          if (action === 'RegisterTargets') this.#register(key, t.id, t.port, cur)
          else if (cur && cur.state !== 'draining') this.#deregister(key, cur)
        }
        return ok('')
      }
      default:
        return error(400, 'Sender', 'InvalidAction', `unsupported action ${action}`)
    }
  }

  #register(key: string, id: string, port: number, cur: Target | undefined): void {
    if (cur && cur.state !== 'draining') return
    clearTimeout(cur?.timer)
    const t: Target = { id, port, state: 'initial', since: Date.now() }
    this.#targets.set(key, t)
    t.timer = setTimeout(() => {
      if (this.#targets.get(key) === t) t.state = 'healthy'
    }, this.#o.initialMs ?? 50)
  }

  #deregister(key: string, t: Target): void {
    clearTimeout(t.timer)
    t.state = 'draining'
    t.since = Date.now()
    t.timer = setTimeout(() => {
      if (this.#targets.get(key) === t) this.#targets.delete(key)
    }, this.#o.deregistrationDelayMs ?? 300)
  }

  #list(form: URLSearchParams, name: string): string[] {
    const out: string[] = []
    for (let i = 1; i <= 1000; i++) {
      const v = form.get(`${name}.member.${i}`)
      if (v === null) break
      out.push(v)
    }
    return out
  }

  #members(form: URLSearchParams, name: string): { id: string; port: number }[] {
    const out: { id: string; port: number }[] = []
    for (let i = 1; i <= 1000; i++) {
      const id = form.get(`${name}.member.${i}.Id`)
      if (id === null) break
      out.push({ id, port: Number(form.get(`${name}.member.${i}.Port`) ?? 0) })
    }
    return out
  }
}
