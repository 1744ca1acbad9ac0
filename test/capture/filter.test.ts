// The capture filter, table-driven: what each term takes and leaves (on packets the real parser parsed
// from Geneve datagrams), precedence as in tcpdump, a flow's key matched in either direction, and errors
// that point at the bad token.
import test from 'ava'
import { CLIENT_SIDE, FilterError, parseFilter, SERVER_SIDE } from '../../appliance/src/capture/filter.ts'
import { flowKey } from '../../appliance/src/capture/tap.ts'
import { ParsedPacket, parsePacket } from '../../appliance/src/wire/packet.ts'
import { addr, datagram, type Inner, tcp4, tcp6, udp4 } from '../wire/packets.ts'

const OTHER_EP = Buffer.from('00000000000000aa', 'hex')

function parsed(i: Inner, endpoint?: Buffer): ParsedPacket {
  const b = datagram(i, endpoint ? { endpoint } : {})
  const p = new ParsedPacket()
  if (parsePacket(b, b.length, p) !== 0) throw new Error('test packet did not parse')
  return p
}

const web = parsed(tcp4({ src: '10.0.1.2', dst: '10.0.2.2', sport: 40000, dport: 443 }))
const reply = parsed(tcp4({ src: '10.0.2.2', dst: '10.0.1.2', sport: 443, dport: 40000 }))
const dns = parsed(udp4({ src: '10.0.1.2', dst: '10.0.2.53', sport: 5353, dport: 53 }))
const v6 = parsed(tcp6({ src: 'fd00:1::2', dst: 'fd00:2::2', sport: 40001, dport: 8443 }))
const ping = parsed({ src: '10.0.1.2', dst: '10.0.2.2', proto: 1, icmpType: 8, icmpId: 443 })
const elsewhere = parsed(tcp4({ src: '10.0.1.2', dst: '10.0.2.2', sport: 40000, dport: 443 }), OTHER_EP)

const ALL = { web, reply, dns, v6, ping, elsewhere }
type Name = keyof typeof ALL

const cases: [string, Name[]][] = [
  ['', ['web', 'reply', 'dns', 'v6', 'ping', 'elsewhere']],
  ['host 10.0.2.2', ['web', 'reply', 'ping', 'elsewhere']],
  ['src host 10.0.2.2', ['reply']],
  ['dst host 10.0.2.2', ['web', 'ping', 'elsewhere']],
  ['net 10.0.2.0/24', ['web', 'reply', 'dns', 'ping', 'elsewhere']],
  ['dst net 10.0.2.0/25 and not dst host 10.0.2.2', ['dns']],
  ['net fd00::/8', ['v6']],
  ['host fd00:2::2', ['v6']],
  ['port 443', ['web', 'reply', 'elsewhere']], // not the ICMP echo whose id is 443
  ['src port 443', ['reply']],
  ['port 50-60', ['dns']],
  ['port 8000-9000 or port 53', ['dns', 'v6']],
  ['tcp', ['web', 'reply', 'v6', 'elsewhere']],
  ['udp', ['dns']],
  ['icmp', ['ping']],
  ['proto 17', ['dns']],
  ['proto icmp', ['ping']],
  ['ip6', ['v6']],
  ['ip and tcp', ['web', 'reply', 'elsewhere']],
  ['endpoint vpce-01234567890abcdef', ['web', 'reply', 'dns', 'v6', 'ping']],
  ['endpoint VPCE-000000000000000AA', ['elsewhere']],
  // and binds tighter than or; parentheses and the symbolic forms
  ['udp or tcp and port 443', ['web', 'reply', 'dns', 'elsewhere']],
  ['(udp or tcp) and port 443', ['web', 'reply', 'elsewhere']],
  ['!(tcp || udp)', ['ping']],
  ['tcp && not port 443', ['v6']],
  ['not not icmp', ['ping']],
]

for (const [filter, want] of cases) {
  test(`filter "${filter}"`, (t) => {
    const f = parseFilter(filter)
    const got = (Object.keys(ALL) as Name[]).filter((k) => f.matches(ALL[k], CLIENT_SIDE))
    t.deepEqual(got, want)
  })
}

test('side selects the connection: client (and whole unterminated flows) or the appliance’s upstream', (t) => {
  const server = parseFilter('side server and port 443')
  t.true(server.matches(web, SERVER_SIDE))
  t.false(server.matches(web, CLIENT_SIDE))
  const client = parseFilter('side client')
  t.true(client.matches(dns, CLIENT_SIDE))
  t.false(client.matches(dns, SERVER_SIDE))
})

test('a flow key matches in either direction (what decides whether a TLS session’s secrets are taken)', (t) => {
  const key = flowKey({
    family: 4,
    client: addr('10.0.1.2'),
    server: addr('10.0.2.2'),
    clientPort: 40000,
    serverPort: 443,
    protocol: 6,
    endpoint: Buffer.from('1234567890abcdef', 'hex'),
  })
  const takes = (f: string) => {
    const m = parseFilter(f).matches
    return m(key.forward, SERVER_SIDE) || m(key.reverse, SERVER_SIDE)
  }
  t.true(takes('src host 10.0.2.2'), 'the server is the source of the reverse direction')
  t.true(takes('dst port 40000'))
  t.true(takes('endpoint vpce-01234567890abcdef and tcp'))
  t.false(takes('udp'))
  t.false(takes('host 10.9.9.9'))
  t.false(takes('side client'))
})

const errors: [string, RegExp][] = [
  ['host', /expected an address at the end/],
  ['host 10.0.0.0/8', /host takes an address; use net for a CIDR at "10\.0\.0\.0\/8" \(position 6\)/],
  ['net 10.0.0.1/8', /host bits set; did you mean 10\.0\.0\.0\/8/],
  ['port 70000', /expected a port 0-65535 or a range N-M at "70000"/],
  ['port 90-80', /expected a port/],
  ['proto 300', /expected a protocol number/],
  ['endpoint vpce-123', /expected a GWLB endpoint id/],
  ['side both', /expected client or server at "both"/],
  ['tcp udp', /expected and, or, or the end at "udp" \(position 5\)/],
  ['(tcp', /expected "\)" at the end/],
  ['tcp & udp', /"&" at position 5/],
  ['src tcp', /expected host, net or port after src at "tcp"/],
  ['hots 10.0.0.1', /unknown term .* at "hots" \(position 1\)/],
  ['tcp and', /expected a term at the end/],
]

for (const [filter, re] of errors) {
  test(`filter error: "${filter}"`, (t) => {
    const e = t.throws(() => parseFilter(filter), { instanceOf: FilterError })
    t.regex(e.message, re)
    t.is(e.code, 'FG_ERR_FILTER')
  })
}
