import { readdirSync, readFileSync } from 'node:fs'
import test from 'ava'
import { loadPolicyText } from '../../policy/src/load.ts'
import { validateFlowPolicies, validateFlowPolicy } from '../../policy/src/validate.ts'

const policy = (spec: unknown, name = 'p') => ({
  apiVersion: 'flowgate.io/v1alpha1',
  kind: 'FlowPolicy',
  metadata: { name },
  spec,
})
const rule = (extra: Record<string, unknown>) => ({ name: 'r', action: 'Allow', ...extra })
const script = (body: string) => ({ onRequest: body })

// Each mistake a person could make, the field it must be reported at, and words the message must use.
const mistakes: [title: string, doc: unknown, path: string, message: RegExp][] = [
  ['not an object', 'hello', '', /must be an object/],
  [
    'wrong apiVersion',
    { ...policy({}), apiVersion: 'flowgate.io/v1' },
    'apiVersion',
    /must be "flowgate.io\/v1alpha1"/,
  ],
  ['wrong kind', { ...policy({}), kind: 'FlowPolcy' }, 'kind', /must be "FlowPolicy"/],
  ['missing name', { ...policy({}), metadata: {} }, 'metadata.name', /is required/],
  ['name not a DNS subdomain', policy({}, 'My_Policy'), 'metadata.name', /lower-case DNS subdomain/],
  [
    'missing spec',
    { apiVersion: 'flowgate.io/v1alpha1', kind: 'FlowPolicy', metadata: { name: 'p' } },
    'spec',
    /is required/,
  ],
  [
    'unknown spec field, with suggestion',
    policy({ priorty: 5 }),
    'spec.priorty',
    /unknown field "priorty"; did you mean "priority"/,
  ],
  ['negative priority', policy({ priority: -1 }), 'spec.priority', /must be >= 0/],
  ['fractional priority', policy({ priority: 1.5 }), 'spec.priority', /whole number/],
  [
    'mode in lower case',
    policy({ mode: 'audit' }),
    'spec.mode',
    /not one of Enforce, Audit; did you mean "Audit"/,
  ],
  [
    'bad endpoint id',
    policy({ match: { endpoints: ['vpce-123'] } }),
    'spec.match.endpoints[0]',
    /not a GWLB endpoint id/,
  ],
  [
    'endpoint id beyond 64 bits',
    policy({ match: { endpoints: ['vpce-1a1b2c3d4e5f60718'] } }),
    'spec.match.endpoints[0]',
    /starting 0/,
  ],
  [
    'not a CIDR',
    policy({ match: { sources: ['10.0.0.0/33'] } }),
    'spec.match.sources[0]',
    /invalid prefix length/,
  ],
  [
    'garbage address',
    policy({ match: { destinations: ['example.com'] } }),
    'spec.match.destinations[0]',
    /not an IPv4 or IPv6/,
  ],
  [
    'host bits set',
    policy({ match: { sources: ['10.1.2.3/8'] } }),
    'spec.match.sources[0]',
    /host bits set; did you mean 10\.0\.0\.0\/8/,
  ],
  [
    'IPv6 host bits set',
    policy({ match: { sources: ['2001:db8::1/32'] } }),
    'spec.match.sources[0]',
    /did you mean 2001:db8::\/32/,
  ],
  [
    'IPv6 zone id',
    policy({ match: { sources: ['fe80::1%eth0'] } }),
    'spec.match.sources[0]',
    /not an IPv4 or IPv6/,
  ],
  [
    'octal-looking IPv4',
    policy({ match: { sources: ['010.0.0.0/8'] } }),
    'spec.match.sources[0]',
    /not an IPv4 or IPv6/,
  ],
  ['empty list', policy({ match: { sources: [] } }), 'spec.match.sources', /empty list matches nothing/],
  [
    'duplicate list item',
    policy({ match: { protocols: ['TCP', 'TCP'] } }),
    'spec.match.protocols[1]',
    /listed twice/,
  ],
  [
    'unknown protocol',
    policy({ match: { protocols: ['SCTP'] } }),
    'spec.match.protocols[0]',
    /not one of TCP, UDP, ICMP, ICMPv6/,
  ],
  [
    'reversed port range',
    policy({ rules: [rule({ when: { ports: ['90-80'] } })] }),
    'spec.rules[0].when.ports[0]',
    /"90-80" is a reversed range/,
  ],
  [
    'port out of range',
    policy({ match: { ports: [70000] } }),
    'spec.match.ports[0]',
    /not a port \(1-65535\)/,
  ],
  ['port zero', policy({ match: { ports: ['0'] } }), 'spec.match.ports[0]', /0 is not a port/],
  [
    'port not a number',
    policy({ match: { ports: ['https'] } }),
    'spec.match.ports[0]',
    /not a port or a range/,
  ],
  [
    'port of wrong type',
    policy({ match: { ports: [true] } }),
    'spec.match.ports[0]',
    /not a port: write 443/,
  ],
  [
    'ports on ICMP only',
    policy({ match: { protocols: ['ICMP'], ports: ['80'] } }),
    'spec.match.ports',
    /TCP and UDP only/,
  ],
  ['rule without action', policy({ rules: [{ name: 'r' }] }), 'spec.rules[0].action', /is required/],
  [
    'unknown action',
    policy({ rules: [rule({ action: 'Drop' })] }),
    'spec.rules[0].action',
    /not one of Allow, Deny, Reject, Inspect, Authorize/,
  ],
  [
    'misspelt rule field',
    policy({ rules: [{ name: 'r', acton: 'Allow', action: 'Allow' }] }),
    'spec.rules[0].acton',
    /did you mean "action"/,
  ],
  [
    'rule name not a DNS label',
    policy({ rules: [rule({ name: 'Rule One' })] }),
    'spec.rules[0].name',
    /DNS label/,
  ],
  [
    'duplicate rule names',
    policy({ rules: [rule({}), rule({ action: 'Deny' })] }),
    'spec.rules[1].name',
    /also the name of spec.rules\[0\]/,
  ],
  [
    'SNI on UDP',
    policy({ rules: [rule({ when: { protocols: ['UDP'], sni: ['a.com'] } })] }),
    'spec.rules[0].when.sni',
    /sni needs TCP flows/,
  ],
  [
    'Host on ICMP via match',
    policy({ match: { protocols: ['ICMP'] }, rules: [rule({ when: { hosts: ['a.com'] } })] }),
    'spec.rules[0].when.hosts',
    /spec.match.protocols allows ICMP/,
  ],
  [
    'SNI that is an IP',
    policy({ rules: [rule({ when: { sni: ['192.0.2.1'] } })] }),
    'spec.rules[0].when.sni[0]',
    /TLS SNI never carries one/,
  ],
  [
    'wildcard in the middle',
    policy({ rules: [rule({ when: { sni: ['api.*.example.com'] } })] }),
    'spec.rules[0].when.sni[0]',
    /whole first label/,
  ],
  [
    'invalid host name',
    policy({ rules: [rule({ when: { hosts: ['exa mple.com'] } })] }),
    'spec.rules[0].when.hosts[0]',
    /not a valid host name/,
  ],
  [
    'method in lower case',
    policy({ rules: [rule({ when: { methods: ['get'] } })] }),
    'spec.rules[0].when.methods[0]',
    /case-sensitive.*did you mean "GET"/,
  ],
  [
    'path without slash',
    policy({ rules: [rule({ when: { paths: ['api/*'] } })] }),
    'spec.rules[0].when.paths[0]',
    /must start with "\/"/,
  ],
  [
    'star inside a path',
    policy({ rules: [rule({ when: { paths: ['/a/*/b'] } })] }),
    'spec.rules[0].when.paths[0]',
    /may only end a path pattern/,
  ],
  [
    'query in a path',
    policy({ rules: [rule({ when: { paths: ['/watch?v=1'] } })] }),
    'spec.rules[0].when.paths[0]',
    /without the query string/,
  ],
  [
    'bad header name',
    policy({ rules: [rule({ when: { headers: [{ name: 'X Token' }] } })] }),
    'spec.rules[0].when.headers[0].name',
    /not a valid header name/,
  ],
  [
    'rule protocols disjoint from match',
    policy({ match: { protocols: ['UDP'] }, rules: [rule({ when: { protocols: ['TCP'] } })] }),
    'spec.rules[0].when.protocols',
    /can never match/,
  ],
  [
    'rule ports outside match',
    policy({ match: { ports: ['443'] }, rules: [rule({ when: { ports: ['80'] } })] }),
    'spec.rules[0].when.ports',
    /is in spec.match.ports \(443\)/,
  ],
  [
    'rule CIDR outside match',
    policy({
      match: { destinations: ['10.0.0.0/8'] },
      rules: [rule({ when: { destinations: ['192.168.0.0/16'] } })],
    }),
    'spec.rules[0].when.destinations',
    /inside spec.match.destinations/,
  ],
  [
    'Authorize without authorizer',
    policy({ rules: [rule({ action: 'Authorize' })] }),
    'spec.rules[0].action',
    /needs spec.authorizer/,
  ],
  [
    'authorizer over plain http',
    policy({ rules: [rule({ action: 'Authorize' })], authorizer: { url: 'http://authz/decide' } }),
    'spec.authorizer.url',
    /must use https/,
  ],
  [
    'authorizer URL not a URL',
    policy({ rules: [rule({ action: 'Authorize' })], authorizer: { url: 'authz' } }),
    'spec.authorizer.url',
    /not a URL/,
  ],
  [
    'authorizer credentials in URL',
    policy({ rules: [rule({ action: 'Authorize' })], authorizer: { url: 'https://u:p@authz/' } }),
    'spec.authorizer.url',
    /credentials/,
  ],
  [
    'authorizer timeout too small',
    policy({ authorizer: { url: 'https://a/', timeoutMs: 1 } }),
    'spec.authorizer.timeoutMs',
    /must be >= 10/,
  ],
  [
    'authorizer onError',
    policy({ authorizer: { url: 'https://a/', onError: 'Reject' } }),
    'spec.authorizer.onError',
    /not one of Allow, Deny/,
  ],
  [
    'HAR without enabled',
    policy({ rules: [rule({ action: 'Inspect' })], har: { maxBodyBytes: 10 } }),
    'spec.har.enabled',
    /is required/,
  ],
  [
    'HAR body limit over 1 MiB',
    policy({ rules: [rule({ action: 'Inspect' })], har: { enabled: true, maxBodyBytes: 2_000_000 } }),
    'spec.har.maxBodyBytes',
    /must be <= 1048576/,
  ],
  [
    'HAR redacting something that is not a header name',
    policy({ rules: [rule({ action: 'Inspect' })], har: { enabled: true, redactHeaders: ['x api key'] } }),
    'spec.har.redactHeaders[0]',
    /not a header name/,
  ],
  [
    'defaultAction Inspect',
    policy({ defaultAction: 'Inspect' }),
    'spec.defaultAction',
    /not one of Allow, Deny, Reject/,
  ],
  [
    'hooks without Inspect',
    policy({ rules: [rule({ http: script('function onRequest(e){return e.request}') })] }),
    'spec.rules[0].http',
    /use action Inspect, not Allow/,
  ],
  [
    'script that does not compile',
    policy({ rules: [rule({ action: 'Inspect', http: script('function onRequest(e) {') })] }),
    'spec.rules[0].http.onRequest',
    /does not compile/,
  ],
  [
    'script without the function',
    policy({
      rules: [rule({ action: 'Inspect', http: script('function handler(e) { return e.request }') })],
    }),
    'spec.rules[0].http.onRequest',
    /does not define function onRequest/,
  ],
  [
    'async hook',
    policy({
      rules: [rule({ action: 'Inspect', http: script('async function onRequest(e) { return e.request }') })],
    }),
    'spec.rules[0].http.onRequest',
    /plain synchronous function/,
  ],
  [
    'hook that is not a function',
    policy({ rules: [rule({ action: 'Inspect', http: { onResponse: 'var onResponse = 1' } })] }),
    'spec.rules[0].http.onResponse',
    /not a function/,
  ],
  [
    'empty http block',
    policy({ rules: [rule({ action: 'Inspect', http: {} })] }),
    'spec.rules[0].http',
    /set onRequest, onResponse or both/,
  ],
  [
    'Inspect on UDP',
    policy({ rules: [rule({ action: 'Inspect', when: { protocols: ['UDP'] } })] }),
    'spec.rules[0].action',
    /Inspect terminates TCP/,
  ],
  [
    'packet rules on TCP',
    policy({ rules: [rule({ when: { protocols: ['TCP'] }, packet: { dropEveryNth: 3 } })] }),
    'spec.rules[0].packet',
    /limited to UDP, ICMP and ICMPv6/,
  ],
  [
    'packet rules without protocols',
    policy({ rules: [rule({ packet: { dropEveryNth: 3 } })] }),
    'spec.rules[0].packet',
    /need when.protocols/,
  ],
  [
    'packet rules on Deny',
    policy({ rules: [rule({ action: 'Deny', when: { protocols: ['UDP'] }, packet: { dropEveryNth: 3 } })] }),
    'spec.rules[0].packet',
    /use action Allow, not Deny/,
  ],
  [
    'dropEveryNth of 1',
    policy({ rules: [rule({ when: { protocols: ['ICMP'] }, packet: { dropEveryNth: 1 } })] }),
    'spec.rules[0].packet.dropEveryNth',
    /must be >= 2/,
  ],
  [
    'empty packet block',
    policy({ rules: [rule({ when: { protocols: ['UDP'] }, packet: {} })] }),
    'spec.rules[0].packet',
    /set dropIfContains, replace or dropEveryNth/,
  ],
  [
    'replace with empty from',
    policy({ rules: [rule({ when: { protocols: ['UDP'] }, packet: { replace: [{ from: '', to: 'x' }] } })] }),
    'spec.rules[0].packet.replace[0].from',
    /must not be empty/,
  ],
  [
    'replace with itself',
    policy({
      rules: [rule({ when: { protocols: ['UDP'] }, packet: { replace: [{ from: 'a', to: 'a' }] } })],
    }),
    'spec.rules[0].packet.replace[0]',
    /with itself does nothing/,
  ],
  [
    'too many rules',
    policy({ rules: Array.from({ length: 513 }, (_, i) => rule({ name: `r${i}` })) }),
    'spec.rules',
    /more than 512 items/,
  ],
  ['list instead of mapping', policy({ match: ['10.0.0.0/8'] }), 'spec.match', /must be a mapping/],
  [
    'string instead of list',
    policy({ match: { sources: '10.0.0.0/8' } }),
    'spec.match.sources',
    /must be a list/,
  ],
]

for (const [title, doc, path, message] of mistakes) {
  test(`rejects: ${title}`, (t) => {
    const r = validateFlowPolicy(doc)
    t.false(r.ok)
    t.is(r.policy, undefined)
    const hit = r.errors.find((e) => e.path === path && message.test(e.message))
    t.truthy(
      hit,
      `expected ${path}: ${message} among\n${r.errors.map((e) => `${e.path}: ${e.message}`).join('\n')}`,
    )
  })
}

test('the table covers at least 30 distinct mistakes', (t) => {
  t.true(new Set(mistakes.map((m) => m[0])).size >= 30)
})

test('every error in a document is reported in one run, schema and semantic alike', (t) => {
  const r = validateFlowPolicy(
    policy({
      mode: 'enforce',
      match: { sources: ['10.0.0.1/8'] },
      rules: [rule({ when: { ports: ['90-80'] } }), rule({ action: 'Authorize' })],
    }),
  )
  t.deepEqual(r.errors.map((e) => e.path).sort(), [
    'spec.match.sources[0]',
    'spec.mode',
    'spec.rules[0].when.ports[0]',
    'spec.rules[1].action',
    'spec.rules[1].name',
  ])
})

test('duplicate policy names across documents are rejected on the later one', (t) => {
  const [a, b] = validateFlowPolicies([policy({}, 'same'), policy({ priority: 3 }, 'same')])
  t.true(a!.ok)
  t.false(b!.ok)
  t.regex(b!.errors[0]!.message, /also the name of policy #1/)
  t.is(b!.errors[0]!.path, 'metadata.name')
})

test('warnings do not reject: authorizer no rule uses, and a policy that decides nothing', (t) => {
  const r = validateFlowPolicy(policy({ authorizer: { url: 'https://a.example/decide' } }))
  t.true(r.ok)
  t.deepEqual(r.warnings.map((w) => w.path).sort(), ['spec', 'spec.authorizer'])
})

test('defaults are applied and values normalized', (t) => {
  const r = validateFlowPolicy(
    policy({
      rules: [
        rule({ action: 'Authorize', when: { ports: ['8080', 80, '79-81'], sni: ['API.Example.COM.'] } }),
      ],
      authorizer: { url: 'https://a.example/' },
    }),
  )
  t.true(r.ok, JSON.stringify(r.errors))
  const p = r.policy!
  t.is(p.priority, 1000)
  t.is(p.mode, 'Enforce')
  t.deepEqual(p.authorizer, { url: 'https://a.example/', timeoutMs: 200, onError: 'Deny', cacheSeconds: 30 })
  t.deepEqual(p.rules[0]!.when.ports, [
    [79, 81],
    [8080, 8080],
  ])
  t.deepEqual(p.rules[0]!.when.sni, [{ kind: 'exact', name: 'api.example.com' }])
})

test('spec.har: defaults, header names lower-cased once, off when not enabled, and a warning when nothing is read', (t) => {
  const on = validateFlowPolicy(
    policy({
      rules: [rule({ action: 'Inspect' })],
      har: { enabled: true, redactHeaders: ['X-Api-Key', 'x-api-key', 'X-Session'] },
    }),
  )
  t.true(on.ok, JSON.stringify(on.errors))
  t.deepEqual(on.warnings, [])
  t.deepEqual(on.policy!.har, { maxBodyBytes: 65_536, redactHeaders: ['x-api-key', 'x-session'] })
  const off = validateFlowPolicy(policy({ rules: [rule({ action: 'Inspect' })], har: { enabled: false } }))
  t.true(off.ok)
  t.is(off.policy!.har, undefined)
  const unseen = validateFlowPolicy(policy({ rules: [rule({})], har: { enabled: true, maxBodyBytes: 0 } }))
  t.true(unseen.ok)
  t.deepEqual(
    unseen.warnings.map((w) => w.path),
    ['spec.har'],
  )
  t.is(unseen.policy!.har!.maxBodyBytes, 0)
  // A rule reading paths makes flows intercepted too: no warning.
  const paths = validateFlowPolicy(
    policy({ rules: [rule({ when: { paths: ['/api/*'] } })], har: { enabled: true } }),
  )
  t.deepEqual(paths.warnings, [])
})

const examplesDir = new URL('../../examples/', import.meta.url)
const exampleFiles = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'))

test('there are examples for every feature', (t) => {
  const text = exampleFiles.map((f) => readFileSync(new URL(f, examplesDir), 'utf8')).join('\n')
  for (const feature of [
    'endpoints:',
    'sources:',
    'destinations:',
    'protocols:',
    'ports:',
    'sni:',
    'hosts:',
    'methods:',
    'paths:',
    'headers:',
    'action: Allow',
    'action: Deny',
    'action: Inspect',
    'action: Authorize',
    'onRequest:',
    'onResponse:',
    'dropIfContains:',
    'replace:',
    'dropEveryNth:',
    'authorizer:',
    'har:',
    'defaultAction: Reject',
    'mode: Audit',
    'ICMPv6',
    '2001:db8',
  ]) {
    t.true(text.includes(feature), `no example uses ${feature}`)
  }
})

for (const file of exampleFiles) {
  test(`example ${file} is valid without warnings`, (t) => {
    const loaded = loadPolicyText(readFileSync(new URL(file, examplesDir), 'utf8'))
    t.deepEqual(loaded.errors, [])
    t.true(loaded.docs.length > 0)
    for (const d of loaded.docs) {
      const r = validateFlowPolicy(d.value)
      t.deepEqual(r.errors, [])
      t.deepEqual(r.warnings, [])
    }
  })
}
