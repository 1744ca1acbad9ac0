// The Wireshark extcap wrapper (deploy/wireshark/flowgate-extcap → flowgate capture) answering the calls
// Wireshark makes before a capture: interfaces, link types, configuration, capture-filter checks. The
// capture itself (--capture --fifo, read by tshark from the pipe) runs in test/appliance/capture.test.ts.
// And the CLI's block framing, which keeps a stopped capture's file whole.
import { spawnSync } from 'node:child_process'
import test from 'ava'
import {
  decryptionSecrets,
  interfaceDescription,
  LINKTYPE_RAW,
  sectionHeader,
} from '../../appliance/src/capture/pcapng.ts'
import { wholeBlocks } from '../../cli/src/capture.ts'

const SCRIPT = new URL('../../deploy/wireshark/flowgate-extcap', import.meta.url).pathname
const FLOWGATE = new URL('../../bin/flowgate.js', import.meta.url).pathname

function extcap(...args: string[]) {
  const r = spawnSync(SCRIPT, args, {
    encoding: 'utf8',
    timeout: 30_000,
    // as the README says to install it: the flowgate command, and node when it is not on PATH
    env: { PATH: '/usr/bin:/bin', FLOWGATE, NODE: process.execPath },
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

test('--extcap-interfaces: three interfaces, the extcap version line first', (t) => {
  const r = extcap('--extcap-interfaces', '--extcap-version=4.0')
  t.is(r.code, 0, r.err)
  const lines = r.out.trim().split('\n')
  t.regex(lines[0]!, /^extcap \{version=1\.0\}\{help=[^}]+\}$/)
  t.deepEqual(
    lines.slice(1).map((l) => /^interface \{value=([^}]+)\}\{display=[^}]+\}$/.exec(l)?.[1]),
    ['flowgate', 'flowgate-client', 'flowgate-server'],
  )
})

test('--extcap-dlts and --extcap-config for an interface', (t) => {
  const dlts = extcap('--extcap-dlts', '--extcap-interface', 'flowgate-server')
  t.is(dlts.code, 0, dlts.err)
  t.regex(dlts.out, /^dlt \{number=101\}\{name=RAW\}\{display=[^}]+\}\n$/)
  const config = extcap('--extcap-config', '--extcap-interface', 'flowgate')
  t.is(config.code, 0, config.err)
  const args = config.out
    .trim()
    .split('\n')
    .map((l) => /^arg \{number=(\d+)\}\{call=([^}]+)\}.*\{type=(\w+)\}/.exec(l)?.slice(1))
  t.deepEqual(args, [
    ['0', '--appliance', 'string'],
    ['1', '--token-file', 'fileselect'],
    ['2', '--ca', 'fileselect'],
    ['3', '--filter', 'string'],
    ['4', '--seconds', 'integer'],
  ])
  t.regex(config.out, /\{call=--appliance\}.*\{required=true\}/)
  const unknown = extcap('--extcap-dlts', '--extcap-interface', 'eth0')
  t.is(unknown.code, 2)
  t.regex(unknown.err, /unknown extcap interface "eth0"/)
})

test('capture filter checks: silent success, or the reason on stdout and a failure', (t) => {
  const ok = extcap(
    '--extcap-interface',
    'flowgate-server',
    '--extcap-capture-filter',
    'host 10.0.2.2 and port 443',
  )
  t.is(ok.code, 0, ok.err)
  t.is(ok.out, '')
  const bad = extcap('--extcap-interface', 'flowgate', '--extcap-capture-filter', 'port 443 and')
  t.is(bad.code, 1)
  t.regex(bad.out, /^filter: expected a term at the end\n$/)
})

test('--capture needs a fifo; a capture needs the appliance and a token', (t) => {
  const noFifo = extcap('--capture', '--extcap-interface', 'flowgate')
  t.is(noFifo.code, 2)
  t.regex(noFifo.err, /--capture needs --fifo PATH/)
  const noAppliance = extcap('--capture', '--extcap-interface', 'flowgate', '--fifo', '/nonexistent/fifo')
  t.is(noAppliance.code, 2)
  t.regex(noAppliance.err, /--appliance and --token-file are required/)
})

test('the CLI passes whole pcapng blocks only, however the stream is cut', async (t) => {
  const blocks = [
    sectionHeader({ application: 'x' }),
    interfaceDescription({ linkType: LINKTYPE_RAW, name: 'client' }),
    decryptionSecrets(Buffer.from('CLIENT_RANDOM aa bb\n')),
    sectionHeader(),
  ]
  const all = Buffer.concat(blocks)
  for (const size of [1, 3, 7, 13, 64, all.length]) {
    const w = wholeBlocks()
    const out: Buffer[] = []
    w.on('data', (c: Buffer) => out.push(c))
    // everything but the last 5 bytes: the last block never completes
    for (let o = 0; o < all.length - 5; o += size)
      w.write(all.subarray(o, Math.min(o + size, all.length - 5)))
    w.end()
    await new Promise((r) => w.once('end', r))
    t.deepEqual(Buffer.concat(out), Buffer.concat(blocks.slice(0, 3)), `chunks of ${size}`)
  }
  const bad = wholeBlocks()
  const err = await new Promise<Error>((r) => {
    bad.once('error', r)
    bad.write(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'))
  })
  t.regex(err.message, /not a pcapng stream/)
})
