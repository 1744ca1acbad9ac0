// `flowgate rules unused --since T`: the rules of the cluster's FlowPolicies that nothing hit since T, from
// their status.rules (see rules-unused.ts for what counts).
import { parseArgs } from 'node:util'
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node'
import { GROUP, PLURAL, VERSION } from '../../policy/src/schema.ts'
import type { Command } from './main.ts'
import { formatTable, parseSince, unusedRules } from './rules-unused.ts'

const USAGE = `flowgate rules unused --since TIME [--kubeconfig FILE] [--context NAME] [--output table|json]

  --since TIME         RFC 3339 time (2026-01-31T00:00:00Z, or a date) or a duration back from now (7d, 12h, 90m)
  --kubeconfig FILE    default: $KUBECONFIG, ~/.kube/config, or in-cluster
  --context NAME       kubeconfig context (default: the current one)
  -o, --output table|json  (default table)

Lists the rules with no hit since TIME, from the usage the operator writes into each FlowPolicy's
status.rules. Exit 0 whether or not rules are unused; rules whose usage is not in status yet are named
on stderr.`

// biome-ignore lint/suspicious/noExplicitAny: FlowPolicy objects as the API returns them
type Obj = Record<string, any>

async function listPolicies(kc: KubeConfig): Promise<Obj[]> {
  const api = kc.makeApiClient(CustomObjectsApi)
  const items: Obj[] = []
  let cont: string | undefined
  // bounded: 500 per page, at most 1000 pages
  for (let page = 0; page < 1000; page++) {
    const r = (await api.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      limit: 500,
      ...(cont ? { _continue: cont } : {}),
    })) as { items?: Obj[]; metadata?: { continue?: string } }
    items.push(...(r.items ?? []))
    cont = r.metadata?.continue
    if (!cont) break
  }
  return items
}

export const rulesCommand: Command = {
  name: 'rules',
  summary: 'rules unused since a time, from the FlowPolicies’ status (rules unused --since 7d)',
  usage: USAGE,
  async run(args) {
    let values: Record<string, string | undefined>
    let positionals: string[]
    try {
      const str = { type: 'string' } as const
      ;({ values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { since: str, kubeconfig: str, context: str, output: { type: 'string', short: 'o' } },
      }))
    } catch (err) {
      console.error(`flowgate rules: ${(err as Error).message}\n\nUsage: ${USAGE}`)
      return 2
    }
    if (positionals[0] !== 'unused' || positionals.length !== 1) {
      console.error(`flowgate rules: the one subcommand is "unused"\n\nUsage: ${USAGE}`)
      return 2
    }
    const output = values.output ?? 'table'
    if (output !== 'table' && output !== 'json') {
      console.error('flowgate rules unused: --output must be table or json')
      return 2
    }
    if (!values.since) {
      console.error(`flowgate rules unused: --since is required\n\nUsage: ${USAGE}`)
      return 2
    }
    let since: number
    try {
      since = parseSince(values.since, Date.now())
    } catch (err) {
      console.error(`flowgate rules unused: ${(err as Error).message}`)
      return 2
    }
    const kc = new KubeConfig()
    let policies: Obj[]
    try {
      if (values.kubeconfig) kc.loadFromFile(values.kubeconfig)
      else kc.loadFromDefault()
      if (values.context) kc.setCurrentContext(values.context)
      policies = await listPolicies(kc)
    } catch (err) {
      const e = err as { code?: number; body?: unknown; message?: string }
      const detail = e.code
        ? `HTTP ${e.code}: ${typeof e.body === 'string' ? e.body : JSON.stringify(e.body)}`
        : e.message
      console.error(`flowgate rules unused: could not list FlowPolicies: ${detail}`)
      return 1
    }
    const report = unusedRules(policies, since)
    if (report.unknown.length) {
      const names = report.unknown.map((u) => `${u.policy}/${u.rule}`).join(', ')
      console.error(`no usage in status yet (the operator reads it periodically; is usage off?): ${names}`)
    }
    if (output === 'json') process.stdout.write(`${JSON.stringify(report.unused, null, 2)}\n`)
    else if (report.unused.length) process.stdout.write(`${formatTable(report.unused)}\n`)
    else console.error(`every rule was hit since ${new Date(since).toISOString()}`)
    return 0
  },
}
