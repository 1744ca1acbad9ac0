// `flowgate capture`: a live pcapng capture from an appliance's admin API (GET /v1/capture), streamed to
// stdout or a file — with the TLS secrets of intercepted flows inside, so Wireshark decrypts it as is.
// The same command is a Wireshark extcap (the --extcap-* and --capture/--fifo calls; see
// deploy/wireshark/), offering three interfaces: both sides, the client side, the server side.
import { once } from 'node:events'
import { createWriteStream, readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { request as plainRequest } from 'node:http'
import { request } from 'node:https'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { TokenFile } from '../../appliance/src/admin/tokens.ts'
import { parseFilter } from '../../appliance/src/capture/filter.ts'
import type { Command } from './main.ts'

const PCAPNG = 'application/vnd.tcpdump.pcapng'

const USAGE = `flowgate capture --appliance URL --token-file FILE [--ca FILE] [--filter EXPR] [--seconds N]
                 [--max-bytes N] [-w FILE]

  --appliance URL     the appliance's admin API, e.g. https://10.0.3.7:9443
  --token-file FILE   the admin bearer token (the first line of the file, as the operator's Secret has it)
  --ca FILE           PEM roots that issued the admin API's serving certificate (default: the system's)
  --filter EXPR       what to capture: host, net, port, tcp, udp, icmp, proto, endpoint, side client|server,
                      with and/or/not — e.g. 'host 10.0.2.2 and port 443 and endpoint vpce-0123456789abcdef0'
  --seconds N         stop after N seconds (1-3600, default 60)
  --max-bytes N       stop after about N bytes (default 100 MiB)
  -w FILE             write to FILE instead of stdout

pcapng with two interfaces: "client" (the client's connection; whole flows that are not terminated) and
"server" (the appliance's own connection to the server of a terminated flow), and the TLS secrets of
intercepted flows in Decryption Secrets Blocks. Both sides of a terminated flow share one address/port
tuple: a Wireshark that cannot separate conversations by interface shows one side at a time best —
capture with --filter 'side client' (or 'side server'), or split the file with
tshark -r all.pcapng -Y 'frame.interface_id == 1' -w server.pcapng.

As a Wireshark extcap: --extcap-interfaces, --extcap-dlts, --extcap-config, and
--capture --extcap-interface IF --fifo PATH [--extcap-capture-filter EXPR] with the options above.`

/** The extcap interfaces: the side each one adds to the filter. */
const INTERFACES = [
  { value: 'flowgate', display: 'flowgate appliance: both sides (live, with TLS secrets)', side: undefined },
  { value: 'flowgate-client', display: 'flowgate appliance: client side', side: 'client' },
  {
    value: 'flowgate-server',
    display: 'flowgate appliance: server side (intercepted upstream)',
    side: 'server',
  },
] as const

export function extcapInterfaces(): string {
  return [
    'extcap {version=1.0}{help=https://github.com/flowgate/flowgate/blob/main/docs/operations.md#live-capture}',
    ...INTERFACES.map((i) => `interface {value=${i.value}}{display=${i.display}}`),
  ].join('\n')
}

/** LINKTYPE_RAW: the stream's own IDBs say the same; Wireshark needs one to list the interface. */
export function extcapDlts(iface: string): string {
  return `dlt {number=101}{name=RAW}{display=Raw IPv4/IPv6 (${iface})}`
}

export function extcapConfig(): string {
  return [
    'arg {number=0}{call=--appliance}{display=Appliance admin URL}{type=string}{required=true}{tooltip=https://<appliance>:9443}{group=Appliance}',
    'arg {number=1}{call=--token-file}{display=Admin token file}{type=fileselect}{mustexist=true}{required=true}{tooltip=the admin bearer token, first line}{group=Appliance}',
    'arg {number=2}{call=--ca}{display=CA certificate (PEM)}{type=fileselect}{mustexist=true}{tooltip=roots of the admin API certificate (empty: system roots)}{group=Appliance}',
    'arg {number=3}{call=--filter}{display=flowgate filter}{type=string}{tooltip=e.g. host 10.0.2.2 and port 443 (the capture filter box takes the same language)}{group=Capture}',
    'arg {number=4}{call=--seconds}{display=Stop after (seconds)}{type=integer}{range=1,3600}{default=3600}{group=Capture}',
  ].join('\n')
}

/** The filter sent to the appliance: the interface's side, the --filter and the capture filter, all ANDed. */
export function combineFilters(parts: (string | undefined)[]): string {
  const given = parts.map((p) => p?.trim()).filter((p): p is string => !!p)
  if (given.length <= 1) return given[0] ?? ''
  return given.map((p) => `(${p})`).join(' and ')
}

const OPTIONS = {
  appliance: { type: 'string' },
  'token-file': { type: 'string' },
  ca: { type: 'string' },
  filter: { type: 'string' },
  seconds: { type: 'string' },
  'max-bytes': { type: 'string' },
  write: { type: 'string', short: 'w' },
  // extcap
  'extcap-interfaces': { type: 'boolean' },
  'extcap-dlts': { type: 'boolean' },
  'extcap-config': { type: 'boolean' },
  'extcap-interface': { type: 'string' },
  'extcap-version': { type: 'string' },
  'extcap-capture-filter': { type: 'string' },
  'extcap-control-in': { type: 'string' },
  'extcap-control-out': { type: 'string' },
  'extcap-reload-option': { type: 'string' },
  capture: { type: 'boolean' },
  fifo: { type: 'string' },
  debug: { type: 'boolean' },
  'debug-file': { type: 'string' },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values']

export const captureCommand: Command = {
  name: 'capture',
  summary: 'live pcapng capture from an appliance, TLS secrets included (also a Wireshark extcap)',
  usage: USAGE,
  async run(args) {
    let v: Values
    try {
      v = parseArgs({ args, options: OPTIONS, allowPositionals: false }).values
    } catch (err) {
      console.error(`flowgate capture: ${(err as Error).message}\n\nUsage: ${USAGE}`)
      return 2
    }
    if (v['extcap-interfaces']) {
      process.stdout.write(`${extcapInterfaces()}\n`)
      return 0
    }
    const iface = v['extcap-interface']
    const known = INTERFACES.find((i) => i.value === iface)
    if (iface !== undefined && !known) {
      console.error(`flowgate capture: unknown extcap interface "${iface}"`)
      return 2
    }
    if (v['extcap-dlts']) {
      process.stdout.write(`${extcapDlts(iface ?? 'flowgate')}\n`)
      return 0
    }
    if (v['extcap-config']) {
      process.stdout.write(`${extcapConfig()}\n`)
      return 0
    }
    const filter = combineFilters([
      known?.side ? `side ${known.side}` : undefined,
      v.filter,
      v['extcap-capture-filter'],
    ])
    try {
      parseFilter(filter)
    } catch (err) {
      // Wireshark checks a capture filter by calling us without --capture: the message on stdout says why.
      if (v['extcap-capture-filter'] !== undefined && !v.capture) {
        process.stdout.write(`${(err as Error).message}\n`)
        return 1
      }
      console.error(`flowgate capture: ${(err as Error).message}`)
      return 2
    }
    if (v['extcap-capture-filter'] !== undefined && !v.capture) return 0 // a valid filter
    if (v.capture && !v.fifo) {
      console.error('flowgate capture: --capture needs --fifo PATH')
      return 2
    }
    if (!v.appliance || !v['token-file']) {
      console.error(`flowgate capture: --appliance and --token-file are required\n\nUsage: ${USAGE}`)
      return 2
    }
    const out = v.fifo ?? v.write
    if (!out && process.stdout.isTTY) {
      console.error(
        'flowgate capture: pcapng is binary; redirect stdout (> out.pcapng), pipe it, or use -w FILE',
      )
      return 2
    }
    const token = new TokenFile({ path: v['token-file'] }).token()
    if (!token) {
      console.error(`flowgate capture: no token in ${v['token-file']}`)
      return 2
    }
    let url: URL
    try {
      url = new URL('/v1/capture', v.appliance)
    } catch {
      console.error(`flowgate capture: --appliance "${v.appliance}" is not a URL`)
      return 2
    }
    if (filter) url.searchParams.set('filter', filter)
    if (v.seconds) url.searchParams.set('seconds', v.seconds)
    if (v['max-bytes']) url.searchParams.set('maxBytes', v['max-bytes'])
    return stream(url, token, v.ca ? readFileSync(v.ca) : undefined, out)
  },
}

/**
 * Passes the pcapng stream on a whole block at a time, so a capture stopped early (^C, Wireshark's stop
 * button) leaves a file that ends on a block boundary rather than in the middle of a packet.
 */
export function wholeBlocks(): Transform {
  let pending: Buffer = Buffer.alloc(0)
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      let end = 0
      // Block total length at offset 4 (little-endian: the appliance writes its sections that way).
      while (pending.length - end >= 8) {
        const len = pending.readUInt32LE(end + 4)
        if (len < 12 || len % 4 !== 0) return done(new Error('not a pcapng stream'))
        if (pending.length - end < len) break
        end += len
      }
      if (end > 0) this.push(pending.subarray(0, end))
      pending = pending.subarray(end)
      done()
    },
  })
}

async function stream(
  url: URL,
  token: string,
  ca: Buffer | undefined,
  out: string | undefined,
): Promise<number> {
  const send = url.protocol === 'http:' ? plainRequest : request
  const req = send(url, {
    headers: { authorization: `Bearer ${token}`, accept: PCAPNG },
    ...(ca ? { ca } : {}),
  })
  // Wireshark stops an extcap with SIGTERM, a user with ^C: end the request, keep what was written.
  let stopped = false
  const stop = () => {
    stopped = true
    req.destroy()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  try {
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    if (res.statusCode !== 200) {
      let body = ''
      for await (const c of res) body += c
      let message = body
      try {
        message = (JSON.parse(body) as { message?: string }).message ?? body
      } catch {}
      console.error(`flowgate capture: ${url.host} answered ${res.statusCode}: ${message}`)
      return 1
    }
    if (res.headers['content-type'] !== PCAPNG) {
      console.error(
        `flowgate capture: ${url.host} did not answer with pcapng (${res.headers['content-type']})`,
      )
      return 1
    }
    const sink = out ? createWriteStream(out) : process.stdout
    await pipeline(res, wholeBlocks(), sink, { end: sink !== process.stdout })
    return 0
  } catch (err) {
    if (stopped) return 0
    console.error(`flowgate capture: ${url.host}: ${(err as Error).message}`)
    return 1
  } finally {
    process.removeListener('SIGTERM', stop)
    process.removeListener('SIGINT', stop)
  }
}
