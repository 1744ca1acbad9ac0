// Issue 8 item 3, end to end: live captures from the real appliance (operator-managed mode, its admin API
// over TLS) while curl in the client namespace goes through TLS interception in the GWLB stand-in. The
// captures come through `flowgate capture` as a separate process; tshark decrypts the HTTP/1.1 request
// line and the HTTP/2 :path from the secrets inside them — on the client side and on the server side.
// Key material appears nowhere else: not in the appliance's logs, not in the CLI's output, not on disk.
//
// Both sides of an intercepted flow share its address/port tuple, and tshark 4.0 (Debian 12) keys TCP and
// TLS state on the tuple alone: read as one file the two TLS sessions collide. So the test reads each side
// on its own — a capture taken with `side client`, and the both-sides capture split by interface with
// tshark — as docs/operations.md tells operators to.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { prepareState } from '../../appliance/src/admin/state.ts'
import { formatEndpointId } from '../../appliance/src/wire/geneve.ts'
import { compile } from '../../policy/src/bundle.ts'
import { loadPolicyText } from '../../policy/src/load.ts'
import { selfSignedCert } from '../support/certs.ts'
import { LAB } from '../support/netns/gwlb-stand-in.ts'
import { privilegedTest } from '../support/netns/privileges.ts'
import { hasTshark } from '../support/tshark.ts'
import { interceptionArgs, setUpInterception } from './interception.ts'
import { withAppliance } from './lab.ts'

const netTest = privilegedTest(['root', 'tun', 'ip'])
const FLOWGATE = new URL('../../bin/flowgate.js', import.meta.url).pathname
const EXTCAP = new URL('../../deploy/wireshark/flowgate-extcap', import.meta.url).pathname

const POLICY = `apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: tls
spec:
  priority: 10
  match: { protocols: [TCP], ports: ["443", "9447"] }
  rules:
    - name: inspect
      when: { sni: ["*.example.test"] }
      action: Inspect
  defaultAction: Allow
`

function tshark(...args: string[]): string {
  return execFileSync('tshark', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 60_000,
  })
}

/** The Decryption Secrets Blocks' key log lines, read from the file (little-endian, as we write it). */
function secretsIn(file: string): string[] {
  const b = readFileSync(file)
  const lines: string[] = []
  for (let off = 0; off + 12 <= b.length; ) {
    const type = b.readUInt32LE(off)
    const len = b.readUInt32LE(off + 4)
    if (len < 12 || off + len > b.length) break
    if (type === 0x0a && b.readUInt32LE(off + 8) === 0x544c534b) {
      const n = b.readUInt32LE(off + 12)
      lines.push(
        ...b
          .subarray(off + 16, off + 16 + n)
          .toString()
          .split('\n')
          .filter(Boolean),
      )
    }
    off += len
  }
  return lines
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => {
      try {
        return statSync(f).isFile()
      } catch {
        return false // a FIFO or a file gone meanwhile
      }
    })
}

netTest(
  'live capture: tshark decrypts the intercepted request on the client and the server side',
  async (t) => {
    if (!hasTshark) {
      t.fail('tshark is needed to read the capture (CI installs it)')
      return
    }
    t.timeout(180_000)
    await withAppliance(
      t,
      {
        policies: POLICY,
        httpPorts: [8080],
        before: async (lab, dir) => {
          await setUpInterception(lab, dir, {
            names: ['www.example.test', 'h1.example.test'],
            origins: [
              { port: 443, mode: 'h2' },
              { port: 9447, mode: 'h1' },
            ],
            rootSubject: 'CN=flowgate capture test root',
          })
          // Operator-managed: the admin API (which serves captures) over TLS, the policy as the last good
          // bundle in the state directory.
          selfSignedCert(dir, 'admin', '/CN=flowgate admin', `IP:${lab.applianceAddr}`)
          writeFileSync(join(dir, 'token'), 'capture-test-token\n')
          const bundle = compile(loadPolicyText(POLICY).docs.map((d) => d.value)).bundle
          await (await prepareState(join(dir, 'state'), bundle)).commit()
        },
        policyArgs: (_file, dir) => [
          '--admin-token-file',
          join(dir, 'token'),
          '--state-dir',
          join(dir, 'state'),
          '--admin-tls-cert',
          join(dir, 'admin.crt'),
          '--admin-tls-key',
          join(dir, 'admin.key'),
        ],
        applianceArgs: interceptionArgs,
      },
      async ({ lab, client, dir, metric, appliance }) => {
        const server = LAB.server4
        const endpoint = formatEndpointId(lab.endpointId, 0)
        let cliErr = ''
        const run = (cmd: string, args: string[], seconds: number, env?: NodeJS.ProcessEnv) => {
          const c: ChildProcess = spawn(cmd, args, {
            stdio: ['ignore', 'ignore', 'pipe'],
            ...(env ? { env } : {}),
          })
          c.stderr!.on('data', (d) => {
            cliErr += d
          })
          const killer = setTimeout(() => c.kill('SIGKILL'), (seconds + 30) * 1000)
          return new Promise<number | null>((r) =>
            c.once('exit', (code) => {
              clearTimeout(killer)
              r(code)
            }),
          )
        }
        const adminArgs = [
          '--appliance',
          `https://${lab.applianceAddr}:9443`,
          '--token-file',
          join(dir, 'token'),
          '--ca',
          join(dir, 'admin.crt'),
        ]
        const capture = (out: string, filter: string, seconds: number) =>
          run(
            process.execPath,
            [
              FLOWGATE,
              'capture',
              ...adminArgs,
              '--filter',
              filter,
              '--seconds',
              String(seconds),
              '-w',
              join(dir, out),
            ],
            seconds,
          )
        // Both sides of the two intercepted flows (and the endpoint they came through), and the client side
        // alone.
        const both = capture(
          'both.pcapng',
          `host ${server} and (port 9447 or port 443) and endpoint ${endpoint}`,
          10,
        )
        const clientSide = capture('client.pcapng', 'side client and tcp', 10)
        // And as Wireshark does it: tshark's capture engine reads the extcap's FIFO (the server side, with
        // a capture filter as Wireshark's filter box passes it).
        const fifo = join(dir, 'extcap.fifo')
        execFileSync('mkfifo', [fifo])
        const wireshark = run('tshark', ['-i', fifo, '-w', join(dir, 'extcap.pcapng')], 10)
        const extcap = run(
          EXTCAP,
          [
            '--capture',
            '--extcap-interface',
            'flowgate-server',
            '--fifo',
            fifo,
            '--extcap-capture-filter',
            'port 9447',
            ...adminArgs,
            '--seconds',
            '10',
          ],
          10,
          { ...process.env, FLOWGATE, NODE: process.execPath },
        )
        for (let i = 0; i < 400 && !(await metric('flowgate_captures_active 3')).length; i++)
          await new Promise((r) => setTimeout(r, 25))
        t.deepEqual(await metric('flowgate_captures_active'), ['flowgate_captures_active 3'], cliErr)

        const root = join(dir, 'root.pem')
        const curl = (name: string, port: number, path: string, extra: string[] = []) =>
          client('curl', [
            '-sS',
            '--max-time',
            '15',
            '--cacert',
            root,
            '--resolve',
            `${name}:${port}:${server}`,
            ...extra,
            `https://${name}:${port}${path}`,
          ])
        const h1 = await curl('h1.example.test', 9447, '/capture/h1?seen=yes', ['-w', ' %{http_version}'])
        t.is(h1.code, 0, h1.stderr.toString())
        t.is(h1.stdout.toString(), 'hello from the origin over HTTP/1.1 to h1.example.test\n 1.1')
        const h2 = await curl('www.example.test', 443, '/capture/h2', ['-w', ' %{http_version}'])
        t.is(h2.code, 0, h2.stderr.toString())
        t.is(h2.stdout.toString(), 'hello from the origin over HTTP/2.0 to www.example.test\n 2')

        t.deepEqual(await Promise.all([both, clientSide, extcap, wireshark]), [0, 0, 0, 0], cliErr)
        const all = join(dir, 'both.pcapng')

        // Split by interface (tshark keeps the DSBs when it writes), then read each side on its own.
        const sides: Record<string, string> = {}
        for (const [id, name] of ['client', 'server'].entries()) {
          sides[name] = join(dir, `${name}-only.pcapng`)
          tshark('-r', all, '-Y', `frame.interface_id == ${id}`, '-w', sides[name]!)
        }
        const requests = (file: string) =>
          tshark(
            '-r',
            file,
            '-Y',
            'http.request or http2.headers.path',
            '-T',
            'fields',
            '-E',
            'separator=|',
            '-e',
            'frame.interface_name',
            '-e',
            'http.request.method',
            '-e',
            'http.request.uri',
            '-e',
            'http.request.version',
            '-e',
            'http2.headers.path',
          )
            .trim()
            .split('\n')
        const h1Line = (side: string) => `${side}|GET|/capture/h1?seen=yes|HTTP/1.1|`
        const h2Line = (side: string) => `${side}||||/capture/h2`
        t.deepEqual(requests(sides.client!), [h1Line('client'), h2Line('client')], 'client side')
        t.deepEqual(requests(sides.server!), [h1Line('server'), h2Line('server')], 'server side')
        t.deepEqual(requests(join(dir, 'client.pcapng')), [h1Line('client'), h2Line('client')], 'side client')
        t.deepEqual(requests(join(dir, 'extcap.pcapng')), [h1Line('server')], 'extcap, through tshark -i')
        const shown = tshark('-r', sides.server!, '-Y', 'http.request')
        t.log(`server side, as tshark shows it:\n${shown}`)
        t.log(`client side:\n${tshark('-r', sides.client!, '-Y', 'http.request')}`)
        t.regex(shown, /GET \/capture\/h1\?seen=yes HTTP\/1\.1/)
        // The combined file: what tshark 4.0 makes of two TLS sessions on one tuple (logged, see above).
        t.log(`both sides in one file:\n${tshark('-r', all, '-Y', 'http.request or http2.headers.path')}`)

        // Both sides are there: packets on each interface, in both directions.
        const perSide = tshark(
          '-r',
          all,
          '-T',
          'fields',
          '-e',
          'frame.interface_name',
          '-e',
          'frame.packet_flags_direction',
        )
        for (const row of [
          'client\t0x00000001',
          'client\t0x00000002',
          'server\t0x00000001',
          'server\t0x00000002',
        ])
          t.true(perSide.includes(row), row)

        // The secrets: TLS 1.3 traffic secrets for four sessions (two flows, each side its own session).
        const lines = secretsIn(all)
        const randoms = new Set(lines.map((l) => l.split(' ')[1]))
        t.is(randoms.size, 4, lines.map((l) => l.split(' ')[0]).join(','))
        t.true(lines.some((l) => l.startsWith('CLIENT_TRAFFIC_SECRET_0 ')))
        const clientLines = secretsIn(join(dir, 'client.pcapng'))
        t.is(new Set(clientLines.map((l) => l.split(' ')[1])).size, 2, 'side client: the two client sessions')
        const extcapLines = secretsIn(join(dir, 'extcap.pcapng'))
        t.is(new Set(extcapLines.map((l) => l.split(' ')[1])).size, 1, 'extcap: the h1 server-side session')
        const written = lines.length + clientLines.length + extcapLines.length
        t.deepEqual(await metric('flowgate_capture_secrets_total'), [
          `flowgate_capture_secrets_total{result="written"} ${written}`,
        ])
        const dropped = await metric('flowgate_capture_packets_total{result="dropped"}')
        t.deepEqual(dropped, [], 'no packet dropped')

        // No capture running: another intercepted request, and no secret leaves the TLS stack.
        t.deepEqual(await metric('flowgate_captures_active'), ['flowgate_captures_active 0'])
        t.is((await curl('h1.example.test', 9447, '/after')).code, 0)
        t.deepEqual(await metric('flowgate_capture_secrets_total'), [
          `flowgate_capture_secrets_total{result="written"} ${written}`,
        ])

        // Key material nowhere but in the captures: not in the appliance's output, not in the CLI's, not in
        // any other file of the test's directory (state, certificates, the split copies aside).
        const secrets = lines.map((l) => l.split(' ')[2]!)
        const captures = new Set([
          all,
          join(dir, 'client.pcapng'),
          join(dir, 'extcap.pcapng'),
          sides.client!,
          sides.server!,
        ])
        const elsewhere = filesUnder(dir).filter((f) => !captures.has(f))
        for (const s of secrets) {
          t.false(appliance.output().includes(s), 'appliance output')
          t.false(cliErr.includes(s), 'CLI output')
          for (const f of elsewhere) t.false(readFileSync(f, 'latin1').includes(s), f)
        }
        t.notRegex(appliance.output(), /TRAFFIC_SECRET|CLIENT_RANDOM/)
      },
    )
  },
)
