export { FlowLog, type FlowLogOptions } from './flowlog.ts'
export {
  buildFlowRecord,
  type FlowL7,
  type FlowRecord,
  type FlowRecordInput,
  type RecordReason,
  vpcAction,
} from './record.ts'
export { FlowLogWriter } from './writer.ts'
