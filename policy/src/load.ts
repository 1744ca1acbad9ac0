// Loads FlowPolicy documents from multi-document YAML (or JSON) text, keeping where each came from so
// errors can point at file:line, as compilers do. Used by the CLI and the standalone appliance.
import { readFile } from 'node:fs/promises'
import { type Document, isNode, LineCounter, parseAllDocuments } from 'yaml'
import { ErrorCodes, type FieldError, pathToSegments } from './errors.ts'

export interface LoadedDoc {
  /** the parsed value, for validation */
  value: unknown
  /** 1-based index of the document in its file */
  index: number
  /** line (1-based) of the field at `path`, or of the nearest enclosing field that exists */
  lineOf(path: string): number
}

export interface LoadResult {
  docs: LoadedDoc[]
  /** YAML syntax errors and documents that are not FlowPolicies */
  errors: (FieldError & { line: number })[]
}

const EMPTY_LINE = () => 1

export function loadPolicyText(text: string): LoadResult {
  const lineCounter = new LineCounter()
  const parsed = parseAllDocuments(text, { lineCounter, prettyErrors: false })
  const docs: LoadedDoc[] = []
  const errors: LoadResult['errors'] = []
  const list = Array.isArray(parsed) ? parsed : [parsed as unknown as Document]
  list.forEach((doc, i) => {
    for (const e of doc.errors) {
      const line = lineCounter.linePos(e.pos[0]).line
      errors.push({ code: ErrorCodes.parse, path: '', message: e.message.split('\n')[0]!, line })
    }
    if (doc.errors.length) return
    const value: unknown = doc.toJS({ maxAliasCount: 100 })
    if (value === null || value === undefined) return // an empty document ("---" at the end)
    const lineOf = (path: string) => {
      const segs = pathToSegments(path)
      for (let n = segs.length; n >= 0; n--) {
        const node = doc.getIn(segs.slice(0, n), true)
        if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line
      }
      return doc.contents?.range ? lineCounter.linePos(doc.contents.range[0]).line : EMPTY_LINE()
    }
    const v = value as { kind?: unknown; items?: unknown }
    if ((v.kind === 'List' || v.kind === 'FlowPolicyList') && Array.isArray(v.items)) {
      // `kubectl get flowpolicies -o yaml` output: validate each item where it stands.
      v.items.forEach((item, j) => {
        docs.push({
          value: item,
          index: i + 1,
          lineOf: (p) => lineOf(p ? `items[${j}].${p}` : `items[${j}]`),
        })
      })
      return
    }
    docs.push({ value, index: i + 1, lineOf })
  })
  return { docs, errors }
}

export async function loadPolicyFile(path: string): Promise<LoadResult> {
  return loadPolicyText(await readFile(path, 'utf8'))
}
