// Loopback stand-in for the TLS layer below appliance/src/http: accepts a client's TCP connection, reads
// its ClientHello (SNI, ALPN) with the product's peek, connects TLS to the real origin with that SNI and
// ALPN list (verified against the test CA), answers the client with a test-CA leaf and the ALPN the origin
// chose, and hands both decrypted streams to interceptHttp. Like the data plane, both TLS sockets sit on
// JS Duplex streams (the user-space TCP stream there, a wrapped loopback socket here). A cleartext mode
// hands the two TCP streams over as they are.

import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import tls from 'node:tls'
import {
  createHttpStats,
  type HttpStats,
  type InterceptOptions,
  interceptHttp,
} from '../../appliance/src/http/index.ts'
import { ClientHelloInfo, Peek, peekClientHello } from '../../appliance/src/peek/index.ts'

export interface Pki {
  dir: string
  caPem: string
  caFile: string
  cert: string
  key: string
  cleanup(): void
}

/** Names every test server answers for. */
export const TEST_NAMES = ['origin.test', 'other.test', 'www.youtube.com', 'youtube.com', 'localhost']

/** A throwaway CA and one leaf it signed for TEST_NAMES (keys in a temp dir, removed by cleanup). */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'fg-http-'))
  const f = (n: string) => join(dir, n)
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  ossl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key'))
  ossl(
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-days',
    '1',
    '-subj',
    '/CN=flowgate http test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    f('ca.crt'),
  )
  ossl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('leaf.key'))
  ossl('req', '-new', '-key', f('leaf.key'), '-subj', '/CN=origin.test', '-out', f('leaf.csr'))
  const san = `subjectAltName=${TEST_NAMES.map((n) => `DNS:${n}`).join(',')},IP:127.0.0.1`
  writeFileSync(f('leaf.ext'), `${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`)
  ossl(
    'x509',
    '-req',
    '-in',
    f('leaf.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    f('leaf.ext'),
    '-out',
    f('leaf.crt'),
  )
  return {
    dir,
    caPem: readFileSync(f('ca.crt'), 'utf8'),
    caFile: f('ca.crt'),
    cert: readFileSync(f('leaf.crt'), 'utf8'),
    key: readFileSync(f('leaf.key'), 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** A JS Duplex over a loopback socket (what the user-space TcpSocket is to the TLS layer), replaying `prefix`. */
export class SocketDuplex extends Duplex {
  readonly socket: net.Socket
  constructor(socket: net.Socket, prefix?: Buffer) {
    super({ allowHalfOpen: true })
    this.socket = socket
    if (prefix && prefix.length > 0) this.push(prefix)
    socket.on('data', (c: Buffer) => {
      if (!this.push(c)) socket.pause()
    })
    socket.on('end', () => this.push(null))
    socket.on('error', (e) => this.destroy(e))
    socket.on('close', () => {
      if (!this.writableFinished || !this.readableEnded) this.destroy()
    })
  }
  override _read(): void {
    this.socket.resume()
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb)
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb)
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy()
    cb(err)
  }
}

export interface InterceptorOptions extends Partial<Omit<InterceptOptions, 'stats'>> {
  originPort: number
  pki?: Pki
  /** false: cleartext (both TCP streams handed over as they are, sni null) */
  tls?: boolean
}

export interface Interceptor {
  port: number
  stats: HttpStats
  /** connections handed to interceptHttp, and how many of those have finished */
  flows: { started: number; finished: number; alpn: string[] }
  /** resolves once every flow handed over so far has finished */
  settled(): Promise<void>
  close(): Promise<void>
}

const allowAll: InterceptOptions['decide'] = () => ({ action: 'Allow' })

export async function startInterceptor(o: InterceptorOptions): Promise<Interceptor> {
  const stats = createHttpStats()
  const flows = { started: 0, finished: 0, alpn: [] as string[] }
  const pending = new Set<Promise<void>>()
  const sockets = new Set<net.Socket>()
  const warnings: object[] = []
  const base = (sni: string | null, protocol: 'http/1.1' | 'h2'): InterceptOptions => ({
    protocol,
    sni,
    authority: sni ?? '127.0.0.1',
    decide: o.decide ?? allowAll,
    event: o.event ?? { endpointId: 'vpce-01234567890abcdef', viewerIp: '10.1.2.3' },
    stats,
    log: o.log ?? { warn: (obj) => warnings.push(obj) },
    ...(o.scripts ? { scripts: o.scripts } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.onExchange ? { onExchange: o.onExchange } : {}),
  })
  const hand = (client: Duplex, upstream: Duplex, opts: InterceptOptions) => {
    flows.started++
    const p = interceptHttp(client, upstream, opts).then(() => {
      flows.finished++
      pending.delete(p)
    })
    pending.add(p)
  }

  const server = net.createServer((raw) => {
    sockets.add(raw)
    raw.on('close', () => sockets.delete(raw))
    raw.on('error', () => {})
    const origin = net.connect(o.originPort, '127.0.0.1')
    origin.on('error', () => raw.destroy())
    sockets.add(origin)
    origin.on('close', () => sockets.delete(origin))
    if (o.tls === false) {
      origin.once('connect', () =>
        hand(new SocketDuplex(raw), new SocketDuplex(origin), base(null, 'http/1.1')),
      )
      return
    }
    const pki = o.pki!
    let seen = Buffer.alloc(0)
    const info = new ClientHelloInfo()
    const onData = (c: Buffer) => {
      seen = Buffer.concat([seen, c])
      const st = peekClientHello(seen, 0, seen.length, info)
      if (st === Peek.needMore) return
      raw.off('data', onData)
      raw.pause()
      if (st !== Peek.complete) return void raw.destroy()
      const sni = info.sni
      const up = tls.connect({
        socket: new SocketDuplex(origin),
        servername: sni ?? undefined,
        ca: pki.caPem,
        ...(info.alpn.length > 0 ? { ALPNProtocols: info.alpn } : {}),
      })
      up.on('error', () => raw.destroy())
      up.once('secureConnect', () => {
        const alpn = up.alpnProtocol || 'http/1.1'
        flows.alpn.push(alpn)
        const cl = new tls.TLSSocket(new SocketDuplex(raw, seen), {
          isServer: true,
          cert: pki.cert,
          key: pki.key,
          ...(info.alpn.length > 0 ? { ALPNProtocols: [alpn] } : {}),
        })
        cl.on('error', () => up.destroy())
        cl.once('secure', () => hand(cl, up, base(sni, alpn === 'h2' ? 'h2' : 'http/1.1')))
      })
    }
    raw.on('data', onData)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    stats,
    flows,
    settled: async () => {
      while (pending.size > 0) await Promise.all([...pending])
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
      await Promise.all([...pending])
    },
  }
}

/** Runs curl (bounded by --max-time); resolves with its exit code and output. */
export function curl(
  args: string[],
  timeoutMs = 20_000,
): Promise<{ stdout: string; code: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args])
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (c: Buffer) => {
      stdout += c
    })
    p.stderr.on('data', (c: Buffer) => {
      stderr += c
    })
    p.on('close', (code: number) => resolve({ stdout, code, stderr }))
  })
}

/** An HTTPS/1.1 origin with the test leaf; `connections` counts TLS connections it accepted. */
export async function startHttpsOrigin(
  pki: Pki,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ port: number; server: https.Server; connections: () => number; close(): Promise<void> }> {
  const server = https.createServer({ cert: pki.cert, key: pki.key, keepAliveTimeout: 30_000 }, handler)
  let n = 0
  server.on('secureConnection', () => n++)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    connections: () => n,
    close: () => closeServer(server),
  }
}

/** An HTTP/2-over-TLS origin (ALPN h2 only). */
export async function startH2Origin(
  pki: Pki,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<{
  port: number
  server: http2.Http2SecureServer
  sessions: () => number
  live: Set<http2.ServerHttp2Session>
  close(): Promise<void>
}> {
  const server = http2.createSecureServer({ cert: pki.cert, key: pki.key })
  let n = 0
  const live = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => {
    n++
    live.add(s)
    s.on('close', () => live.delete(s))
  })
  server.on('stream', onStream)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    sessions: () => n,
    live,
    close: async () => {
      for (const s of live) s.destroy()
      await closeServer(server)
    },
  }
}

export async function closeServer(server: net.Server): Promise<void> {
  const s = server as net.Server & { closeAllConnections?: () => void }
  s.closeAllConnections?.()
  await new Promise<void>((r) => server.close(() => r()))
}

/** curl arguments that resolve the test names to the interceptor and trust the test CA. */
export function curlTls(pki: Pki, port: number): string[] {
  return ['--cacert', pki.caFile, ...TEST_NAMES.flatMap((n) => ['--resolve', `${n}:${port}:127.0.0.1`])]
}

/** A raw TLS connection to the interceptor (for bytes curl would refuse to send); resolves with all it read. */
export function rawTls(
  pki: Pki,
  port: number,
  send: string | Buffer,
  servername = 'origin.test',
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca: pki.caPem, ALPNProtocols: ['http/1.1'] })
    let got = ''
    const timer = setTimeout(() => {
      s.destroy()
      resolve(got)
    }, 5000)
    s.on('secureConnect', () => s.write(send))
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1')
    })
    s.on('error', reject)
    s.on('close', () => {
      clearTimeout(timer)
      resolve(got)
    })
  })
}
