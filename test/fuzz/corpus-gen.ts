// Generates the committed fuzz corpus (node scripts/fuzz.ts --write-corpus): Geneve datagrams covering
// every parser branch, and stream prefixes captured from real TLS and HTTP clients.

import { hasOpenssl, nodeClientHello, nodeHttpRequest, opensslClientHello } from '../peek/capture.ts'
import { datagram, type Inner, ipPacket, tcp4, tcp6, udp4, udp6 } from '../wire/packets.ts'

const tsOpts = Buffer.from([2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1])
const sack = Buffer.from([1, 1, 5, 10, 0, 0, 0, 10, 0, 0, 0, 20])
const opts6 = (type: number) => ({ type, body: Buffer.from([0, 0, 1, 4, 0, 0, 0, 0]) })
const frag6 = (off: number, m: boolean) => {
  const body = Buffer.alloc(8)
  body.writeUInt16BE(off | (m ? 1 : 0), 2)
  body.writeUInt32BE(9, 4)
  return { type: 44, body }
}

export async function corpusEntries(): Promise<[string, Buffer][]> {
  const pk: [string, Inner, Parameters<typeof datagram>[1]?][] = [
    ['tcp4-syn', tcp4({ flags: 0x02, tcpOptions: tsOpts })],
    [
      'tcp4-synack',
      { ...tcp4({ flags: 0x12 }), src: '203.0.113.9', dst: '10.0.0.1', sport: 80, dport: 40000 },
    ],
    [
      'tcp4-data',
      tcp4({ flags: 0x18, payload: Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), tcpOptions: sack }),
    ],
    ['tcp4-ssh', tcp4({ dport: 22, flags: 0x02 })],
    ['tcp4-telnet', tcp4({ dport: 23, flags: 0x10 })],
    ['tcp4-fin', tcp4({ flags: 0x11 })],
    ['tcp4-rst', tcp4({ flags: 0x04 })],
    ['tcp4-ipopts', tcp4({ ipOptions: Buffer.from([0x94, 4, 0, 0, 1, 1, 1, 0]) })],
    ['tcp6-tls', tcp6({ flags: 0x18, payload: Buffer.from([22, 3, 1, 0, 5, 1, 0, 0, 1, 0]) })],
    ['tcp6-8080', tcp6({ dport: 8080, flags: 0x02 })],
    ['tcp6-ext', tcp6({ ext: [opts6(0), opts6(60), opts6(43)], flags: 0x02 })],
    ['udp4-censor', udp4({ payload: Buffer.from('JS is weakly typed, a lot of a') })],
    ['udp4-drop', udp4({ payload: Buffer.from('please drop me') })],
    ['udp4-nocsum', udp4({ noUdpChecksum: true, payload: Buffer.from('aaaa') })],
    ['udp4-frag1', udp4({ mf: true, ipId: 5, payload: Buffer.alloc(48, 0x61) })],
    ['udp4-frag2', udp4({ fragOffset: 56, ipId: 5, payload: Buffer.alloc(24, 0x61) })],
    ['udp6-censor', udp6({ payload: Buffer.from('weakly typed aaa') })],
    ['udp6-frag1', udp6({ ext: [frag6(0, true)], payload: Buffer.alloc(32, 0x61) })],
    ['udp6-frag2', { ...udp6({ ext: [frag6(40, false)], payload: Buffer.alloc(16) }), fragOffset: 40 }],
    [
      'icmp4-echo',
      { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 8, payload: Buffer.from('xxxxabcdefgh') },
    ],
    [
      'icmp4-reply',
      { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 0, payload: Buffer.from('xxxxabcdefgh') },
    ],
    [
      'icmp4-unreach',
      { src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 3, icmpCode: 3, payload: Buffer.alloc(28) },
    ],
    ['icmp6-echo', { src: 'fd00::1', dst: 'fd00::2', proto: 58, icmpType: 128, payload: Buffer.from('xyz') }],
    [
      'icmp4-related',
      {
        src: '203.0.113.9',
        dst: '10.0.0.1',
        proto: 1,
        icmpType: 3,
        icmpCode: 3,
        payload: ipPacket(udp4({ payload: Buffer.from('JS is weakly typed') })).subarray(0, 28),
      },
    ],
    [
      'icmp6-ptb-related',
      {
        src: '2001:db8::1',
        dst: 'fd00::1',
        proto: 58,
        icmpType: 2,
        payload: ipPacket(tcp6({ ext: [opts6(60)], flags: 0x18 })).subarray(0, 64),
      },
    ],
    ['gre4', { src: '10.0.0.1', dst: '10.0.0.2', proto: 47, payload: Buffer.alloc(12) }],
  ]
  const out: [string, Buffer][] = pk.map(([n, i, g]) => [`pkt-${n}.bin`, datagram(i, g)])
  out.push([
    'pkt-geneve-extra-opts.bin',
    datagram(udp4(), {
      extra: Buffer.from([0x01, 0x08, 0x09, 0x01, 1, 2, 3, 4, 0x12, 0x34, 0x05, 0]),
      order: [3, 1, 2],
    }),
  ])
  out.push(['pkt-big-udp.bin', datagram(udp4({ payload: Buffer.alloc(1400, 0x61) }))])
  out.push([
    'tls-node-h2.bin',
    await nodeClientHello({ servername: 'www.example.com', ALPNProtocols: ['h2', 'http/1.1'] }),
  ])
  out.push(['tls-node-nosni.bin', await nodeClientHello({ servername: '' })])
  if (hasOpenssl()) {
    out.push([
      'tls-openssl-13.bin',
      await opensslClientHello(['-servername', 'openssl.example', '-alpn', 'h2,http/1.1']),
    ])
    out.push(['tls-openssl-12.bin', await opensslClientHello(['-servername', 'old.example', '-tls1_2'])])
  }
  out.push(['http-node-post.bin', await nodeHttpRequest('/upload?x=1', { 'X-A': 'b' })])
  out.push([
    'http-get.bin',
    Buffer.from('GET http://h.example/p?q HTTP/1.1\r\nHost: h.example\r\nAccept: */*\r\n\r\n'),
  ])
  out.push([
    'http-connect.bin',
    Buffer.from('CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n'),
  ])
  return out
}
