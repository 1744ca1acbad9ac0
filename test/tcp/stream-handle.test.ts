// TLS straight on user-space connections (stream-handle.ts): Node's TLSSocket over streamSocketFor() on both
// ends of an in-memory link — handshake, bytes put back before the handover, byte-exact data both ways,
// backpressure into the TCP window, orderly close without RST, and a peer's reset as ECONNRESET.

import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect, TLSSocket } from 'node:tls'
import test from 'ava'
import { SeededRandom } from '../../appliance/src/tcp/clock.ts'
import { State } from '../../appliance/src/tcp/state.ts'
import type { TcpSocket } from '../../appliance/src/tcp/stream.ts'
import { streamSocketFor } from '../../appliance/src/tcp/stream-handle.ts'
import { StandInCa } from '../../standin/src/origin-pki.ts'
import { A, Link, pair, pair2 } from './link.ts'

const NAME = 'origin.test'
const pki = (async () => {
  const ca = await StandInCa.create('CN=stream-handle test CA')
  const leaf = await ca.issue([NAME])
  return { ca: ca.pem, cert: leaf.certPem, key: leaf.keyPem() }
})()

function random(n: number, seed: number): Buffer {
  const r = new SeededRandom(seed)
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(r.u32(), i)
  return b
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** TLS on both ends of a fresh connection: [client, server, their TCP sockets]. */
async function tlsPair(l: Link, second = 0): Promise<[TLSSocket, TLSSocket, TcpSocket, TcpSocket]> {
  const { ca, cert, key } = await pki
  const [c, s] = await (second ? pair2(l) : pair(l))
  const server = new TLSSocket(streamSocketFor(s), { isServer: true, cert, key })
  const client = connect({ socket: streamSocketFor(c), servername: NAME, ca })
  await Promise.all([once(client, 'secureConnect'), once(server, 'secure')])
  return [client, server, c, s]
}

function readAll(s: TLSSocket): Promise<Buffer> {
  const chunks: Buffer[] = []
  s.on('data', (d: Buffer) => chunks.push(d))
  return once(s, 'end').then(() => Buffer.concat(chunks))
}

test('TLS on user-space connections: verified handshake, 1 MB each way byte-exact, orderly close without RST', async (t) => {
  const l = new Link()
  const [client, server] = await tlsPair(l)
  t.true(client.authorized, 'the client verified the server against its CA')
  const up = random(1 << 20, 1)
  const down = random(1 << 20, 2)
  const gotUp = readAll(server)
  const gotDown = readAll(client)
  client.end(up)
  server.end(down)
  t.is(sha(await gotUp), sha(up))
  t.is(sha(await gotDown), sha(down))
  await Promise.all([once(client, 'close'), once(server, 'close')])
  // Both FIN exchanges finish on their own (nobody reset anybody), one side in TIME-WAIT.
  for (let i = 0; i < 200 && l.a.get(A)?.state !== State.TIME_WAIT && l.b.activeConnections > 0; i++)
    await new Promise(setImmediate)
  t.is(l.a.metrics.resetsSent + l.b.metrics.resetsSent, 0)
  const st = l.a.get(A)?.state ?? State.CLOSED
  t.true(st === State.TIME_WAIT || st === State.CLOSED)
  l.stop()
})

test('bytes received before the handover come first: a ClientHello peeked and put back', async (t) => {
  const { ca, cert, key } = await pki
  const l = new Link()
  const [c, s] = await pair(l)
  const client = connect({ socket: streamSocketFor(c), servername: NAME, ca })
  // As the interceptor's first-bytes reader: read the start of the ClientHello, then unshift it.
  const [first] = (await once(s, 'data')) as [Buffer]
  s.pause()
  t.is(first[0], 0x16, 'a TLS handshake record')
  s.unshift(first)
  const server = new TLSSocket(streamSocketFor(s), { isServer: true, cert, key })
  await Promise.all([once(client, 'secureConnect'), once(server, 'secure')])
  const got = once(server, 'data')
  client.write('hello')
  t.is(String((await got)[0]), 'hello')
  client.destroy()
  server.destroy()
  l.stop()
})

test('backpressure: a TLS reader that stops closes the TCP window; nothing is lost when it resumes', async (t) => {
  const l = new Link()
  const [client, server, , s] = await tlsPair(l)
  server.pause()
  const data = random(4 << 20, 3)
  client.end(data)
  // Let the sender run until the window is shut.
  for (let i = 0; i < 3000; i++) await new Promise(setImmediate)
  const conn = s.connection
  t.true(conn.rcvUnread <= conn.rcvBuf, `held ${conn.rcvUnread} ≤ the receive buffer ${conn.rcvBuf}`)
  t.true(conn.rcvUnread + server.readableLength < data.length, 'the sender was stopped, not buffered in full')
  const got = readAll(server)
  server.resume()
  t.is(sha(await got), sha(data))
  server.end()
  l.stop()
})

test("a peer's reset reaches the TLS sockets: ECONNRESET on a client's, close on a server's", async (t) => {
  const l = new Link()
  const [client, server, c, s] = await tlsPair(l)
  const err = once(client, 'error')
  s.destroy() // the server's TCP connection resets (no TLS close)
  const [e] = (await err) as [NodeJS.ErrnoException]
  t.is(e.errno as unknown as string, 'ECONNRESET')
  await once(client, 'close')

  // A server-side TLSSocket made without a tls.Server reports its transport's errors only internally (as
  // over JSStreamSocket); what the HTTP layer sees is the close.
  const [client2, server2, c2] = await tlsPair(l, 1)
  c2.destroy()
  await once(server2, 'close')
  t.true(server2.destroyed)
  client2.destroy()
  t.true(c.destroyed && server.destroyed)
  l.stop()
})
