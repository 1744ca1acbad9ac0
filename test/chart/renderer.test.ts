// The chart renderer held to what Go text/template + sprig + Helm produce for the same input. Each
// expected output is what helm 3 prints for it (the Go semantics are cited where they surprise).
import test from 'ava'
import { parse } from 'yaml'
import { formatFloat, goStruct, mergeValues, renderString, TemplateError } from '../support/helm-render.ts'

const V = {
  Values: {
    name: 'gw',
    port: 6081,
    big: 1000000,
    ratio: 0.5,
    on: true,
    off: false,
    zero: 0,
    list: ['a', 'b'],
    map: { b: 2, a: 1 },
    nested: { x: { y: 'deep' } },
    emptyMap: {},
    str: 'x: "y"',
  },
}

const cases: [string, string, unknown?][] = [
  // text, actions, trim markers
  ['a {{ .Values.name }} b', 'a gw b'],
  ['a  \n {{- .Values.name -}} \n  b', 'agwb'],
  ['a {{- /* comment */}} b', 'a b'],
  ['a {{- /* comment */ -}} b', 'ab'],
  ['{{/* c */}}x', 'x'],
  ['{{ -3 }}', '-3'],
  // printing: float64 from values, Go ints from literals
  ['{{ .Values.port }}', '6081'],
  ['{{ .Values.big }}', '1e+06'],
  ['{{ .Values.ratio }}', '0.5'],
  ['{{ .Values.list }}', '[a b]'],
  ['{{ .Values.map }}', 'map[a:1 b:2]'],
  ['{{ .Values.missing }}', ''],
  ['{{ printf "%d" .Values.port }}', '%!d(float64=6081)'],
  ['{{ printf "%d" (int .Values.port) }}', '6081'],
  ['{{ printf "%s-%v" .Values.name 3 }}', 'gw-3'],
  ['{{ printf "%s" .Values.port }}', '%!s(float64=6081)'],
  // conditionals
  ['{{ if .Values.on }}y{{ else }}n{{ end }}', 'y'],
  ['{{ if .Values.off }}y{{ else if .Values.zero }}z{{ else }}n{{ end }}', 'n'],
  ['{{ if .Values.emptyMap }}y{{ else }}n{{ end }}', 'n'],
  ['{{ if and .Values.on .Values.list }}y{{ end }}', 'y'],
  ['{{ and .Values.on .Values.name }}', 'gw'],
  ['{{ or .Values.zero .Values.off "" }}', ''],
  ['{{ or .Values.zero "fallback" }}', 'fallback'],
  // and/or short-circuit: the nil-pointer branch is never evaluated
  ['{{ if and .Values.missing .Values.missing.deep }}y{{ else }}n{{ end }}', 'n'],
  ['{{ if not .Values.off }}y{{ end }}', 'y'],
  ['{{ if eq .Values.name "gw" "other" }}y{{ end }}', 'y'],
  ['{{ if ne .Values.name "gw" }}y{{ else }}n{{ end }}', 'n'],
  ['{{ if eq .Values.missing "x" }}y{{ else }}n{{ end }}', 'n'],
  ['{{ if lt (int .Values.port) 1024 }}low{{ else }}high{{ end }}', 'high'],
  ['{{ if ge .Values.port 1024.0 }}high{{ end }}', 'high'],
  // with, range, variables
  ['{{ with .Values.nested.x }}{{ .y }}{{ end }}', 'deep'],
  ['{{ with .Values.missing }}y{{ else }}n{{ end }}', 'n'],
  ['{{ range .Values.list }}[{{ . }}]{{ end }}', '[a][b]'],
  ['{{ range $i, $v := .Values.list }}{{ $i }}={{ $v }};{{ end }}', '0=a;1=b;'],
  ['{{ range $k, $v := .Values.map }}{{ $k }}={{ $v }};{{ end }}', 'a=1;b=2;'],
  ['{{ range .Values.emptyList }}x{{ else }}none{{ end }}', 'none'],
  ['{{ range .Values.list }}{{ $.Values.name }}{{ end }}', 'gwgw'],
  ['{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}', 'b'],
  ['{{ $n := .Values.name }}{{ $n | upper }}', 'GW'],
  ['{{ (.Values.nested).x.y }}', 'deep'],
  // sprig
  ['{{ .Values.missing | default "d" }}', 'd'],
  ['{{ .Values.off | default true }}', 'true'], // the famous one: false is "empty"
  ['{{ .Values.name | quote }}', '"gw"'],
  ['{{ .Values.str | quote }}', '"x: \\"y\\""'],
  ['{{ .Values.port | quote }}', '"6081"'],
  ['{{ .Values.missing | quote }}', ''],
  ['{{ .Values.name | squote }}', "'gw'"],
  ['{{ toYaml .Values.map }}', 'a: 1\nb: 2'],
  ['{{ toYaml .Values.emptyMap }}', '{}'],
  ['{{ toYaml .Values.list | nindent 2 }}', '\n  - a\n  - b'],
  ['{{ toYaml .Values.nested | indent 4 }}', '    x:\n      "y": deep'], // go-yaml v2 quotes "y": a YAML 1.1 bool
  ['{{ toJson .Values.map }}', '{"a":1,"b":2}'],
  ['{{ "abc" | b64enc }}', 'YWJj'],
  ['{{ hasKey .Values "name" }} {{ hasKey .Values "nope" }}', 'true false'],
  ['{{ empty .Values.zero }} {{ empty .Values.list }}', 'true false'],
  ['{{ "a-very-long-name" | trunc 6 | trimSuffix "-" }}', 'a-very'],
  ['{{ "flowgate-flowgate" | replace "flowgate" "fg" }}', 'fg-fg'],
  ['{{ contains "gate" "flowgate" }} {{ hasPrefix "flow" "flowgate" }}', 'true true'],
  ['{{ add 1 .Values.port }}', '6082'],
  ['{{ len .Values.list }}', '2'],
  ['{{ index .Values.list 1 }} {{ index .Values.map "b" }}', 'b 2'],
  ['{{ ternary "y" "n" .Values.on }}', 'y'],
  ['{{ (dict "k" "v").k }}', 'v'],
  ['{{ list 1 "a" }}', '[1 a]'],
  ['{{ toString .Values.port }}', '6081'],
  // define / template / include
  ['{{ define "t" }}<{{ . }}>{{ end }}{{ template "t" .Values.name }}', '<gw>'],
  ['{{ define "t" }}<{{ . }}>{{ end }}{{ include "t" .Values.name | upper }}', '<GW>'],
  ['{{ define "t" }}{{ $.n }}{{ end }}{{ include "t" (dict "n" "in") }}', 'in'],
]

for (const [tpl, want] of cases) {
  test(`renders ${JSON.stringify(tpl)}`, (t) => {
    t.is(renderString(tpl, V), want)
  })
}

// Errors Helm reports for the same template.
const failures: [string, RegExp][] = [
  ['{{ .Values.missing.deep }}', /nil pointer evaluating interface \{\}\.deep/],
  ['{{ eq .Values.port 6081 }}', /incompatible types for comparison/],
  ['{{ .Values.name | indent .Values.port }}', /expected int; got float64/],
  ['{{ toYaml .Values.map | indent 2 | nindent "x" }}', /expected int; got string/],
  ['{{ required "set name!" .Values.missing }}', /set name!/],
  ['{{ fail "nope" }}', /nope/],
  ['{{ nosuch 1 }}', /function "nosuch" not defined/],
  ['{{ if .Values.on }}x', /unexpected EOF/],
  ['{{ end }}', /unexpected \{\{end\}\}/],
  ['{{ $nope }}', /undefined variable "\$nope"/],
  ['{{ template "none" }}', /no template "none"/],
  ['{{ .Values.name 1 }}', /can't give argument to non-function/],
  ['{{ block "x" . }}{{ end }}', /not supported/],
]
for (const [tpl, re] of failures) {
  test(`fails on ${JSON.stringify(tpl)}`, (t) => {
    const err = t.throws(() => renderString(tpl, V), { instanceOf: TemplateError })
    t.regex(err!.message, re)
  })
}

test('built-in objects are structs: an unknown field is an error, not nil', (t) => {
  const err = t.throws(() =>
    renderString('{{ .Release.Nme }}', { Release: goStruct('chart.Release', { Name: 'r' }) }),
  )
  t.regex(err!.message, /can't evaluate field Nme in type \*chart.Release/)
})

test('toYaml quotes what YAML 1.1 (how Kubernetes reads manifests) would read as a bool or a number', (t) => {
  const strs = { a: 'yes', b: '0440', c: 'on', d: '1.0', e: 'x: y', f: '' }
  const out = renderString('{{ toYaml .Values.strs }}', { Values: { strs } })
  t.deepEqual(parse(out, { version: '1.1' }), strs)
})

test('formatFloat follows Go %v for float64', (t) => {
  t.is(formatFloat(300), '300')
  t.is(formatFloat(100000), '100000')
  t.is(formatFloat(1234567), '1.234567e+06')
  t.is(formatFloat(0.0001), '0.0001')
  t.is(formatFloat(0.00001), '1e-05')
  t.is(formatFloat(2.5), '2.5')
})

test('values merge like Helm: maps merge, lists replace, null deletes', (t) => {
  t.deepEqual(mergeValues({ a: { b: 1, c: 2 }, l: [1, 2], d: 1 }, { a: { c: 3 }, l: [9], d: null }), {
    a: { b: 1, c: 3 },
    l: [9],
  })
})

// Chart-shaped templates, byte for byte as helm template prints them.
test('a manifest with include | nindent, with, range and trimmed control lines', (t) => {
  const helpers = `{{- define "x.labels" -}}
app: {{ .Values.name }}
tier: {{ .Values.tier | default "edge" }}
{{- end -}}`
  const tpl = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Values.name }}
  labels:
    {{- include "x.labels" . | nindent 4 }}
  {{- with .Values.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
data:
  {{- range $k, $v := .Values.data }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
  {{- if .Values.missing }}
  never: here
  {{- end }}
`
  const data = { Values: { name: 'gw', annotations: { b: '2', a: 'x' }, data: { port: 6081, mode: 'on' } } }
  t.is(
    renderString(tpl, data, { '_helpers.tpl': helpers }),
    `apiVersion: v1
kind: ConfigMap
metadata:
  name: gw
  labels:
    app: gw
    tier: edge
  annotations:
    a: x
    b: "2"
data:
  mode: "on"
  port: "6081"
`,
  )
})

test('a list of containers args with a conditional item and a range', (t) => {
  const tpl = `args:
  - run
  {{- if .Values.https }}
  - --tls
  {{- else if .Values.plain }}
  - --plain
  {{- end }}
  {{- range .Values.extra }}
  - {{ . | quote }}
  {{- end }}
`
  t.is(
    renderString(tpl, { Values: { https: false, plain: true, extra: ['a b', '--x=1'] } }),
    `args:
  - run
  - --plain
  - "a b"
  - "--x=1"
`,
  )
})
