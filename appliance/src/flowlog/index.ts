export { FlowLog, type FlowLogOptions, type FlowRecordSink } from './flowlog.ts'
export {
  IPFIX_COUNTS,
  IpfixExporter,
  type IpfixExporterOptions,
  type IpfixTarget,
  parseIpfixTarget,
} from './ipfix-exporter.ts'
export {
  buildFlowRecord,
  type FlowL7,
  type FlowRecord,
  type FlowRecordInput,
  type RecordReason,
  vpcAction,
} from './record.ts'
export { FlowLogWriter } from './writer.ts'
