// Moved to standin/src/ (flowgate demo ships it). Still runnable here, as suites spawn this path.
import { httpServerMain } from '../../../standin/src/http-server.ts'

export * from '../../../standin/src/http-server.ts'

if (import.meta.url === `file://${process.argv[1]}`) httpServerMain(process.argv.slice(2))
