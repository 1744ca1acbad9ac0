// The load generator of the interception benchmark: one small Node HTTPS/1.1 client, the same for every
// target, bounded in count and time.
//   keepalive: CONNS TLS connections opened first (not timed), each sending GET requests one after the
//              other over keep-alive until COUNT requests in all or MS milliseconds → requests/s;
//   newconn:   CONNS workers, each looping: new TCP connection + full TLS handshake (no session
//              resumption: no session is ever offered) + one GET + close → connections/s.
// Every response is checked (status 200, the whole body by Content-Length). Prints one JSON line:
//   {"ok","failed","ms","cpuMs","p50","p99","max","slow"}  (cpuMs: this process's CPU time over the timed
//   part; p50/p99/max: ms per request or per connection; slow: how many took over 500 ms)
//   node bench/tls/client.ts MODE HOST PORT SERVERNAME CA_FILE CONNS COUNT MS
import { readFileSync } from 'node:fs'
import { connect, createSecureContext, type TLSSocket } from 'node:tls'

const [mode, host, port, servername, caFile, connsArg, countArg, msArg] = process.argv.slice(2)
const CONNS = Number(connsArg)
const COUNT = Number(countArg)
const MS = Number(msArg)
const context = createSecureContext({ ca: readFileSync(caFile!) })
const REQUEST = Buffer.from(`GET /1k HTTP/1.1\r\nHost: ${servername}\r\nUser-Agent: flowgate-bench\r\n\r\n`)
const CRLF2 = Buffer.from('\r\n\r\n')
/** A socket silent this long fails its request (a stuck target cannot hang the run). */
const IDLE_MS = 10_000

// The whole run is bounded whatever happens.
setTimeout(() => {
  console.error('client: over its time limit')
  process.exit(3)
}, MS + 30_000).unref()

function open(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: host!,
      port: Number(port),
      servername: servername!,
      secureContext: context,
      ALPNProtocols: ['http/1.1'],
    })
    s.setNoDelay(true)
    s.setTimeout(IDLE_MS, () => s.destroy(new Error('idle')))
    s.once('secureConnect', () => {
      s.removeListener('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** One request/response exchange on `s`; resolves once the whole response is in. */
function exchange(s: TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    let need = -1
    const done = (err?: Error) => {
      s.removeListener('data', onData)
      s.removeListener('error', done)
      s.removeListener('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    const onClose = () => done(new Error('closed'))
    const onData = (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d])
      if (need < 0) {
        const end = buf.indexOf(CRLF2)
        if (end < 0) return
        const head = buf.subarray(0, end).toString('latin1')
        if (!head.startsWith('HTTP/1.1 200')) return done(new Error(head.split('\r\n')[0]))
        const m = /\r\ncontent-length: *(\d+)/i.exec(head)
        if (!m) return done(new Error('no content-length'))
        need = end + 4 + Number(m[1])
      }
      if (buf.length >= need) done(buf.length === need ? undefined : new Error('extra bytes'))
    }
    s.on('data', onData)
    s.once('error', done)
    s.once('close', onClose)
    s.write(REQUEST)
  })
}

let ok = 0
let failed = 0
/** ms per successful request (keep-alive) or connection (new connections), for the latency tail. */
const took: number[] = []
let started = 0
let deadline = 0
const more = () => started < COUNT && performance.now() < deadline

async function keepalive(): Promise<void> {
  const socks = await Promise.all(Array.from({ length: CONNS }, open))
  const worker = async (i: number) => {
    while (more()) {
      started++
      try {
        const t = performance.now()
        await exchange(socks[i]!)
        took.push(performance.now() - t)
        ok++
      } catch {
        failed++
        socks[i]!.destroy()
        try {
          socks[i] = await open()
        } catch {
          return
        }
      }
    }
  }
  const { t0, cpu0 } = startClock()
  await Promise.all(socks.map((_, i) => worker(i)))
  report(t0, cpu0)
  for (const s of socks) s.end()
}

async function newconn(): Promise<void> {
  const worker = async () => {
    while (more()) {
      started++
      let s: TLSSocket | undefined
      try {
        const t = performance.now()
        s = await open()
        await exchange(s)
        took.push(performance.now() - t)
        ok++
        s.end()
      } catch {
        failed++
        s?.destroy()
      }
    }
  }
  const { t0, cpu0 } = startClock()
  await Promise.all(Array.from({ length: CONNS }, worker))
  report(t0, cpu0)
}

function startClock() {
  const t0 = performance.now()
  deadline = t0 + MS
  return { t0, cpu0: process.cpuUsage() }
}

function report(t0: number, cpu0: NodeJS.CpuUsage): void {
  const ms = performance.now() - t0
  const c = process.cpuUsage(cpu0)
  took.sort((a, b) => a - b)
  const at = (q: number) => took[Math.min(took.length - 1, Math.floor(q * took.length))] ?? Number.NaN
  console.log(
    JSON.stringify({
      ok,
      failed,
      ms,
      cpuMs: (c.user + c.system) / 1000,
      p50: at(0.5),
      p99: at(0.99),
      max: took.at(-1) ?? Number.NaN,
      slow: took.filter((x) => x > 500).length,
    }),
  )
}

if (mode === 'keepalive') await keepalive()
else if (mode === 'newconn') await newconn()
else throw new Error(`mode ${mode}: keepalive or newconn`)
// Let the closes go out (close_notify, FIN), then leave.
setTimeout(() => process.exit(0), 200)
