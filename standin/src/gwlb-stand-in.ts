// The GWLB stand-in (TESTING.md layer 3; GWLB.md is the contract it enforces). Product code because
// `flowgate demo` ships it; the namespace test suites use it too.
//
// Topology, all made by `GwlbLab.create()` and removed by `close()`:
//
//   [client ns]                      [this process, host ns]                     [server ns]
//   curl/ping/socat                                                              http server, socat
//   tun  10.0.1.2/24, fd00:1::2/64 ◄──► stand-in ◄──► tun  10.0.2.2/24, fd00:2::2/64
//   (routes to the server side via the tun)     ▲                               (routes to the client side)
//                                               │ Geneve over IPv4/UDP: from gwlbAddr:<per-flow port>
//                                               ▼ to applianceAddr:6081, and back to gwlbAddr:6081
//   veth gwlbAddr (host ns) ◄────────────────► veth applianceAddr [appliance ns]: the appliance under test
//
// Every packet either side sends (read from its TUN, as the VPC route table hands traffic to a GWLB
// endpoint) is wrapped in a Geneve header with GWLB's three AWS options — endpoint id, attachment id, a
// per-flow cookie — and sent from that flow's own source port. Both directions of a flow carry the same
// header and port. What the appliance returns is checked against the contract and delivered by inner
// destination into the client's or the server's TUN.
//
// Contract checks on every returned datagram (violations are counted by reason, with samples):
//   - it comes from the appliance's address, to the flow's GWLB node at :6081, from the flow's GWLB
//     source port
//     (a reply sent to the source port instead, as a naive echo does, lands on that port's socket here:
//     also a violation);
//   - its Geneve header is byte for byte the flow's header;
//   - its inner packet belongs to a flow the stand-in has seen (the appliance never starts a flow) and has
//     valid IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums.
// The outer UDP checksum is checked by the kernel (a bad one is dropped before us: the peers see loss).
//
// Loss and reordering are injected from a seed, in both directions, so a failure replays.
//
// Also modelled, for the contract points they test:
//   - several GWLB nodes (`gwlbNodes`): cross-zone load balancing sends flows from several node IPs to one
//     appliance, which must answer each packet to the node that sent it (GWLB.md "Returning a packet");
//   - rebalancing (`changeCookies()`): GWLB may change an established flow's cookie; the appliance must
//     follow the latest header. The previous header is accepted for a grace period (packets in flight).

import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { TunDevice } from '../../appliance/src/io/tun.ts'
import { ip, NamespaceSet } from './namespaces.ts'
import { GENEVE_LEN, gwlbGeneveHeader, innerChecksumError, innerInfo, seeded } from './packets.ts'

export const GENEVE_PORT = 6081

export interface LabOptions {
  /** probability of dropping a packet, each direction; default 0 */
  loss?: number
  /** probability of holding a packet back behind the next one, each direction; default 0 */
  reorder?: number
  /** seed for loss and reordering; default random (printed in the report) */
  seed?: number
  /** first GWLB source port; flows get consecutive ports from here. Default 60000 */
  firstPort?: number
  /** GWLB node addresses flows are spread over (round robin), 1–5; default 1 */
  gwlbNodes?: number
}

export interface Violation {
  reason: string
  detail: string
}

export interface StandInReport {
  seed: number
  flows: number
  /** datagrams sent to the appliance */
  encapsulated: number
  /** datagrams received back from the appliance */
  returned: number
  /** inner packets delivered to a TUN */
  delivered: number
  injectedLoss: number
  injectedReorder: number
  /** packets a TUN handed us that we could not encapsulate (not IP) */
  unforwardable: number
  /** inner packets the kernel refused at a TUN write */
  deliveryFailed: number
  /** datagrams returned to each GWLB node (index as in gwlbNodeAddrs) */
  returnedByNode: number[]
  violations: number
  byReason: Record<string, number>
  samples: Violation[]
}

interface Flow {
  port: number
  node: number
  header: Buffer
  /** the header before the last changeCookies(), accepted until graceUntil */
  previous: Buffer | undefined
  graceUntil: number
  sock: Socket
}

/** Addresses of the lab, for tests and appliances. */
export const LAB = {
  client4: '10.0.1.2',
  server4: '10.0.2.2',
  client6: 'fd00:1::2',
  server6: 'fd00:2::2',
} as const

function routable(dst: string): boolean {
  if (dst.includes(':')) return !/^f[ef][0-9a-f]{2}:/.test(dst)
  const first = Number(dst.split('.')[0])
  return first < 224 && dst !== '255.255.255.255'
}

export class GwlbLab {
  readonly ns: NamespaceSet
  readonly client: string
  readonly server: string
  readonly appliance: string
  /** the (first) GWLB node's address */
  readonly gwlbAddr: string
  /** every GWLB node's address; flows are spread over them */
  readonly gwlbNodeAddrs: readonly string[]
  readonly applianceAddr: string
  readonly endpointId: Buffer
  private readonly rng: () => number
  private readonly seed: number
  private readonly loss: number
  private readonly reorder: number
  private readonly firstPort: number
  private nextPort: number
  private readonly flows = new Map<string, Flow>()
  private readonly ports = new Set<number>()
  private clientTun: TunDevice | undefined
  private serverTun: TunDevice | undefined
  private readonly mains: Socket[] = []
  private readonly returnedByNode: number[]
  private readonly stats = {
    encapsulated: 0,
    returned: 0,
    delivered: 0,
    injectedLoss: 0,
    injectedReorder: 0,
    unforwardable: 0,
    deliveryFailed: 0,
  }
  private readonly violations: Violation[] = []
  private readonly byReason: Record<string, number> = {}
  private held: Array<() => void> = []
  private heldTimer: NodeJS.Timeout | undefined
  private closed = false

  private constructor(ns: NamespaceSet, options: LabOptions) {
    this.ns = ns
    this.seed = options.seed ?? randomBytes(4).readUInt32BE()
    this.rng = seeded(this.seed)
    this.loss = options.loss ?? 0
    this.reorder = options.reorder ?? 0
    this.firstPort = options.firstPort ?? 60000
    this.nextPort = this.firstPort
    this.client = ns.create('cli')
    this.server = ns.create('srv')
    this.appliance = ns.create('app')
    // A /29 on the GWLB↔appliance link, picked at random in 100.64/10 so parallel labs do not collide:
    // .1 and .3–.6 are GWLB nodes, .2 the appliance.
    const r = randomBytes(3)
    const net = `100.${64 + (r[0]! & 63)}.${r[1]}`
    const base = 8 * (r[2]! & 31)
    const nodes = Math.max(1, Math.min(5, options.gwlbNodes ?? 1))
    this.gwlbNodeAddrs = [1, 3, 4, 5, 6].slice(0, nodes).map((h) => `${net}.${base + h}`)
    this.gwlbAddr = this.gwlbNodeAddrs[0]!
    this.applianceAddr = `${net}.${base + 2}`
    this.returnedByNode = this.gwlbNodeAddrs.map(() => 0)
    this.endpointId = randomBytes(8)
  }

  /** Builds the namespaces, links and TUNs and starts forwarding. Close it in a finally. */
  static async create(options: LabOptions = {}): Promise<GwlbLab> {
    const ns = new NamespaceSet()
    let lab: GwlbLab | undefined
    try {
      lab = new GwlbLab(ns, options)
      await lab.setup()
      return lab
    } catch (e) {
      if (lab) await lab.close()
      else await ns.close()
      throw e
    }
  }

  private async setup(): Promise<void> {
    const id = this.ns.id
    const g = `fg${id}g`
    const a = `fg${id}a`
    // Jumbo MTU like a VPC (9001): a 1,500-byte inner packet plus 68 bytes of encapsulation is one datagram.
    ip('link', 'add', g, 'mtu', '9001', 'type', 'veth', 'peer', 'name', a, 'mtu', '9001')
    ip('link', 'set', a, 'netns', this.appliance)
    for (const addr of this.gwlbNodeAddrs) ip('addr', 'add', `${addr}/29`, 'dev', g)
    ip('link', 'set', g, 'up')
    ip('-n', this.appliance, 'addr', 'add', `${this.applianceAddr}/29`, 'dev', a)
    ip('-n', this.appliance, 'link', 'set', a, 'up')

    this.clientTun = this.tun(`fg${id}c`, this.client, LAB.client4, LAB.client6, '10.0.2.0/24', 'fd00:2::/64')
    this.serverTun = this.tun(`fg${id}s`, this.server, LAB.server4, LAB.server6, '10.0.1.0/24', 'fd00:1::/64')

    for (const [node, addr] of this.gwlbNodeAddrs.entries()) {
      const main = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 })
      this.mains.push(main)
      await new Promise<void>((resolve, reject) => {
        main.once('error', reject)
        main.bind(GENEVE_PORT, addr, () => resolve())
      })
      main.on('message', (msg, rinfo) => this.fromAppliance(msg, rinfo.address, rinfo.port, node))
    }
    this.clientTun.read((p) => this.fromSide(p))
    this.serverTun.read((p) => this.fromSide(p))
  }

  /** A TUN created here, moved into `ns` (its fd keeps working), addressed and routed towards the other side. */
  private tun(name: string, ns: string, v4: string, v6: string, route4: string, route6: string): TunDevice {
    const t = new TunDevice(name)
    try {
      ip('link', 'set', name, 'netns', ns)
      ip('-n', ns, 'link', 'set', name, 'mtu', '1500', 'up')
      ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', name)
      ip('-n', ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', name, 'nodad')
      ip('-n', ns, 'route', 'add', route4, 'dev', name)
      ip('-n', ns, '-6', 'route', 'add', route6, 'dev', name)
    } catch (e) {
      t.close()
      throw e
    }
    return t
  }

  private violation(reason: string, detail: string): void {
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1
    if (this.violations.length < 20) this.violations.push({ reason, detail })
  }

  /** Packets the client or the server sent: encapsulate and send to the appliance. */
  private fromSide(packet: Buffer): void {
    const info = innerInfo(packet)
    if (typeof info === 'string' || !routable(info.dst)) {
      // Not IP, or link-local/multicast chatter of the TUN itself (IPv6 router solicitations, MLD): a VPC
      // route table would never hand those to a GWLB endpoint.
      this.stats.unforwardable++
      return
    }
    const flow = this.flowFor(info.flowKey, info.family)
    // The TUN ring is reused for the next read: this datagram is ours.
    const datagram = Buffer.concat([flow.header, packet])
    this.impair(() => {
      if (this.closed) return
      this.stats.encapsulated++
      flow.sock.send(datagram, GENEVE_PORT, this.applianceAddr)
    })
  }

  private flowFor(key: string, family: 4 | 6): Flow {
    let f = this.flows.get(key)
    if (f) return f
    const node = (port0: number) => (port0 - this.firstPort) % this.gwlbNodeAddrs.length
    const port = this.nextPort++
    const header = gwlbGeneveHeader(family === 4 ? 0x0800 : 0x86dd, {
      endpointId: this.endpointId,
      attachmentId: Buffer.alloc(8),
      cookie: randomBytes(4).readUInt32BE(),
    })
    // The flow's own source port. Anything arriving on it is a reply sent the naive way.
    const sock = createSocket({ type: 'udp4', reuseAddr: true })
    sock.on('message', (_m, r) => {
      this.violation('reply-to-gwlb-source-port', `from ${r.address}:${r.port} to GWLB port ${port}`)
    })
    sock.on('error', (e) => this.violation('stand-in-socket-error', e.message))
    const n = node(port)
    sock.bind(port, this.gwlbNodeAddrs[n])
    f = { port, node: n, header, previous: undefined, graceUntil: 0, sock }
    this.flows.set(key, f)
    this.ports.add(port)
    return f
  }

  /** What the appliance sent to GWLB node `node` at :6081. */
  private fromAppliance(msg: Buffer, address: string, port: number, node: number): void {
    this.stats.returned++
    this.returnedByNode[node]!++
    if (address !== this.applianceAddr) {
      this.violation('wrong-source-address', `${address}:${port}`)
      return
    }
    if (msg.length < 8) {
      this.violation('short-datagram', `${msg.length} bytes`)
      return
    }
    const hlen = 8 + (msg[0]! & 0x3f) * 4
    if (msg.length < hlen + 1) {
      this.violation('short-datagram', `${msg.length} bytes, Geneve header ${hlen}`)
      return
    }
    const inner = msg.subarray(hlen)
    const info = innerInfo(inner)
    if (typeof info === 'string') {
      this.violation('inner-not-ip', info)
      return
    }
    const flow = this.flows.get(info.flowKey)
    if (!flow) {
      this.violation(
        'unknown-flow',
        `${info.src}:${info.srcPort} → ${info.dst}:${info.dstPort} proto ${info.protocol}`,
      )
      return
    }
    if (port !== flow.port) this.violation('wrong-source-port', `got ${port}, flow's GWLB port ${flow.port}`)
    if (node !== flow.node) {
      this.violation(
        'wrong-gwlb-node',
        `sent to ${this.gwlbNodeAddrs[node]}, flow's node ${this.gwlbNodeAddrs[flow.node]}`,
      )
    }
    const got = msg.subarray(0, hlen)
    const stale =
      flow.previous !== undefined && performance.now() < flow.graceUntil && got.equals(flow.previous)
    if (!stale && (hlen !== GENEVE_LEN || !got.equals(flow.header))) {
      this.violation(
        'geneve-header-changed',
        `sent ${flow.header.toString('hex')} got ${msg.subarray(0, hlen).toString('hex')}`,
      )
    }
    const bad = innerChecksumError(inner)
    if (bad) this.violation('inner-checksum', `${bad} ${info.src} → ${info.dst}`)
    const toClient = info.dst === LAB.client4 || info.dst.startsWith('fd00:1:')
    const toServer = info.dst === LAB.server4 || info.dst.startsWith('fd00:2:')
    const tun = toClient ? this.clientTun : toServer ? this.serverTun : undefined
    if (!tun) {
      this.violation('undeliverable', `inner destination ${info.dst}`)
      return
    }
    // dgram hands us a Buffer of our own: no copy needed before a delayed (reordered) write.
    this.impair(() => {
      if (this.closed) return
      if (tun.write(inner)) this.stats.delivered++
      else this.stats.deliveryFailed++
    })
  }

  /**
   * Loss and reordering from the seed. A held packet goes out right after the next one (the next packet
   * overtakes it), or after 2 ms if no packet follows.
   */
  private impair(send: () => void): void {
    if (this.loss > 0 && this.rng() < this.loss) {
      this.stats.injectedLoss++
      return
    }
    if (this.reorder > 0 && this.rng() < this.reorder) {
      this.stats.injectedReorder++
      this.held.push(send)
      this.heldTimer ??= setTimeout(() => this.release(), 2)
      return
    }
    send()
    this.release()
  }

  private release(): void {
    if (this.heldTimer) clearTimeout(this.heldTimer)
    this.heldTimer = undefined
    const h = this.held
    this.held = []
    for (const s of h) s()
  }

  /**
   * Rebalancing: every flow gets a new cookie, so every later packet carries a new Geneve header. Replies
   * with the previous header are accepted for graceMs (they may answer packets already in flight).
   */
  changeCookies(graceMs = 500): void {
    const until = performance.now() + graceMs
    for (const f of this.flows.values()) {
      f.previous = Buffer.from(f.header)
      f.graceUntil = until
      f.header.writeUInt32BE(randomBytes(4).readUInt32BE(), GENEVE_LEN - 4)
    }
  }

  report(): StandInReport {
    const violations = Object.values(this.byReason).reduce((a, b) => a + b, 0)
    return {
      seed: this.seed,
      flows: this.flows.size,
      ...this.stats,
      returnedByNode: [...this.returnedByNode],
      violations,
      byReason: { ...this.byReason },
      samples: [...this.violations],
    }
  }

  /** Stops forwarding, closes sockets and TUNs, kills processes, deletes namespaces. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.heldTimer) clearTimeout(this.heldTimer)
    this.clientTun?.close()
    this.serverTun?.close()
    const socks = [...this.mains, ...[...this.flows.values()].map((f) => f.sock)]
    for (const s of socks) {
      try {
        s.close()
      } catch {}
    }
    await this.ns.close()
    // Deleting a namespace only queues its cleanup (the kernel frees its devices asynchronously), so the
    // host end of the veth can outlive `ip netns del` for a while on a busy machine. Deleting that end
    // removes the pair at once.
    try {
      ip('link', 'del', `fg${this.ns.id}g`)
    } catch {
      // already gone with the namespace
    }
  }
}
