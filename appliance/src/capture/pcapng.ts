// pcapng encoding (draft-ietf-opsawg-pcapng): the blocks a live capture needs, little-endian. A block is
// type, total length, body padded to 32 bits, total length again; options are code, length, value padded
// to 32 bits, closed by opt_endofopt. Rare blocks (SHB, IDB, DSB, ISB) are built as Buffers; the Enhanced
// Packet Block, one per captured packet, is written in place into a caller's buffer so capturing a packet
// is one copy and no allocation.

export const BLOCK = { shb: 0x0a0d0d0a, idb: 1, isb: 5, epb: 6, dsb: 0x0000000a } as const
const BYTE_ORDER_MAGIC = 0x1a2b3c4d
/** LINKTYPE_RAW: the packet starts with its IPv4 or IPv6 header (the version nibble tells which) */
export const LINKTYPE_RAW = 101
/** DSB secrets type: an NSS key log (SSLKEYLOGFILE lines), "TLSK" */
export const SECRETS_TLS_KEY_LOG = 0x544c534b

const OPT_ENDOFOPT = 0
const OPT_COMMENT = 1
const SHB_USERAPPL = 4
const IF_NAME = 2
const IF_DESCRIPTION = 3
const IF_TSRESOL = 9
const IF_FILTER = 11
const EPB_FLAGS = 2
const ISB_STARTTIME = 2
const ISB_ENDTIME = 3
const ISB_IFRECV = 4
const ISB_OSDROP = 7

/** epb_flags bits 0-1: the packet's direction relative to the capturing host */
export const EPB_INBOUND = 1
export const EPB_OUTBOUND = 2

const pad4 = (n: number) => (n + 3) & ~3

type Option = { code: number; value: Buffer }

function optionsSize(opts: readonly Option[]): number {
  if (opts.length === 0) return 0
  let n = 4 // opt_endofopt
  for (const o of opts) n += 4 + pad4(o.value.length)
  return n
}

function writeOptions(b: Buffer, off: number, opts: readonly Option[]): number {
  if (opts.length === 0) return off
  for (const o of opts) {
    b.writeUInt16LE(o.code, off)
    b.writeUInt16LE(o.value.length, off + 2)
    o.value.copy(b, off + 4)
    off += 4 + pad4(o.value.length) // the padding is already zero (Buffer.alloc)
  }
  b.writeUInt16LE(OPT_ENDOFOPT, off)
  b.writeUInt16LE(0, off + 2)
  return off + 4
}

/** A block with a fixed part (written by `fixed` at offset 8) and options. */
function block(type: number, fixedLen: number, fixed: (b: Buffer) => void, opts: readonly Option[]): Buffer {
  const total = 8 + fixedLen + optionsSize(opts) + 4
  const b = Buffer.alloc(total)
  b.writeUInt32LE(type, 0)
  b.writeUInt32LE(total, 4)
  fixed(b)
  writeOptions(b, 8 + fixedLen, opts)
  b.writeUInt32LE(total, total - 4)
  return b
}

const text = (code: number, s: string | undefined): Option[] =>
  s ? [{ code, value: Buffer.from(s, 'utf8') }] : []

/** Section Header Block: version 1.0, section length unknown (-1: a stream). */
export function sectionHeader(o: { application?: string; comment?: string } = {}): Buffer {
  return block(
    BLOCK.shb,
    16,
    (b) => {
      b.writeUInt32LE(BYTE_ORDER_MAGIC, 8)
      b.writeUInt16LE(1, 12)
      b.writeUInt16LE(0, 14)
      b.writeBigInt64LE(-1n, 16)
    },
    [...text(OPT_COMMENT, o.comment), ...text(SHB_USERAPPL, o.application)],
  )
}

export interface InterfaceOptions {
  linkType: number
  name: string
  description?: string
  /** the capture filter, as text (if_filter with filter type 0, a libpcap-style string) */
  filter?: string
  /** 0: no limit */
  snapLen?: number
}

/** Interface Description Block; timestamps in microseconds (if_tsresol 6, written out for clarity). */
export function interfaceDescription(o: InterfaceOptions): Buffer {
  return block(
    BLOCK.idb,
    8,
    (b) => {
      b.writeUInt16LE(o.linkType, 8)
      b.writeUInt16LE(0, 10)
      b.writeUInt32LE(o.snapLen ?? 0, 12)
    },
    [
      ...text(IF_NAME, o.name),
      ...text(IF_DESCRIPTION, o.description),
      ...(o.filter ? [{ code: IF_FILTER, value: Buffer.concat([Buffer.of(0), Buffer.from(o.filter)]) }] : []),
      { code: IF_TSRESOL, value: Buffer.of(6) },
    ],
  )
}

/** Decryption Secrets Block carrying key log lines (each ending in a newline). */
export function decryptionSecrets(secrets: Buffer, type: number = SECRETS_TLS_KEY_LOG): Buffer {
  const padded = pad4(secrets.length)
  return block(
    BLOCK.dsb,
    8 + padded,
    (b) => {
      b.writeUInt32LE(type, 8)
      b.writeUInt32LE(secrets.length, 12)
      secrets.copy(b, 16)
    },
    [],
  )
}

export interface InterfaceStatistics {
  interfaceId: number
  /** µs since the epoch */
  start: number
  end: number
  /** packets offered to this capture for the interface */
  received: number
  /** of which dropped because the capture's queue was full */
  dropped: number
  comment?: string
}

const u64 = (n: number) => {
  const v = Buffer.alloc(8)
  v.writeUInt32LE(Math.floor(n / 2 ** 32) >>> 0, 0) // high word first (a timestamp's layout)
  v.writeUInt32LE(n >>> 0, 4)
  return v
}
const u64le = (n: number) => {
  const v = Buffer.alloc(8)
  v.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(n))), 0)
  return v
}

/** Interface Statistics Block: what the capture saw and dropped on one interface. */
export function interfaceStatistics(s: InterfaceStatistics): Buffer {
  return block(
    BLOCK.isb,
    12,
    (b) => {
      b.writeUInt32LE(s.interfaceId, 8)
      b.writeUInt32LE(Math.floor(s.end / 2 ** 32) >>> 0, 12)
      b.writeUInt32LE(s.end >>> 0, 16)
    },
    [
      ...text(OPT_COMMENT, s.comment),
      { code: ISB_STARTTIME, value: u64(s.start) },
      { code: ISB_ENDTIME, value: u64(s.end) },
      { code: ISB_IFRECV, value: u64le(s.received) },
      { code: ISB_OSDROP, value: u64le(s.dropped) },
    ],
  )
}

/** Bytes an Enhanced Packet Block of `len` packet bytes takes (with its epb_flags option). */
export function enhancedPacketSize(len: number): number {
  return 28 + pad4(len) + 12 + 4
}

/**
 * Writes an Enhanced Packet Block for data[from, to) into dst at off; returns the offset after it. The
 * caller has checked that enhancedPacketSize(to - from) bytes fit. `micros`: µs since the epoch.
 */
export function writeEnhancedPacket(
  dst: Buffer,
  off: number,
  interfaceId: number,
  micros: number,
  flags: number,
  data: Buffer,
  from: number,
  to: number,
): number {
  const len = to - from
  const padded = pad4(len)
  const total = 28 + padded + 12 + 4
  dst.writeUInt32LE(BLOCK.epb, off)
  dst.writeUInt32LE(total, off + 4)
  dst.writeUInt32LE(interfaceId, off + 8)
  dst.writeUInt32LE(Math.floor(micros / 2 ** 32) >>> 0, off + 12)
  dst.writeUInt32LE(micros >>> 0, off + 16)
  dst.writeUInt32LE(len, off + 20)
  dst.writeUInt32LE(len, off + 24)
  data.copy(dst, off + 28, from, to)
  // The buffer is reused: clear the padding rather than trust it.
  for (let i = off + 28 + len; i < off + 28 + padded; i++) dst[i] = 0
  let o = off + 28 + padded
  dst.writeUInt16LE(EPB_FLAGS, o)
  dst.writeUInt16LE(4, o + 2)
  dst.writeUInt32LE(flags, o + 4)
  dst.writeUInt32LE(0, o + 8) // opt_endofopt
  o += 12
  dst.writeUInt32LE(total, o)
  return o + 4
}
