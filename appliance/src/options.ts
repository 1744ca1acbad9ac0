// Flags of `flowgate appliance` → a checked options object. Pure, so the chart's tests can run it on
// the arguments the DaemonSet template renders.
import { parseArgs } from 'node:util'
import { DEFAULT_ACTIONS, type DefaultAction } from '../../policy/src/schema.ts'
import { type IpfixTarget, parseIpfixTarget } from './flowlog/ipfix-exporter.ts'

export const APPLIANCE_USAGE = [
  'flowgate appliance (--policies FILE [--admin-token-file FILE] | --admin-token-file FILE --state-dir DIR) [options]',
  '',
  '  --policies FILE          standalone: FlowPolicies from a multi-document YAML file, reloaded on change and SIGHUP',
  '  --admin-token-file FILE  bearer token(s) for the admin API, one per line; alone: operator-managed (PUT /v1/config);',
  '                           with --policies: capture, rule usage and HAR only (configuration comes from the file)',
  '  --state-dir DIR          where the last good bundle is kept across restarts (operator-managed)',
  '  --admin-port N           admin API port (default 9443, as the operator assumes)',
  '  --admin-tls-cert FILE, --admin-tls-key FILE   serve the admin API over TLS (recommended)',
  '  --ca-cert FILE           the interception CA certificate (PEM), with one of:',
  '  --ca-key FILE              its key (PEM: a mounted Secret), or',
  '  --kms-key-id ID            the AWS KMS key (ECC_NIST_P256) that holds it; --kms-region, --kms-endpoint',
  '  --upstream-ca FILE       extra roots trusted when verifying upstream servers (PEM)',
  '  --geneve-port N          UDP port GWLB sends Geneve to (default 6081)',
  '  --http-port N            /healthz, /readyz, /livez, /metrics (default 8080)',
  '  --bind ADDR              address to bind (default 0.0.0.0)',
  '  --drain-seconds N        on SIGTERM, keep serving existing flows this long (default 300)',
  '  --fleet-default ACTION   Allow | Deny | Reject for flows no policy decides (default Allow; standalone)',
  '  --io auto|native|dgram   packet I/O backend (default auto: native, else dgram)',
  '  --flow-capacity N        flows tracked at most (default 262144)',
  "  --tcp-idle-seconds N     TCP flow idle timeout; match the GWLB's (default 350)",
  '  --idle-seconds N         idle timeout of other flows (default 120)',
  '  --flow-log FILE|-        flow records (JSON lines, VPC Flow Logs v5 field names) to FILE or stdout (default off)',
  '  --flow-log-interval-seconds N   a record per long-lived flow this often (default 60)',
  '  --ipfix HOST:PORT        also export flow records over IPFIX (RFC 7011, UDP) to this collector (port default 4739)',
  '  --har-dir DIR            HAR 1.2 files of the exchanges of policies with spec.har, rotating (default off)',
  '  --har-file-mb N          a HAR file is closed past this size (default 64)',
  '  --har-keep-files N       HAR files kept in --har-dir, oldest deleted first (default 10)',
  '  --log-level LEVEL        pino level (default info)',
].join('\n')

export interface ApplianceCliOptions {
  policies?: string
  /** the admin API; without stateDir (standalone, --policies) it refuses configuration */
  admin?: { port: number; tokenFile: string; stateDir?: string; tlsCert?: string; tlsKey?: string }
  ca?: { cert: string; key?: string; kms?: { keyId: string; region?: string; endpoint?: string } }
  upstreamCa?: string
  genevePort: number
  httpPort: number
  bind: string
  drainSeconds: number
  fleetDefault: DefaultAction
  io: 'auto' | 'native' | 'dgram'
  flowCapacity: number
  tcpIdleSeconds: number
  idleSeconds: number
  /** file path or `-` for stdout */
  flowLog?: string
  flowLogIntervalSeconds: number
  /** IPFIX collector for the flow records */
  ipfix?: IpfixTarget
  /** HAR files of policies with spec.har */
  har?: { dir: string; maxFileBytes: number; keepFiles: number }
  logLevel: string
}

export class ApplianceUsageError extends Error {
  readonly code = 'FG_ERR_USAGE'
}

const fail = (message: string): never => {
  throw new ApplianceUsageError(message)
}

const int = (name: string, v: string | undefined, dflt: number, min: number, max: number): number => {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max)
    fail(`--${name} must be a whole number from ${min} to ${max}`)
  return n
}

export function parseApplianceArgs(args: string[]): ApplianceCliOptions {
  let values: Record<string, string | undefined>
  try {
    const str = { type: 'string' } as const
    values = parseArgs({
      args,
      options: {
        policies: str,
        'geneve-port': str,
        'http-port': str,
        bind: str,
        'drain-seconds': str,
        'fleet-default': str,
        io: str,
        'log-level': str,
        'state-dir': str,
        'admin-port': str,
        'admin-token-file': str,
        'admin-tls-cert': str,
        'admin-tls-key': str,
        'ca-cert': str,
        'ca-key': str,
        'kms-key-id': str,
        'kms-region': str,
        'kms-endpoint': str,
        'upstream-ca': str,
        'flow-capacity': str,
        'tcp-idle-seconds': str,
        'idle-seconds': str,
        'flow-log': str,
        'flow-log-interval-seconds': str,
        ipfix: str,
        'har-dir': str,
        'har-file-mb': str,
        'har-keep-files': str,
      },
    }).values
  } catch (err) {
    return fail((err as Error).message)
  }
  const fleetDefault = values['fleet-default'] ?? 'Allow'
  if (!DEFAULT_ACTIONS.includes(fleetDefault as DefaultAction)) {
    fail(`--fleet-default must be one of ${DEFAULT_ACTIONS.join(', ')}`)
  }
  const tokens = values['admin-token-file'] !== undefined
  if (!values.policies && !tokens) {
    fail(
      'give either --policies FILE (standalone) or --admin-token-file FILE with --state-dir DIR (operator-managed)',
    )
  }
  const managed = tokens && !values.policies
  if (managed && !values['state-dir'])
    fail('--admin-token-file needs --state-dir DIR for the last good bundle')
  if (values.policies && values['state-dir'])
    fail('--state-dir is for operator-managed appliances; with --policies the policy comes from the file')
  if (!values['admin-tls-cert'] !== !values['admin-tls-key'])
    fail('--admin-tls-cert and --admin-tls-key go together')
  const io = values.io ?? 'auto'
  if (io !== 'auto' && io !== 'native' && io !== 'dgram') return fail('--io must be auto, native or dgram')
  const caCert = values['ca-cert']
  const caKey = values['ca-key']
  const kmsKey = values['kms-key-id']
  if (caCert && !caKey === !kmsKey) fail('--ca-cert needs exactly one of --ca-key FILE or --kms-key-id ID')
  if (!caCert && (caKey || kmsKey)) fail('--ca-key and --kms-key-id need --ca-cert FILE')
  if (!kmsKey && (values['kms-region'] || values['kms-endpoint']))
    fail('--kms-region and --kms-endpoint go with --kms-key-id')

  const out: ApplianceCliOptions = {
    genevePort: int('geneve-port', values['geneve-port'], 6081, 1, 65535),
    httpPort: int('http-port', values['http-port'], 8080, 0, 65535),
    bind: values.bind ?? '0.0.0.0',
    drainSeconds: int('drain-seconds', values['drain-seconds'], 300, 0, 6000),
    fleetDefault: fleetDefault as DefaultAction,
    io,
    flowCapacity: int('flow-capacity', values['flow-capacity'], 262_144, 1024, 16_777_216),
    // GWLB's TCP idle timeout is 350 s and configurable from 60 to 6000 s (GWLB.md "Flows").
    tcpIdleSeconds: int('tcp-idle-seconds', values['tcp-idle-seconds'], 350, 60, 6000),
    idleSeconds: int('idle-seconds', values['idle-seconds'], 120, 10, 6000),
    flowLogIntervalSeconds: int(
      'flow-log-interval-seconds',
      values['flow-log-interval-seconds'],
      60,
      1,
      3600,
    ),
    logLevel: values['log-level'] ?? 'info',
  }
  if (values['flow-log'] === '') fail('--flow-log needs a file path, or - for stdout')
  if (values.ipfix !== undefined) {
    try {
      out.ipfix = parseIpfixTarget(values.ipfix)
    } catch (err) {
      fail((err as Error).message)
    }
  }
  if (values['flow-log']) out.flowLog = values['flow-log']
  else if (values['flow-log-interval-seconds'] !== undefined && !out.ipfix)
    fail('--flow-log-interval-seconds goes with --flow-log or --ipfix')
  if (values.policies) out.policies = values.policies
  if (tokens) {
    out.admin = {
      port: int('admin-port', values['admin-port'], 9443, 0, 65535),
      tokenFile: values['admin-token-file']!,
    }
    if (managed) out.admin.stateDir = values['state-dir']!
    if (values['admin-tls-cert']) {
      out.admin.tlsCert = values['admin-tls-cert']
      out.admin.tlsKey = values['admin-tls-key']!
    }
  }
  if (caCert) {
    out.ca = { cert: caCert }
    if (caKey) out.ca.key = caKey
    if (kmsKey) {
      out.ca.kms = { keyId: kmsKey }
      if (values['kms-region']) out.ca.kms.region = values['kms-region']
      if (values['kms-endpoint']) out.ca.kms.endpoint = values['kms-endpoint']
    }
  }
  if (values['upstream-ca']) out.upstreamCa = values['upstream-ca']
  if (values['har-dir'] === '') fail('--har-dir needs a directory')
  if (values['har-dir']) {
    out.har = {
      dir: values['har-dir'],
      maxFileBytes: int('har-file-mb', values['har-file-mb'], 64, 1, 4096) * 1024 * 1024,
      keepFiles: int('har-keep-files', values['har-keep-files'], 10, 1, 10_000),
    }
  } else if (values['har-file-mb'] !== undefined || values['har-keep-files'] !== undefined)
    fail('--har-file-mb and --har-keep-files go with --har-dir')
  return out
}
