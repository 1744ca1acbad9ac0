import test from 'ava'
import { Peek } from '../../appliance/src/peek/status.ts'
import { ClientHelloInfo, peekClientHello } from '../../appliance/src/peek/tls.ts'
import {
  curlFirstBytes,
  hasCurl,
  hasOpenssl,
  missingTool,
  nodeClientHello,
  opensslClientHello,
} from './capture.ts'

const info = new ClientHelloInfo()
const peek = (b: Uint8Array) => peekClientHello(b, 0, b.length, info)

/** Re-frames the handshake message of a single-record ClientHello into records of at most `size` bytes. */
function reframe(hello: Buffer, size: number): Buffer {
  const msg = hello.subarray(5, 5 + hello.readUInt16BE(3))
  const recs: Buffer[] = []
  for (let o = 0; o < msg.length; o += size) {
    const part = msg.subarray(o, o + size)
    const h = Buffer.from([22, 3, 1, 0, 0])
    h.writeUInt16BE(part.length, 3)
    recs.push(h, part)
  }
  return Buffer.concat(recs)
}

/** A minimal ClientHello with the given extensions (type, data). */
function hello(exts: [number, Buffer][], opts: { cipherLen?: number; sid?: number } = {}): Buffer {
  const extBytes = Buffer.concat(
    exts.map(([t, d]) => Buffer.concat([Buffer.from([t >> 8, t & 255, d.length >> 8, d.length & 255]), d])),
  )
  const cs = opts.cipherLen ?? 2
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 1),
    Buffer.from([opts.sid ?? 0]),
    Buffer.alloc(opts.sid ?? 0),
    Buffer.from([cs >> 8, cs & 255]),
    Buffer.alloc(cs, 0x13),
    Buffer.from([1, 0]),
    Buffer.from([extBytes.length >> 8, extBytes.length & 255]),
    extBytes,
  ])
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body])
  return Buffer.concat([Buffer.from([22, 3, 1, hs.length >> 8, hs.length & 255]), hs])
}
const sniExt = (name: string, type = 0) => {
  const n = Buffer.from(name, 'latin1')
  const entry = Buffer.concat([Buffer.from([type, n.length >> 8, n.length & 255]), n])
  return Buffer.concat([Buffer.from([entry.length >> 8, entry.length & 255]), entry])
}
const alpnExt = (...ps: string[]) => {
  const list = Buffer.concat(ps.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])))
  return Buffer.concat([Buffer.from([list.length >> 8, list.length & 255]), list])
}

test('a real Node ClientHello: SNI and ALPN; every shorter prefix needs more', async (t) => {
  const b = await nodeClientHello({ servername: 'api.example.com', ALPNProtocols: ['h2', 'http/1.1'] })
  t.true(b.length > 100)
  t.is(peek(b), Peek.complete)
  t.is(info.sni, 'api.example.com')
  t.deepEqual(info.alpn, ['h2', 'http/1.1'])
  t.is(info.legacyVersion, 0x0303)
  t.true(info.versions.includes(0x0304))
  t.is(info.consumed, b.length)
  for (let n = 0; n < b.length; n++) t.is(peekClientHello(b, 0, n, info), Peek.needMore, `prefix ${n}`)
})

test('a ClientHello split across TLS records (and any segment boundary) still parses', async (t) => {
  const b = await nodeClientHello({ servername: 'split.example', ALPNProtocols: ['http/1.1'] })
  for (const size of [1, 3, 4, 5, 100, 512]) {
    const r = reframe(b, size)
    t.is(peek(r), Peek.complete, `records of ${size}`)
    t.is(info.sni, 'split.example')
    t.is(info.consumed, r.length)
    for (const n of [1, 5, 6, 9, Math.floor(r.length / 2), r.length - 1])
      t.is(peekClientHello(r, 0, n, info), Peek.needMore)
  }
})

test('no servername (IP literal): SNI is null', async (t) => {
  const b = await nodeClientHello({ servername: '' })
  t.is(peek(b), Peek.complete)
  t.is(info.sni, null)
})

test('openssl s_client ClientHello (TLS 1.2 and 1.3)', async (t) => {
  if (missingTool(t, 'openssl', hasOpenssl())) return
  const b = await opensslClientHello(['-servername', 'openssl.example', '-alpn', 'h2'])
  t.is(peek(b), Peek.complete)
  t.is(info.sni, 'openssl.example')
  t.deepEqual(info.alpn, ['h2'])
  const b12 = await opensslClientHello(['-servername', 'old.example', '-tls1_2'])
  t.is(peek(b12), Peek.complete)
  t.is(info.sni, 'old.example')
})

test('synthetic hellos: no extensions, session id, offset in a larger buffer', (t) => {
  const h = hello([[0, sniExt('a.b')]], { sid: 32 })
  t.is(peek(h), Peek.complete)
  t.is(info.sni, 'a.b')
  const padded = Buffer.concat([Buffer.alloc(7), h, Buffer.from('trailing')])
  t.is(peekClientHello(padded, 7, h.length, info), Peek.complete)
  const bare = hello([])
  const noExt = Buffer.from(bare.subarray(0, bare.length - 2))
  noExt.writeUInt16BE(noExt.length - 5, 3)
  noExt.writeUInt16BE(noExt.length - 9, 7)
  t.is(peek(noExt), Peek.complete)
  t.is(info.sni, null)
})

test('not TLS', (t) => {
  for (const s of ['GET / HTTP/1.1\r\n', 'SSH-2.0-OpenSSH_9.6\r\n', '\x16\x02\x00'])
    t.is(peek(Buffer.from(s, 'latin1')), Peek.notMatched, s)
  t.is(peek(Buffer.alloc(0)), Peek.needMore)
  t.is(peek(Buffer.from([22])), Peek.needMore)
})

const malformed: [string, () => Buffer][] = [
  ['record length 0', () => Buffer.from([22, 3, 1, 0, 0, 1, 0, 0, 0])],
  ['record length > 2^14', () => Buffer.from([22, 3, 1, 0x40, 0x01, 1])],
  [
    'ServerHello first',
    () => {
      const h = hello([])
      h[5] = 2
      return h
    },
  ],
  [
    'handshake length beyond 64 KB',
    () => {
      const h = hello([])
      h[6] = 0x10
      return h
    },
  ],
  ['odd cipher suites length', () => hello([], { cipherLen: 3 })],
  ['session id 33', () => hello([], { sid: 33 })],
  [
    'extensions length mismatch',
    () => {
      const h = hello([[0, sniExt('a')]])
      h.writeUInt16BE(h.readUInt16BE(h.length - 12) + 1, h.length - 12)
      return h
    },
  ],
  [
    'duplicate SNI',
    () =>
      hello([
        [0, sniExt('a')],
        [0, sniExt('b')],
      ]),
  ],
  [
    'duplicate ALPN',
    () =>
      hello([
        [16, alpnExt('h2')],
        [16, alpnExt('h2')],
      ]),
  ],
  ['SNI with a space', () => hello([[0, sniExt('a b')]])],
  ['SNI with a NUL', () => hello([[0, sniExt('a\x00.com')]])],
  ['empty SNI name', () => hello([[0, sniExt('')]])],
  ['empty server_name extension', () => hello([[0, Buffer.alloc(0)]])],
  [
    'SNI list length wrong',
    () => {
      const e = sniExt('abc')
      e[1]! += 1
      return hello([[0, e]])
    },
  ],
  ['ALPN empty protocol', () => hello([[16, Buffer.from([0, 1, 0])]])],
  ['ALPN list overruns', () => hello([[16, Buffer.from([0, 3, 5, 0x68, 0x32])]])],
  [
    'extension overruns',
    () => {
      const h = hello([[0, sniExt('abc')]])
      h.writeUInt16BE(200, h.length - 10)
      return h
    },
  ],
  [
    'alert record inside a split hello',
    () => {
      const r = reframe(hello([[0, sniExt('abc')]]), 10)
      r[15] = 21
      return r
    },
  ],
]
for (const [name, make] of malformed) {
  test(`malformed ClientHello: ${name}`, (t) => {
    t.is(peek(make()), Peek.malformed)
    t.truthy(info.error)
  })
}

test('unknown name types are skipped; the host_name is taken', (t) => {
  const n = Buffer.from('x.y')
  const entries = Buffer.concat([Buffer.from([7, 0, 1, 9]), Buffer.from([0, 0, 3]), n])
  const ext = Buffer.concat([Buffer.from([0, entries.length]), entries])
  t.is(peek(hello([[0, ext]])), Peek.complete)
  t.is(info.sni, 'x.y')
})

test('curl’s ClientHello carries the URL host as SNI and offers h2 and http/1.1', async (t) => {
  if (missingTool(t, 'curl', hasCurl())) return
  const b = await curlFirstBytes(
    (port) => `https://curl.example:${port}/`,
    ['--resolve', 'curl.example:0:127.0.0.1', '--connect-to', '::127.0.0.1:'],
  )
  t.is(peek(b), Peek.complete)
  t.is(info.sni, 'curl.example')
  t.true(info.alpn.includes('http/1.1'))
})
