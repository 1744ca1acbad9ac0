// Renders the FlowPolicy field reference (docs/flowpolicy-reference.md) from the schema, so the
// documentation cannot drift from what the validator and the CRD enforce.
import { FlowPolicySpec } from './schema.ts'

type Json = Record<string, unknown>

function typeOf(s: Json): string {
  if (s['x-flowgate-int-or-string']) return 'int or string'
  if (s.enum) return (s.enum as string[]).join(' \\| ')
  if (s.type === 'array') return `list of ${typeOf(s.items as Json)}`
  return String(s.type ?? 'any')
}

function limits(s: Json): string {
  const out: string[] = []
  if (s.default !== undefined) out.push(`default ${JSON.stringify(s.default)}`)
  if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`)
  if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`)
  if (s.maxItems !== undefined) out.push(`≤ ${s.maxItems} items`)
  if (s.maxLength !== undefined) out.push(`≤ ${s.maxLength} chars`)
  return out.join(', ')
}

function rows(s: Json, path: string, required: boolean, out: string[]): void {
  const desc = String(s.description ?? (s.type === 'array' ? ((s.items as Json).description ?? '') : ''))
  if (path)
    out.push(
      `| \`${path}\` | ${typeOf(s)} | ${required ? 'yes' : ''} | ${limits(s)} | ${desc.replaceAll('|', '\\|')} |`,
    )
  const obj = s.type === 'array' ? (s.items as Json) : s
  const props = obj.properties as Record<string, Json> | undefined
  if (!props) return
  const req = new Set((obj.required as string[] | undefined) ?? [])
  const prefix = s.type === 'array' ? `${path}[]` : path
  for (const [k, v] of Object.entries(props)) rows(v, prefix ? `${prefix}.${k}` : k, req.has(k), out)
}

export function renderReference(): string {
  const out = [
    '# FlowPolicy field reference (flowgate.io/v1alpha1)',
    '',
    '<!-- Generated from policy/src/schema.ts by `npm run gen:crd`; a test fails when it drifts. -->',
    '',
    'Semantics are in [flowpolicy.md](flowpolicy.md). Every field of `spec`:',
    '',
    '| field | type | required | limits | meaning |',
    '|---|---|---|---|---|',
  ]
  rows(FlowPolicySpec as unknown as Json, '', false, out)
  return `${out.map((l) => l.replace(/\| spec\./, '| ')).join('\n')}\n`
}
