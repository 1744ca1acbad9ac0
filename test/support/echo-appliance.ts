// A trivial appliance for the packet I/O suites and benchmarks: every Geneve datagram goes back unchanged
// through PacketIO (pass-through). The real appliance replaces it and reuses the same stand-in.
//
//   node test/support/echo-appliance.ts [--backend native|dgram|auto] [--bind ADDR] [--port 6081]
//                                       [--mode echo|naive|mangle|one-node|stale-header]
//
// Prints `listening <backend> <port>` once bound; exits 0 on SIGTERM/SIGINT, after printing its stats.
// The faulty modes exist to prove the stand-in's contract checks can fail:
//   naive  — a plain dgram echo: replies from 6081 to GWLB's source port (GWLB.md says: wrong);
//   mangle — flips a bit of the flow cookie in the Geneve header before replying;
//   one-node — replies to the first GWLB node it ever heard from, whoever sent the packet;
//   stale-header — keeps the first Geneve header seen per GWLB source port and puts it on every reply
//                  (an appliance that does not refresh the header when GWLB changes the cookie).
import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'
import {
  type PacketIO,
  type PacketIOBackend,
  type RxBatch,
  startPacketIO,
} from '../../appliance/src/io/index.ts'

export type EchoMode = 'echo' | 'mangle' | 'one-node' | 'stale-header'

/** The pass-through handler: Geneve base header or longer → reply as is (or broken, per `mode`). */
export function echoHandler(io: PacketIO, mode: EchoMode = 'echo'): (b: RxBatch) => void {
  let firstNode = -1
  const headers = new Map<number, Buffer>()
  return (b) => {
    for (let i = 0; i < b.count; i++) {
      const len = b.length(i)
      if (len < 8) continue
      const buf = b.buffer(i)
      const off = b.offset(i)
      if (mode === 'mangle' && len >= 40) buf[off + 39]! ^= 1
      if (mode === 'stale-header' && len >= 40) {
        const h = headers.get(b.remotePort(i))
        if (h) buf.set(h, off)
        else headers.set(b.remotePort(i), Buffer.from(buf.subarray(off, off + 40)))
      }
      if (mode === 'one-node') {
        if (firstNode < 0) firstNode = b.remoteAddr(i)
        io.send(buf, off, len, {
          localAddr: b.localAddr(i),
          remoteAddr: firstNode,
          remotePort: b.remotePort(i),
        })
        continue
      }
      io.reply(b, i, len)
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'auto' },
      bind: { type: 'string', default: '0.0.0.0' },
      port: { type: 'string', default: '6081' },
      mode: { type: 'string', default: 'echo' },
    },
  })
  const port = Number(values.port)
  if (values.mode === 'naive') {
    const s = createSocket('udp4')
    s.on('message', (m, r) => s.send(m, r.port, r.address))
    s.bind(port, values.bind, () => console.log(`listening naive ${s.address().port}`))
    const stop = () => s.close(() => process.exit(0))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    return
  }
  // `auto`: native, falling back to dgram when the addon or CAP_NET_RAW is missing (said on stderr). The
  // handler is bound once we know which backend started; no batch can arrive before that (I/O callbacks
  // run on a later turn of the event loop than the start's continuation).
  let echo: ((b: RxBatch) => void) | undefined
  const io = await startPacketIO(
    { backend: values.backend as PacketIOBackend | 'auto', bindAddr: values.bind, port },
    (b) => echo?.(b),
    (e) => console.error(`packet I/O fallback to dgram: ${(e as { code?: string }).code}: ${e.message}`),
  )
  echo = echoHandler(io, values.mode as EchoMode)
  console.log(`listening ${io.backend} ${io.port}`)
  const stop = async () => {
    await io.close()
    console.log(JSON.stringify(io.stats))
    process.exit(0)
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
