// A real TLS origin for the server namespace: `node tls-origin.ts PORT CERT KEY h2|h1`, on [::].
// h2: http2.createSecureServer with HTTP/1.1 fallback (ALPN h2, http/1.1); h1: https only (http/1.1).
//   GET /              → "hello from the origin over HTTP/<version> to <sni>\n"
//   GET /bytes/N/S     → N deterministic bytes (http-server.ts), byte-exact downloads
//   GET /headers       → the request's headers as JSON (what reached the origin)
//   POST /echo         → the request body back, with x-received-bytes
// Prints `listening <port>` when ready.
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createSecureServer, type Http2ServerRequest } from 'node:http2'
import { createServer as createHttps } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { deterministicBytes } from './http-server.ts'

type Req = IncomingMessage | Http2ServerRequest
// The two response classes share this much; their union's overloads are not callable as one.
type Res = Pick<ServerResponse, 'end'> & {
  writeHead(status: number, headers: Record<string, string | number>): unknown
}

function handle(req: Req, res: Res): void {
  const url = req.url ?? '/'
  const m = /^\/bytes\/(\d+)\/(\d+)$/.exec(url)
  if (m) {
    const body = deterministicBytes(Math.min(Number(m[1]), 256 << 20), Number(m[2]))
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
    res.end(body)
    return
  }
  if (url === '/headers') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(req.headers))
    return
  }
  if (url === '/echo' && req.method === 'POST') {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'x-received-bytes': String(body.length),
      })
      res.end(body)
    })
    return
  }
  const sni = (req.socket as TLSSocket).servername ?? '(none)'
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end(`hello from the origin over HTTP/${req.httpVersion} to ${sni}\n`)
}

/** `tls-origin.ts PORT CERT KEY h2|h1`: serves until SIGTERM; prints `listening <port>` once bound. */
export function tlsOriginMain(argv: string[]): void {
  const [port, cert, key, mode] = argv
  // CERT and KEY may be pipes (flowgate demo hands the key over a FIFO): each is read once, here.
  const tls = { cert: readFileSync(cert!), key: readFileSync(key!) }
  const server =
    mode === 'h1'
      ? createHttps(tls, handle)
      : createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => handle(req, res as unknown as Res))
  server.listen(Number(port), '::', () => console.log(`listening ${port}`))
  process.once('SIGTERM', () => process.exit(0))
}

if (import.meta.url === `file://${process.argv[1]}`) tlsOriginMain(process.argv.slice(2))
