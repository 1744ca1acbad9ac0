// WebSocket through interception: Node 24's global WebSocket client (and a raw TLS client for broken
// frames) → loopback TLS stand-in → interceptHttp → an origin running the `ws` package's server.
import { once } from 'node:events'
import tls from 'node:tls'
import test from 'ava'
import { WebSocketServer, type WebSocket as WsSocket } from 'ws'
import { closeFrame } from '../../appliance/src/http/ws-frames.ts'
import { makePki, rawTls, startHttpsOrigin, startInterceptor } from './harness.ts'

const pki = makePki()
// Node's WebSocket (undici) verifies against the default CA list; the test CA joins it for this process.
tls.setDefaultCACertificates([...tls.getCACertificates('default'), pki.caPem])
test.after.always(() => pki.cleanup())

async function setup(
  t: { teardown(fn: () => unknown): void },
  extra: Parameters<typeof startInterceptor>[0] extends infer O ? Partial<O> : never = {},
) {
  const origin = await startHttpsOrigin(pki, (_req, res) => {
    res.statusCode = 426
    res.end('websocket only')
  })
  const wss = new WebSocketServer({ server: origin.server })
  const closes: { code: number; reason: string }[] = []
  wss.on('connection', (ws: WsSocket) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }))
    ws.on('error', () => {})
  })
  const proxy = await startInterceptor({ originPort: origin.port, pki, ...extra })
  t.teardown(async () => {
    await proxy.close()
    wss.close()
    await origin.close()
  })
  return { origin, proxy, closes }
}

test('WebSocket echo through interception: text, binary, fragments parsed and counted', async (t) => {
  const { proxy } = await setup(t)
  const ws = new WebSocket(`wss://localhost:${proxy.port}/echo`)
  ws.binaryType = 'arraybuffer'
  const got: (string | Buffer)[] = []
  ws.addEventListener('message', (e) => got.push(typeof e.data === 'string' ? e.data : Buffer.from(e.data)))
  await once(ws, 'open')
  const big = Buffer.alloc(200_000, 0x5a)
  ws.send('hello')
  ws.send(new Uint8Array([1, 2, 3]))
  ws.send(big)
  await until(() => got.length >= 3, 10_000)
  t.is(got[0], 'hello')
  t.deepEqual(got[1], Buffer.from([1, 2, 3]))
  t.true(Buffer.isBuffer(got[2]) && (got[2] as Buffer).equals(big))
  ws.close(1000, 'done')
  await once(ws, 'close')
  await proxy.settled()
  const s = proxy.stats
  t.is(s.websocketUpgrades, 1)
  t.is(s.websocketMessages.client, 3)
  t.is(s.websocketMessages.server, 3)
  t.is(s.websocketFrames.text, 2)
  t.true(s.websocketFrames.binary >= 4)
  t.is(s.websocketFrames.close, 2)
  t.is(s.websocketErrors['1002'] + s.websocketErrors['1009'], 0)
  t.is(proxy.flows.finished, 1)
})

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
}

const handshake = [
  'GET /echo HTTP/1.1',
  'Host: origin.test',
  'Upgrade: websocket',
  'Connection: Upgrade',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version: 13',
  '',
  '',
].join('\r\n')

/** Close code of the first Close frame in a server-to-client byte stream after the 101 head. */
function closeCodeIn(bytes: string): number | undefined {
  const at = bytes.indexOf('\r\n\r\n')
  if (at < 0) return undefined
  const b = Buffer.from(bytes.slice(at + 4), 'latin1')
  for (let i = 0; i + 3 < b.length; i++) if (b[i] === 0x88) return b.readUInt16BE(i + 2)
  return undefined
}

test('an unmasked client frame: 1002 to both sides, counted, nothing of it forwarded', async (t) => {
  const { proxy, closes } = await setup(t)
  const unmasked = Buffer.from([0x81, 0x02, 0x68, 0x69])
  const got = await rawTls(pki, proxy.port, Buffer.concat([Buffer.from(handshake), unmasked]))
  t.regex(got, /^HTTP\/1\.1 101 /)
  t.is(closeCodeIn(got), 1002)
  await proxy.settled()
  t.is(proxy.stats.websocketErrors['1002'], 1)
  await until(() => closes.length > 0)
  // The origin got our Close (its reason says so), not the bad frame (ws would have failed on it itself).
  t.is(closes[0]?.code, 1002)
  t.regex(closes[0]?.reason ?? '', /^flowgate: unmasked client frame/)
})

test('a frame over the size limit: 1009', async (t) => {
  const { proxy, closes } = await setup(t, { limits: { maxWebSocketFrameBytes: 1000 } })
  // A masked binary frame header announcing 5000 bytes (16-bit length), then some of the payload.
  const header = Buffer.from([0x82, 0xfe, 0x13, 0x88, 1, 2, 3, 4])
  const got = await rawTls(
    pki,
    proxy.port,
    Buffer.concat([Buffer.from(handshake), header, Buffer.alloc(100)]),
  )
  t.is(closeCodeIn(got), 1009)
  await proxy.settled()
  t.is(proxy.stats.websocketErrors['1009'], 1)
  await until(() => closes.length > 0)
  t.is(closes[0]?.code, 1009)
  t.regex(closes[0]?.reason ?? '', /^flowgate: frame of 5000 bytes/)
})

test('a clean close handshake passes through untouched', async (t) => {
  const { proxy, closes } = await setup(t)
  const got = await rawTls(
    pki,
    proxy.port,
    Buffer.concat([Buffer.from(handshake), closeFrame(1000, 'bye', true)]),
  )
  t.is(closeCodeIn(got), 1000)
  await proxy.settled()
  await until(() => closes.length > 0)
  t.is(closes[0]?.code, 1000)
  t.is(proxy.stats.websocketFrames.close, 2)
  t.is(proxy.stats.websocketErrors['1002'], 0)
})

test('a denied WebSocket handshake gets a 403 and never reaches the origin', async (t) => {
  let reached = 0
  const { proxy } = await setup(t, {
    decide: (f) => (f.path === '/echo' ? { action: 'Deny' } : { action: 'Allow' }),
  })
  const ws = new WebSocket(`wss://localhost:${proxy.port}/echo`)
  ws.addEventListener('open', () => reached++)
  const ev = await Promise.race([once(ws, 'error'), once(ws, 'close')])
  t.truthy(ev)
  t.is(reached, 0)
  t.is(proxy.stats.localResponses.deny, 1)
  t.is(proxy.stats.websocketUpgrades, 0)
})
