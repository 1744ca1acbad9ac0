export { FragmentCache } from './fragments.ts'
export { FlowClass, FlowState, FlowTable, type FlowTableOptions } from './table.ts'
