export { type Decision, PolicyEngine } from './engine.ts'
export { buildEntries, type Entry, type PolicyRef } from './entries.ts'
export { type FlowFacts, NEED_HTTP, NEED_TLS_PEEK, Need, normalizeHost, PROTOCOL_NUMBERS } from './facts.ts'
export { decideLinear, entryMatches } from './linear.ts'
