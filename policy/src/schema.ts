// The FlowPolicy API (flowgate.io/v1alpha1), defined once. This schema is the single source of truth:
// crds/flowpolicy.yaml is generated from it (scripts/gen-crd.ts), the TypeScript types below are derived
// from it, and validate.ts checks documents against it before the semantic checks.
//
// Annotations understood by the CRD generator (crd.ts):
//   'x-flowgate-int-or-string'  → x-kubernetes-int-or-string (ports may be written 443 or "8000-8100")
//   'x-kubernetes-*'            → copied into the CRD as they are
import Type from 'typebox'

export const GROUP = 'flowgate.io'
export const VERSION = 'v1alpha1'
export const API_VERSION = `${GROUP}/${VERSION}`
export const KIND = 'FlowPolicy'
export const PLURAL = 'flowpolicies'

// String enums are JSON Schema `enum` with `type: string` (what a structural CRD schema wants). Each
// list of values is written once, here; the TypeScript unions and runtime lists derive from it.
const ProtocolEnum = Type.Enum(['TCP', 'UDP', 'ICMP', 'ICMPv6'], { type: 'string' })
const RuleActionEnum = Type.Enum(['Allow', 'Deny', 'Reject', 'Inspect', 'Authorize'], {
  type: 'string',
  description: 'what to do with a flow this rule matches',
})
const DefaultActionEnum = Type.Enum(['Allow', 'Deny', 'Reject'], {
  type: 'string',
  description: 'for matched flows no rule decides; omitted: lower-priority policies decide',
})
const ModeEnum = Type.Enum(['Enforce', 'Audit'], {
  type: 'string',
  default: 'Enforce',
  description: 'Audit decides and records exactly as Enforce would, but never changes traffic',
})
const OnErrorEnum = Type.Enum(['Allow', 'Deny'], { type: 'string', default: 'Deny' })
const ConditionStatusEnum = Type.Enum(['True', 'False', 'Unknown'], { type: 'string' })

export type Protocol = Type.Static<typeof ProtocolEnum>
export type RuleAction = Type.Static<typeof RuleActionEnum>
export type DefaultAction = Type.Static<typeof DefaultActionEnum>
export type Mode = Type.Static<typeof ModeEnum>
export const PROTOCOLS = ProtocolEnum.enum as readonly Protocol[]
export const RULE_ACTIONS = RuleActionEnum.enum as readonly RuleAction[]
export const DEFAULT_ACTIONS = DefaultActionEnum.enum as readonly DefaultAction[]
export const MODES = ModeEnum.enum as readonly Mode[]

// Bounds keep CEL validation cost finite in the API server and the compiled bundle small.
export const LIMITS = {
  listItems: 256,
  rules: 512,
  scriptBytes: 10_240, // CloudFront Functions' own limit
  patternLength: 253,
  replaceItems: 16,
  harBodyBytes: 1_048_576,
} as const

const list = <T extends Type.TSchema>(item: T, description: string, maxItems: number = LIMITS.listItems) =>
  Type.Optional(Type.Array(item, { description, maxItems }))

// Endpoint ids are carried in an 8-byte Geneve option and printed as "vpce-" + 17 hex digits, so the
// first digit is always 0 (GWLB.md).
const EndpointId = Type.String({
  description: 'GWLB endpoint id (vpce-…, Geneve option class 0x0108 type 1)',
  maxLength: 22,
})
const Cidr = Type.String({
  description: 'IPv4 or IPv6 CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32; a bare address means a single host',
  maxLength: 64,
})
const Port = Type.Union([Type.Integer(), Type.String({ maxLength: 11 })], {
  description: 'destination port ("443") or inclusive range ("8000-8100")',
  'x-flowgate-int-or-string': true,
})
const HostPattern = Type.String({
  description: 'host name, or *.suffix for any name below suffix; case-insensitive',
  maxLength: LIMITS.patternLength,
})

export const Match = Type.Object(
  {
    endpoints: list(EndpointId, 'GWLB endpoint ids; omitted: every endpoint'),
    sources: list(Cidr, 'source CIDRs; omitted: any source'),
    destinations: list(Cidr, 'destination CIDRs; omitted: any destination'),
    protocols: list(ProtocolEnum, 'IP protocols; omitted: any protocol', 4),
    ports: list(Port, 'destination ports or ranges (TCP and UDP only); omitted: any port'),
  },
  { additionalProperties: false, description: 'which flows this policy governs; omitted fields match all' },
)

export const HeaderMatch = Type.Object(
  {
    name: Type.String({ description: 'header name, case-insensitive', maxLength: 128 }),
    values: list(
      Type.String({ maxLength: 1024 }),
      'the header must have one of these values (exact); omitted: present with any value',
      32,
    ),
  },
  { additionalProperties: false },
)

export const When = Type.Object(
  {
    sources: list(Cidr, 'source CIDRs (narrowing spec.match.sources)'),
    destinations: list(Cidr, 'destination CIDRs (narrowing spec.match.destinations)'),
    protocols: list(ProtocolEnum, 'IP protocols', 4),
    ports: list(Port, 'destination ports or ranges'),
    sni: list(HostPattern, 'TLS server name (ClientHello SNI)'),
    hosts: list(
      HostPattern,
      'HTTP Host; on TLS flows that are not intercepted the SNI stands in for the Host',
    ),
    methods: list(Type.String({ maxLength: 32 }), 'HTTP methods (case-sensitive, e.g. GET)', 32),
    paths: list(Type.String({ maxLength: 2048 }), 'HTTP paths without query: exact, or a prefix ending in *'),
    headers: list(HeaderMatch, 'HTTP request headers that must all match', 16),
  },
  {
    additionalProperties: false,
    description: 'conditions that must all hold; L7 keys (sni, hosts, methods, paths, headers) imply TCP',
  },
)

export const HttpHooks = Type.Object(
  {
    onRequest: Type.Optional(
      Type.String({
        description: 'JavaScript defining function onRequest(event) (CloudFront Functions event model)',
        maxLength: LIMITS.scriptBytes,
      }),
    ),
    onResponse: Type.Optional(
      Type.String({
        description: 'JavaScript defining function onResponse(event) (CloudFront Functions event model)',
        maxLength: LIMITS.scriptBytes,
      }),
    ),
  },
  { additionalProperties: false, description: 'scripts run on intercepted HTTP exchanges (action Inspect)' },
)

export const PacketRewrite = Type.Object(
  {
    from: Type.String({ minLength: 1, maxLength: 1024 }),
    to: Type.String({ maxLength: 1024 }),
  },
  { additionalProperties: false },
)

export const PacketRules = Type.Object(
  {
    dropIfContains: list(
      Type.String({ minLength: 1, maxLength: 1024 }),
      'drop a packet whose payload contains any of these strings (UTF-8)',
      LIMITS.replaceItems,
    ),
    replace: list(
      PacketRewrite,
      'replace every occurrence in the payload; lengths and checksums are fixed up',
      LIMITS.replaceItems,
    ),
    dropEveryNth: Type.Optional(
      Type.Integer({ minimum: 2, maximum: 1_000_000, description: 'drop every Nth packet of a flow' }),
    ),
  },
  { additionalProperties: false, description: 'per-packet rules for UDP and ICMP flows (no TCP state)' },
)

export const Rule = Type.Object(
  {
    name: Type.String({ description: 'unique within the policy; a DNS label', maxLength: 63 }),
    when: Type.Optional(When),
    action: RuleActionEnum,
    http: Type.Optional(HttpHooks),
    packet: Type.Optional(PacketRules),
    tcpProxy: Type.Optional(
      Type.Boolean({
        description:
          'Allow only: terminate TCP in the appliance and relay it over a new connection to the server (normalizes TCP; the server still sees the client address)',
      }),
    ),
  },
  { additionalProperties: false },
)

export const Authorizer = Type.Object(
  {
    url: Type.String({ description: 'HTTPS endpoint called once per new connection', maxLength: 2048 }),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 10_000, default: 200 })),
    onError: Type.Optional(OnErrorEnum),
    cacheSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, default: 30 })),
  },
  {
    additionalProperties: false,
    description: 'webhook deciding flows matched by rules with action Authorize',
  },
)

export const HarCapture = Type.Object(
  {
    enabled: Type.Boolean({ description: "record this policy's HTTP exchanges as HAR 1.2 entries" }),
    maxBodyBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: LIMITS.harBodyBytes,
        default: 65_536,
        description: 'request and response bodies are kept up to this many bytes each (0: none)',
      }),
    ),
    redactHeaders: list(
      Type.String({ maxLength: 128 }),
      'more header names whose values are replaced by [redacted] (authorization, proxy-authorization, cookie, set-cookie and x-amz-security-token always are)',
      32,
    ),
  },
  {
    additionalProperties: false,
    description:
      'HAR export of the HTTP exchanges this policy decides on flows the appliance sees in clear (intercepted, or cleartext HTTP it terminates): GET /v1/har on the admin API, or --har-dir',
  },
)

export const FlowPolicySpec = Type.Object(
  {
    priority: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        default: 1000,
        description: 'policies are evaluated in ascending priority, then by name',
      }),
    ),
    mode: Type.Optional(ModeEnum),
    match: Type.Optional(Match),
    rules: Type.Optional(
      Type.Array(Rule, {
        description: 'evaluated in order; the first matching rule decides',
        maxItems: LIMITS.rules,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
    authorizer: Type.Optional(Authorizer),
    har: Type.Optional(HarCapture),
    defaultAction: Type.Optional(DefaultActionEnum),
  },
  { additionalProperties: false },
)

export const Condition = Type.Object({
  type: Type.String({ maxLength: 316 }),
  status: ConditionStatusEnum,
  reason: Type.String({ maxLength: 1024 }),
  message: Type.String({ maxLength: 32_768 }),
  lastTransitionTime: Type.String({ format: 'date-time' }),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
})

export const RuleUsage = Type.Object(
  {
    name: Type.String({ description: 'the rule (spec.rules[].name)', maxLength: 63 }),
    hits: Type.Integer({
      minimum: 0,
      description:
        'flows (and HTTP requests of intercepted flows) the rule decided, summed over the running appliances since each started',
    }),
    lastHit: Type.Optional(
      Type.String({
        format: 'date-time',
        description: 'the latest hit seen on any appliance; kept when appliances restart',
      }),
    ),
  },
  { description: 'usage of one rule, gathered from the appliances by the operator' },
)

export const FlowPolicyStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  bundleVersion: Type.Optional(Type.String()),
  conditions: Type.Optional(
    Type.Array(Condition, {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    }),
  ),
  appliances: Type.Optional(
    Type.Object({
      total: Type.Integer({ minimum: 0 }),
      programmed: Type.Integer({ minimum: 0 }),
    }),
  ),
  rules: Type.Optional(
    Type.Array(RuleUsage, {
      description:
        "rule usage, in spec order, refreshed periodically from the appliances' counters (find rules nobody hits)",
      maxItems: LIMITS.rules,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    }),
  ),
})

export const ObjectMeta = Type.Object({
  name: Type.String({ maxLength: 253 }),
  generation: Type.Optional(Type.Integer()),
  resourceVersion: Type.Optional(Type.String()),
  uid: Type.Optional(Type.String()),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
})

// The whole object as the validator sees it. The CRD's openAPIV3Schema is generated from `spec` and
// `status` only: apiVersion, kind and metadata belong to the API server.
export const FlowPolicy = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal(KIND),
  metadata: ObjectMeta,
  spec: FlowPolicySpec,
  status: Type.Optional(FlowPolicyStatus),
})

export type MatchT = Type.Static<typeof Match>
export type WhenT = Type.Static<typeof When>
export type RuleT = Type.Static<typeof Rule>
export type HeaderMatchT = Type.Static<typeof HeaderMatch>
export type PacketRulesT = Type.Static<typeof PacketRules>
export type HttpHooksT = Type.Static<typeof HttpHooks>
export type AuthorizerT = Type.Static<typeof Authorizer>
export type HarCaptureT = Type.Static<typeof HarCapture>
export type FlowPolicySpecT = Type.Static<typeof FlowPolicySpec>
export type FlowPolicyStatusT = Type.Static<typeof FlowPolicyStatus>
export type ConditionT = Type.Static<typeof Condition>
export type FlowPolicyT = Type.Static<typeof FlowPolicy>
