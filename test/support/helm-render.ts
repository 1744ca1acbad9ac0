// A renderer for the subset of Go text/template + sprig + Helm that charts/flowgate uses, so `npm test`
// can render and validate the chart with no helm binary (none can be installed here).
//
// Faithful where charts usually go wrong:
// - values from YAML are float64 (Helm reads values.yaml through JSON), template integer literals and
//   int-returning functions (int, add, len) are Go ints: here JS `number` versus `bigint`. `eq 1
//   .Values.x` fails with "incompatible types for comparison" exactly as Helm does, `indent .Values.n`
//   fails with "expected int", and printf "%d" of a float64 prints "%!d(float64=…)".
// - missing map keys evaluate to nil (missingkey=zero) and print as "" (Helm strips "<no value>"); a
//   field of nil is an error ("nil pointer evaluating interface {}.x"), a missing field of a built-in
//   object (.Release.Nme) is an error.
// - {{- / -}} trim all ASCII whitespace; comments; `and`/`or` short-circuit and return an operand;
//   range over maps iterates in sorted key order; variables are scoped to their control structure;
//   `$` is the data the template was executed with.
// - toYaml sorts map keys (sigs.k8s.io/yaml goes through encoding/json) and trims the final newline;
//   `default` treats false, 0, "" and empty collections as unset; `required` fails on nil and "".
// - values: user values deep-merge into the chart's (maps merge, lists replace, null deletes), and the
//   merged values are validated against values.schema.json before anything renders.
// - .Files.Get reads a chart file outside templates/ ("" when there is none), as Helm does.
// Not supported (the chart must not use them; the parser says so): block, break/continue, else with,
// range over integers, tpl, lookup, .Files other than Get, functions not in FUNCS.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { Ajv } from 'ajv'
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml'

export class TemplateError extends Error {
  override name = 'TemplateError'
}

// ------------------------------------------------------------------ lexer

type Tok =
  | { t: 'field'; names: string[] } // .a.b ; names=[] for "."
  | { t: 'var'; name: string; fields: string[] } // $x.a.b ; name "$" for root
  | { t: 'ident'; v: string }
  | { t: 'string'; v: string }
  | { t: 'number'; v: number | bigint }
  | { t: 'bool'; v: boolean }
  | { t: 'nil' }
  | { t: 'pipe' }
  | { t: 'lparen' }
  | { t: 'rparen'; fields: string[] } // ")" optionally followed by .a.b
  | { t: 'declare' }
  | { t: 'assign' }
  | { t: 'comma' }

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y
const FIELDS = /(?:\.[A-Za-z_][A-Za-z0-9_]*)+/y
const NUMBER = /[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?)/y

function fieldsAt(src: string, i: number): { names: string[]; end: number } {
  FIELDS.lastIndex = i
  const m = FIELDS.exec(src)
  if (!m) return { names: [], end: i }
  return { names: m[0].slice(1).split('.'), end: i + m[0].length }
}

function lexAction(src: string, where: string): Tok[] {
  const toks: Tok[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++
      continue
    }
    if (c === '|') {
      toks.push({ t: 'pipe' })
      i++
    } else if (c === '(') {
      toks.push({ t: 'lparen' })
      i++
    } else if (c === ')') {
      const f = fieldsAt(src, i + 1)
      toks.push({ t: 'rparen', fields: f.names })
      i = f.end
    } else if (c === ',') {
      toks.push({ t: 'comma' })
      i++
    } else if (c === ':' && src[i + 1] === '=') {
      toks.push({ t: 'declare' })
      i += 2
    } else if (c === '=') {
      toks.push({ t: 'assign' })
      i++
    } else if (c === '"') {
      let j = i + 1
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1
      if (j >= src.length) throw new TemplateError(`${where}: unterminated quoted string`)
      toks.push({
        t: 'string',
        v: JSON.parse(src.slice(i, j + 1).replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1')),
      })
      i = j + 1
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1)
      if (j < 0) throw new TemplateError(`${where}: unterminated raw quoted string`)
      toks.push({ t: 'string', v: src.slice(i + 1, j) })
      i = j + 1
    } else if (c === '$') {
      IDENT.lastIndex = i + 1
      const m = IDENT.exec(src)
      const name = m ? `$${m[0]}` : '$'
      const f = fieldsAt(src, i + name.length)
      toks.push({ t: 'var', name, fields: f.names })
      i = f.end
    } else if (c === '.' && !/[0-9]/.test(src[i + 1] ?? '')) {
      const f = fieldsAt(src, i)
      toks.push({ t: 'field', names: f.names })
      i = f.names.length ? f.end : i + 1
    } else if (/[0-9+\-.]/.test(c)) {
      NUMBER.lastIndex = i
      const m = NUMBER.exec(src)
      if (!m) throw new TemplateError(`${where}: bad number syntax at "${src.slice(i, i + 10)}"`)
      const text = m[0].replaceAll('_', '')
      // Go: an integer constant unless the literal has a '.', 'e' or 'E' (text/template's idealConstant).
      const isFloat = /[.eE]/.test(text) && !/^[+-]?0[xX]/.test(text)
      toks.push({ t: 'number', v: isFloat ? Number(text) : BigInt(text) })
      i += m[0].length
    } else {
      IDENT.lastIndex = i
      const m = IDENT.exec(src)
      if (!m) throw new TemplateError(`${where}: unexpected "${c}" in action`)
      const w = m[0]
      if (w === 'true' || w === 'false') toks.push({ t: 'bool', v: w === 'true' })
      else if (w === 'nil') toks.push({ t: 'nil' })
      else toks.push({ t: 'ident', v: w })
      i += w.length
    }
  }
  return toks
}

// ------------------------------------------------------------------ parser

type Arg =
  | { k: 'field'; base: 'dot' | { var: string } | { pipe: Pipe }; names: string[] }
  | { k: 'fn'; name: string }
  | { k: 'lit'; v: unknown }
  | { k: 'pipe'; pipe: Pipe }
type Cmd = Arg[]
interface Pipe {
  decl: string[]
  assign: boolean
  cmds: Cmd[]
}
type Node =
  | { k: 'text'; v: string }
  | { k: 'action'; pipe: Pipe; where: string }
  | { k: 'if' | 'with'; pipe: Pipe; list: Node[]; else: Node[]; where: string }
  | { k: 'range'; pipe: Pipe; list: Node[]; else: Node[]; where: string }
  | { k: 'template'; name: string; pipe: Pipe | undefined; where: string }

const KEYWORDS = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'break',
  'continue',
])

function parsePipe(toks: Tok[], where: string): Pipe {
  let pos = 0
  const decl: string[] = []
  let assign = false
  // $x := …  |  $i, $v := …  |  $x = …
  const lookDecl = () => {
    let j = 0
    const names: string[] = []
    while (toks[j]?.t === 'var' && (toks[j] as { fields: string[] }).fields.length === 0) {
      names.push((toks[j] as { name: string }).name)
      j++
      if (toks[j]?.t === 'comma') j++
      else break
    }
    const op = toks[j]
    if (names.length && (op?.t === 'declare' || op?.t === 'assign')) {
      decl.push(...names)
      assign = op.t === 'assign'
      pos = j + 1
    }
  }
  lookDecl()
  const parseCmds = (stopAtParen: boolean): Cmd[] => {
    const cmds: Cmd[] = []
    let cmd: Cmd = []
    for (;;) {
      const tok = toks[pos]
      if (!tok || (stopAtParen && tok.t === 'rparen')) break
      pos++
      switch (tok.t) {
        case 'pipe':
          if (!cmd.length) throw new TemplateError(`${where}: missing command before "|"`)
          cmds.push(cmd)
          cmd = []
          break
        case 'field':
          cmd.push({ k: 'field', base: 'dot', names: tok.names })
          break
        case 'var':
          cmd.push({ k: 'field', base: { var: tok.name }, names: tok.fields })
          break
        case 'ident':
          if (KEYWORDS.has(tok.v)) throw new TemplateError(`${where}: unexpected keyword "${tok.v}"`)
          if (!(tok.v in FUNCS) && tok.v !== 'and' && tok.v !== 'or' && tok.v !== 'include')
            throw new TemplateError(`${where}: function "${tok.v}" not defined`)
          cmd.push({ k: 'fn', name: tok.v })
          break
        case 'string':
        case 'number':
        case 'bool':
          cmd.push({ k: 'lit', v: tok.v })
          break
        case 'nil':
          cmd.push({ k: 'lit', v: null })
          break
        case 'lparen': {
          const inner: Pipe = { decl: [], assign: false, cmds: parseCmds(true) }
          const close = toks[pos++]
          if (close?.t !== 'rparen') throw new TemplateError(`${where}: unclosed left paren`)
          cmd.push(
            close.fields.length
              ? { k: 'field', base: { pipe: inner }, names: close.fields }
              : { k: 'pipe', pipe: inner },
          )
          break
        }
        default:
          throw new TemplateError(`${where}: unexpected ${tok.t} in command`)
      }
    }
    if (!cmd.length) throw new TemplateError(`${where}: missing value for command`)
    cmds.push(cmd)
    return cmds
  }
  const cmds = parseCmds(false)
  if (pos !== toks.length) throw new TemplateError(`${where}: unexpected ")"`)
  return { decl, assign, cmds }
}

interface Parsed {
  root: Node[]
  defines: Map<string, Node[]>
}

function lineOf(src: string, i: number): number {
  let n = 1
  for (let j = 0; j < i; j++) if (src.charCodeAt(j) === 10) n++
  return n
}

export function parseTemplate(src: string, name: string): Parsed {
  // Split into text and actions, applying trim markers.
  type Piece = { text: string } | { action: string; where: string }
  const pieces: Piece[] = []
  let i = 0
  while (i < src.length) {
    const open = src.indexOf('{{', i)
    if (open < 0) {
      pieces.push({ text: src.slice(i) })
      break
    }
    let text = src.slice(i, open)
    let start = open + 2
    const where = `${name}:${lineOf(src, open)}`
    if (src[start] === '-' && /[ \t\r\n]/.test(src[start + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '')
      start += 2
    }
    pieces.push({ text })
    let end: number
    let body: string
    const afterWs = src.slice(start).match(/^[ \t\r\n]*/)![0].length
    if (src.startsWith('/*', start + afterWs)) {
      const close = src.indexOf('*/', start + afterWs + 2)
      if (close < 0) throw new TemplateError(`${where}: unclosed comment`)
      const rest = src.slice(close + 2).match(/^([ \t\r\n]*)(-?)([ \t\r\n]*)\}\}/)
      if (!rest) throw new TemplateError(`${where}: comment ends before closing delimiter`)
      end = close + 2 + rest[0].length
      body = ''
      if (rest[2] === '-') {
        const ws = src.slice(end).match(/^[ \t\r\n]*/)![0]
        end += ws.length
      }
      i = end
      continue
    }
    // the first "}}" outside quoted strings, raw strings and character constants (as Go's lexer does)
    let close = -1
    for (let j = start; j < src.length; j++) {
      const ch = src[j]
      if (ch === '"' || ch === "'") {
        j++
        while (j < src.length && src[j] !== ch && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1
      } else if (ch === '`') {
        j = src.indexOf('`', j + 1)
        if (j < 0) throw new TemplateError(`${where}: unterminated raw quoted string`)
      } else if (ch === '}' && src[j + 1] === '}') {
        close = j
        break
      }
    }
    if (close < 0) throw new TemplateError(`${where}: unclosed action`)
    body = src.slice(start, close)
    end = close + 2
    if (/[ \t\r\n]-$/.test(body)) {
      body = body.slice(0, -1)
      end += src.slice(end).match(/^[ \t\r\n]*/)![0].length
    }
    pieces.push({ action: body.trim(), where })
    i = end
  }

  const defines = new Map<string, Node[]>()
  let p = 0
  // Parses a list until one of the terminators; returns the terminator's word and the rest of its action.
  const parseList = (
    terms: string[],
    context: string,
  ): { list: Node[]; term: string; rest: string; where: string } => {
    const list: Node[] = []
    while (p < pieces.length) {
      const pc = pieces[p++]!
      if ('text' in pc) {
        if (pc.text) list.push({ k: 'text', v: pc.text })
        continue
      }
      const { action, where } = pc
      const word = action.match(/^[A-Za-z]+/)?.[0] ?? ''
      const rest = action.slice(word.length).trim()
      if (word === 'end' || word === 'else') {
        if (!terms.includes(word)) throw new TemplateError(`${where}: unexpected {{${word}}}`)
        return { list, term: word, rest, where }
      }
      if (word === 'if' || word === 'with' || word === 'range') {
        list.push(parseControl(word, rest, where))
      } else if (word === 'define') {
        if (context !== 'top') throw new TemplateError(`${where}: define must be at the top level`)
        const nm = lexAction(rest, where)
        if (nm.length !== 1 || nm[0]!.t !== 'string') throw new TemplateError(`${where}: define needs a name`)
        const body = parseList(['end'], 'define')
        defines.set(nm[0]!.v as string, body.list)
      } else if (word === 'template') {
        const toks = lexAction(rest, where)
        if (toks[0]?.t !== 'string') throw new TemplateError(`${where}: template needs a quoted name`)
        list.push({
          k: 'template',
          name: toks[0].v as string,
          pipe: toks.length > 1 ? parsePipe(toks.slice(1), where) : undefined,
          where,
        })
      } else if (word === 'block' || word === 'break' || word === 'continue') {
        throw new TemplateError(`${where}: {{${word}}} is not supported by this renderer`)
      } else {
        list.push({ k: 'action', pipe: parsePipe(lexAction(action, where), where), where })
      }
    }
    if (terms.length) throw new TemplateError(`${name}: unexpected EOF (missing {{end}} for ${context})`)
    return { list, term: '', rest: '', where: name }
  }
  const parseControl = (word: 'if' | 'with' | 'range', rest: string, where: string): Node => {
    const pipe = parsePipe(lexAction(rest, where), where)
    if (word !== 'range' && pipe.decl.length > 1)
      throw new TemplateError(`${where}: too many declarations in ${word}`)
    const body = parseList(['end', 'else'], word)
    let elseList: Node[] = []
    if (body.term === 'else') {
      if (body.rest.startsWith('if') && word === 'if') {
        // {{else if x}} … is {{else}}{{if x}} … {{end}}{{end}} sharing the outer end.
        elseList = [parseControl('if', body.rest.slice(2).trim(), body.where)]
      } else if (body.rest) {
        throw new TemplateError(`${body.where}: {{else ${body.rest}}} is not supported by this renderer`)
      } else {
        elseList = parseList(['end'], word).list
      }
    }
    return { k: word, pipe, list: body.list, else: elseList, where } as Node
  }
  const top = parseList([], 'top')
  return { root: top.list, defines }
}

// ------------------------------------------------------------------ values and printing

const STRUCT = Symbol('go struct')
/** A Go struct: unknown fields are an error, unlike maps. */
export function goStruct<T extends object>(typeName: string, o: T): T {
  Object.defineProperty(o, STRUCT, { value: typeName, enumerable: false })
  return o
}
const isStruct = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && STRUCT in (v as object)
const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !isStruct(v)

function goType(v: unknown): string {
  if (v === null || v === undefined) return '<nil>'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'number') return 'float64'
  if (typeof v === 'bigint') return 'int'
  if (typeof v === 'boolean') return 'bool'
  if (Array.isArray(v)) return '[]interface {}'
  if (isStruct(v)) return `*${(v as unknown as Record<symbol, string>)[STRUCT]}`
  if (typeof v === 'function') return 'func'
  return 'map[string]interface {}'
}

/** Go's strconv.FormatFloat(f, 'g', -1, 64), which %v uses for float64. */
export function formatFloat(f: number): string {
  if (Number.isNaN(f)) return 'NaN'
  if (!Number.isFinite(f)) return f > 0 ? '+Inf' : '-Inf'
  if (f === 0) return Object.is(f, -0) ? '-0' : '0'
  // shortest digits; %e form when the exponent is < -4 or >= 6 (strconv's eprec for shortest 'g')
  const [mant, expStr] = f.toExponential().split('e') as [string, string]
  const exp = Number(expStr)
  if (exp < -4 || exp >= 6) {
    const e = Math.abs(exp)
    return `${mant}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`
  }
  return String(f)
}

/** fmt.Sprint(v), i.e. %v */
export function sprint(v: unknown): string {
  if (v === null || v === undefined) return '<nil>'
  if (typeof v === 'string') return v
  if (typeof v === 'number') return formatFloat(v)
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return `[${v.map(sprint).join(' ')}]`
  if (isStruct(v)) return `{${Object.values(v).map(sprint).join(' ')}}`
  if (typeof v === 'object')
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${sprint((v as Record<string, unknown>)[k])}`)
      .join(' ')}]`
  return String(v)
}

export function truth(v: unknown): boolean {
  if (v === null || v === undefined) return false
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  if (typeof v === 'bigint') return v !== 0n
  if (typeof v === 'string' || Array.isArray(v)) return v.length > 0
  if (isStruct(v) || typeof v === 'function') return true
  return Object.keys(v as object).length > 0
}

/** Go's %q */
function goQuote(s: string): string {
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (ch === '\n') out += '\\n'
    else if (ch === '\t') out += '\\t'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\x07') out += '\\a'
    else if (ch === '\b') out += '\\b'
    else if (ch === '\f') out += '\\f'
    else if (ch === '\v') out += '\\v'
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`
    else out += ch
  }
  return `${out}"`
}

function toPlain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v)
  if (Array.isArray(v)) return v.map(toPlain)
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) o[k] = toPlain((v as Record<string, unknown>)[k])
    return o
  }
  return v === undefined ? null : v
}

// ------------------------------------------------------------------ functions

const wantInt = (fn: string, v: unknown): number => {
  if (typeof v === 'bigint') return Number(v)
  throw new TemplateError(`error calling ${fn}: wrong type for value; expected int; got ${goType(v)}`)
}
const wantString = (fn: string, v: unknown): string => {
  if (typeof v === 'string') return v
  throw new TemplateError(`error calling ${fn}: wrong type for value; expected string; got ${goType(v)}`)
}
const empty = (v: unknown) => !truth(v)
/** sprig's strval / toString */
const strval = (v: unknown): string => (typeof v === 'string' ? v : sprint(v))
/** spf13/cast ToInt64 as sprig uses it: numbers truncate, strings parse, anything else is 0 */
const toInt64 = (v: unknown): bigint => {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number') return BigInt(Math.trunc(v))
  if (typeof v === 'boolean') return v ? 1n : 0n
  if (typeof v === 'string' && /^[+-]?\d+$/.test(v.trim())) return BigInt(v.trim())
  return 0n
}

type Kind = 'bool' | 'int' | 'float' | 'string' | 'other' | 'nil'
const kindOf = (v: unknown): Kind =>
  v === null || v === undefined
    ? 'nil'
    : typeof v === 'boolean'
      ? 'bool'
      : typeof v === 'bigint'
        ? 'int'
        : typeof v === 'number'
          ? 'float'
          : typeof v === 'string'
            ? 'string'
            : 'other'

function goEq(a: unknown, ...bs: unknown[]): boolean {
  if (!bs.length) throw new TemplateError('error calling eq: missing argument for comparison')
  const ka = kindOf(a)
  for (const b of bs) {
    const kb = kindOf(b)
    if (ka !== kb) {
      if (ka !== 'nil' && kb !== 'nil')
        throw new TemplateError('error calling eq: incompatible types for comparison')
      continue
    }
    if (ka === 'other') throw new TemplateError(`error calling eq: non-comparable type ${goType(a)}`)
    if (a === b || (ka === 'nil' && kb === 'nil')) return true
  }
  return false
}
function goLess(fn: string, a: unknown, b: unknown): boolean {
  const ka = kindOf(a)
  const kb = kindOf(b)
  if (ka === 'other' || ka === 'nil' || ka === 'bool' || kb === 'other' || kb === 'nil' || kb === 'bool')
    throw new TemplateError(`error calling ${fn}: invalid type for comparison`)
  if (ka !== kb) throw new TemplateError(`error calling ${fn}: incompatible types for comparison`)
  return (a as number) < (b as number)
}

/** Go fmt.Sprintf for the verbs charts use: %s %v %d %q %% */
function goSprintf(format: string, args: unknown[]): string {
  let ai = 0
  let out = format.replace(/%([-+# 0]*\d*(?:\.\d+)?)([svdqtx%])/g, (_m, _flags: string, verb: string) => {
    if (verb === '%') return '%'
    if (ai >= args.length) return `%!${verb}(MISSING)`
    const a = args[ai++]
    switch (verb) {
      case 's':
        return typeof a === 'string'
          ? a
          : a === null || a === undefined
            ? '%!s(<nil>)'
            : typeof a === 'number' || typeof a === 'bigint' || typeof a === 'boolean'
              ? `%!s(${goType(a)}=${sprint(a)})`
              : sprint(a)
      case 'v':
        return sprint(a)
      case 'd':
        return typeof a === 'bigint' ? String(a) : `%!d(${goType(a)}=${sprint(a)})`
      case 'q':
        return typeof a === 'string' ? goQuote(a) : `%!q(${goType(a)}=${sprint(a)})`
      case 't':
        return typeof a === 'boolean' ? String(a) : `%!t(${goType(a)}=${sprint(a)})`
      default:
        return typeof a === 'bigint'
          ? a.toString(16)
          : typeof a === 'string'
            ? Buffer.from(a).toString('hex')
            : `%!x(${goType(a)}=${sprint(a)})`
    }
  })
  if (ai < args.length)
    out += `%!(EXTRA ${args
      .slice(ai)
      .map((a) => `${goType(a)}=${sprint(a)}`)
      .join(', ')})`
  return out
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n)
  return pad + s.replaceAll('\n', `\n${pad}`)
}

const FUNCS: Record<string, (...a: unknown[]) => unknown> = {
  // Go text/template builtins (and/or are special forms)
  not: (v) => !truth(v),
  eq: (a, ...b) => goEq(a, ...b),
  ne: (a, b) => !goEq(a, b),
  lt: (a, b) => goLess('lt', a, b),
  le: (a, b) => goLess('le', a, b) || goEq(a, b),
  gt: (a, b) => goLess('gt', b, a),
  ge: (a, b) => goLess('ge', b, a) || goEq(a, b),
  len: (v) => {
    if (typeof v === 'string') return BigInt(Buffer.byteLength(v))
    if (Array.isArray(v)) return BigInt(v.length)
    if (isMap(v)) return BigInt(Object.keys(v).length)
    throw new TemplateError(`error calling len: len of type ${goType(v)}`)
  },
  index: (coll, ...keys) => {
    let v = coll
    for (const k of keys) {
      if (Array.isArray(v)) {
        const i = typeof k === 'bigint' ? Number(k) : NaN
        if (!(i >= 0 && i < v.length))
          throw new TemplateError(`error calling index: index out of range: ${sprint(k)}`)
        v = v[i]
      } else if (isMap(v)) v = v[wantString('index', k)]
      else if (v === null || v === undefined)
        throw new TemplateError('error calling index: index of untyped nil')
      else throw new TemplateError(`error calling index: can't index item of type ${goType(v)}`)
    }
    return v
  },
  printf: (f, ...a) => goSprintf(wantString('printf', f), a),
  print: (...a) => a.map(sprint).join(''),
  // sprig
  default: (d, ...given) => (given.length === 0 || empty(given[0]) ? d : given[0]),
  empty: (v) => empty(v),
  required: (msg, v) => {
    if (v === null || v === undefined || v === '') throw new TemplateError(wantString('required', msg))
    return v
  },
  fail: (msg) => {
    throw new TemplateError(wantString('fail', msg))
  },
  quote: (...a) =>
    a
      .filter((x) => x !== null && x !== undefined)
      .map((x) => goQuote(strval(x)))
      .join(' '),
  squote: (...a) =>
    a
      .filter((x) => x !== null && x !== undefined)
      .map((x) => `'${strval(x)}'`)
      .join(' '),
  toString: (v: unknown) => strval(v),
  int: (v) => toInt64(v),
  add: (...a) => a.reduce<bigint>((s, x) => s + toInt64(x), 0n),
  toYaml: (v) => {
    // sigs.k8s.io/yaml: sorted keys (via encoding/json), no line folding, YAML 1.1 quoting (go-yaml v2
    // quotes "yes", "on", "0440": Kubernetes reads YAML 1.1, where those are a bool and an octal number);
    // Helm trims the final newline.
    if (v === null || v === undefined) return 'null'
    return stringify(toPlain(v), { lineWidth: 0, sortMapEntries: true, version: '1.1' }).replace(/\n$/, '')
  },
  toJson: (v) => JSON.stringify(toPlain(v)),
  indent: (n, s) => indent(wantInt('indent', n), wantString('indent', s)),
  nindent: (n, s) => `\n${indent(wantInt('nindent', n), wantString('nindent', s))}`,
  trunc: (n, s) => {
    const c = wantInt('trunc', n)
    const str = wantString('trunc', s)
    return c >= 0 ? str.slice(0, c) : str.slice(Math.max(0, str.length + c))
  },
  trimSuffix: (suf, s) => {
    const str = wantString('trimSuffix', s)
    const x = wantString('trimSuffix', suf)
    return x && str.endsWith(x) ? str.slice(0, -x.length) : str
  },
  trimPrefix: (pre, s) => {
    const str = wantString('trimPrefix', s)
    const x = wantString('trimPrefix', pre)
    return x && str.startsWith(x) ? str.slice(x.length) : str
  },
  lower: (s) => wantString('lower', s).toLowerCase(),
  upper: (s) => wantString('upper', s).toUpperCase(),
  replace: (o, n, s) =>
    wantString('replace', s).replaceAll(wantString('replace', o), wantString('replace', n)),
  contains: (sub, s) => wantString('contains', s).includes(wantString('contains', sub)),
  hasPrefix: (pre, s) => wantString('hasPrefix', s).startsWith(wantString('hasPrefix', pre)),
  hasKey: (m, k) => {
    if (!isMap(m))
      throw new TemplateError(
        `error calling hasKey: wrong type for value; expected map[string]interface {}; got ${goType(m)}`,
      )
    return Object.hasOwn(m, wantString('hasKey', k))
  },
  list: (...a) => a,
  dict: (...a) => {
    const o: Record<string, unknown> = {}
    for (let i = 0; i < a.length; i += 2) o[strval(a[i])] = i + 1 < a.length ? a[i + 1] : ''
    return o
  },
  ternary: (t, f, c) => (truth(c) ? t : f),
  b64enc: (s) => Buffer.from(wantString('b64enc', s)).toString('base64'),
  sha256sum: (s) => createHash('sha256').update(wantString('sha256sum', s)).digest('hex'),
}

/** The sprig/Go functions this renderer knows, for a test that the chart uses no others. */
export const FUNCTION_NAMES = [...Object.keys(FUNCS), 'and', 'or', 'include'].sort()

// ------------------------------------------------------------------ evaluation

interface Scope {
  vars: Map<string, unknown>[]
}

class Exec {
  readonly defines: Map<string, Node[]>
  depth = 0
  constructor(defines: Map<string, Node[]>) {
    this.defines = defines
  }

  run(list: Node[], dot: unknown, root: unknown, name: string): string {
    const scope: Scope = { vars: [new Map([['$', root]])] }
    return this.list(list, dot, scope, name)
  }

  list(list: Node[], dot: unknown, scope: Scope, name: string): string {
    let out = ''
    for (const n of list) out += this.node(n, dot, scope, name)
    return out
  }

  lookupVar(scope: Scope, v: string, where: string): unknown {
    for (let i = scope.vars.length - 1; i >= 0; i--) if (scope.vars[i]!.has(v)) return scope.vars[i]!.get(v)
    throw new TemplateError(`${where}: undefined variable "${v}"`)
  }

  node(n: Node, dot: unknown, scope: Scope, name: string): string {
    switch (n.k) {
      case 'text':
        return n.v
      case 'action': {
        const v = this.pipe(n.pipe, dot, scope, n.where)
        if (n.pipe.decl.length) return ''
        return v === null || v === undefined ? '' : sprint(v)
      }
      case 'if':
      case 'with': {
        scope.vars.push(new Map())
        try {
          const v = this.pipe(n.pipe, dot, scope, n.where)
          if (truth(v)) return this.list(n.list, n.k === 'with' ? v : dot, scope, name)
          return this.list(n.else, dot, scope, name)
        } finally {
          scope.vars.pop()
        }
      }
      case 'range': {
        scope.vars.push(new Map())
        try {
          const { cmds } = n.pipe
          const coll = this.pipe({ decl: [], assign: false, cmds }, dot, scope, n.where)
          let entries: [unknown, unknown][]
          if (Array.isArray(coll)) entries = coll.map((v, i) => [BigInt(i), v])
          else if (isMap(coll))
            entries = Object.keys(coll)
              .sort()
              .map((k) => [k, coll[k]])
          else if (coll === null || coll === undefined) entries = []
          else throw new TemplateError(`${n.where}: range can't iterate over ${sprint(coll)}`)
          if (!entries.length) return this.list(n.else, dot, scope, name)
          let out = ''
          for (const [k, v] of entries) {
            const frame = new Map<string, unknown>()
            if (n.pipe.decl.length === 1) frame.set(n.pipe.decl[0]!, v)
            if (n.pipe.decl.length === 2) {
              frame.set(n.pipe.decl[0]!, k)
              frame.set(n.pipe.decl[1]!, v)
            }
            scope.vars.push(frame)
            try {
              out += this.list(n.list, v, scope, name)
            } finally {
              scope.vars.pop()
            }
          }
          return out
        } finally {
          scope.vars.pop()
        }
      }
      case 'template': {
        const data = n.pipe ? this.pipe(n.pipe, dot, scope, n.where) : null
        return this.call(n.name, data, n.where)
      }
    }
  }

  call(tname: string, data: unknown, where: string): string {
    const body = this.defines.get(tname)
    if (!body) throw new TemplateError(`${where}: no template "${tname}" associated with template`)
    if (++this.depth > 100) throw new TemplateError(`${where}: exceeded max template depth`)
    try {
      return this.run(body, data, data, tname)
    } finally {
      this.depth--
    }
  }

  pipe(p: Pipe, dot: unknown, scope: Scope, where: string): unknown {
    let v: unknown
    let first = true
    for (const cmd of p.cmds) {
      v = this.cmd(cmd, dot, scope, where, first ? undefined : { v })
      first = false
    }
    if (p.decl.length) {
      if (p.assign) {
        for (let i = scope.vars.length - 1; i >= 0; i--) {
          if (scope.vars[i]!.has(p.decl[0]!)) {
            scope.vars[i]!.set(p.decl[0]!, v)
            return v
          }
        }
        throw new TemplateError(`${where}: undefined variable "${p.decl[0]}"`)
      }
      scope.vars[scope.vars.length - 1]!.set(p.decl[0]!, v)
    }
    return v
  }

  arg(a: Arg, dot: unknown, scope: Scope, where: string): unknown {
    switch (a.k) {
      case 'lit':
        return a.v
      case 'pipe':
        return this.pipe(a.pipe, dot, scope, where)
      case 'fn':
        // A function name as an argument is a call with no arguments.
        return this.cmd([a], dot, scope, where, undefined)
      case 'field': {
        const base =
          a.base === 'dot'
            ? dot
            : 'var' in a.base
              ? this.lookupVar(scope, a.base.var, where)
              : this.pipe(a.base.pipe, dot, scope, where)
        return this.fields(base, a.names, [], where)
      }
    }
  }

  fields(base: unknown, names: string[], args: unknown[], where: string): unknown {
    let v = base
    for (const [i, nm] of names.entries()) {
      if (v === null || v === undefined)
        throw new TemplateError(`${where}: nil pointer evaluating interface {}.${nm}`)
      if (isStruct(v)) {
        if (!(nm in v)) throw new TemplateError(`${where}: can't evaluate field ${nm} in type ${goType(v)}`)
        const f = v[nm]
        if (typeof f === 'function') {
          v = f(...(i === names.length - 1 ? args : []))
          continue
        }
        v = f
      } else if (isMap(v)) {
        v = Object.hasOwn(v, nm) ? v[nm] : undefined
      } else {
        throw new TemplateError(`${where}: can't evaluate field ${nm} in type ${goType(v)}`)
      }
    }
    return v
  }

  cmd(cmd: Cmd, dot: unknown, scope: Scope, where: string, piped: { v: unknown } | undefined): unknown {
    const [head, ...rest] = cmd
    if (head!.k === 'fn') {
      const fn = head!.name
      if (fn === 'and' || fn === 'or') {
        const thunks: (() => unknown)[] = rest.map((a) => () => this.arg(a, dot, scope, where))
        if (piped) thunks.push(() => piped.v)
        if (!thunks.length)
          throw new TemplateError(`${where}: wrong number of args for ${fn}: want at least 1 got 0`)
        let v: unknown
        for (const th of thunks) {
          v = th()
          if (fn === 'and' ? !truth(v) : truth(v)) return v
        }
        return v
      }
      const args = rest.map((a) => this.arg(a, dot, scope, where))
      if (piped) args.push(piped.v)
      if (fn === 'include') {
        if (args.length !== 2)
          throw new TemplateError(`${where}: wrong number of args for include: want 2 got ${args.length}`)
        return this.call(wantString('include', args[0]), args[1], where)
      }
      try {
        return FUNCS[fn]!(...args)
      } catch (err) {
        if (err instanceof TemplateError && !err.message.startsWith(where)) {
          throw new TemplateError(`${where}: ${err.message}`)
        }
        throw err
      }
    }
    if (head!.k === 'field' && (rest.length || piped)) {
      // a method call: .Capabilities.APIVersions.Has "x"
      const base =
        head!.base === 'dot'
          ? dot
          : 'var' in head!.base
            ? this.lookupVar(scope, head!.base.var, where)
            : this.pipe(head!.base.pipe, dot, scope, where)
      const args = rest.map((a) => this.arg(a, dot, scope, where))
      if (piped) args.push(piped.v)
      const parent = this.fields(base, head!.names.slice(0, -1), [], where)
      const last = head!.names.at(-1)
      const f = last !== undefined && isStruct(parent) ? parent[last] : undefined
      if (typeof f !== 'function') {
        throw new TemplateError(`${where}: can't give argument to non-function ${last ? `.${last}` : '.'}`)
      }
      return f(...args)
    }
    if (rest.length || piped) throw new TemplateError(`${where}: can't give argument to non-function`)
    return this.arg(head!, dot, scope, where)
  }
}

/** Renders one template text (plus optional partials) with data as both dot and $. */
export function renderString(text: string, data: unknown, partials: Record<string, string> = {}): string {
  const defines = new Map<string, Node[]>()
  for (const [name, src] of Object.entries(partials))
    for (const [k, v] of parseTemplate(src, name).defines) defines.set(k, v)
  const parsed = parseTemplate(text, 'template')
  for (const [k, v] of parsed.defines) defines.set(k, v)
  return new Exec(defines).run(parsed.root, data, data, 'template').replaceAll('<no value>', '')
}

// ------------------------------------------------------------------ charts

export interface LoadedChart {
  dir: string
  metadata: Record<string, unknown>
  values: Record<string, unknown>
  schema: object | undefined
  /** path relative to the chart → text, for templates/** */
  templates: Map<string, string>
  /** path relative to the chart → text, for crds/** */
  crds: Map<string, string>
  /** path relative to the chart → text, for every file outside templates/ (what .Files sees) */
  files: Map<string, string>
}

function walkFiles(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .sort()
    .flatMap((f) => {
      const p = join(dir, f)
      return statSync(p).isDirectory() ? walkFiles(p) : [p]
    })
}

export function loadChart(dir: string): LoadedChart {
  const templates = new Map<string, string>()
  for (const f of walkFiles(join(dir, 'templates'))) templates.set(relative(dir, f), readFileSync(f, 'utf8'))
  const crds = new Map<string, string>()
  for (const f of walkFiles(join(dir, 'crds'))) crds.set(relative(dir, f), readFileSync(f, 'utf8'))
  const schemaPath = join(dir, 'values.schema.json')
  const files = new Map<string, string>()
  for (const f of walkFiles(dir)) {
    const rel = relative(dir, f)
    if (!rel.startsWith('templates/')) files.set(rel, readFileSync(f, 'utf8'))
  }
  return {
    files,
    dir,
    metadata: parseYaml(readFileSync(join(dir, 'Chart.yaml'), 'utf8')),
    values: parseYaml(readFileSync(join(dir, 'values.yaml'), 'utf8')) ?? {},
    schema: existsSync(schemaPath) ? JSON.parse(readFileSync(schemaPath, 'utf8')) : undefined,
    templates,
    crds,
  }
}

/** Helm's coalesce: maps merge recursively, anything else replaces, a null deletes the key. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return structuredClone(over)
  const out: Record<string, unknown> = structuredClone(base)
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k]
    else out[k] = isMap(out[k]) && isMap(v) ? mergeValues(out[k], v) : structuredClone(v)
  }
  return out
}

export interface RenderOptions {
  values?: Record<string, unknown>
  releaseName?: string
  namespace?: string
  isUpgrade?: boolean
  kubeVersion?: string
  /** API versions the cluster serves, as Helm's --api-versions (group/version or group/version/Kind) */
  apiVersions?: string[]
}

export interface Rendered {
  /** template path → rendered text (partials and NOTES.txt excluded) */
  manifests: Map<string, string>
  /** every YAML document of every manifest, parsed */
  // biome-ignore lint/suspicious/noExplicitAny: parsed Kubernetes objects, inspected freely by tests
  objects: Record<string, any>[]
  notes: string
  values: Record<string, unknown>
}

const BUILTIN_APIS = [
  'v1',
  'apps/v1',
  'batch/v1',
  'policy/v1',
  'rbac.authorization.k8s.io/v1',
  'coordination.k8s.io/v1',
  'events.k8s.io/v1',
  'apiextensions.k8s.io/v1',
  'scheduling.k8s.io/v1',
  'networking.k8s.io/v1',
]

export class SchemaError extends Error {
  override name = 'SchemaError'
}

/** Validates values as Helm does before rendering; the message lists each failing path. */
export function validateValues(chart: LoadedChart, values: unknown): void {
  if (!chart.schema) return
  const ajv = new Ajv({ allErrors: true, strict: false })
  const validate = ajv.compile(chart.schema)
  if (validate(values)) return
  const lines = (validate.errors ?? []).map((e) => {
    const path = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || '(root)'
    const extra =
      e.keyword === 'additionalProperties'
        ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : ''
    return `- ${path}: ${e.message}${extra}`
  })
  throw new SchemaError(
    `values don't meet the specifications of the schema(s) in the following chart(s):\n${chart.metadata.name}:\n${lines.join('\n')}`,
  )
}

/** Helm's kubeVersion check: a space- or comma-separated AND of comparisons on major.minor.patch. */
export function kubeVersionAllowed(constraint: string, version: string): boolean {
  const num = (v: string) => {
    const [a = 0, b = 0, c = 0] = v.replace(/^v/, '').split('-')[0]!.split('.').map(Number)
    return a * 1e6 + b * 1e3 + c
  }
  const have = num(version)
  return constraint
    .split(/[\s,]+/)
    .filter(Boolean)
    .every((part) => {
      const m = /^(>=|<=|>|<|=|!=)?(v?[\d.]+(?:-[\w.]+)?)$/.exec(part)
      if (!m) throw new TemplateError(`kubeVersion constraint "${part}" is not supported by this renderer`)
      const want = num(m[2]!)
      switch (m[1] ?? '=') {
        case '>=':
          return have >= want
        case '<=':
          return have <= want
        case '>':
          return have > want
        case '<':
          return have < want
        case '!=':
          return have !== want
        default:
          return have === want
      }
    })
}

export function renderChart(chart: LoadedChart, o: RenderOptions = {}): Rendered {
  const kube = (o.kubeVersion ?? 'v1.31.0').replace(/^v?/, 'v')
  const constraint = chart.metadata.kubeVersion
  if (typeof constraint === 'string' && constraint && !kubeVersionAllowed(constraint, kube)) {
    throw new TemplateError(
      `chart requires kubeVersion: ${constraint} which is incompatible with Kubernetes ${kube}`,
    )
  }
  const values = mergeValues(chart.values, o.values ?? {}) as Record<string, unknown>
  validateValues(chart, values)
  const [major, minor] = kube.slice(1).split('.')
  const apis = new Set([...BUILTIN_APIS, ...(o.apiVersions ?? [])])
  const md = chart.metadata
  const cap = (k: string) => k.charAt(0).toUpperCase() + k.slice(1)
  const chartObj: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(md)) chartObj[cap(k)] = v
  for (const k of ['Name', 'Version', 'AppVersion', 'Description', 'Type', 'KubeVersion']) chartObj[k] ??= ''
  const release = goStruct('chart.Release', {
    Name: o.releaseName ?? 'flowgate',
    Namespace: o.namespace ?? 'flowgate-system',
    IsInstall: !o.isUpgrade,
    IsUpgrade: !!o.isUpgrade,
    Revision: o.isUpgrade ? 2n : 1n,
    Service: 'Helm',
  })
  const capabilities = goStruct('chartutil.Capabilities', {
    KubeVersion: goStruct('chartutil.KubeVersion', {
      Version: kube,
      Major: major ?? '',
      Minor: minor ?? '',
      GitVersion: kube,
    }),
    APIVersions: goStruct('chartutil.VersionSet', { Has: (v: unknown) => apis.has(wantString('Has', v)) }),
    HelmVersion: goStruct('chartutil.HelmVersion', { Version: 'v3.16.0' }),
  })

  const defines = new Map<string, Node[]>()
  const parsed = new Map<string, Parsed>()
  for (const [path, text] of chart.templates) {
    const p = parseTemplate(text, `${md.name}/${path}`)
    parsed.set(path, p)
    for (const [k, v] of p.defines) defines.set(k, v)
  }
  const manifests = new Map<string, string>()
  let notes = ''
  const exec = new Exec(defines)
  for (const [path, p] of parsed) {
    const base = path.split('/').at(-1)!
    const data = goStruct('chartutil.Values', {
      Values: values,
      Release: release,
      Chart: goStruct('chart.Metadata', chartObj),
      Capabilities: capabilities,
      Template: goStruct('chartutil.Template', {
        Name: `${md.name}/${path}`,
        BasePath: `${md.name}/templates`,
      }),
      Files: goStruct('chart.Files', {
        Get: (name: unknown) => chart.files.get(wantString('Get', name)) ?? '',
      }),
    })
    const out = exec.run(p.root, data, data, path).replaceAll('<no value>', '')
    if (base === 'NOTES.txt') notes = out
    else if (!base.startsWith('_')) manifests.set(path, out)
  }
  const objects: Rendered['objects'] = []
  for (const [path, text] of manifests) {
    for (const doc of parseAllDocuments(text, { uniqueKeys: true, version: '1.1' })) {
      if (doc.errors.length)
        throw new TemplateError(`YAML parse error on ${md.name}/${path}: ${doc.errors[0]!.message}\n${text}`)
      const obj = doc.toJS()
      if (obj === null || obj === undefined) continue
      if (!isMap(obj)) throw new TemplateError(`${md.name}/${path}: a document is not an object`)
      if (!obj.apiVersion || !obj.kind)
        throw new TemplateError(`${md.name}/${path}: object without apiVersion/kind`)
      objects.push(obj)
    }
  }
  return { manifests, objects, notes, values }
}
