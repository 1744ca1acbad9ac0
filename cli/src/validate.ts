import { parseArgs } from 'node:util'
import type { Command } from './main.ts'
import { checkPolicyFiles } from './policy-files.ts'

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check FlowPolicy files; print every error as file:line:field: message',
  usage: 'flowgate validate FILE... [--quiet]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { quiet: { type: 'boolean', short: 'q' } },
    })
    if (!positionals.length) {
      console.error(`flowgate validate: name at least one file\nUsage: ${this.usage}`)
      return 2
    }
    const r = await checkPolicyFiles(positionals)
    for (const w of r.warnings) console.error(w)
    for (const e of r.errors) console.error(e)
    if (r.errors.length) {
      console.error(`${r.errors.length} error${r.errors.length === 1 ? '' : 's'}`)
      return 1
    }
    if (!values.quiet) console.log(`${r.compiled.policies.length} policies valid`)
    return 0
  },
}
