// The flowgate command line. Subcommands register here; each lives in its own module.
import { applianceCommand } from './appliance.ts'
import { caCommand } from './ca.ts'
import { captureCommand } from './capture.ts'
import { compileCommand } from './compile.ts'
import { demoCommand } from './demo.ts'
import { operatorCommand } from './operator.ts'
import { rulesCommand } from './rules.ts'
import { validateCommand } from './validate.ts'

export interface Command {
  name: string
  summary: string
  usage: string
  run(args: string[]): Promise<number>
}

const commands: Command[] = [
  validateCommand,
  compileCommand,
  applianceCommand,
  operatorCommand,
  caCommand,
  rulesCommand,
  captureCommand,
  demoCommand,
]

export function helpText(): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'flowgate — traffic inspection for AWS Gateway Load Balancer',
    '',
    'Usage: flowgate <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run "flowgate <command> --help" for a command\'s options.',
  ].join('\n')
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(helpText())
    return name ? 0 : 2
  }
  const cmd = commands.find((c) => c.name === name)
  if (!cmd) {
    console.error(`flowgate: unknown command "${name}"\n\n${helpText()}`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${cmd.summary}\n\nUsage: ${cmd.usage}`)
    return 0
  }
  return cmd.run(rest)
}
