// The GWLB packet path with the visibility outputs attached: its rule hit counters to /metrics and the
// admin API (GET /v1/rule-usage), and its flow records to an IPFIX collector beside the JSON flow log.
// The packet path keeps the counters (FastPath.usage) and writes the records (GwlbDataplane.flowLog); this
// wiring only hands them to their readers, so the data plane itself knows nothing of who reads them.
import type { DataplaneFactory } from '../dataplane/dataplane.ts'
import { GwlbDataplane, type GwlbDataplaneOptions } from '../dataplane/gwlb-dataplane.ts'
import { IpfixExporter, type IpfixTarget } from '../flowlog/ipfix-exporter.ts'

export interface VisibilityOptions {
  /** export flow records over IPFIX to this collector */
  ipfix?: IpfixTarget
}

export function visibleGwlbDataplane(
  o: GwlbDataplaneOptions = {},
  v: VisibilityOptions = {},
): DataplaneFactory {
  return async (ctx) => {
    // IPFIX alone still needs the flow log that decides when records are due: one without JSON output.
    const options = v.ipfix && !o.flowLog ? { ...o, flowLog: { target: '' } } : o
    const dp = await GwlbDataplane.start(ctx, options)
    ctx.metrics.attachRuleUsage(dp.fastpath.usage)
    ctx.metrics.attachCapture(dp.capture)
    if (v.ipfix && dp.flowLog) {
      const { host, port } = v.ipfix
      const exporter = new IpfixExporter({
        target: v.ipfix,
        onError: (err) =>
          ctx.log.warn({ collector: `${host}:${port}`, err: err.message }, 'IPFIX export failing'),
      })
      dp.flowLog.addSink(exporter)
      ctx.metrics.attachIpfix(exporter)
      ctx.log.info({ collector: `${host}:${port}` }, 'exporting flow records over IPFIX')
    }
    return dp
  }
}
