// Reads and validates policy files for the CLI, formatting every problem as file:line:field: message.
import { type CompileResult, compile } from '../../policy/src/bundle.ts'
import { formatFieldError } from '../../policy/src/errors.ts'
import { loadPolicyFile } from '../../policy/src/load.ts'
import type { DefaultAction } from '../../policy/src/schema.ts'

export interface FileCheck {
  compiled: CompileResult
  errors: string[]
  warnings: string[]
  /** policy name → where it came from */
  origins: string[]
}

export async function checkPolicyFiles(files: string[], fleetDefault?: DefaultAction): Promise<FileCheck> {
  const errors: string[] = []
  const warnings: string[] = []
  const values: unknown[] = []
  const where: { file: string; lineOf(path: string): number }[] = []
  for (const file of files) {
    let loaded: Awaited<ReturnType<typeof loadPolicyFile>>
    try {
      loaded = await loadPolicyFile(file)
    } catch (err) {
      errors.push(`${file}: ${(err as Error).message}`)
      continue
    }
    for (const e of loaded.errors) errors.push(`${file}:${e.line}: ${e.message}`)
    if (!loaded.docs.length && !loaded.errors.length) errors.push(`${file}: no FlowPolicy documents`)
    for (const d of loaded.docs) {
      values.push(d.value)
      where.push({ file, lineOf: d.lineOf })
    }
  }
  const compiled = compile(values, fleetDefault ? { fleetDefault } : {})
  compiled.results.forEach((r, i) => {
    const w = where[i]!
    for (const e of r.errors) errors.push(`${w.file}:${w.lineOf(e.path)}: ${formatFieldError(e)}`)
    for (const e of r.warnings)
      warnings.push(`${w.file}:${w.lineOf(e.path)}: warning: ${formatFieldError(e)}`)
  })
  return { compiled, errors, warnings, origins: where.map((w) => w.file) }
}
