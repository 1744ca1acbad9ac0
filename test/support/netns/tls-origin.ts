// Moved to standin/src/ (flowgate demo ships it). Still runnable here, as suites spawn this path.
import { tlsOriginMain } from '../../../standin/src/tls-origin.ts'

export * from '../../../standin/src/tls-origin.ts'

if (import.meta.url === `file://${process.argv[1]}`) tlsOriginMain(process.argv.slice(2))
