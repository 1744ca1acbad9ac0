// The key numbers of the appliance's /metrics after the tour, from the Prometheus text format.

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Samples of the exposition text (comments skipped; label values without escapes, as ours are). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** Sum of `name`'s samples, grouped by the values of `by` (joined with "/"). */
export function sumBy(samples: readonly Sample[], name: string, by: readonly string[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const s of samples) {
    if (s.name !== name) continue
    const key = by.map((b) => s.labels[b] ?? '').join('/')
    out.set(key, (out.get(key) ?? 0) + s.value)
  }
  return out
}

const ROWS: Array<{ title: string; name: string; by: string[] }> = [
  { title: 'flows created', name: 'flowgate_flows_created_total', by: [] },
  { title: 'packets by verdict', name: 'flowgate_packets_total', by: ['verdict'] },
  { title: 'drops by reason', name: 'flowgate_drops_total', by: ['reason'] },
  { title: 'rule hits by policy/rule', name: 'flowgate_rule_hits_total', by: ['policy', 'rule'] },
  { title: 'L7 flows by result', name: 'flowgate_l7_flows_total', by: ['result'] },
  { title: 'HTTP requests by action', name: 'flowgate_http_requests_total', by: ['action'] },
  { title: 'script runs by hook', name: 'flowgate_http_script_runs_total', by: ['hook'] },
]

/** One line per key metric, e.g. `drops by reason: policy_deny 1, packet_rule 4`; absent ones say so. */
export function summarize(text: string): string[] {
  const samples = parseMetrics(text)
  return ROWS.map(({ title, name, by }) => {
    const sums = sumBy(samples, name, by)
    if (!sums.size) return `${title}: none (${name} absent)`
    if (!by.length) return `${title}: ${sums.get('')}`
    return `${title}: ${[...sums].map(([k, v]) => `${k} ${v}`).join(', ')}`
  })
}
