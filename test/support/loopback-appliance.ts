// The real appliance in this process on loopback — packet path with dgram I/O and the visibility wiring,
// admin API on an ephemeral port — and a GWLB side that sends Geneve datagrams to it from 127.0.0.2 (the
// appliance returns packets to the sender's address on the Geneve port: from 127.0.0.1 that would be
// itself). Shared by the admin-API suites; everything is removed at the test's teardown.
import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import type { Dataplane } from '../../appliance/src/dataplane/dataplane.ts'
import type { GwlbDataplane } from '../../appliance/src/dataplane/gwlb-dataplane.ts'
import { type ApplianceHandle, type ApplianceOptions, startAppliance } from '../../appliance/src/main.ts'
import { visibleGwlbDataplane } from '../../appliance/src/visibility/dataplane.ts'
import { datagram, type Inner } from '../wire/packets.ts'

export interface LoopbackAppliance {
  a: ApplianceHandle
  /** the test's temp dir; `token` in it holds the admin bearer token `the-token` */
  dir: string
  adminPort: number
  /** sends one inner packet to the appliance as GWLB would */
  send(inner: Inner): Promise<void>
}

export async function startLoopbackAppliance(
  t: { teardown(fn: () => unknown): void },
  prefix: string,
  options: (dir: string) => Pick<ApplianceOptions, 'admin' | 'policies'>,
): Promise<LoopbackAppliance> {
  const dir = mkdtempSync(join(tmpdir(), `flowgate-${prefix}-`))
  writeFileSync(join(dir, 'token'), 'the-token\n')
  let dp: Dataplane | undefined
  const factory = visibleGwlbDataplane({ io: 'dgram' })
  const a = await startAppliance({
    ...options(dir),
    genevePort: 0,
    httpPort: 0,
    bind: '127.0.0.1',
    drainSeconds: 0,
    dataplane: async (ctx) => {
      dp = await factory(ctx)
      return dp
    },
    logger: pino({ level: 'silent' }),
  })
  const sock = createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.2', r))
  t.teardown(async () => {
    sock.close()
    await a.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const addr = a.admin!.server.address()
  const genevePort = (dp as GwlbDataplane).port
  return {
    a,
    dir,
    adminPort: typeof addr === 'object' && addr ? addr.port : 0,
    send: (inner) =>
      new Promise<void>((resolve, reject) =>
        sock.send(datagram(inner), genevePort, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
      ),
  }
}

/** Managed-mode admin options over TLS with a self-signed certificate for 127.0.0.1 (tls.crt/tls.key). */
export function managedAdmin(dir: string): Pick<ApplianceOptions, 'admin'> {
  return {
    admin: {
      port: 0,
      tokenFile: join(dir, 'token'),
      stateDir: join(dir, 'state'),
      tlsCert: join(dir, 'tls.crt'),
      tlsKey: join(dir, 'tls.key'),
    },
  }
}
