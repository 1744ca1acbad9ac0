export { DROP_REASONS, Drop, OUTCOMES, Outcome, Verdict } from './counters.ts'
export { type Decider, FastPath, type FastPathOptions, FastPathResult } from './fastpath.ts'
export { packetRulesOf } from './rules.ts'
