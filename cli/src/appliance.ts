import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { startAppliance } from '../../appliance/src/main.ts'
import { DEFAULT_ACTIONS, type DefaultAction } from '../../policy/src/schema.ts'
import type { Command } from './main.ts'

const int = (name: string, v: string | undefined, dflt: number, min: number, max: number): number => {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be a whole number from ${min} to ${max}`)
  return n
}

export const applianceCommand: Command = {
  name: 'appliance',
  summary: 'run the appliance standalone: Geneve from a GWLB (or the test stand-in), policies from a file',
  usage: [
    'flowgate appliance (--policies FILE | --admin-token-file FILE --state-dir DIR) [options]',
    '',
    '  --policies FILE          standalone: FlowPolicies from a multi-document YAML file, reloaded on change and SIGHUP',
    '  --admin-token-file FILE  operator-managed: bearer token(s) for the admin API (PUT /v1/config), one per line',
    '  --state-dir DIR          where the last good bundle is kept across restarts (with --admin-token-file)',
    '  --admin-port N           admin API port (default 9443, as the operator assumes)',
    '  --admin-tls-cert FILE, --admin-tls-key FILE   serve the admin API over TLS (recommended)',
    '  --geneve-port N          UDP port GWLB sends Geneve to (default 6081)',
    '  --http-port N            /healthz, /readyz, /livez, /metrics (default 8080)',
    '  --bind ADDR              address to bind (default 0.0.0.0)',
    '  --drain-seconds N        on SIGTERM, keep serving existing flows this long (default 300)',
    '  --fleet-default ACTION   Allow | Deny | Reject for flows no policy decides (default Allow; standalone)',
    '  --io auto|native|dgram   packet I/O backend (default auto: native, else dgram)',
    '  --log-level LEVEL        pino level (default info)',
  ].join('\n'),
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        policies: { type: 'string' },
        'geneve-port': { type: 'string' },
        'http-port': { type: 'string' },
        bind: { type: 'string' },
        'drain-seconds': { type: 'string' },
        'fleet-default': { type: 'string' },
        io: { type: 'string' },
        'log-level': { type: 'string' },
        'state-dir': { type: 'string' },
        'admin-port': { type: 'string' },
        'admin-token-file': { type: 'string' },
        'admin-tls-cert': { type: 'string' },
        'admin-tls-key': { type: 'string' },
      },
    })
    const fleetDefault = values['fleet-default'] ?? 'Allow'
    if (!DEFAULT_ACTIONS.includes(fleetDefault as DefaultAction)) {
      console.error(`flowgate appliance: --fleet-default must be one of ${DEFAULT_ACTIONS.join(', ')}`)
      return 2
    }
    const managed = values['admin-token-file'] !== undefined
    if (!values.policies === !managed) {
      console.error(
        `flowgate appliance: give either --policies FILE (standalone) or --admin-token-file FILE with --state-dir DIR (operator-managed)\nUsage: ${this.usage}`,
      )
      return 2
    }
    if (managed && !values['state-dir']) {
      console.error('flowgate appliance: --admin-token-file needs --state-dir DIR for the last good bundle')
      return 2
    }
    if (!values['admin-tls-cert'] !== !values['admin-tls-key']) {
      console.error('flowgate appliance: --admin-tls-cert and --admin-tls-key go together')
      return 2
    }
    const io = values.io ?? 'auto'
    if (io !== 'auto' && io !== 'native' && io !== 'dgram') {
      console.error('flowgate appliance: --io must be auto, native or dgram')
      return 2
    }
    let genevePort: number
    let httpPort: number
    let drainSeconds: number
    let adminPort: number
    try {
      adminPort = int('admin-port', values['admin-port'], 9443, 0, 65535)
      genevePort = int('geneve-port', values['geneve-port'], 6081, 1, 65535)
      httpPort = int('http-port', values['http-port'], 8080, 0, 65535)
      drainSeconds = int('drain-seconds', values['drain-seconds'], 300, 0, 6000)
    } catch (err) {
      console.error(`flowgate appliance: ${(err as Error).message}`)
      return 2
    }
    const logger = pino({ name: 'flowgate-appliance', level: values['log-level'] ?? 'info' })
    const { gwlbDataplane } = await import('../../appliance/src/dataplane/gwlb-dataplane.ts')
    const handle = await startAppliance({
      ...(values.policies ? { policies: values.policies } : {}),
      ...(managed
        ? {
            admin: {
              port: adminPort,
              tokenFile: values['admin-token-file']!,
              stateDir: values['state-dir']!,
              ...(values['admin-tls-cert']
                ? { tlsCert: values['admin-tls-cert'], tlsKey: values['admin-tls-key']! }
                : {}),
            },
          }
        : {}),
      genevePort,
      httpPort,
      bind: values.bind ?? '0.0.0.0',
      drainSeconds,
      fleetDefault: fleetDefault as DefaultAction,
      dataplane: gwlbDataplane({ io }),
      logger,
    })
    process.on('SIGHUP', () => void handle.policyFile?.reload())
    // SIGTERM starts the drain (health fails, flows keep flowing); a second one stops at once.
    let terms = 0
    const onTerm = (sig: string) => {
      terms++
      if (terms > 1) {
        logger.warn({ signal: sig }, 'second signal: stopping without waiting for the drain')
        void handle.close().then(() => process.exit(0))
        return
      }
      void handle.drain().then(() => process.exit(0))
    }
    process.on('SIGTERM', () => onTerm('SIGTERM'))
    process.on('SIGINT', () => onTerm('SIGINT'))
    return new Promise<number>(() => {}) // runs until a signal ends the process
  },
}
