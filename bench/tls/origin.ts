// The benchmark's origin: an HTTPS server that also speaks HTTP/2 (ALPN h2, http/1.1), with the ECDSA P-256
// certificate it is given, answering every request with the same small body (1,024 bytes by default), so
// that the origin costs little next to what is measured in front of it.
//   node bench/tls/origin.ts PORT CERT KEY [BODY_BYTES]   → prints `listening PORT`
import { readFileSync } from 'node:fs'
import { createSecureServer } from 'node:http2'
import type { Socket } from 'node:net'

const [port, cert, key, size] = process.argv.slice(2)
const body = Buffer.alloc(Number(size ?? 1024), 0x61)
const headers = { 'content-type': 'application/octet-stream', 'content-length': body.length }
const server = createSecureServer(
  { cert: readFileSync(cert!), key: readFileSync(key!), allowHTTP1: true },
  (req, res) => {
    // Drain any request body, then answer.
    req.resume()
    res.writeHead(200, headers)
    res.end(body)
  },
)
// No Nagle: a response must not wait for the ACK of the previous one.
server.on('connection', (s: Socket) => s.setNoDelay(true))
// Quiet about the connection errors a load test ends with (resets on the client's exit).
server.on('secureConnection', (s) => s.on('error', () => undefined))
server.on('sessionError', () => undefined)
server.listen(Number(port), '::', () => console.log(`listening ${port}`))
process.once('SIGTERM', () => process.exit(0))
