// The one suite every CaSigner implementation must pass (the hono pattern: one interface, several
// implementations, one shared test suite). Each implementation's test file calls signerSuite() with a
// fixture factory; the suite builds root → intermediate → leaves through that signer and has independent
// judges — node:crypto, openssl verify/x509/s_client, and a real Node TLS client — check the result.
import crypto from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import { inspect } from 'node:util'
import test from 'ava'
import { CaError } from '../../appliance/src/ca/errors.ts'
import { createIntermediate, type IntermediateCa } from '../../appliance/src/ca/intermediate.ts'
import { LeafMinter } from '../../appliance/src/ca/leaf-minter.ts'
import { createRootCertificate, loadRootCertificate, type RootCa } from '../../appliance/src/ca/root.ts'
import type { CaSigner } from '../../appliance/src/ca/signer.ts'
import { certDir, openssl, opensslDates } from './helpers.ts'

export interface SignerFixture {
  signer: CaSigner
  /** a signer of the same kind holding another key */
  other: CaSigner
  /** strings that must never show in describe(), JSON, inspect or error messages (private key material) */
  secrets: string[]
  /** how many signatures the signer's key has made so far (KMS: Sign calls the server answered) */
  signCalls(): number
  close(): Promise<void>
}

const MIN = 60_000
const DAY = 86_400_000

export function signerSuite(kind: string, make: () => Promise<SignerFixture>): void {
  let fx: SignerFixture
  let root: RootCa
  let otherRoot: RootCa
  let inter: IntermediateCa
  let minter: LeafMinter
  let dir: Awaited<ReturnType<typeof certDir>>
  let files: { root: string; other: string; inter: string }

  test.before(async () => {
    fx = await make()
    dir = await certDir()
    root = await createRootCertificate(fx.signer, {
      subject: `CN=flowgate ${kind} test root, O=flowgate tests`,
    })
    otherRoot = await createRootCertificate(fx.other)
    inter = await createIntermediate(fx.signer, root)
    minter = new LeafMinter(inter, { cacheSize: 16 })
    files = {
      root: await dir.put('root.pem', root.pem),
      other: await dir.put('other-root.pem', otherRoot.pem),
      inter: await dir.put('intermediate.pem', inter.pem),
    }
  })

  test.after.always(async () => {
    await dir?.cleanup()
    await fx?.close()
  })

  test(`${kind}: the signer has a P-256 key, its SPKI matches, and it describes itself without key material`, (t) => {
    const { signer } = fx
    t.is(signer.algorithm, 'ECDSA_P256_SHA256')
    t.is(signer.publicKey.asymmetricKeyType, 'ec')
    t.is(signer.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
    t.deepEqual(signer.spki(), signer.publicKey.export({ type: 'spki', format: 'der' }))
    const shown = [
      signer.describe(),
      JSON.stringify({ signer }),
      inspect(signer),
      inspect({ deep: { signer } }),
    ]
    for (const s of shown) {
      t.notRegex(s, /PRIVATE KEY/)
      for (const secret of fx.secrets) t.false(s.includes(secret), `key material in ${s}`)
    }
  })

  test(`${kind}: signatures are DER ECDSA over SHA-256 that verify, and only over the signed bytes`, async (t) => {
    const data = crypto.randomBytes(300)
    const sig = await fx.signer.sign(data)
    t.is(sig[0], 0x30, 'DER SEQUENCE')
    t.true(crypto.verify('sha256', data, { key: fx.signer.publicKey, dsaEncoding: 'der' }, sig))
    const tampered = Buffer.from(data)
    tampered[7] = (tampered[7] ?? 0) ^ 1
    t.false(crypto.verify('sha256', tampered, { key: fx.signer.publicKey, dsaEncoding: 'der' }, sig))
    t.false(crypto.verify('sha256', data, { key: fx.other.publicKey, dsaEncoding: 'der' }, sig))
  })

  test(`${kind}: the root is a self-signed CA with keyCertSign/cRLSign and a long validity`, async (t) => {
    const self = await openssl(['verify', '-CAfile', files.root, files.root])
    t.is(self.code, 0, self.stderr)
    const text = (await openssl(['x509', '-in', files.root, '-noout', '-text'])).stdout
    t.regex(text, /Subject: CN = flowgate \w+ test root, O = flowgate tests/)
    t.regex(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:1/)
    t.regex(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/)
    t.regex(text, /Signature Algorithm: ecdsa-with-SHA256/)
    t.regex(text, /NIST CURVE: P-256/)
    const { notBefore, notAfter } = opensslDates(
      (await openssl(['x509', '-in', files.root, '-noout', '-dates'])).stdout,
    )
    t.true(notAfter - notBefore > 3649 * DAY, 'about ten years')
    t.true(notBefore <= Date.now(), 'valid now')
  })

  test(`${kind}: openssl verify accepts leaf → intermediate → root, for a DNS name and an IP literal`, async (t) => {
    const dns = await dir.put('leaf-dns.pem', (await minter.get('api.example.test')).certPem)
    const ip = await dir.put('leaf-ip.pem', (await minter.get('127.0.0.1')).certPem)
    const base = ['verify', '-CAfile', files.root, '-untrusted', files.inter, '-purpose', 'sslserver']
    const ok1 = await openssl([...base, '-verify_hostname', 'api.example.test', dns])
    t.is(ok1.code, 0, ok1.stdout + ok1.stderr)
    const ok2 = await openssl([...base, '-verify_ip', '127.0.0.1', ip])
    t.is(ok2.code, 0, ok2.stdout + ok2.stderr)
    // The judge can say no: another name, another IP, a root that did not sign, a missing intermediate.
    t.not((await openssl([...base, '-verify_hostname', 'other.example.test', dns])).code, 0)
    t.not((await openssl([...base, '-verify_ip', '127.0.0.2', ip])).code, 0)
    t.not((await openssl(['verify', '-CAfile', files.other, '-untrusted', files.inter, dns])).code, 0)
    t.not((await openssl(['verify', '-CAfile', files.root, dns])).code, 0)
  })

  test(`${kind}: the intermediate is pathlen 0, serverAuth-only, ≤ 7 days and within the root`, async (t) => {
    const text = (await openssl(['x509', '-in', files.inter, '-noout', '-text'])).stdout
    t.regex(text, /Issuer: CN = flowgate \w+ test root, O = flowgate tests/)
    t.regex(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/)
    t.regex(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/)
    t.regex(text, /Extended Key Usage:\s+TLS Web Server Authentication/)
    t.regex(text, /Authority Key Identifier/)
    const d = opensslDates((await openssl(['x509', '-in', files.inter, '-noout', '-dates'])).stdout)
    const r = opensslDates((await openssl(['x509', '-in', files.root, '-noout', '-dates'])).stdout)
    t.true(d.notAfter - d.notBefore <= 7 * DAY + 5 * MIN)
    t.true(d.notAfter <= r.notAfter && d.notBefore >= r.notBefore)
    t.true(d.notBefore <= Date.now() - 4 * MIN, 'back-dated')
  })

  test.serial(`${kind}: a start costs one root signature; leaves cost none`, async (t) => {
    const before = fx.signCalls()
    const fresh = await createIntermediate(fx.signer, root)
    t.is(fx.signCalls() - before, 1)
    const m = new LeafMinter(fresh)
    await Promise.all(['a.example.test', 'b.example.test', '10.1.2.3'].map((h) => m.get(h)))
    t.is(fx.signCalls() - before, 1)
    t.is(m.stats.mints, 3)
  })

  test(`${kind}: leaves carry the SAN and serverAuth, are back-dated, and never outlive the intermediate`, async (t) => {
    const leaf = await minter.get('WWW.Example.TEST.')
    t.is(leaf.host, 'www.example.test')
    const file = await dir.put('leaf-www.pem', leaf.certPem)
    const text = (await openssl(['x509', '-in', file, '-noout', '-text'])).stdout
    t.regex(text, /Subject: CN = www\.example\.test/)
    t.regex(text, /Subject Alternative Name:\s+DNS:www\.example\.test\n/)
    t.regex(text, /Basic Constraints: critical\s+CA:FALSE/)
    t.regex(text, /Key Usage: critical\s+Digital Signature/)
    t.regex(text, /Extended Key Usage:\s+TLS Web Server Authentication/)
    t.regex(text, /NIST CURVE: P-256/)
    const d = opensslDates((await openssl(['x509', '-in', file, '-noout', '-dates'])).stdout)
    t.true(d.notBefore <= Date.now() - 4 * MIN, 'back-dated')
    t.true(d.notAfter <= inter.notAfter)
    const ipText = (
      await openssl(['x509', '-noout', '-ext', 'subjectAltName'], (await minter.get('[::1]')).certPem)
    ).stdout
    t.regex(ipText, /IP Address:0:0:0:0:0:0:0:1/)
    t.notRegex(ipText, /DNS:/)
  })

  test(`${kind}: the root reloads with its signer and refuses another key (FG_ERR_CA_KEY_MISMATCH)`, async (t) => {
    const again = await loadRootCertificate(root.pem, fx.signer)
    t.is(again.node.fingerprint256, root.node.fingerprint256)
    const err = await t.throwsAsync(() => loadRootCertificate(root.pem, fx.other), { instanceOf: CaError })
    t.is(err?.code, 'FG_ERR_CA_KEY_MISMATCH')
    const err2 = await t.throwsAsync(() => createIntermediate(fx.other, root), { instanceOf: CaError })
    t.is(err2?.code, 'FG_ERR_CA_KEY_MISMATCH')
  })

  /** A TLS server as the interception layer will run it: TLSSocket over a plain stream, SNI → minted leaf. */
  async function tlsServer(): Promise<{ port: number; close: () => Promise<void> }> {
    const fallback = await minter.get('127.0.0.1') // no SNI (IP-literal clients): the flow's destination IP
    const server = net.createServer((sock) => {
      const s = new tls.TLSSocket(sock, {
        isServer: true,
        secureContext: fallback.secureContext,
        SNICallback: minter.SNICallback,
      })
      s.on('secure', () =>
        s.end(`hello ${(s as unknown as { servername?: string | false }).servername || 'ip'}\n`),
      )
      s.on('error', () => sock.destroy())
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    return {
      port: (server.address() as net.AddressInfo).port,
      close: () => new Promise((r) => server.close(() => r())),
    }
  }

  function connect(o: tls.ConnectionOptions): Promise<{ authorized: boolean; data: string; error?: string }> {
    return new Promise((resolve) => {
      const c = tls.connect(o)
      let data = ''
      c.on('data', (d) => {
        data += d
      })
      c.on('end', () => resolve({ authorized: c.authorized, data }))
      c.on('error', (e: NodeJS.ErrnoException) =>
        resolve({ authorized: false, data, error: e.code ?? e.message }),
      )
    })
  }

  test(`${kind}: a Node TLS client trusting only the root accepts minted leaves (SNI and IP literal)`, async (t) => {
    const srv = await tlsServer()
    try {
      const byName = await connect({
        host: '127.0.0.1',
        port: srv.port,
        servername: 'svc.example.test',
        ca: root.pem,
      })
      t.deepEqual(byName, { authorized: true, data: 'hello svc.example.test\n' })
      const byIp = await connect({ host: '127.0.0.1', port: srv.port, ca: root.pem })
      t.deepEqual(byIp, { authorized: true, data: 'hello ip\n' })
      // And it refuses when it does not trust our root.
      const untrusted = await connect({
        host: '127.0.0.1',
        port: srv.port,
        servername: 'svc.example.test',
        ca: otherRoot.pem,
      })
      t.false(untrusted.authorized)
      t.truthy(untrusted.error)
    } finally {
      await srv.close()
    }
  })

  test(`${kind}: openssl s_client -verify_return_error accepts the chain`, async (t) => {
    const srv = await tlsServer()
    try {
      const args = [
        's_client',
        '-connect',
        `127.0.0.1:${srv.port}`,
        '-servername',
        'svc.example.test',
        '-verify_return_error',
      ]
      const ok = await openssl([...args, '-CAfile', files.root, '-verify_hostname', 'svc.example.test'], '')
      t.is(ok.code, 0, ok.stderr)
      t.regex(ok.stdout, /Verify return code: 0 \(ok\)/)
      t.regex(ok.stdout, /Verified peername: svc\.example\.test/)
      t.regex(ok.stdout, / 1 s:CN = flowgate intermediate CA/, 'the server sends the intermediate')
      const bad = await openssl([...args, '-CAfile', files.other], '')
      t.not(bad.code, 0)
    } finally {
      await srv.close()
    }
  })
}
