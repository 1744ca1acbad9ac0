// A real TLS session as packets, without a network: a Node TLS client and server talk over an in-memory
// stream pair, the bytes each side writes are cut into IPv4/TCP segments (with a handshake, sequence and
// acknowledgment numbers, and a FIN exchange), and every key log line either side emits is kept. Writing
// these into pcapng and reading it back with tshark exercises our encoder against a real decoder.
import { duplexPair } from 'node:stream'
import { connect, createSecureContext, TLSSocket } from 'node:tls'

export interface TracePacket {
  /** a complete IPv4 packet */
  bytes: Buffer
  fromClient: boolean
}

export interface TlsTrace {
  packets: TracePacket[]
  /** NSS key log lines (client and server), each ending in a newline */
  keylog: Buffer[]
  /** what the client received (the server's response) */
  response: string
}

export interface Endpoints {
  client: readonly number[]
  server: readonly number[]
  clientPort: number
  serverPort: number
}

function checksum(b: Buffer, from: number, to: number, seed = 0): number {
  let sum = seed
  for (let i = from; i + 1 < to; i += 2) sum += b.readUInt16BE(i)
  if ((to - from) & 1) sum += b[to - 1]! << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

/** An IPv4/TCP packet with correct checksums. */
export function tcp4(
  src: readonly number[],
  dst: readonly number[],
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const b = Buffer.alloc(40 + payload.length)
  b[0] = 0x45
  b.writeUInt16BE(b.length, 2)
  b[8] = 64
  b[9] = 6
  Buffer.from(src).copy(b, 12)
  Buffer.from(dst).copy(b, 16)
  b.writeUInt16BE(checksum(b, 0, 20), 10)
  b.writeUInt16BE(sport, 20)
  b.writeUInt16BE(dport, 22)
  b.writeUInt32BE(seq >>> 0, 24)
  b.writeUInt32BE(ack >>> 0, 28)
  b[32] = 5 << 4
  b[33] = flags
  b.writeUInt16BE(65535, 34)
  payload.copy(b, 40)
  const pseudo = Buffer.alloc(12)
  Buffer.from(src).copy(pseudo, 0)
  Buffer.from(dst).copy(pseudo, 4)
  pseudo[9] = 6
  pseudo.writeUInt16BE(20 + payload.length, 10)
  let seed = 0
  for (let i = 0; i < 12; i += 2) seed += pseudo.readUInt16BE(i)
  b.writeUInt16BE(checksum(b, 20, b.length, seed), 36)
  return b
}

const FIN = 0x01
const SYN = 0x02
const PSH = 0x08
const ACK = 0x10

/** Runs one HTTP/1.1 request over TLS (`tls` options: the server's cert and key) and returns it as packets. */
export async function tlsTrace(
  e: Endpoints,
  server: { cert: Buffer | string; key: Buffer | string },
  request: string,
  isn: { client: number; server: number } = { client: 1000, server: 5000 },
): Promise<TlsTrace> {
  const [a, b] = duplexPair()
  const packets: TracePacket[] = []
  const keylog: Buffer[] = []
  let cseq = isn.client
  let sseq = isn.server
  const push = (fromClient: boolean, flags: number, payload?: Buffer) => {
    const p = fromClient
      ? tcp4(e.client, e.server, e.clientPort, e.serverPort, cseq, sseq, flags, payload)
      : tcp4(e.server, e.client, e.serverPort, e.clientPort, sseq, cseq, flags, payload)
    packets.push({ bytes: p, fromClient })
    const n = (payload?.length ?? 0) + (flags & (SYN | FIN) ? 1 : 0)
    if (fromClient) cseq += n
    else sseq += n
  }
  push(true, SYN)
  push(false, SYN | ACK)
  push(true, ACK)
  // Every write on either side becomes a segment (≤ 1400 bytes) in the order it happened.
  const tap = (side: typeof a, fromClient: boolean) => {
    const write = side.write.bind(side)
    side.write = ((chunk: Buffer, ...rest: unknown[]) => {
      for (let o = 0; o < chunk.length; o += 1400) push(fromClient, PSH | ACK, chunk.subarray(o, o + 1400))
      return (write as (c: Buffer, ...r: unknown[]) => boolean)(chunk, ...rest)
    }) as typeof side.write
  }
  tap(a, true)
  tap(b, false)
  const srv = new TLSSocket(b, {
    isServer: true,
    secureContext: createSecureContext({ cert: server.cert, key: server.key }),
  })
  srv.on('keylog', (l: Buffer) => keylog.push(Buffer.from(l)))
  srv.on('data', () => {
    srv.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello')
  })
  const cli = connect({ socket: a, rejectUnauthorized: false, servername: 'capture.example.test' })
  cli.on('keylog', (l: Buffer) => keylog.push(Buffer.from(l)))
  let response = ''
  await new Promise<void>((resolve, reject) => {
    cli.once('secureConnect', () => cli.write(request))
    cli.on('data', (d: Buffer) => {
      response += d.toString()
    })
    cli.once('end', () => resolve())
    cli.once('error', reject)
    srv.once('error', reject)
    setTimeout(() => reject(new Error('TLS trace did not finish in 10 s')), 10_000).unref()
  })
  cli.end()
  await new Promise((r) => setImmediate(r))
  push(false, FIN | ACK)
  push(true, FIN | ACK)
  push(false, ACK)
  return { packets, keylog, response }
}
