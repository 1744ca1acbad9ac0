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
  usage:
    'flowgate appliance --policies FILE [--geneve-port 6081] [--http-port 8080] [--bind 0.0.0.0] ' +
    '[--drain-seconds 300] [--fleet-default Allow|Deny|Reject] [--io fast|dgram] [--log-level info]',
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
      },
    })
    const fleetDefault = values['fleet-default'] ?? 'Allow'
    if (!DEFAULT_ACTIONS.includes(fleetDefault as DefaultAction)) {
      console.error(`flowgate appliance: --fleet-default must be one of ${DEFAULT_ACTIONS.join(', ')}`)
      return 2
    }
    if (!values.policies) {
      console.error(
        `flowgate appliance: --policies FILE is required in standalone mode\nUsage: ${this.usage}`,
      )
      return 2
    }
    let genevePort: number
    let httpPort: number
    let drainSeconds: number
    try {
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
      policies: values.policies,
      genevePort,
      httpPort,
      bind: values.bind ?? '0.0.0.0',
      drainSeconds,
      fleetDefault: fleetDefault as DefaultAction,
      dataplane: gwlbDataplane({ io: values.io === 'dgram' ? 'dgram' : 'auto' }),
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
