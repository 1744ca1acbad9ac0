// GET /v1/capture on the real appliance's admin API (TLS, bearer token), driven by `flowgate capture` as a
// separate process: Geneve datagrams over loopback into the packet path (dgram I/O), the capture's file
// read back by tshark; authentication, bad queries, the limit on captures at once and the metrics.
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import test from 'ava'
import { TokenFile } from '../../appliance/src/admin/tokens.ts'
import { ApplianceClient } from '../../operator/src/appliance-client.ts'
import { compile } from '../../policy/src/bundle.ts'
import { selfSignedCert } from '../support/certs.ts'
import { managedAdmin, startLoopbackAppliance } from '../support/loopback-appliance.ts'
import { tsharkTest } from '../support/tshark.ts'
import { udp4 } from '../wire/packets.ts'

const FLOWGATE = new URL('../../bin/flowgate.js', import.meta.url).pathname
const BUNDLE = compile([
  {
    apiVersion: 'flowgate.io/v1alpha1',
    kind: 'FlowPolicy',
    metadata: { name: 'udp', generation: 1 },
    spec: { priority: 10, rules: [{ name: 'any', when: { protocols: ['UDP'] }, action: 'Allow' }] },
  },
]).bundle

async function start(t: { teardown(fn: () => unknown): void }) {
  const {
    a,
    dir,
    adminPort: port,
    send,
  } = await startLoopbackAppliance(t, 'capture-api', (dir) => {
    selfSignedCert(dir, 'tls', '/CN=127.0.0.1', 'IP:127.0.0.1')
    writeFileSync(join(dir, 'wrong'), 'not-the-token\n')
    return managedAdmin(dir)
  })
  const client = new ApplianceClient({
    tokens: new TokenFile({ path: join(dir, 'token') }),
    scheme: 'https',
    ca: readFileSync(join(dir, 'tls.crt')),
  })
  t.teardown(() => client.destroy())
  await client.push({ host: '127.0.0.1', port }, BUNDLE)
  const get = (path: string, token?: string) =>
    new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          ca: readFileSync(join(dir, 'tls.crt')),
          headers: token ? { authorization: `Bearer ${token}` } : {},
        },
        (res) => {
          const parts: Buffer[] = []
          res.on('data', (c: Buffer) => parts.push(c))
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              type: String(res.headers['content-type']),
              body: Buffer.concat(parts),
            }),
          )
        },
      )
      req.on('error', reject)
      req.end()
    })
  let cliProcess: ReturnType<typeof execFile> | undefined
  const cli = (...args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      cliProcess = execFile(
        process.execPath,
        [
          FLOWGATE,
          'capture',
          '--appliance',
          `https://127.0.0.1:${port}`,
          '--ca',
          join(dir, 'tls.crt'),
          ...args,
        ],
        { timeout: 60_000 },
        (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
      )
    })
  const metric = async (name: string) => {
    const text = await (await fetch(`${a.url}/metrics`)).text()
    return text.split('\n').filter((l) => l.startsWith(name))
  }
  return { dir, port, send, get, cli, metric, cliProcess: () => cliProcess! }
}

const decoderTest = tsharkTest('the capture API test that decodes')

test('GET /v1/capture: 401 without a token, 403 with a wrong one, 400 for a bad query, never a stream', async (t) => {
  const { get, cli, dir } = await start(t)
  const none = await get('/v1/capture?seconds=1')
  t.is(none.status, 401)
  t.regex(none.body.toString(), /bearer token is required/)
  t.is((await get('/v1/capture?seconds=1', 'nope')).status, 403)
  const bad = await get(`/v1/capture?filter=${encodeURIComponent('port 99999')}`, 'the-token')
  t.is(bad.status, 400)
  t.regex(bad.body.toString(), /FG_ERR_FILTER.*expected a port/)
  t.is((await get('/v1/capture?seconds=0', 'the-token')).status, 400)
  t.is((await get('/v1/capture?seconds=3601', 'the-token')).status, 400)
  t.is((await get('/v1/capture?maxBytes=12', 'the-token')).status, 400)
  // The CLI says why and fails.
  const wrong = await cli('--token-file', join(dir, 'wrong'), '--seconds', '1', '-w', join(dir, 'x.pcapng'))
  t.is(wrong.code, 1)
  t.regex(wrong.stderr, /answered 403: the token is not accepted/)
  const badFilter = await cli(
    '--token-file',
    join(dir, 'token'),
    '--filter',
    'port',
    '-w',
    join(dir, 'x.pcapng'),
  )
  t.is(badFilter.code, 2)
  t.regex(badFilter.stderr, /expected a port or range at the end/)
})

decoderTest(
  'flowgate capture streams the packets its filter takes; metrics count captures and packets',
  async (t) => {
    t.timeout(90_000)
    const { send, get, cli, metric, dir } = await start(t)
    const out = join(dir, 'udp.pcapng')
    const running = cli(
      '--token-file',
      join(dir, 'token'),
      '--filter',
      'udp and dst port 3000',
      '--seconds',
      '3',
      '-w',
      out,
    )
    // Wait until the capture runs (the metric says so), then send: 5 to port 3000, 5 elsewhere.
    for (let i = 0; i < 200 && !(await metric('flowgate_captures_active 1')).length; i++)
      await new Promise((r) => setTimeout(r, 25))
    t.deepEqual(await metric('flowgate_captures_active'), ['flowgate_captures_active 1'])
    for (let k = 0; k < 5; k++) {
      await send(udp4({ sport: 41000 + k, dport: 3000, payload: Buffer.from(`captured ${k}`) }))
      await send(udp4({ sport: 41000 + k, dport: 4000, payload: Buffer.from(`not captured ${k}`) }))
    }
    // Every packet handled (port 3000 ones counted), so the captures below see none of them.
    for (
      let i = 0;
      i < 200 && !(await metric('flowgate_capture_packets_total{result="captured"} 5')).length;
      i++
    )
      await new Promise((r) => setTimeout(r, 25))
    await new Promise((r) => setTimeout(r, 200))
    // Four more captures at once are one too many.
    const others = [1, 2, 3].map(() => get('/v1/capture?seconds=1', 'the-token'))
    const fifth = await get('/v1/capture?seconds=1', 'the-token')
    t.is(fifth.status, 429)
    t.regex(fifth.body.toString(), /4 captures are already running/)
    for (const o of await Promise.all(others)) {
      t.is(o.status, 200)
      t.is(o.type, 'application/vnd.tcpdump.pcapng')
    }
    const r = await running
    t.is(r.code, 0, r.stderr)
    const rows = execFileSync(
      'tshark',
      [
        '-r',
        out,
        '-T',
        'fields',
        '-e',
        'frame.interface_name',
        '-e',
        'ip.src',
        '-e',
        'udp.dstport',
        '-e',
        'data.text',
        '-o',
        'data.show_as_text:TRUE',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .trim()
      .split('\n')
    t.deepEqual(
      rows,
      [0, 1, 2, 3, 4].map((k) => `client\t10.0.0.1\t3000\tcaptured ${k}`),
    )
    t.deepEqual(await metric('flowgate_captures_active'), ['flowgate_captures_active 0'])
    const packets = await metric('flowgate_capture_packets_total')
    t.true(packets.includes('flowgate_capture_packets_total{result="captured"} 5'), packets.join('\n'))
  },
)

decoderTest(
  'a capture stopped with ^C ends cleanly: whole blocks, the packets so far, the capture gone',
  async (t) => {
    t.timeout(90_000)
    const { send, cli, cliProcess, metric, dir } = await start(t)
    const out = join(dir, 'stopped.pcapng')
    const running = cli('--token-file', join(dir, 'token'), '--filter', 'udp', '--seconds', '60', '-w', out)
    const until = async (line: string) => {
      for (let i = 0; i < 400 && !(await metric(line)).length; i++)
        await new Promise((r) => setTimeout(r, 25))
    }
    await until('flowgate_captures_active 1')
    for (let k = 0; k < 3; k++) await send(udp4({ sport: 42000 + k, dport: 3000 }))
    await until('flowgate_capture_packets_total{result="captured"} 3')
    await new Promise((r) => setTimeout(r, 600)) // past the hold: the packets are on their way to the CLI
    cliProcess().kill('SIGINT')
    const r = await running
    t.is(r.code, 0, r.stderr)
    const info = execFileSync('capinfos', ['-c', out], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.regex(info, /Number of packets:\s+3\b/)
    await until('flowgate_captures_active 0')
    t.deepEqual(await metric('flowgate_captures_active'), ['flowgate_captures_active 0'])
  },
)
