// The "bare" TLS-terminating proxy the interception benchmark compares against: Node's tls.createServer
// terminates the client's TLS with one fixed leaf (minted once under the same interception root as
// flowgate's leaves, chain leaf + intermediate), connects TLS to the origin with full verification against
// the origin's CA and the same ALPN, and pipes the decrypted bytes both ways. No HTTP parsing, no policy,
// no certificate minting per name: the least a TLS-intercepting proxy written in Node does.
//   node bench/tls/bare-proxy.ts LISTEN_PORT CHAIN KEY ORIGIN_HOST ORIGIN_PORT SERVERNAME ORIGIN_CA
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { connect, createSecureContext, createServer } from 'node:tls'

const [listen, chain, key, host, port, servername, ca] = process.argv.slice(2)
// Built once, as flowgate builds its upstream trust once.
const upstreamTrust = createSecureContext({ ca: readFileSync(ca!) })
const server = createServer(
  { cert: readFileSync(chain!), key: readFileSync(key!), ALPNProtocols: ['h2', 'http/1.1'] },
  (client) => {
    const alpn = typeof client.alpnProtocol === 'string' ? [client.alpnProtocol] : undefined
    const up = connect({
      host: host!,
      port: Number(port),
      servername: servername!,
      secureContext: upstreamTrust,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    })
    up.setNoDelay(true)
    const close = () => {
      client.destroy()
      up.destroy()
    }
    client.on('error', close)
    up.on('error', close)
    client.pipe(up)
    up.pipe(client)
  },
)
// No Nagle on either leg (as any proxy sets): small TLS records must not wait for an ACK.
server.on('connection', (s: Socket) => s.setNoDelay(true))
server.on('tlsClientError', () => undefined)
server.listen(Number(listen), '::', () => console.log(`listening ${listen}`))
process.once('SIGTERM', () => process.exit(0))
