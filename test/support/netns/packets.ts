// Moved to standin/src/ (flowgate demo ships it); this path stays for the suites and benchmarks importing it.
export * from '../../../standin/src/packets.ts'
