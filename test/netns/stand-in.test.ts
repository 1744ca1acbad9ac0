// Real peers through the GWLB stand-in and the echo appliance (TESTING.md layer 3): curl against a real
// HTTP server, socat over UDP, ping, IPv6 — and the stand-in's contract checks, including proof that they
// fire on an appliance that breaks the contract.
import { execFileSync } from 'node:child_process'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { deterministicBytes, sha256 } from '../support/netns/http-server.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { withLab } from './support.ts'

/** Replies ping counted. With -c N -w D it sends until N replies came back (so on a slow machine it sends,
 * and receives, more than N, and may exit with one in flight): ≥ N received is success, not 0% loss. */
function received(out: string): number {
  return Number(/(\d+) received/.exec(out)?.[1] ?? -1)
}

const netTest = privilegedTest(['root', 'tun', 'ip', 'addon', 'peers'])

for (const backend of ['native', 'dgram'] as const) {
  const size = backend === 'native' ? 12_000_000 : 4_000_000

  netTest(`${backend}: curl gets 200 and a byte-exact ${size / 1e6} MB download (IPv4)`, async (t) => {
    const report = await withLab(t, { backend }, async ({ client }) => {
      const hello = await client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:8080/`])
      t.is(hello.code, 0, hello.stderr)
      t.is(hello.stdout.toString(), 'hello from the server\n')
      const seed = 7
      const r = await client(
        'curl',
        ['-sS', '--max-time', '60', `http://${LAB.server4}:8080/bytes/${size}/${seed}`],
        70_000,
      )
      t.is(r.code, 0, r.stderr)
      t.is(r.stdout.length, size)
      t.is(sha256(r.stdout), sha256(deterministicBytes(size, seed)))
    })
    t.is(report.violations, 0, JSON.stringify(report.samples))
    t.true(report.returned > size / 1500, 'the download went through the appliance')
  })

  netTest(`${backend}: UDP (socat) and ICMP (ping) over IPv4 and IPv6`, async (t) => {
    const report = await withLab(t, { backend }, async ({ client }) => {
      const u4 = await client('sh', ['-c', `echo udp-four | socat -t1 - UDP4:${LAB.server4}:9000`], 10_000)
      t.is(u4.stdout.toString(), 'udp-four\n', u4.stderr)
      const u6 = await client('sh', ['-c', `echo udp-six | socat -t1 - UDP6:[${LAB.server6}]:9000`], 10_000)
      t.is(u6.stdout.toString(), 'udp-six\n', u6.stderr)
      // -w: wait for all 5 replies until the deadline (with -c alone ping gives up on a reply slower than
      // twice the largest round trip so far, which a loaded machine produces).
      const p4 = await client('ping', ['-c', '5', '-i', '0.05', '-w', '10', LAB.server4], 15_000)
      t.is(p4.code, 0, p4.stdout.toString())
      t.true(received(p4.stdout.toString()) >= 5, p4.stdout.toString())
      const p6 = await client('ping', ['-6', '-c', '5', '-i', '0.05', '-w', '10', LAB.server6], 15_000)
      t.is(p6.code, 0, p6.stdout.toString())
      t.true(received(p6.stdout.toString()) >= 5, p6.stdout.toString())
    })
    t.is(report.violations, 0, JSON.stringify(report.samples))
  })
}

netTest('native: an IPv6 TCP flow: curl over IPv6, byte-exact 2 MB', async (t) => {
  const report = await withLab(t, {}, async ({ client }) => {
    const r = await client(
      'curl',
      ['-sS', '--max-time', '30', `http://[${LAB.server6}]:8080/bytes/2000000/3`],
      40_000,
    )
    t.is(r.code, 0, r.stderr)
    t.is(sha256(r.stdout), sha256(deterministicBytes(2_000_000, 3)))
  })
  t.is(report.violations, 0, JSON.stringify(report.samples))
})

netTest('native: with seeded loss and reordering TCP still delivers byte-exact', async (t) => {
  const report = await withLab(t, { seed: 1234, loss: 0.01, reorder: 0.03 }, async ({ client }) => {
    const r = await client(
      'curl',
      ['-sS', '--max-time', '60', `http://${LAB.server4}:8080/bytes/3000000/5`],
      70_000,
    )
    t.is(r.code, 0, r.stderr)
    t.is(sha256(r.stdout), sha256(deterministicBytes(3_000_000, 5)))
  })
  t.is(report.seed, 1234)
  t.true(report.injectedLoss > 0, 'loss was injected')
  t.true(report.injectedReorder > 0, 'reordering was injected')
  t.is(report.violations, 0, JSON.stringify(report.samples))
})

// The checks must be able to fail: appliances that break the contract are caught and named.
netTest('contract check: a naive UDP echo (reply to GWLB’s source port) is a violation', async (t) => {
  const report = await withLab(t, { mode: 'naive' }, async ({ client }) => {
    const r = await client('ping', ['-c', '2', '-i', '0.1', '-W', '1', LAB.server4], 10_000)
    t.not(r.code, 0, 'nothing comes back to the client')
  })
  t.true((report.byReason['reply-to-gwlb-source-port'] ?? 0) >= 2, JSON.stringify(report.byReason))
})

netTest('contract check: a changed Geneve header is a violation', async (t) => {
  const report = await withLab(t, { mode: 'mangle' }, async ({ client }) => {
    await client('ping', ['-c', '2', '-i', '0.1', '-W', '1', LAB.server4], 10_000)
  })
  t.true((report.byReason['geneve-header-changed'] ?? 0) >= 2, JSON.stringify(report.byReason))
})

netTest('three GWLB nodes (cross-zone): every packet goes back to the node that sent it', async (t) => {
  const report = await withLab(t, { gwlbNodes: 3 }, async ({ client }) => {
    const hello = await client('curl', ['-sS', '--max-time', '10', `http://${LAB.server4}:8080/`])
    t.is(hello.code, 0, hello.stderr)
    const r = await client(
      'curl',
      ['-sS', '--max-time', '30', `http://${LAB.server4}:8080/bytes/1000000/9`],
      40_000,
    )
    t.is(sha256(r.stdout), sha256(deterministicBytes(1_000_000, 9)))
    const p = await client('ping', ['-c', '3', '-i', '0.05', '-w', '10', LAB.server4], 15_000)
    t.is(p.code, 0, p.stdout.toString())
  })
  t.is(report.violations, 0, JSON.stringify(report.samples))
  t.is(report.returnedByNode.length, 3)
  t.true(
    report.returnedByNode.every((n) => n > 0),
    `flows spread over every node: ${report.returnedByNode}`,
  )
})

netTest('contract check: replying to one GWLB node for all flows is a violation', async (t) => {
  const report = await withLab(t, { gwlbNodes: 2, mode: 'one-node' }, async ({ client }) => {
    await client('ping', ['-c', '2', '-i', '0.1', '-W', '1', LAB.server4], 10_000)
    await client('ping', ['-6', '-c', '2', '-i', '0.1', '-W', '1', LAB.server6], 10_000)
  })
  t.true((report.byReason['wrong-gwlb-node'] ?? 0) >= 1, JSON.stringify(report.byReason))
})

netTest(
  'rebalancing: a cookie change mid-download is followed, and an appliance that does not follow is caught',
  async (t) => {
    const ok = await withLab(t, {}, async ({ lab, client }) => {
      const download = client(
        'curl',
        ['-sS', '--max-time', '30', `http://${LAB.server4}:8080/bytes/4000000/11`],
        40_000,
      )
      await new Promise((r) => setTimeout(r, 60))
      lab.changeCookies(200)
      const r = await download
      t.is(sha256(r.stdout), sha256(deterministicBytes(4_000_000, 11)))
    })
    t.is(ok.violations, 0, JSON.stringify(ok.samples))
    const stale = await withLab(t, { mode: 'stale-header' }, async ({ lab, client }) => {
      const ping = client('ping', ['-c', '8', '-i', '0.1', '-W', '1', LAB.server4], 15_000)
      await new Promise((r) => setTimeout(r, 250))
      lab.changeCookies(50)
      await ping
    })
    t.true((stale.byReason['geneve-header-changed'] ?? 0) >= 2, JSON.stringify(stale.byReason))
  },
)

netTest('the lab removes its namespaces and links on close, even when the test body throws', async (t) => {
  let names: string[] = []
  await t.throwsAsync(
    withLab(t, {}, async ({ lab }) => {
      names = [lab.client, lab.server, lab.appliance]
      throw new Error('boom')
    }),
    { message: 'boom' },
  )
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  t.is(names.length, 3)
  for (const n of names) t.false(list.includes(n), `${n} still exists`)
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
  t.false(links.includes(names[0]!.split('-')[2]!), 'no link of this lab is left in the host namespace')
})
