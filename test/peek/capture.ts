// Captures the first bytes real clients send, over loopback, in-process.
import { spawn, spawnSync } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'

/** Listens on loopback, runs `connect(port)`, resolves with the first `want` bytes (or all until close). */
export function captureFirstBytes(connect: (port: number) => void, settleMs = 300): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const server = net.createServer((s) => {
      s.on('data', (c) => chunks.push(c))
      s.on('error', () => {})
      setTimeout(() => {
        s.destroy()
        server.close()
        resolve(Buffer.concat(chunks))
      }, settleMs)
    })
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => connect((server.address() as net.AddressInfo).port))
  })
}

export function nodeClientHello(opts: tls.ConnectionOptions = {}): Promise<Buffer> {
  return captureFirstBytes((port) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts })
    s.on('error', () => {})
    setTimeout(() => s.destroy(), 400)
  })
}

export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version']).status === 0
}

export function opensslClientHello(args: string[]): Promise<Buffer> {
  return captureFirstBytes((port) => {
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], {
      stdio: ['pipe', 'ignore', 'ignore'],
    })
    setTimeout(() => c.kill(), 600)
  }, 500)
}

export function nodeHttpRequest(path: string, headers: Record<string, string> = {}): Promise<Buffer> {
  return captureFirstBytes((port) => {
    const r = http.request({ host: '127.0.0.1', port, path, method: 'POST', headers })
    r.on('error', () => {})
    r.end('body')
  })
}

export function hasCurl(): boolean {
  return spawnSync('curl', ['--version']).status === 0
}

/** The request curl sends (plain HTTP, or its ClientHello with https). */
export function curlFirstBytes(url: (port: number) => string, args: string[] = []): Promise<Buffer> {
  return captureFirstBytes((port) => {
    const c = spawn('curl', ['-s', '-k', '--max-time', '1', ...args, url(port)], { stdio: 'ignore' })
    setTimeout(() => c.kill(), 600)
  }, 500)
}

/**
 * For tests that need a real client on the machine: true when it is missing. In CI that is a failure
 * (CI installs curl and openssl); elsewhere the test is passed with the reason logged, so a developer
 * without the tool still runs the rest.
 */
export function missingTool(
  t: { log(m: string): void; fail(m: string): void; pass(): void },
  tool: string,
  present: boolean,
): boolean {
  if (present) return false
  if (process.env.CI) t.fail(`${tool} is not installed; CI must provide it`)
  else {
    t.log(`${tool} not installed: skipped`)
    t.pass()
  }
  return true
}
