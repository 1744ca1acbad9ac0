// Loads the flowgate_io addon (native/, built by `npm run build:native`, which `npm ci` runs via prepare).
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { PacketIOError } from './packet-io.ts'

/** The addon's exports; see native/src/flowgate_io.c for each function's contract. */
export interface FlowgateIoAddon {
  readonly META_WORDS: number
  tunOpen(name: string): [fd: number, name: string]
  udpOpen(addr: number, port: number, rcvbuf: number): [fd: number, port: number]
  rawOpen(sndbuf: number): number
  fdClose(fd: number): void
  /** raw socket receiving copies of incoming IPv4 packets of `protocol`, IP header included (tests) */
  captureOpen(protocol: number): number
  pollerOpen(
    fd: number,
    mode: 0 | 1,
    ring: Buffer,
    slotSize: number,
    meta: Uint32Array,
    maxSlots: number,
    onBatch: (count: number) => void,
  ): PollerHandle
  pollerClose(h: PollerHandle): void
  pollerRef(h: PollerHandle, ref: boolean): void
  txOpen(rawFd: number, buffers: Buffer[], meta: Uint32Array, maxEntries: number): TxHandle
  txSend(h: TxHandle, count: number): number
  txClose(h: TxHandle): void
}

declare const pollerBrand: unique symbol
declare const txBrand: unique symbol
export type PollerHandle = { readonly [pollerBrand]: true }
export type TxHandle = { readonly [txBrand]: true }

export const ADDON_PATH = new URL('../../../native/build/Release/flowgate_io.node', import.meta.url).pathname

let cached: FlowgateIoAddon | undefined

/** The addon, or a PacketIOError FG_ERR_IO_ADDON_MISSING saying how to build it. */
export function loadAddon(): FlowgateIoAddon {
  if (cached) return cached
  if (!existsSync(ADDON_PATH)) {
    throw new PacketIOError(
      'FG_ERR_IO_ADDON_MISSING',
      `packet I/O addon not built (${ADDON_PATH}); run \`npm run build:native\`, or use the dgram backend`,
    )
  }
  cached = createRequire(import.meta.url)(ADDON_PATH) as FlowgateIoAddon
  return cached
}

export function addonAvailable(): boolean {
  try {
    loadAddon()
    return true
  } catch {
    return false
  }
}
