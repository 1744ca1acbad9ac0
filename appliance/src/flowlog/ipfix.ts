// IPFIX (RFC 7011) encoding of flow records: the same records the JSON flow log writes, as IPFIX Messages
// for a collector. Pure: no sockets, the export time passed in.
//
// One flow record covers both directions (record.ts), so each is an RFC 5103 biflow: the plain counters
// (packetDeltaCount, octetDeltaCount) are the forward direction — initiator → responder, the source being
// the initiator (biflowDirection 1) — and their reverse counterparts, enterprise number 29305 as RFC 5103
// reserves for reverse Information Elements, are the responder's. Times are flowStart/EndMilliseconds;
// tcpControlBits are the flags the flow table keeps (FIN, SYN, RST, and ACK with a SYN-ACK); flowEndReason
// maps the record's reason (idle timeout, active timeout for periodic records, end of flow detected, forced
// end at shutdown, lack of resources on eviction); forwardingStatus (RFC 7270) is Forwarded for a flow
// whose packets were forwarded, Dropped/ACL-deny for Deny and Reject, Unknown otherwise. The HTTP Host is
// IANA's httpRequestHost (460).
//
// flowgate's own fields (endpoint id, policy, rule, mode, verdict, the Audit entry, SNI, TLS version,
// whether the flow was intercepted, the record's reason, the AWS account id and the list of them,
// comma-separated) are enterprise-specific Information Elements
// under Private Enterprise Number 32473. That number is the one IANA reserves for documentation and
// examples (RFC 5612): flowgate has no PEN of its own, and borrowing a real vendor's would collide with
// that vendor's elements in collectors; 32473 can never denote anyone's production elements. Should the
// project register a PEN, FLOWGATE_PEN is the one constant to change (collectors' definitions with it).
// Strings are variable-length (RFC 7011 §7), UTF-8, at most 255 bytes, cut at a character boundary.
//
// Two templates, 256 for IPv4 flows and 257 for IPv6 (only the address elements differ). Over UDP the
// templates go in the first message and again every refresh interval (RFC 7011 §8.4, the exporter's
// job: see ipfix-exporter.ts).
import type { FlowRecord, FlowRecordInput, RecordReason } from './record.ts'

export const IPFIX_VERSION = 10
export const IPFIX_PORT = 4739
/** IANA's example enterprise number (RFC 5612), standing in for a flowgate PEN: see above */
export const FLOWGATE_PEN = 32473
/** RFC 5103: reverse Information Elements */
export const REVERSE_PEN = 29305
export const TEMPLATE_V4 = 256
export const TEMPLATE_V6 = 257
const TEMPLATE_SET = 2
const VARLEN = 0xffff
const MAX_STRING = 255
const HEADER = 16

/** flowgate's enterprise-specific Information Elements (PEN FLOWGATE_PEN) */
export const FLOWGATE_IES = {
  endpointId: 1,
  policyName: 2,
  ruleName: 3,
  mode: 4,
  verdict: 5,
  auditPolicyName: 6,
  auditRuleName: 7,
  auditAction: 8,
  tlsServerName: 9,
  tlsVersion: 10,
  intercepted: 11,
  recordReason: 12,
  awsAccountId: 13,
  awsAccountIds: 14,
} as const

interface Field {
  id: number
  length: number
  pen?: number
}

const v4: Field[] = [
  { id: 8, length: 4 }, // sourceIPv4Address
  { id: 12, length: 4 }, // destinationIPv4Address
]
const v6: Field[] = [
  { id: 27, length: 16 }, // sourceIPv6Address
  { id: 28, length: 16 }, // destinationIPv6Address
]
const COMMON: Field[] = [
  { id: 7, length: 2 }, // sourceTransportPort
  { id: 11, length: 2 }, // destinationTransportPort
  { id: 4, length: 1 }, // protocolIdentifier
  { id: 2, length: 8 }, // packetDeltaCount
  { id: 1, length: 8 }, // octetDeltaCount
  { id: 2, length: 8, pen: REVERSE_PEN }, // reversePacketDeltaCount
  { id: 1, length: 8, pen: REVERSE_PEN }, // reverseOctetDeltaCount
  { id: 152, length: 8 }, // flowStartMilliseconds
  { id: 153, length: 8 }, // flowEndMilliseconds
  { id: 6, length: 2 }, // tcpControlBits
  { id: 136, length: 1 }, // flowEndReason
  { id: 239, length: 1 }, // biflowDirection
  { id: 89, length: 1 }, // forwardingStatus (reduced-size encoding)
  { id: 460, length: VARLEN }, // httpRequestHost
  { id: FLOWGATE_IES.endpointId, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.policyName, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.ruleName, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.mode, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.verdict, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.auditPolicyName, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.auditRuleName, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.auditAction, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.tlsServerName, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.tlsVersion, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.intercepted, length: 1, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.recordReason, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.awsAccountId, length: VARLEN, pen: FLOWGATE_PEN },
  { id: FLOWGATE_IES.awsAccountIds, length: VARLEN, pen: FLOWGATE_PEN },
]

/** RFC 7011 flowEndReason */
const END_REASON: Record<RecordReason, number> = {
  expired: 0x01, // idle timeout
  active: 0x02, // active timeout: a periodic record of a live flow
  closed: 0x03, // end of flow detected
  removed: 0x04, // forced end (shutdown)
  evicted: 0x05, // lack of resources
}

function templateRecord(id: number, fields: Field[]): Buffer {
  const b = Buffer.alloc(4 + fields.reduce((n, f) => n + (f.pen ? 8 : 4), 0))
  b.writeUInt16BE(id, 0)
  b.writeUInt16BE(fields.length, 2)
  let o = 4
  for (const f of fields) {
    b.writeUInt16BE(f.pen ? f.id | 0x8000 : f.id, o)
    b.writeUInt16BE(f.length, o + 2)
    o += 4
    if (f.pen) {
      b.writeUInt32BE(f.pen, o)
      o += 4
    }
  }
  return b
}

function set(id: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4)
  h.writeUInt16BE(id, 0)
  h.writeUInt16BE(4 + body.length, 2)
  return Buffer.concat([h, body])
}

/** The template set announcing both templates. */
export const TEMPLATE_SET_BYTES: Buffer = set(
  TEMPLATE_SET,
  Buffer.concat([
    templateRecord(TEMPLATE_V4, [...v4, ...COMMON]),
    templateRecord(TEMPLATE_V6, [...v6, ...COMMON]),
  ]),
)

/** UTF-8, at most MAX_STRING bytes, not ending inside a character. */
function utf8(s: string | null | undefined): Buffer {
  if (!s) return Buffer.alloc(0)
  const b = Buffer.from(s, 'utf8')
  if (b.length <= MAX_STRING) return b
  let n = MAX_STRING
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--
  return b.subarray(0, n)
}

export interface IpfixItem {
  record: FlowRecord
  input: FlowRecordInput
}

/** One data record (without its set header): the fields of COMMON after the two addresses. */
export function encodeDataRecord(item: IpfixItem): { template: number; bytes: Buffer } {
  const { record: r, input: x } = item
  const fam6 = x.key.family === 6
  const strings = [
    r.host,
    r['endpoint-id'],
    r.policy,
    r.rule,
    r.mode,
    r.verdict,
    r['audit-policy'],
    r['audit-rule'],
    r['audit-action'],
    r.sni,
    r['tls-version'],
  ].map(utf8)
  const trailing = [r['record-reason'], r['aws-account-id'], r['aws-account-ids']?.join(',')].map(utf8)
  const addrLen = fam6 ? 16 : 4
  const fixed = 2 * addrLen + 2 + 2 + 1 + 8 * 6 + 2 + 1 + 1 + 1 + 1
  const size = fixed + [...strings, ...trailing].reduce((n, s) => n + 1 + s.length, 0)
  const b = Buffer.alloc(size)
  let o = 0
  b.set(x.key.src.subarray(0, addrLen), o)
  o += addrLen
  b.set(x.key.dst.subarray(0, addrLen), o)
  o += addrLen
  o = b.writeUInt16BE(r.srcport, o)
  o = b.writeUInt16BE(r.dstport, o)
  o = b.writeUInt8(r.protocol, o)
  o = b.writeBigUInt64BE(BigInt(x.packets[0]), o)
  o = b.writeBigUInt64BE(BigInt(x.bytes[0]), o)
  o = b.writeBigUInt64BE(BigInt(x.packets[1]), o)
  o = b.writeBigUInt64BE(BigInt(x.bytes[1]), o)
  o = b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(x.startMs))), o)
  o = b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(x.endMs))), o)
  o = b.writeUInt16BE(x.tcpFlags & 0xffff, o)
  o = b.writeUInt8(END_REASON[x.reason] ?? 0, o)
  o = b.writeUInt8(1, o) // biflowDirection: the source is the initiator
  o = b.writeUInt8(forwardingStatus(r), o)
  const writeString = (s: Buffer) => {
    o = b.writeUInt8(s.length, o)
    b.set(s, o)
    o += s.length
  }
  for (const s of strings.slice(0, 11)) writeString(s)
  o = b.writeUInt8(r.intercepted ? 1 : 2, o) // RFC 7011 boolean: 1 true, 2 false
  for (const s of trailing) writeString(s)
  return { template: fam6 ? TEMPLATE_V6 : TEMPLATE_V4, bytes: b }
}

/** RFC 7270: 64 Forwarded (unknown), 129 Dropped (ACL deny), 128 Dropped (unknown) */
function forwardingStatus(r: FlowRecord): number {
  if (r.action === 'ACCEPT') return 64
  if (r.verdict === 'Deny' || r.verdict === 'Reject') return 129
  return 128
}

export interface IpfixMessage {
  bytes: Buffer
  /** data records in it */
  records: number
}

export interface IpfixEncoderOptions {
  observationDomainId?: number
  /** largest message (UDP payload); RFC 7011 §10.3.3: fit the path MTU (default 1400) */
  maxMessageBytes?: number
}

/**
 * Turns flow records into IPFIX Messages. Keeps the sequence number: RFC 7011's count of data records
 * sent before each message, modulo 2^32, so a collector can tell how many were lost on the way.
 */
export class IpfixEncoder {
  readonly observationDomainId: number
  readonly maxMessageBytes: number
  sequence = 0

  constructor(o: IpfixEncoderOptions = {}) {
    this.observationDomainId = o.observationDomainId ?? 0
    this.maxMessageBytes = o.maxMessageBytes ?? 1400
  }

  /**
   * Messages carrying `items` in order (as many as the size bound needs), the templates in front of the
   * first when `withTemplates`; none when there is nothing to send. A message with templates only is
   * returned for no items when `withTemplates` is set.
   */
  encode(items: readonly IpfixItem[], exportTimeMs: number, withTemplates: boolean): IpfixMessage[] {
    const out: IpfixMessage[] = []
    let parts: Buffer[] = []
    let size = HEADER
    let records = 0
    let setTemplate = -1
    let setParts: Buffer[] = []
    let setSize = 0
    const closeSet = () => {
      if (setTemplate < 0) return
      const h = Buffer.alloc(4)
      h.writeUInt16BE(setTemplate, 0)
      h.writeUInt16BE(4 + setSize, 2)
      parts.push(h, ...setParts)
      setTemplate = -1
      setParts = []
      setSize = 0
    }
    const flush = () => {
      closeSet()
      if (parts.length === 0) return
      const h = Buffer.alloc(HEADER)
      h.writeUInt16BE(IPFIX_VERSION, 0)
      h.writeUInt16BE(size, 2)
      h.writeUInt32BE(Math.floor(exportTimeMs / 1000) >>> 0, 4)
      h.writeUInt32BE(this.sequence >>> 0, 8)
      h.writeUInt32BE(this.observationDomainId >>> 0, 12)
      out.push({ bytes: Buffer.concat([h, ...parts], size), records })
      this.sequence = (this.sequence + records) % 2 ** 32
      parts = []
      size = HEADER
      records = 0
    }
    if (withTemplates) {
      parts.push(TEMPLATE_SET_BYTES)
      size += TEMPLATE_SET_BYTES.length
    }
    for (const item of items) {
      const { template, bytes } = encodeDataRecord(item)
      const grow = bytes.length + (template === setTemplate ? 0 : 4)
      if (size + grow > this.maxMessageBytes && (records > 0 || withTemplates)) {
        flush()
        withTemplates = false
      }
      if (template !== setTemplate) {
        closeSet()
        setTemplate = template
        size += 4
      }
      setParts.push(bytes)
      setSize += bytes.length
      size += bytes.length
      records++
    }
    flush()
    return out
  }
}
