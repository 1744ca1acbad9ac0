// Field-precise errors shared by the validator, the bundle loader and the CLI.

export const ErrorCodes = {
  schema: 'FG_ERR_SCHEMA',
  semantic: 'FG_ERR_POLICY',
  duplicate: 'FG_ERR_DUPLICATE',
  script: 'FG_ERR_SCRIPT',
  bundle: 'FG_ERR_BUNDLE',
  parse: 'FG_ERR_PARSE',
} as const
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export interface FieldError {
  code: ErrorCode
  /** dotted path with [index] for arrays, e.g. spec.rules[2].when.ports[0]; '' for the whole object */
  path: string
  message: string
}

export function formatFieldError(e: FieldError): string {
  return e.path ? `${e.path}: ${e.message}` : e.message
}

/** "/spec/rules/2/when" → "spec.rules[2].when" */
export function pointerToPath(pointer: string): string {
  if (!pointer) return ''
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg
  }
  return out
}

/** "spec.rules[2].when" → ["spec", "rules", 2, "when"], for locating a field in a YAML document. */
export function pathToSegments(path: string): (string | number)[] {
  const out: (string | number)[] = []
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (m[2] !== undefined) out.push(Number(m[2]))
    else if (m[1] !== undefined) out.push(m[1])
  }
  return out
}

export class FlowgateError extends Error {
  readonly code: ErrorCode
  readonly errors: FieldError[]
  constructor(code: ErrorCode, message: string, errors: FieldError[] = []) {
    super(message)
    this.name = 'FlowgateError'
    this.code = code
    this.errors = errors
  }
}
