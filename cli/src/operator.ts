import { pino } from 'pino'
import { runOperator } from '../../operator/src/main.ts'
import { OPERATOR_USAGE, parseOperatorArgs } from '../../operator/src/options.ts'
import type { Command } from './main.ts'

export const operatorCommand: Command = {
  name: 'operator',
  summary: 'run the operator: FlowPolicies → bundle → appliances, status, GWLB targets, leader election',
  usage: OPERATOR_USAGE,
  async run(args) {
    let options: ReturnType<typeof parseOperatorArgs>
    try {
      options = parseOperatorArgs(args)
    } catch (err) {
      console.error(`flowgate operator: ${(err as Error).message}\n\nUsage: ${OPERATOR_USAGE}`)
      return 2
    }
    const running = await runOperator({
      ...options,
      logger: pino({ name: 'flowgate-operator' }),
      handleSignals: true,
    })
    await running.stopped
    return 0
  },
}
