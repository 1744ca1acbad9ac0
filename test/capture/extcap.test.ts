// The Wireshark extcap wrapper (deploy/wireshark/flowgate-extcap → flowgate capture) answering the calls
// Wireshark makes before a capture: interfaces, link types, configuration, capture-filter checks. The
// capture itself (--capture --fifo, read by tshark from the pipe) runs in test/appliance/capture.test.ts.
import { spawnSync } from 'node:child_process'
import test from 'ava'

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
