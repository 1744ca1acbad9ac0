// A real HTTP server for the server namespace: `node http-server.ts [port]`, on [::] (IPv4 and IPv6).
//   GET /            → "hello from the server\n"
//   GET /bytes/N/S   → N deterministic bytes from seed S (see deterministicBytes), for byte-exact downloads
// Prints `listening <port>` when ready.
import { createCipheriv, createHash } from 'node:crypto'
import { createServer } from 'node:http'

/** N bytes that depend only on (n, seed): AES-128-CTR keystream. Both ends compute the same bytes. */
export function deterministicBytes(n: number, seed: number): Buffer {
  const key = createHash('sha256').update(`flowgate-${seed}`).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n))
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

/** `http-server.ts [port]`: serves until SIGTERM; prints `listening <port>` once bound. */
export function httpServerMain(argv: string[]): void {
  const port = Number(argv[0] ?? 8080)
  const server = createServer((req, res) => {
    const m = /^\/bytes\/(\d+)\/(\d+)$/.exec(req.url ?? '')
    if (m) {
      const body = deterministicBytes(Math.min(Number(m[1]), 256 << 20), Number(m[2]))
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
      res.end(body)
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('hello from the server\n')
  })
  server.listen(port, '::', () => console.log(`listening ${port}`))
  process.once('SIGTERM', () => process.exit(0))
}

if (import.meta.url === `file://${process.argv[1]}`) httpServerMain(process.argv.slice(2))
