// TLS ClientHello peek (RFC 8446 §4.1.2; records §5.1; SNI RFC 6066 §3; ALPN RFC 7301 §3.1): read the
// server name and ALPN protocols from the first bytes a client sends, without terminating TLS.
//
// The handshake message may span several records and the records several TCP segments; the caller passes
// the concatenated stream prefix. Handshake bytes are read in place when the ClientHello sits in one record,
// else gathered into a bounded scratch buffer.

import { Peek, type PeekStatus } from './status.ts'

export class ClientHelloInfo {
  /** host_name from server_name, null when the extension is absent */
  sni: string | null = null
  alpn: string[] = []
  /** legacy_version of the ClientHello (0x0303 for TLS 1.2 and 1.3) */
  legacyVersion = 0
  /** supported_versions (RFC 8446 §4.2.1) offered, e.g. [0x0304, 0x0303] */
  versions: number[] = []
  /** stream bytes the ClientHello occupied (through the record that completed it) */
  consumed = 0
  /** why malformed, for logs */
  error = ''
  reset(): void {
    this.sni = null
    this.alpn = []
    this.legacyVersion = 0
    this.versions = []
    this.consumed = 0
    this.error = ''
  }
}

/** RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14. */
const MAX_RECORD = 16_384
/** A ClientHello larger than this is refused (post-quantum key shares make ~2 KB common; 64 KB is generous). */
export const MAX_CLIENT_HELLO = 65_536

const CT_HANDSHAKE = 22
const HT_CLIENT_HELLO = 1
const EXT_SERVER_NAME = 0
const EXT_ALPN = 16
const EXT_SUPPORTED_VERSIONS = 43

let gather = new Uint8Array(4096)

function fail(out: ClientHelloInfo, why: string): PeekStatus {
  out.error = why
  return Peek.malformed
}

/** Peeks at b[off, off+len). */
export function peekClientHello(b: Uint8Array, off: number, len: number, out: ClientHelloInfo): PeekStatus {
  out.reset()
  const end = off + len
  if (len === 0) return Peek.needMore
  if (b[off] !== CT_HANDSHAKE) return Peek.notMatched
  if (len >= 2 && b[off + 1] !== 3) return Peek.notMatched // record version major is 3 for SSL 3.0 … TLS 1.3
  if (len < 5) return Peek.needMore
  const rlen0 = (b[off + 3]! << 8) | b[off + 4]!
  if (rlen0 === 0 || rlen0 > MAX_RECORD) return fail(out, 'record length')
  // Handshake header (type, 24-bit length) is at the start of the first record's fragment; it may itself
  // be split across records in theory, so read it through the gathering path when the record is tiny.
  let hb: Uint8Array
  let ho: number
  let hlen: number // bytes of handshake data available
  let needTotal = -1
  if (len >= 9 && rlen0 >= 4) {
    if (b[off + 5] !== HT_CLIENT_HELLO) return fail(out, 'first handshake message is not a ClientHello')
    const mlen = (b[off + 6]! << 16) | (b[off + 7]! << 8) | b[off + 8]!
    if (mlen > MAX_CLIENT_HELLO) return fail(out, 'ClientHello too large')
    needTotal = 4 + mlen
  }
  if (needTotal >= 0 && needTotal <= rlen0) {
    // The whole ClientHello is inside the first record.
    if (len < 5 + needTotal) return Peek.needMore
    hb = b
    ho = off + 5
    hlen = needTotal
    out.consumed = 5 + rlen0
  } else {
    // Gather handshake bytes across records until the message is complete.
    let o = off
    let g = 0
    for (;;) {
      if (end - o < 5) return Peek.needMore
      if (b[o] !== CT_HANDSHAKE) return fail(out, 'ClientHello interrupted by another record type')
      if (b[o + 1] !== 3) return fail(out, 'record version')
      const rlen = (b[o + 3]! << 8) | b[o + 4]!
      if (rlen === 0 || rlen > MAX_RECORD) return fail(out, 'record length')
      const avail = Math.min(rlen, end - o - 5)
      if (g + avail > gather.length) {
        const bigger = new Uint8Array(
          Math.min(Math.max(gather.length * 2, g + avail), MAX_CLIENT_HELLO + 4 + MAX_RECORD),
        )
        bigger.set(gather.subarray(0, g))
        gather = bigger
      }
      gather.set(b.subarray(o + 5, o + 5 + avail), g)
      g += avail
      if (needTotal < 0 && g >= 4) {
        if (gather[0] !== HT_CLIENT_HELLO) return fail(out, 'first handshake message is not a ClientHello')
        const mlen = (gather[1]! << 16) | (gather[2]! << 8) | gather[3]!
        if (mlen > MAX_CLIENT_HELLO) return fail(out, 'ClientHello too large')
        needTotal = 4 + mlen
      }
      if (needTotal >= 0 && g >= needTotal) {
        out.consumed = o + 5 + rlen - off
        break
      }
      if (avail < rlen) return Peek.needMore
      o += 5 + rlen
    }
    hb = gather
    ho = 0
    hlen = needTotal
  }
  return parseClientHelloBody(hb, ho + 4, ho + hlen, out)
}

/** The ClientHello body b[o, end) (after the 4-byte handshake header). */
function parseClientHelloBody(b: Uint8Array, o0: number, end: number, out: ClientHelloInfo): PeekStatus {
  let o = o0
  if (end - o < 2 + 32 + 1) return fail(out, 'short ClientHello')
  out.legacyVersion = (b[o]! << 8) | b[o + 1]!
  o += 34
  const sid = b[o]!
  if (sid > 32 || o + 1 + sid > end) return fail(out, 'session id')
  o += 1 + sid
  if (o + 2 > end) return fail(out, 'cipher suites')
  const cs = (b[o]! << 8) | b[o + 1]!
  if (cs < 2 || cs % 2 !== 0 || o + 2 + cs > end) return fail(out, 'cipher suites')
  o += 2 + cs
  if (o + 1 > end) return fail(out, 'compression methods')
  const cm = b[o]!
  if (cm < 1 || o + 1 + cm > end) return fail(out, 'compression methods')
  o += 1 + cm
  if (o === end) return Peek.complete // no extensions (SSL 3.0-style hello)
  if (o + 2 > end) return fail(out, 'extensions length')
  const elen = (b[o]! << 8) | b[o + 1]!
  o += 2
  if (o + elen !== end) return fail(out, 'extensions length')
  let seenSni = false
  let seenAlpn = false
  while (o < end) {
    if (o + 4 > end) return fail(out, 'extension header')
    const type = (b[o]! << 8) | b[o + 1]!
    const len = (b[o + 2]! << 8) | b[o + 3]!
    const d = o + 4
    const de = d + len
    if (de > end) return fail(out, 'extension length')
    if (type === EXT_SERVER_NAME) {
      // RFC 8446 §4.2: no extension type may appear twice.
      if (seenSni) return fail(out, 'duplicate server_name')
      seenSni = true
      const r = readServerName(b, d, de, out)
      if (r !== null) return fail(out, r)
    } else if (type === EXT_ALPN) {
      if (seenAlpn) return fail(out, 'duplicate ALPN')
      seenAlpn = true
      if (de - d < 2) return fail(out, 'ALPN length')
      const l = (b[d]! << 8) | b[d + 1]!
      if (d + 2 + l !== de || l < 2) return fail(out, 'ALPN length')
      let q = d + 2
      while (q < de) {
        const n = b[q]!
        if (n === 0 || q + 1 + n > de) return fail(out, 'ALPN protocol name')
        out.alpn.push(latin1(b, q + 1, q + 1 + n))
        q += 1 + n
      }
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      if (len < 1) return fail(out, 'supported_versions')
      const l = b[d]!
      if (l % 2 !== 0 || d + 1 + l !== de) return fail(out, 'supported_versions')
      for (let q = d + 1; q < de; q += 2) out.versions.push((b[q]! << 8) | b[q + 1]!)
    }
    o = de
  }
  return Peek.complete
}

/** RFC 6066 §3: a list of (name_type, name); the host_name (type 0) is ASCII, one per type. */
function readServerName(b: Uint8Array, d: number, de: number, out: ClientHelloInfo): string | null {
  // An empty extension_data is allowed only in a ServerHello; in a ClientHello it is malformed.
  if (de - d < 2) return 'server_name length'
  const l = (b[d]! << 8) | b[d + 1]!
  if (d + 2 + l !== de) return 'server_name list length'
  let q = d + 2
  while (q < de) {
    if (q + 3 > de) return 'server_name entry'
    const type = b[q]!
    const n = (b[q + 1]! << 8) | b[q + 2]!
    if (q + 3 + n > de) return 'server_name entry length'
    if (type === 0) {
      if (out.sni !== null) return 'two host_names'
      if (n === 0 || n > 255) return 'host_name length'
      for (let k = q + 3; k < q + 3 + n; k++) {
        const c = b[k]!
        // printable ASCII without space; IDNs arrive as A-labels
        if (c <= 0x20 || c >= 0x7f) return 'host_name characters'
      }
      out.sni = latin1(b, q + 3, q + 3 + n)
    }
    q += 3 + n
  }
  return null
}

function latin1(b: Uint8Array, s: number, e: number): string {
  let r = ''
  for (let i = s; i < e; i++) r += String.fromCharCode(b[i]!)
  return r
}
