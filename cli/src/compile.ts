import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { DEFAULT_ACTIONS, type DefaultAction } from '../../policy/src/schema.ts'
import type { Command } from './main.ts'
import { checkPolicyFiles } from './policy-files.ts'

export const compileCommand: Command = {
  name: 'compile',
  summary: 'compile FlowPolicy files into one versioned config bundle (JSON)',
  usage: 'flowgate compile FILE... [--out bundle.json] [--fleet-default Allow|Deny|Reject]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, 'fleet-default': { type: 'string' } },
    })
    const fleetDefault = values['fleet-default']
    if (fleetDefault !== undefined && !DEFAULT_ACTIONS.includes(fleetDefault as DefaultAction)) {
      console.error(`flowgate compile: --fleet-default must be one of ${DEFAULT_ACTIONS.join(', ')}`)
      return 2
    }
    if (!positionals.length) {
      console.error(`flowgate compile: name at least one file\nUsage: ${this.usage}`)
      return 2
    }
    const r = await checkPolicyFiles(positionals, fleetDefault as DefaultAction | undefined)
    for (const w of r.warnings) console.error(w)
    for (const e of r.errors) console.error(e)
    // All or nothing here: a bundle built from a subset of what was asked for would surprise.
    if (r.errors.length) {
      console.error(`${r.errors.length} error${r.errors.length === 1 ? '' : 's'}; no bundle written`)
      return 1
    }
    const json = `${JSON.stringify(r.compiled.bundle, null, 2)}\n`
    if (values.out) {
      await writeFile(values.out, json)
      console.error(
        `bundle ${r.compiled.bundle.version}: ${r.compiled.policies.length} policies → ${values.out}`,
      )
    } else process.stdout.write(json)
    return 0
  },
}
