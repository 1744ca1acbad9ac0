// Flags and environment for `flowgate operator` → OperatorOptions. Flags win over the environment; the
// environment is how the Helm chart configures the Deployment (downward API for the namespace and the
// pod name, chart values for the target group and region).
import { readFileSync } from 'node:fs'
import { DEFAULT_ACTIONS, type DefaultAction } from '../../policy/src/schema.ts'
import { OperatorError, OperatorErrorCodes } from './errors.ts'
import type { OperatorOptions } from './main.ts'

export const OPERATOR_USAGE = `flowgate operator [options]

  --namespace NS             appliance pods and the Lease live here   (env POD_NAMESPACE)
  --selector LABELS          appliance pod label selector             (default app.kubernetes.io/name=flowgate-appliance)
  --token-file PATH          admin API bearer token(s), a mounted Secret (env FLOWGATE_TOKEN_FILE)
  --admin-port N             admin port when a pod declares no "admin" container port (default 9443)
  --admin-scheme https|http  (default https)
  --admin-ca PATH            CA bundle of the appliances' serving certificates (env FLOWGATE_ADMIN_CA)
  --admin-server-name NAME   name the appliances' certificates are checked against (they are dialled by IP)
  --target-group-arn ARN     GWLB target group; omit to leave targets alone (env FLOWGATE_TARGET_GROUP_ARN)
  --region REGION            AWS region (env AWS_REGION)
  --fleet-default Allow|Deny for flows no policy decides (default Allow)
  --identity NAME            Lease holder identity (env POD_NAME; default hostname_pid)
  --lease-name NAME          (default flowgate-operator)
  --events-namespace NS      where Events about (cluster-scoped) FlowPolicies go (default default)
  --listen HOST:PORT         metrics and health server (default 0.0.0.0:8080)
  --usage-interval-seconds N read rule usage from the appliances into status.rules this often (default 30; 0: off)`

const FLAGS = new Set([
  'namespace',
  'selector',
  'token-file',
  'admin-port',
  'admin-scheme',
  'admin-ca',
  'admin-server-name',
  'events-namespace',
  'target-group-arn',
  'region',
  'fleet-default',
  'identity',
  'lease-name',
  'listen',
  'usage-interval-seconds',
])

function fail(message: string): never {
  throw new OperatorError(OperatorErrorCodes.config, message)
}

export function parseOperatorArgs(args: string[], env: NodeJS.ProcessEnv = process.env): OperatorOptions {
  const flags = new Map<string, string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith('--')) fail(`unexpected argument "${arg}"`)
    const eq = arg.indexOf('=')
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2)
    if (!FLAGS.has(name)) fail(`unknown option --${name}`)
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i]
    if (value === undefined) fail(`--${name} needs a value`)
    flags.set(name, value)
  }
  const get = (flag: string, envName?: string) => flags.get(flag) ?? (envName ? env[envName] : undefined)
  const namespace = get('namespace', 'POD_NAMESPACE') ?? fail('--namespace (or POD_NAMESPACE) is required')
  const tokenFile = get('token-file', 'FLOWGATE_TOKEN_FILE') ?? fail('--token-file is required')
  const o: OperatorOptions = { namespace, tokenFile, handleSignals: true }
  const selector = get('selector')
  if (selector) o.applianceSelector = selector
  const port = get('admin-port')
  if (port !== undefined) {
    const n = Number(port)
    if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`--admin-port: "${port}" is not a port`)
    o.adminPort = n
  }
  const scheme = get('admin-scheme')
  if (scheme !== undefined) {
    if (scheme !== 'https' && scheme !== 'http') fail('--admin-scheme must be https or http')
    o.adminScheme = scheme
  }
  const ca = get('admin-ca', 'FLOWGATE_ADMIN_CA')
  if (ca) o.adminCa = readFileSync(ca)
  const serverName = get('admin-server-name')
  if (serverName) o.adminServerName = serverName
  const eventsNs = get('events-namespace')
  if (eventsNs) o.eventsNamespace = eventsNs
  const arn = get('target-group-arn', 'FLOWGATE_TARGET_GROUP_ARN')
  if (arn) {
    if (!/^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:targetgroup\/[\w-]+\/[0-9a-f]+$/.test(arn))
      fail(`--target-group-arn: "${arn}" is not a target group ARN`)
    o.targetGroupArn = arn
  }
  const region = get('region', 'AWS_REGION') ?? arn?.split(':')[3]
  if (region) o.region = region
  const fleetDefault = get('fleet-default')
  if (fleetDefault !== undefined) {
    if (!DEFAULT_ACTIONS.includes(fleetDefault as DefaultAction))
      fail(`--fleet-default must be one of ${DEFAULT_ACTIONS.join(', ')}`)
    o.fleetDefault = fleetDefault as DefaultAction
  }
  const identity = get('identity', 'POD_NAME')
  if (identity) o.identity = identity
  const lease = get('lease-name')
  if (lease) o.leaseName = lease
  const usage = get('usage-interval-seconds')
  if (usage !== undefined) {
    const n = Number(usage)
    if (!Number.isInteger(n) || n < 0 || n > 86_400)
      fail(`--usage-interval-seconds: "${usage}" is not a whole number of seconds from 0 to 86400`)
    // below 5 s the operator would read every appliance more often than anyone looks at status
    if (n > 0 && n < 5) fail('--usage-interval-seconds: at least 5 (or 0 to turn usage off)')
    o.usageIntervalMs = n * 1000
  }
  const listen = get('listen') ?? '0.0.0.0:8080'
  const m = /^(.*):(\d+)$/.exec(listen) ?? fail(`--listen: "${listen}" is not HOST:PORT`)
  o.listen = { host: m[1] || '0.0.0.0', port: Number(m[2]) }
  return o
}
