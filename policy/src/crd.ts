// Generates the FlowPolicy CustomResourceDefinition from schema.ts, so the API server and our validator
// enforce one definition. The output must be a structural schema (Kubernetes "Specifying a structural
// schema"): every node typed, no additionalProperties beside properties, anyOf only in the shapes
// Kubernetes allows. Cross-field rules the API server can check cheaply are CEL validations; the rest
// (CIDR syntax, script compilation, …) is the operator's, reported in status.conditions.
import { stringify } from 'yaml'
import { FlowPolicySpec, FlowPolicyStatus, GROUP, KIND, LIMITS, PLURAL, Rule, VERSION } from './schema.ts'

export interface CelRule {
  rule: string
  message: string
  fieldPath?: string
  reason?: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueForbidden'
}

const L7_PRESENT =
  'has(self.when) && (has(self.when.sni) || has(self.when.hosts) || has(self.when.methods) || ' +
  'has(self.when.paths) || has(self.when.headers))'

/** Rules on each element of spec.rules. */
export const RULE_VALIDATIONS: CelRule[] = [
  {
    rule: "!has(self.http) || self.action == 'Inspect'",
    message: 'http hooks run only on intercepted flows: use action Inspect',
    fieldPath: '.http',
    reason: 'FieldValueForbidden',
  },
  {
    rule: "!has(self.packet) || self.action == 'Allow'",
    message: 'packet rules apply to flows that are allowed: use action Allow',
    fieldPath: '.packet',
    reason: 'FieldValueForbidden',
  },
  {
    rule: `!(${L7_PRESENT}) || !has(self.when.protocols) || self.when.protocols.all(p, p == 'TCP')`,
    message: 'sni, hosts, methods, paths and headers need TCP flows',
    fieldPath: '.when.protocols',
    reason: 'FieldValueInvalid',
  },
  {
    rule: "!has(self.tcpProxy) || !self.tcpProxy || self.action == 'Allow'",
    message: 'tcpProxy relays allowed flows: use action Allow',
    fieldPath: '.tcpProxy',
    reason: 'FieldValueForbidden',
  },
  {
    rule: `!has(self.packet) || !(${L7_PRESENT})`,
    message: 'packet rules cannot be combined with L7 conditions',
    fieldPath: '.packet',
    reason: 'FieldValueForbidden',
  },
]

/** Rules on spec as a whole. */
export const SPEC_VALIDATIONS: CelRule[] = [
  {
    rule: "!has(self.rules) || !self.rules.exists(r, r.action == 'Authorize') || has(self.authorizer)",
    message: 'rules with action Authorize need spec.authorizer',
    fieldPath: '.authorizer',
    reason: 'FieldValueRequired',
  },
  {
    rule:
      '!has(self.rules) || self.rules.all(r, !has(r.packet) || ' +
      "(has(r.when) && has(r.when.protocols) ? !r.when.protocols.exists(p, p == 'TCP') : " +
      "(has(self.match) && has(self.match.protocols) && !self.match.protocols.exists(p, p == 'TCP'))))",
    message: 'packet rules need protocols limited to UDP, ICMP and ICMPv6',
    fieldPath: '.rules',
    reason: 'FieldValueInvalid',
  },
  {
    rule: "!has(self.authorizer) || self.authorizer.url.startsWith('https://')",
    message: 'the authorizer URL must use https',
    fieldPath: '.authorizer.url',
    reason: 'FieldValueInvalid',
  },
]

type Json = Record<string, unknown>

/** TypeBox/JSON Schema → structural OpenAPI v3 schema as Kubernetes accepts it. */
export function toStructural(schema: unknown): Json {
  const s = schema as Json
  if (s['x-flowgate-int-or-string']) {
    const out: Json = { 'x-kubernetes-int-or-string': true }
    if (s.description) out.description = s.description
    return out
  }
  const out: Json = {}
  for (const [k, v] of Object.entries(s)) {
    switch (k) {
      case '$id':
      case '~kind':
      case 'additionalProperties':
        if (k === 'additionalProperties' && typeof v === 'object') out[k] = toStructural(v)
        break
      case 'const':
        out.enum = [v]
        break
      case 'properties':
        out.properties = Object.fromEntries(
          Object.entries(v as Json).map(([pk, pv]) => [pk, toStructural(pv)]),
        )
        break
      case 'items':
        out.items = toStructural(v)
        break
      default:
        if (!k.startsWith('x-flowgate-')) out[k] = v
    }
  }
  if (out.type === undefined && out.enum) out.type = typeof (out.enum as unknown[])[0]
  return out
}

export function generateCrd(): Json {
  const spec = toStructural(FlowPolicySpec)
  spec['x-kubernetes-validations'] = SPEC_VALIDATIONS
  const rules = (spec.properties as Json).rules as Json
  rules.items = { ...toStructural(Rule), 'x-kubernetes-validations': RULE_VALIDATIONS }
  const status = toStructural(FlowPolicyStatus)
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      annotations: { 'flowgate.io/generated-from': 'policy/src/schema.ts' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        shortNames: ['fp'],
        categories: ['flowgate'],
      },
      scope: 'Cluster',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Priority', type: 'integer', jsonPath: '.spec.priority' },
            { name: 'Mode', type: 'string', jsonPath: '.spec.mode' },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `FlowPolicy says what flowgate appliances do with traffic from GWLB endpoints (at most ${LIMITS.rules} rules).`,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status,
              },
            },
          },
        },
      ],
    },
  }
}

export function renderCrdYaml(): string {
  const header =
    '# Generated from policy/src/schema.ts by `npm run gen:crd`. Do not edit by hand:\n' +
    '# a test fails when this file and the schema disagree.\n'
  return header + stringify(generateCrd(), { lineWidth: 0, aliasDuplicateObjects: false })
}
