// charts/flowgate rendered for the default values and for every documented option, each rendered object
// validated against the Kubernetes OpenAPI schemas (kubernetes-models), checked for unknown fields (as
// `kubectl apply --validate=strict` would), and held to the chart's security and wiring invariants.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as k8s from '@kubernetes/client-node'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import test, { type ExecutionContext } from 'ava'
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition'
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole'
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding'
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role'
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Service } from 'kubernetes-models/v1/Service'
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import { parse, parseAllDocuments } from 'yaml'
import {
  FUNCTION_NAMES,
  loadChart,
  mergeValues,
  type Rendered,
  renderChart,
  SchemaError,
  TemplateError,
} from '../support/helm-render.ts'

const chartDir = new URL('../../charts/flowgate', import.meta.url).pathname
const chart = loadChart(chartDir)
const NS = 'flowgate-system'

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects, inspected freely
type Obj = Record<string, any>
const render = (values: Obj = {}, extra: Parameters<typeof renderChart>[1] = {}): Rendered =>
  renderChart(chart, { values, namespace: NS, releaseName: 'flowgate', ...extra })

// ------------------------------------------------------------------ validation against schemas

// biome-ignore lint/suspicious/noExplicitAny: each model takes its own shape; validate() checks it
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
}

// The Prometheus Operator kinds are not in kubernetes-models: the fields the chart uses, from the
// monitoring.coreos.com/v1 CRDs, with unknown fields refused.
const meta = {
  type: 'object',
  required: ['name', 'namespace'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
    namespace: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
  },
  additionalProperties: false,
}
const labelSelector = {
  type: 'object',
  properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } },
  additionalProperties: false,
}
const endpoint = {
  type: 'object',
  required: ['port'],
  properties: {
    port: { type: 'string' },
    path: { type: 'string' },
    interval: {
      type: 'string',
      pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$',
    },
  },
  additionalProperties: false,
}
const monitorSpec = (endpointsKey: string) => ({
  type: 'object',
  required: ['selector', endpointsKey],
  properties: {
    selector: labelSelector,
    namespaceSelector: {
      type: 'object',
      properties: { matchNames: { type: 'array', items: { type: 'string' } } },
      additionalProperties: false,
    },
    [endpointsKey]: { type: 'array', minItems: 1, items: endpoint },
  },
  additionalProperties: false,
})
const crdLike = (spec: object) => ({
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'monitoring.coreos.com/v1' },
    kind: { type: 'string' },
    metadata: meta,
    spec,
  },
  additionalProperties: false,
})
const rule = {
  type: 'object',
  required: ['alert', 'expr'],
  properties: {
    alert: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    expr: { type: 'string', minLength: 1 },
    for: { type: 'string', pattern: '^[0-9]+(ms|s|m|h|d)$' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
  },
  additionalProperties: false,
}
const ajv = new Ajv({ allErrors: true, strict: false })
const MONITORING: Record<string, ReturnType<typeof ajv.compile>> = {
  ServiceMonitor: ajv.compile(crdLike(monitorSpec('endpoints'))),
  PodMonitor: ajv.compile(crdLike(monitorSpec('podMetricsEndpoints'))),
  PrometheusRule: ajv.compile(
    crdLike({
      type: 'object',
      required: ['groups'],
      properties: {
        groups: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'rules'],
            properties: { name: { type: 'string' }, rules: { type: 'array', minItems: 1, items: rule } },
            additionalProperties: false,
          },
        },
      },
      additionalProperties: false,
    }),
  ),
}

/** Unknown fields, walking @kubernetes/client-node's generated attribute type maps (strict decoding). */
function unknownFields(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return
  const arr = /^Array<(.+)>$/.exec(type)
  if (arr) {
    if (Array.isArray(value))
      for (const [i, v] of value.entries()) unknownFields(v, arr[1]!, `${path}[${i}]`, out)
    return
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type)
  if (map) {
    for (const [k, v] of Object.entries(value as Obj)) unknownFields(v, map[1]!, `${path}.${k}`, out)
    return
  }
  const cls = (
    k8s as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>
  )[type]
  if (!cls?.getAttributeTypeMap || typeof value !== 'object') return
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]))
  for (const [k, v] of Object.entries(value as Obj)) {
    const t = attrs.get(k)
    if (t === undefined) out.push(`${path}.${k}`)
    else unknownFields(v, t, `${path}.${k}`, out)
  }
}

function validateObject(o: Obj): string[] {
  const where = `${o.kind}/${o.metadata?.name}`
  if (o.apiVersion === 'monitoring.coreos.com/v1') {
    const v = MONITORING[o.kind]
    if (!v) return [`${where}: no schema for ${o.kind}`]
    return v(o) ? [] : [`${where}: ${ajv.errorsText(v.errors)}`]
  }
  const Model = MODELS[`${o.apiVersion}/${o.kind}`]
  if (!Model) return [`${where}: no schema for ${o.apiVersion}/${o.kind}`]
  const errors: string[] = []
  try {
    new Model(o).validate()
  } catch (err) {
    errors.push(`${where}: ${(err as Error).message}`)
  }
  const unknown: string[] = []
  unknownFields(o, `V1${o.kind}`, '', unknown)
  for (const u of unknown) errors.push(`${where}: unknown field ${u}`)
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(o.metadata?.name ?? '') || o.metadata.name.length > 63)
    errors.push(`${where}: bad name`)
  return errors
}

const find = (r: Rendered, kind: string, name?: string): Obj | undefined =>
  (r.objects as Obj[]).find((o) => o.kind === kind && (name === undefined || o.metadata?.name === name))
const must = (r: Rendered, kind: string, name?: string): Obj => {
  const o = find(r, kind, name)
  if (!o)
    throw new Error(
      `no ${kind} ${name ?? ''} rendered; got ${r.objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`,
    )
  return o
}

// ------------------------------------------------------------------ the documented options

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUe1\n-----END CERTIFICATE-----\n'
const TG = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/flowgate/0123456789abcdef'

const SCENARIOS: Record<string, Obj> = {
  defaults: {},
  'CA in KMS': { ca: { mode: 'kms', kms: { keyId: 'alias/flowgate-ca', certificate: PEM } } },
  'CA from a Secret (named), extra upstream roots': {
    ca: { mode: 'secret', secret: { name: 'my-ca' } },
    appliance: { upstreamCa: { configMapName: 'corp-roots', key: 'roots.pem' } },
  },
  'CA from the default Secret name': { ca: { mode: 'secret' } },
  'EKS production': {
    aws: { region: 'eu-west-1' },
    gwlb: { targetGroupArn: TG },
    operator: {
      serviceAccount: {
        annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/flowgate-operator' },
      },
    },
    appliance: {
      serviceAccount: {
        annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/flowgate-appliance' },
      },
    },
    fleetDefault: 'Deny',
  },
  'dedicated nodes: tolerations, nodeSelector, priority class': {
    appliance: {
      tolerations: [{ key: 'flowgate.io/appliance', operator: 'Exists', effect: 'NoSchedule' }],
      nodeSelector: { 'flowgate.io/appliance': 'true' },
      priorityClassName: 'system-node-critical',
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              {
                matchExpressions: [
                  { key: 'node.kubernetes.io/instance-type', operator: 'In', values: ['c6in.2xlarge'] },
                ],
              },
            ],
          },
        },
      },
      updateStrategy: { maxUnavailable: '25%' },
    },
    operator: {
      tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
      priorityClassName: 'system-cluster-critical',
    },
  },
  'ServiceMonitor and PrometheusRule': {
    gwlb: { targetGroupArn: TG },
    monitoring: {
      serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      prometheusRule: { enabled: true },
    },
  },
  'PodMonitor and the Grafana dashboard': {
    monitoring: {
      podMonitor: { enabled: true, interval: '15s' },
      grafanaDashboard: { enabled: true, folder: 'Network' },
    },
  },
  'dgram I/O, non-root, emptyDir state': { appliance: { io: 'dgram', stateDir: { type: 'emptyDir' } } },
  'auto I/O': { appliance: { io: 'auto' } },
  'long drain': { appliance: { drainSeconds: 900, terminationGracePeriodSeconds: 930 } },
  'privileged port': { appliance: { httpPort: 80 } },
  'plain http admin API (tests only)': { adminApi: { scheme: 'http', tls: { secretName: '' } } },
  'events in the release namespace, existing service accounts': {
    operator: { eventsNamespace: '', serviceAccount: { create: false, name: 'ops' } },
    appliance: { serviceAccount: { create: false, name: 'app' } },
  },
  'image by digest, pull secrets, names': {
    image: { digest: `sha256:${'a'.repeat(64)}` },
    imagePullSecrets: [{ name: 'regcred' }],
    fullnameOverride: 'fg',
    commonLabels: { team: 'net' },
  },
  'single operator replica (no PDB)': { operator: { replicas: 1 } },
}

const rendered = new Map<string, Rendered>()
for (const [name, values] of Object.entries(SCENARIOS)) {
  test(`renders and validates: ${name}`, (t) => {
    const r = render(values)
    rendered.set(name, r)
    t.true(r.objects.length > 0)
    const errors = r.objects.flatMap(validateObject)
    t.deepEqual(errors, [])
    const ids = r.objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`)
    t.deepEqual(ids, [...new Set(ids)], 'no two objects share kind and name')
    for (const o of r.objects) {
      if (!['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o.kind))
        t.truthy(o.metadata.namespace, `${o.kind}/${o.metadata.name} has a namespace`)
    }
    invariants(t, r, values)
  })
}

// ------------------------------------------------------------------ invariants

type T = ExecutionContext<unknown>

function invariants(t: T, r: Rendered, values: Obj): void {
  const v = r.values as Obj
  const ds = must(r, 'DaemonSet')
  const dep = must(r, 'Deployment')
  const pod = ds.spec.template.spec
  const app = pod.containers[0]
  const opPod = dep.spec.template.spec
  const op = opPod.containers[0]

  // no pod is privileged or escalates, every container drops ALL, seccomp RuntimeDefault
  for (const [p, c] of [
    [pod, app],
    [opPod, op],
  ]) {
    t.not(c.securityContext.privileged, true)
    t.is(c.securityContext.allowPrivilegeEscalation, false)
    t.is(c.securityContext.readOnlyRootFilesystem, true)
    t.deepEqual(c.securityContext.capabilities.drop, ['ALL'])
    t.is(p.securityContext.seccompProfile.type, 'RuntimeDefault')
    t.falsy(p.hostPID)
    t.falsy(p.hostIPC)
    for (const vol of p.volumes)
      if (vol.hostPath) t.is(vol.name, 'state', 'the only hostPath is the state directory')
  }
  // operator: non-root, leader election on the Lease RBAC names, probes, metrics port
  t.is(opPod.securityContext.runAsNonRoot, true)
  t.true(opPod.securityContext.runAsUser > 0)
  t.is(dep.spec.replicas, v.operator.replicas)
  t.is(op.livenessProbe.httpGet.path, '/healthz')
  t.is(op.readinessProbe.httpGet.path, '/readyz')
  t.true(op.ports.some((p: Obj) => p.name === 'metrics' && p.containerPort === v.operator.port))
  const lease = arg(op.args, 'lease-name')
  const role = r.objects.find(
    (o) => o.kind === 'Role' && o.rules.some((x: Obj) => x.resources.includes('leases')),
  )!
  const leaseRules = role.rules.filter((x: Obj) => x.resources.includes('leases'))
  for (const lr of leaseRules) {
    if (lr.verbs.includes('create'))
      t.deepEqual(lr.verbs, ['create'], 'create cannot be limited by name, so alone')
    else t.deepEqual(lr.resourceNames, [lead(lease)])
  }
  t.true(opPod.automountServiceAccountToken)
  if (v.operator.replicas > 1 && v.operator.podDisruptionBudget.enabled) {
    const pdb = must(r, 'PodDisruptionBudget')
    t.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels)
  } else t.falsy(find(r, 'PodDisruptionBudget'))

  // appliance: host networking, grace ≥ drain + margin, capabilities only for what is configured
  t.true(pod.hostNetwork)
  t.is(pod.dnsPolicy, 'ClusterFirstWithHostNet')
  t.false(pod.automountServiceAccountToken)
  t.true(pod.terminationGracePeriodSeconds >= Number(arg(app.args, 'drain-seconds')) + 15)
  t.is(ds.spec.updateStrategy.type, 'RollingUpdate')
  t.deepEqual(ds.spec.updateStrategy.rollingUpdate.maxUnavailable, v.appliance.updateStrategy.maxUnavailable)
  const fast = v.appliance.io !== 'dgram'
  const low = [v.appliance.genevePort, v.appliance.httpPort, v.adminApi.port].some((p: number) => p < 1024)
  const want = [...(fast ? ['NET_RAW'] : []), ...(low ? ['NET_BIND_SERVICE'] : [])]
  t.deepEqual(app.securityContext.capabilities.add ?? [], want)
  if (fast) t.is(pod.securityContext.runAsUser, 0)
  else t.is(pod.securityContext.runAsNonRoot, true)
  t.is(app.livenessProbe.httpGet.path, '/livez')
  t.is(app.readinessProbe.httpGet.path, '/readyz')
  const ports = Object.fromEntries(app.ports.map((p: Obj) => [p.name, p]))
  t.deepEqual(ports.geneve, { name: 'geneve', containerPort: v.appliance.genevePort, protocol: 'UDP' })
  t.is(ports.http.containerPort, v.appliance.httpPort)
  t.is(
    ports.admin.containerPort,
    v.adminApi.port,
    'the operator finds the admin API by the port named "admin"',
  )
  t.is(arg(app.args, 'state-dir'), app.volumeMounts.find((m: Obj) => m.name === 'state').mountPath)
  t.deepEqual(pod.nodeSelector, isEmpty(v.appliance.nodeSelector) ? undefined : v.appliance.nodeSelector)
  t.deepEqual(pod.tolerations, isEmpty(v.appliance.tolerations) ? undefined : v.appliance.tolerations)
  t.is(pod.priorityClassName, v.appliance.priorityClassName || undefined)

  // wiring between the two: selector, token, TLS
  const selector = Object.fromEntries(
    arg(op.args, 'selector')!
      .split(',')
      .map((kv) => kv.split('=')),
  )
  t.deepEqual(
    selector,
    ds.spec.template.metadata.labels && pick(ds.spec.template.metadata.labels, Object.keys(selector)),
  )
  t.deepEqual(
    pick(ds.spec.template.metadata.labels, Object.keys(ds.spec.selector.matchLabels)),
    ds.spec.selector.matchLabels,
  )
  const secretOf = (p: Obj, name: string) => p.volumes.find((x: Obj) => x.name === name)?.secret?.secretName
  t.is(secretOf(pod, 'admin-token'), v.adminApi.tokenSecret.name)
  t.is(secretOf(opPod, 'admin-token'), v.adminApi.tokenSecret.name)
  t.is(arg(op.args, 'admin-scheme'), v.adminApi.scheme)
  if (v.adminApi.scheme === 'https') {
    t.is(secretOf(pod, 'admin-tls'), v.adminApi.tls.secretName)
    t.deepEqual(
      opPod.volumes.find((x: Obj) => x.name === 'admin-tls').secret.items,
      [{ key: 'ca.crt', path: 'ca.crt' }],
      'the operator mounts only the CA, never the appliances key',
    )
  } else t.is(arg(app.args, 'admin-tls-cert'), undefined)
  t.is(arg(op.args, 'target-group-arn'), v.gwlb.targetGroupArn || undefined)
  t.is(arg(op.args, 'fleet-default'), v.fleetDefault)

  // CA mode
  const ca = pod.volumes.find((x: Obj) => x.name === 'ca')
  if (v.ca.mode === 'secret') t.is(ca.secret.secretName, v.ca.secret.name)
  if (v.ca.mode === 'kms') {
    t.is(arg(app.args, 'kms-key-id'), v.ca.kms.keyId)
    const cm = must(r, 'ConfigMap', ca.configMap.name)
    t.is(cm.data['ca.crt'].trim(), v.ca.kms.certificate.trim())
    t.regex(ds.spec.template.metadata.annotations['checksum/ca-certificate'], /^[0-9a-f]{64}$/)
  }
  if (v.ca.mode === 'none') t.falsy(ca)

  // ServiceAccounts: separate, annotated as asked
  t.not(opPod.serviceAccountName, pod.serviceAccountName)
  for (const [who, p] of [
    ['operator', opPod],
    ['appliance', pod],
  ] as const) {
    const sa = find(r, 'ServiceAccount', p.serviceAccountName)
    if (v[who].serviceAccount.create)
      t.deepEqual(
        sa?.metadata.annotations,
        isEmpty(v[who].serviceAccount.annotations) ? undefined : v[who].serviceAccount.annotations,
      )
    else t.falsy(sa)
  }
  if (values.commonLabels) for (const o of r.objects) t.is(o.metadata.labels.team, 'net')
}

const arg = (args: string[], name: string): string | undefined =>
  args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const lead = (s: string | undefined) => s ?? ''
const isEmpty = (x: unknown) =>
  x === undefined || x === null || (typeof x === 'object' && Object.keys(x as object).length === 0)
const pick = (o: Obj, keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k]]))

// ------------------------------------------------------------------ RBAC, exactly

test('RBAC is least privilege: exactly these rules', (t) => {
  const r = render()
  const rules = (kind: string) => must(r, kind).rules
  t.deepEqual(rules('ClusterRole'), [
    { apiGroups: ['flowgate.io'], resources: ['flowpolicies'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['flowgate.io'], resources: ['flowpolicies/status'], verbs: ['patch'] },
  ])
  t.deepEqual(rules('Role'), [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      resourceNames: ['flowgate-operator'],
      verbs: ['get', 'update'],
    },
  ])
  // Events about cluster-scoped FlowPolicies go to "default" (the operator's choice, as Kubernetes does)
  const events = must(r, 'Role', 'flowgate-operator-events')
  t.is(events.metadata.namespace, 'default')
  t.deepEqual(events.rules, [{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] }])
  const all = r.objects.filter((o) => o.rules).flatMap((o) => o.rules)
  for (const rule of all) {
    t.false(rule.verbs.includes('*') || rule.resources.includes('*') || rule.apiGroups.includes('*'))
    t.false(rule.resources.includes('secrets'), 'no Secret access: tokens and keys are mounted')
  }
  const bindings = r.objects.filter((o) => o.kind.endsWith('Binding'))
  for (const b of bindings)
    t.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'flowgate-operator', namespace: NS }])
  t.false(
    bindings.some((b) => b.subjects.some((s: Obj) => s.name === 'flowgate-appliance')),
    'the appliance gets no RBAC',
  )
})

test('Events in the release namespace need no second Role', (t) => {
  const r = render({ operator: { eventsNamespace: '' } })
  t.is(r.objects.filter((o) => o.kind === 'Role').length, 1)
  t.deepEqual(must(r, 'Role', 'flowgate-operator').rules.at(-1), {
    apiGroups: ['events.k8s.io'],
    resources: ['events'],
    verbs: ['create'],
  })
})

// ------------------------------------------------------------------ the CRD

test('the chart installs exactly crds/flowpolicy.yaml (run scripts/gen-chart-crds.ts)', (t) => {
  const root = new URL('../../crds/', import.meta.url)
  const mine = readdirSync(root).filter((f) => f.endsWith('.yaml'))
  t.deepEqual(
    [...chart.crds.keys()].map((p) => p.replace(/^crds\//, '')),
    mine,
  )
  for (const f of mine) t.is(chart.crds.get(`crds/${f}`), readFileSync(new URL(f, root), 'utf8'))
})

test('the CRD validates against the apiextensions.k8s.io/v1 schema, strictly', (t) => {
  for (const text of chart.crds.values()) {
    const crd = parse(text)
    t.deepEqual(validateObject(crd), [])
    t.is(crd.spec.names.kind, 'FlowPolicy')
    t.true(
      crd.spec.versions.every((v: Obj) => v.subresources?.status !== undefined),
      'status subresource (RBAC grants flowpolicies/status)',
    )
  }
})

test('the chart CRD is what policy/src/schema.ts generates, and it admits every example FlowPolicy', async (t) => {
  const { renderCrdYaml } = await import('../../policy/src/crd.ts')
  t.is(chart.crds.get('crds/flowpolicy.yaml'), renderCrdYaml())
  const crd = parse(chart.crds.get('crds/flowpolicy.yaml')!)
  const version = crd.spec.versions.find((v: Obj) => v.storage)
  // the structural schema as JSON Schema (x-kubernetes-* and CEL rules are the API server's, not ajv's)
  const ajvCrd = new Ajv({ strict: false, allErrors: true })
  addFormats.default(ajvCrd)
  const validate = ajvCrd.compile(version.schema.openAPIV3Schema)
  const dir = new URL('../../examples/', import.meta.url)
  let n = 0
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(new URL(f, dir), 'utf8'))) {
      const obj = doc.toJS()
      if (obj?.kind !== 'FlowPolicy') continue
      n++
      t.is(obj.apiVersion, `${crd.spec.group}/${version.name}`, f)
      t.true(validate(obj), `${f}: ${JSON.stringify(validate.errors)}`)
    }
  }
  t.true(n >= 8, `${n} example FlowPolicies`)
})

test('RBAC names the CRD group and plural', (t) => {
  const crd = parse([...chart.crds.values()][0]!)
  const cr = must(render(), 'ClusterRole')
  t.is(cr.rules[0].apiGroups[0], crd.spec.group)
  t.is(cr.rules[0].resources[0], crd.spec.names.plural)
})

// ------------------------------------------------------------------ values that must fail

const BAD: [string, Obj, RegExp][] = [
  [
    'grace period shorter than the drain',
    { appliance: { drainSeconds: 300, terminationGracePeriodSeconds: 300 } },
    /terminationGracePeriodSeconds \(300\) must be at least appliance.drainSeconds \+ 15 \(315\)/,
  ],
  [
    'dgram with a hostPath state directory',
    { appliance: { io: 'dgram' } },
    /set appliance.stateDir.type=emptyDir/,
  ],
  [
    'dgram with a privileged port',
    { appliance: { io: 'dgram', stateDir: { type: 'emptyDir' }, httpPort: 80 } },
    /cannot bind ports below 1024/,
  ],
  ['two ports the same', { appliance: { httpPort: 9443 } }, /must differ/],
  [
    'both a ServiceMonitor and a PodMonitor',
    { monitoring: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true } } },
    /enable one of them/,
  ],
]
for (const [name, values, re] of BAD) {
  test(`template check fails: ${name}`, (t) => {
    const err = t.throws(() => render(values), { instanceOf: TemplateError })
    t.regex(err!.message, re)
  })
}

const BAD_VALUES: [string, Obj, RegExp][] = [
  [
    'a typo in a key',
    { appliance: { drainSecond: 10 } },
    /appliance: must NOT have additional properties "drainSecond"/,
  ],
  ['a port out of range', { appliance: { genevePort: 70000 } }, /appliance.genevePort: must be <= 65535/],
  ['a port as a string', { adminApi: { port: '9443' } }, /adminApi.port: must be integer/],
  [
    'a target group ARN that is not one',
    { gwlb: { targetGroupArn: 'arn:aws:ec2:eu-west-1:1:tg/x' } },
    /gwlb.targetGroupArn: must match pattern/,
  ],
  ['an unknown CA mode', { ca: { mode: 'vault' } }, /ca.mode: must be equal to one of the allowed values/],
  [
    'KMS mode without a key',
    { ca: { mode: 'kms', kms: { certificate: PEM } } },
    /ca.kms.keyId: must NOT have fewer than 1 characters/,
  ],
  [
    'KMS mode with a certificate that is not PEM',
    { ca: { mode: 'kms', kms: { keyId: 'alias/x', certificate: 'hello' } } },
    /ca.kms.certificate: must match pattern/,
  ],
  [
    'https admin API without a TLS Secret',
    { adminApi: { tls: { secretName: '' } } },
    /adminApi.tls.secretName: must NOT have fewer than 1 characters/,
  ],
  [
    'a fleet default in the wrong case',
    { fleetDefault: 'allow' },
    /fleetDefault: must be equal to one of the allowed values/,
  ],
  [
    'an unknown I/O backend',
    { appliance: { io: 'xdp' } },
    /appliance.io: must be equal to one of the allowed values/,
  ],
  ['a negative drain', { appliance: { drainSeconds: -1 } }, /appliance.drainSeconds: must be >= 0/],
  [
    'a bad maxUnavailable',
    { appliance: { updateStrategy: { maxUnavailable: 0 } } },
    /appliance.updateStrategy.maxUnavailable/,
  ],
  [
    'a toleration with a bad operator',
    { appliance: { tolerations: [{ key: 'x', operator: 'Is' }] } },
    /appliance.tolerations.0.operator/,
  ],
  ['a region that is not one', { aws: { region: 'Europe' } }, /aws.region: must match pattern/],
  ['zero operator replicas', { operator: { replicas: 0 } }, /operator.replicas: must be >= 1/],
]
for (const [name, values, re] of BAD_VALUES) {
  test(`values.schema.json refuses ${name}`, (t) => {
    const err = t.throws(() => render(values), { instanceOf: SchemaError })
    t.regex(
      err!.message,
      /^values don't meet the specifications of the schema\(s\) in the following chart\(s\):\nflowgate:/,
    )
    t.regex(err!.message, re)
  })
}

test('the default values.yaml satisfies its own schema, and every key in it is described by the schema', (t) => {
  t.notThrows(() => render())
  const schema = chart.schema as Obj
  const walk = (vals: Obj, s: Obj, path: string) => {
    for (const [k, val] of Object.entries(vals)) {
      const sub = s.properties?.[k]
      t.truthy(sub ?? s.additionalProperties, `${path}${k} is in the schema`)
      if (sub?.properties && val && typeof val === 'object' && !Array.isArray(val))
        walk(val, sub, `${path}${k}.`)
    }
  }
  walk(chart.values, schema, '')
})

// ------------------------------------------------------------------ details worth pinning

test('Kubernetes older than 1.29 (no GA CEL validation for the CRD) is refused as Helm does', (t) => {
  const err = t.throws(() => render({}, { kubeVersion: 'v1.28.9' }))
  t.is(err!.message, 'chart requires kubeVersion: >=1.29.0-0 which is incompatible with Kubernetes v1.28.9')
  t.notThrows(() => render({}, { kubeVersion: 'v1.29.0' }))
  t.notThrows(() => render({}, { kubeVersion: 'v1.33.1' }))
})

test('Secret volume modes are octal as Kubernetes reads YAML (0440 = 288)', (t) => {
  const ds = must(render(), 'DaemonSet')
  for (const vol of ds.spec.template.spec.volumes.filter((x: Obj) => x.secret))
    t.is(vol.secret.defaultMode, 0o440)
})

test('the GWLB health check endpoint is /healthz on the http port, documented in the DaemonSet', (t) => {
  const text = render().manifests.get('templates/appliance-daemonset.yaml')!
  t.regex(text, /GWLB target group health check: HTTP GET \/healthz on this port/)
})

test('PrometheusRule: thresholds and drain come from values; GWLB target alerts need a target group', (t) => {
  const on = {
    monitoring: { prometheusRule: { enabled: true, dropRatioThreshold: 0.05 } },
    appliance: { drainSeconds: 60, terminationGracePeriodSeconds: 90 },
  }
  const rules = must(render(on), 'PrometheusRule').spec.groups.flatMap((g: Obj) => g.rules)
  const byName = Object.fromEntries(rules.map((x: Obj) => [x.alert, x]))
  t.regex(byName.FlowgateDropRateSpike.expr, /> 0\.05$/)
  t.is(byName.FlowgateApplianceStuckDraining.for, '360s')
  t.regex(
    byName.FlowgateApplianceDown.expr,
    /^up\{namespace="flowgate-system", container="appliance"\} == 0$/,
  )
  t.falsy(byName.FlowgateGwlbTargetsUnhealthy)
  const withTg = must(render({ ...on, gwlb: { targetGroupArn: TG } }), 'PrometheusRule').spec.groups.flatMap(
    (g: Obj) => g.rules,
  )
  t.truthy(withTg.find((x: Obj) => x.alert === 'FlowgateGwlbTargetsUnhealthy'))
  t.truthy(withTg.find((x: Obj) => x.alert === 'FlowgateGwlbNoTargets'))
  for (const x of withTg) t.notRegex(x.expr, /\{\{|<no value>/, `${x.alert} is fully rendered`)
  t.is(
    byName.FlowgateApplianceDown.annotations.summary,
    'flowgate appliance {{ $labels.pod }} is not answering scrapes',
  )
})

test('a KMS CA certificate change rolls the DaemonSet (checksum annotation)', (t) => {
  const a = (cert: string) =>
    must(render({ ca: { mode: 'kms', kms: { keyId: 'alias/x', certificate: cert } } }), 'DaemonSet').spec
      .template.metadata.annotations['checksum/ca-certificate']
  t.not(a(PEM), a(PEM.replace('e1', 'e2')))
})

test('the Grafana dashboard ConfigMap carries deploy/grafana/flowgate-dashboard.json (run scripts/gen-chart-crds.ts)', (t) => {
  const source = readFileSync(
    new URL('../../deploy/grafana/flowgate-dashboard.json', import.meta.url),
    'utf8',
  )
  t.is(chart.files.get('dashboards/flowgate.json'), source)
  const cm = must(
    render({ monitoring: { grafanaDashboard: { enabled: true, namespace: 'monitoring' } } }),
    'ConfigMap',
  )
  t.is(cm.metadata.namespace, 'monitoring')
  t.is(cm.metadata.labels.grafana_dashboard, '1')
  t.deepEqual(JSON.parse(cm.data['flowgate.json']), JSON.parse(source))
  t.falsy(find(render(), 'ConfigMap'), 'off by default')
})

test('NOTES.txt tells what must exist and the CRD upgrade step', (t) => {
  const notes = render().notes
  t.regex(notes, /Secret flowgate-admin-token/)
  t.regex(notes, /kubectl apply --server-side/)
  t.regex(notes, /gwlb.targetGroupArn is not set/)
})

test('the chart uses only functions the renderer implements, and no unsupported Helm objects', (t) => {
  const known = new Set([
    ...FUNCTION_NAMES,
    'if',
    'else',
    'end',
    'range',
    'with',
    'define',
    'template',
    'true',
    'false',
    'nil',
  ])
  for (const [path, text] of chart.templates) {
    const noStrings = text
      .replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '')
      .replace(/"(?:[^"\\\n]|\\.)*"|`[^`]*`/g, '""')
    for (const m of noStrings.matchAll(/\{\{-?\s*([^}]*?)\s*-?\}\}/g)) {
      const body = m[1]!
      if (body.startsWith('/*')) continue
      for (const w of body.matchAll(/(?<![.$\w])([a-z][A-Za-z0-9]*)\b/g))
        t.true(known.has(w[1]!), `${path}: ${w[1]}`)
      t.notRegex(body, /\.Files\.(?!Get\b)|lookup|\btpl\b/, path)
    }
  }
})

// ------------------------------------------------------------------ the flags, against the code

test('the operator accepts every flag the chart passes, with the meaning the chart intends', async (t) => {
  const { parseOperatorArgs } = await import('../../operator/src/options.ts')
  const dir = mkdtempSync('/tmp/flowgate-chart-')
  writeFileSync(`${dir}/ca.crt`, PEM)
  const r = render({ gwlb: { targetGroupArn: TG }, aws: { region: 'eu-west-1' }, fleetDefault: 'Reject' })
  const op = must(r, 'Deployment').spec.template.spec.containers[0]
  t.is(op.args[0], 'operator')
  const args = (op.args as string[])
    .slice(1)
    .map((a) => a.replace('/etc/flowgate/admin-tls/ca.crt', `${dir}/ca.crt`))
    .map((a) => a.replace('$(POD_NAMESPACE)', NS).replace('$(POD_NAME)', 'flowgate-operator-abc'))
  const o = parseOperatorArgs(args, {})
  const ds = must(r, 'DaemonSet')
  t.is(o.namespace, NS)
  t.is(o.identity, 'flowgate-operator-abc')
  t.is(o.tokenFile, '/etc/flowgate/admin-token/token')
  t.is(o.adminScheme, 'https')
  t.is(String(o.adminCa), PEM)
  t.is(o.adminPort, 9443)
  t.is(o.targetGroupArn, TG)
  t.is(o.region, 'eu-west-1')
  t.is(o.fleetDefault, 'Reject')
  t.is(o.adminServerName, 'flowgate-appliance.flowgate-system.svc')
  t.is(o.eventsNamespace, must(r, 'Role', 'flowgate-operator-events').metadata.namespace)
  t.deepEqual(o.listen, { host: '0.0.0.0', port: 8081 })
  t.is(o.leaseName, must(r, 'Role').rules.find((x: Obj) => x.resourceNames).resourceNames[0])
  // the selector the operator watches matches the DaemonSet's pods
  const sel = Object.fromEntries(o.applianceSelector!.split(',').map((kv) => kv.split('=')))
  for (const [k, v] of Object.entries(sel)) t.is(ds.spec.template.metadata.labels[k], v)
  // every env the Deployment sets from the downward API exists
  t.deepEqual(
    op.env.filter((e: Obj) => e.valueFrom).map((e: Obj) => e.name),
    ['POD_NAME', 'POD_NAMESPACE'],
  )
})

test('the appliance accepts every flag the chart passes, with the meaning the chart intends', async (t) => {
  const seen = new Set<string>()
  const rendered = Object.entries(SCENARIOS).map(([name, values]) => {
    const r = render(values)
    const app = must(r, 'DaemonSet').spec.template.spec.containers[0]
    t.is(app.args[0], 'appliance')
    const args = (app.args as string[]).slice(1).map((a) => a.replace('$(POD_IP)', '10.0.1.23'))
    for (const a of args) seen.add(/^--([a-z-]+)=/.exec(a)![1]!)
    return { name, args, v: r.values as Obj }
  })
  // The appliance's own flag parser, where it exists (appliance/src/options.ts); else its option list.
  const optionsModule = new URL('../../appliance/src/options.ts', import.meta.url)
  if (existsSync(optionsModule)) {
    const { parseApplianceArgs } = (await import(optionsModule.href)) as {
      parseApplianceArgs: (a: string[]) => Obj
    }
    for (const { name, args, v } of rendered) {
      const o = parseApplianceArgs(args)
      t.is(o.bind, '10.0.1.23', name)
      t.is(o.genevePort, v.appliance.genevePort, name)
      t.is(o.httpPort, v.appliance.httpPort, name)
      t.is(o.drainSeconds, v.appliance.drainSeconds, name)
      t.is(o.io, v.appliance.io, name)
      t.is(o.admin.port, v.adminApi.port, name)
      t.is(o.admin.stateDir, '/var/lib/flowgate', name)
      t.is(o.admin.tokenFile, `/etc/flowgate/admin-token/${v.adminApi.tokenSecret.key}`, name)
      t.is(o.admin.tlsCert !== undefined, v.adminApi.scheme === 'https', name)
      t.is(o.ca?.kms?.keyId, v.ca.mode === 'kms' ? v.ca.kms.keyId : undefined, name)
      t.is(o.ca?.key !== undefined, v.ca.mode === 'secret', name)
      t.is(o.ca === undefined, v.ca.mode === 'none', name)
      const upstream = v.appliance.upstreamCa.configMapName
      t.is(
        o.upstreamCa,
        upstream ? `/etc/flowgate/upstream-ca/${v.appliance.upstreamCa.key}` : undefined,
        name,
      )
    }
  } else {
    const src = readFileSync(new URL('../../cli/src/appliance.ts', import.meta.url), 'utf8')
    for (const f of seen)
      if (!f.startsWith('ca-') && f !== 'kms-key-id') t.true(src.includes(`'${f}'`), `--${f}`)
  }
  t.deepEqual([...seen].sort(), [
    'admin-port',
    'admin-tls-cert',
    'admin-tls-key',
    'admin-token-file',
    'bind',
    'ca-cert',
    'ca-key',
    'drain-seconds',
    'geneve-port',
    'http-port',
    'io',
    'kms-key-id',
    'log-level',
    'state-dir',
    'upstream-ca',
  ])
})

// ------------------------------------------------------------------ the EKS guide

test('docs/deploy-eks.md: its values file installs, and its drain arithmetic is the chart default', (t) => {
  const doc = readFileSync(new URL('../../docs/deploy-eks.md', import.meta.url), 'utf8')
  const block = /cat > flowgate-values\.yaml <<EOF\n([\s\S]*?)\nEOF\n/.exec(doc)![1]!
  const values = parse(block.replace('$TG_ARN', TG).replaceAll('ACCOUNT', '123456789012'))
  const r = render(values)
  t.deepEqual(r.objects.flatMap(validateObject), [])
  t.truthy(find(r, 'ServiceMonitor'))
  t.truthy(find(r, 'PrometheusRule'))
  const a = chart.values.appliance as Obj
  t.true(doc.includes(`\`drainSeconds: ${a.drainSeconds}\``))
  t.true(doc.includes(`\`terminationGracePeriodSeconds: ${a.terminationGracePeriodSeconds}\``))
  t.true(doc.includes('kubectl apply --server-side -f charts/flowgate/crds/'))
  // the message the guide quotes is the one the chart prints
  const quoted = /`(appliance\.terminationGracePeriodSeconds \(300\)[^`]*)`/.exec(doc)![1]!
  const err = t.throws(() => render({ appliance: { drainSeconds: 320, terminationGracePeriodSeconds: 300 } }))
  t.true(err!.message.includes(quoted), err!.message)
})

test('charts/flowgate/README.md names only values that exist, with their defaults', (t) => {
  const readme = readFileSync(new URL('../../charts/flowgate/README.md', import.meta.url), 'utf8')
  const rows = readme.split('\n').filter((l) => l.startsWith('| `'))
  t.true(rows.length > 15)
  const lookup = (path: string): unknown =>
    path
      .split('.')
      .reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Obj)[k] : undefined), chart.values)
  for (const row of rows) {
    const [keys, dflt] = row.split(' | ')
    for (const m of keys!.matchAll(/`([A-Za-z.]+)`/g))
      t.not(lookup(m[1]!), undefined, `${m[1]} is in values.yaml`)
    const first = /`([A-Za-z.]+)`/.exec(keys!)![1]!
    const want = /^`([^`]+)`/.exec(dflt ?? '')?.[1]
    const have = lookup(first)
    if (want !== undefined && (typeof have === 'string' || typeof have === 'number') && have !== '')
      t.is(String(have), want, `${first} default`)
  }
})

test('Chart.yaml is a valid v2 chart whose name is its directory', (t) => {
  const md = chart.metadata as Obj
  t.is(md.apiVersion, 'v2')
  t.is(md.name, 'flowgate')
  t.true(chartDir.endsWith(`/${md.name}`))
  t.regex(md.version, /^\d+\.\d+\.\d+(-[\w.]+)?$/)
  t.is(md.type, 'application')
  t.truthy(md.appVersion)
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  t.is(md.appVersion, pkg.version, 'the image tag defaults to appVersion: keep it the package version')
})

// ------------------------------------------------------------------ no value without an effect

test('every value in values.yaml changes the rendered chart (no dead or unwired values)', (t) => {
  const KMS = { mode: 'kms', kms: { keyId: 'alias/flowgate-ca', certificate: PEM } }
  // Some values matter only when others switch them on; a value is live if it matters in one of these.
  const bases: Obj[] = [
    {
      monitoring: {
        serviceMonitor: { enabled: true },
        prometheusRule: { enabled: true },
        grafanaDashboard: { enabled: true },
      },
      gwlb: { targetGroupArn: TG },
      ca: { mode: 'secret' },
      appliance: { upstreamCa: { configMapName: 'roots' } },
    },
    { monitoring: { podMonitor: { enabled: true } }, ca: KMS },
    {
      operator: { serviceAccount: { create: false }, eventsNamespace: 'default' },
      appliance: { serviceAccount: { create: false } },
    },
  ]
  // A different value of the same kind that the schema accepts.
  const SPECIAL: Record<string, unknown> = {
    'image.digest': `sha256:${'b'.repeat(64)}`,
    'aws.region': 'us-east-2',
    'gwlb.targetGroupArn': TG.replace('0123', '4567'),
    'ca.kms.keyId': 'alias/other',
    'ca.kms.certificate': PEM.replace('e1', 'e9'),
    'appliance.stateDir.hostPath': '/var/lib/other',
    'monitoring.serviceMonitor.interval': '10s',
    'monitoring.podMonitor.interval': '10s',
    'adminApi.tls.serverName': 'appliances.example.internal',
    'operator.eventsNamespace': 'flowgate-events',
    'operator.serviceAccount.name': 'other-sa',
    'appliance.serviceAccount.name': 'other-sa',
    'monitoring.grafanaDashboard.namespace': 'monitoring',
    'monitoring.grafanaDashboard.folder': 'Network',
    'appliance.upstreamCa.configMapName': 'other-roots',
  }
  const schema = chart.schema as Obj
  const schemaAt = (path: string[]): Obj | undefined =>
    path.reduce<Obj | undefined>((s, k) => s?.properties?.[k], schema)
  const mutate = (path: string, v: unknown): unknown => {
    if (path in SPECIAL) return SPECIAL[path]
    const s = schemaAt(path.split('.'))
    if (s?.enum) return s.enum.find((e: unknown) => e !== v)
    if (typeof v === 'boolean') return !v
    if (typeof v === 'number') return Number.isInteger(v) ? v + 1 : v * 2
    if (typeof v === 'string') {
      const quantity = /^(\d+)([a-zA-Z]*)$/.exec(v)
      if (quantity) return `${Number(quantity[1]) * 2}${quantity[2]}`
      return v ? `${v}x` : 'x1'
    }
    return undefined
  }
  const leaves: [string, unknown][] = []
  const walk = (o: Obj, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = prefix ? `${prefix}.${k}` : k
      // a map of user data (labels, node selectors) is one value: its keys hold dots and slashes
      const userMap = v && typeof v === 'object' && Object.keys(v).some((x) => /[./]/.test(x))
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length && !userMap) walk(v, p)
      else leaves.push([p, v])
    }
  }
  walk(chart.values, '')
  const setAt = (o: Obj, path: string, v: unknown): Obj => {
    const out = structuredClone(o)
    const keys = path.split('.')
    let cur = out
    for (const k of keys.slice(0, -1)) {
      cur[k] ??= {}
      cur = cur[k]
    }
    cur[keys.at(-1)!] = v
    return out
  }
  const text = (r: Rendered) => [...r.manifests.values()].join('\n---\n') + r.notes
  const baseline = new Map(bases.map((b) => [b, text(render(b))]))
  const dead: string[] = []
  for (const [path, value] of leaves) {
    let live = false
    for (const base of bases) {
      const merged = mergeValues(chart.values, base) as Obj
      let changed: unknown
      if (Array.isArray(value))
        changed = path.endsWith('tolerations')
          ? [{ key: 'k', operator: 'Exists' }]
          : path.endsWith('Env')
            ? [{ name: 'X', value: 'y' }]
            : path.endsWith('Args')
              ? ['--x']
              : [{ name: 'regcred' }]
      else if (value && typeof value === 'object')
        changed = path.endsWith('affinity') ? { nodeAffinity: {} } : { 'example.com/k': 'v' }
      else {
        const current = path.split('.').reduce<unknown>((o, k) => (o as Obj | undefined)?.[k], merged)
        changed = mutate(path, current)
      }
      if (changed === undefined) continue
      const before = baseline.get(base)!
      let after: string
      try {
        after = text(render(setAt(base, path, changed)))
      } catch {
        continue // not a valid change on this base (e.g. ca.mode=kms without a key): another base decides
      }
      if (before !== after) {
        live = true
        break
      }
    }
    if (!live) dead.push(path)
  }
  t.deepEqual(dead, [])
})
