// The GWLB packet path with the visibility outputs attached: its rule hit counters to /metrics and the
// admin API (GET /v1/rule-usage). The packet path keeps the counters (FastPath.usage); this wiring only
// hands them to the readers, so the data plane itself knows nothing of who reads them.
import type { DataplaneFactory } from '../dataplane/dataplane.ts'
import { GwlbDataplane, type GwlbDataplaneOptions } from '../dataplane/gwlb-dataplane.ts'

export function visibleGwlbDataplane(o: GwlbDataplaneOptions = {}): DataplaneFactory {
  return async (ctx) => {
    const dp = await GwlbDataplane.start(ctx, o)
    ctx.metrics.attachRuleUsage(dp.fastpath.usage)
    return dp
  }
}
