// The GWLB packet path with the visibility outputs attached: its rule hit counters to /metrics and the
// admin API (GET /v1/rule-usage), its flow records to an IPFIX collector beside the JSON flow log, its
// HAR entries to the admin API (GET /v1/har) and to rotating files (--har-dir), its AWS API request
// counts to /metrics.
// The packet path keeps the counters (FastPath.usage) and writes the records (GwlbDataplane.flowLog); this
// wiring only hands them to their readers, so the data plane itself knows nothing of who reads them.
import type { DataplaneFactory } from '../dataplane/dataplane.ts'
import { GwlbDataplane, type GwlbDataplaneOptions } from '../dataplane/gwlb-dataplane.ts'
import { IpfixExporter, type IpfixTarget } from '../flowlog/ipfix-exporter.ts'
import { HarFiles, type HarFilesOptions } from './har-files.ts'

export interface VisibilityOptions {
  /** export flow records over IPFIX to this collector */
  ipfix?: IpfixTarget
  /** write HAR entries of the policies that ask for them to rotating files here */
  har?: Omit<HarFilesOptions, 'onError' | 'now'>
}

export function visibleGwlbDataplane(
  o: GwlbDataplaneOptions = {},
  v: VisibilityOptions = {},
): DataplaneFactory {
  return async (ctx) => {
    // IPFIX alone still needs the flow log that decides when records are due: one without JSON output.
    const options = v.ipfix && !o.flowLog ? { ...o, flowLog: { target: '' } } : o
    const dp = await GwlbDataplane.start(ctx, options)
    ctx.metrics.ruleUsage = dp.fastpath.usage
    ctx.metrics.capture = dp.capture
    ctx.metrics.har = dp.har
    ctx.metrics.awsRequests = dp.awsRequests
    if (v.har) {
      let warned = false
      dp.har.addSink(
        new HarFiles({
          ...v.har,
          onError: (err) => {
            if (warned) return
            warned = true
            ctx.log.warn({ dir: v.har!.dir, err: err.message }, 'HAR files failing; entries are dropped')
          },
        }),
      )
      ctx.log.info({ dir: v.har.dir }, 'writing HAR entries of policies with spec.har')
    }
    if (v.ipfix && dp.flowLog) {
      const { host, port } = v.ipfix
      const exporter = new IpfixExporter({
        target: v.ipfix,
        onError: (err) =>
          ctx.log.warn({ collector: `${host}:${port}`, err: err.message }, 'IPFIX export failing'),
      })
      dp.flowLog.addSink(exporter)
      ctx.metrics.ipfix = exporter
      ctx.log.info({ collector: `${host}:${port}` }, 'exporting flow records over IPFIX')
    }
    return dp
  }
}
