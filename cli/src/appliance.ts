import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { startAppliance } from '../../appliance/src/main.ts'
import { APPLIANCE_USAGE, type ApplianceCliOptions, parseApplianceArgs } from '../../appliance/src/options.ts'
import type { Command } from './main.ts'

export const applianceCommand: Command = {
  name: 'appliance',
  summary:
    'run the appliance: Geneve from a GWLB (or the test stand-in), policies from a file or the operator',
  usage: APPLIANCE_USAGE,
  async run(args) {
    let o: ApplianceCliOptions
    try {
      o = parseApplianceArgs(args)
    } catch (err) {
      console.error(`flowgate appliance: ${(err as Error).message}\n\nUsage: ${APPLIANCE_USAGE}`)
      return 2
    }
    const logger = pino({ name: 'flowgate-appliance', level: o.logLevel })
    const { visibleGwlbDataplane } = await import('../../appliance/src/visibility/dataplane.ts')
    const handle = await startAppliance({
      ...(o.policies ? { policies: o.policies } : {}),
      ...(o.admin ? { admin: o.admin } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      genevePort: o.genevePort,
      httpPort: o.httpPort,
      bind: o.bind,
      drainSeconds: o.drainSeconds,
      fleetDefault: o.fleetDefault,
      // --upstream-ca: roots trusted for servers the appliance calls as a client: the real servers of
      // intercepted flows and authorizer webhooks.
      dataplane: visibleGwlbDataplane(
        {
          io: o.io,
          flowCapacity: o.flowCapacity,
          tcpIdleMs: o.tcpIdleSeconds * 1000,
          otherIdleMs: o.idleSeconds * 1000,
          ...(o.upstreamCa ? { upstreamCa: readFileSync(o.upstreamCa) } : {}),
          // IPFIX alone: a flow log without JSON output ('') decides when records are due
          ...(o.flowLog || o.ipfix
            ? { flowLog: { target: o.flowLog ?? '', intervalMs: o.flowLogIntervalSeconds * 1000 } }
            : {}),
        },
        { ...(o.ipfix ? { ipfix: o.ipfix } : {}), ...(o.har ? { har: o.har } : {}) },
      ),
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
