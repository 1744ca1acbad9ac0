// Static checks for HTTP hook scripts. The operator never runs user code: acorn parses the script and we
// look for the named function among its top-level declarations. Running it is the sandbox's job (issue 5).
import * as acorn from 'acorn'

export type ScriptCheck = { ok: true } | { ok: false; message: string }

// CloudFront Functions runtime 2.0 is ES 2020-ish; a newer syntax level only widens what parses here,
// and the sandbox that runs the script decides the final word.
const ECMA_VERSION = 2022

export function checkHookScript(source: string, functionName: string): ScriptCheck {
  let program: acorn.Program
  try {
    program = acorn.parse(source, { ecmaVersion: ECMA_VERSION, sourceType: 'script', locations: true })
  } catch (err) {
    const e = err as SyntaxError & { loc?: { line: number; column: number } }
    const where = e.loc ? ` (line ${e.loc.line}, column ${e.loc.column + 1})` : ''
    return {
      ok: false,
      message: `script does not compile: ${e.message.replace(/ \(\d+:\d+\)$/, '')}${where}`,
    }
  }
  for (const node of program.body) {
    if (node.type === 'FunctionDeclaration' && node.id?.name === functionName) {
      if (node.async || node.generator) {
        return { ok: false, message: `${functionName} must be a plain synchronous function` }
      }
      return { ok: true }
    }
    if (node.type === 'VariableDeclaration') {
      for (const d of node.declarations) {
        if (d.id.type !== 'Identifier' || d.id.name !== functionName) continue
        const init = d.init
        if (init && (init.type === 'FunctionExpression' || init.type === 'ArrowFunctionExpression')) {
          if (init.async || ('generator' in init && init.generator)) {
            return { ok: false, message: `${functionName} must be a plain synchronous function` }
          }
          return { ok: true }
        }
        return { ok: false, message: `${functionName} is declared but is not a function` }
      }
    }
  }
  return { ok: false, message: `script does not define function ${functionName}(event)` }
}
