// Choosing a packet I/O backend. `auto` takes the native one when the addon is built and we may open a
// raw socket, and otherwise falls back to dgram (saying why, through `onFallback`).
import { addonAvailable } from './addon.ts'
import { DgramPacketIO, type DgramPacketIOOptions } from './dgram.ts'
import { NativePacketIO } from './native.ts'
import type { PacketIO, PacketIOBackend } from './packet-io.ts'

export { addonAvailable, loadAddon } from './addon.ts'
export { DgramPacketIO } from './dgram.ts'
export { NativePacketIO } from './native.ts'
export * from './packet-io.ts'
export { TunDevice } from './tun.ts'

export interface CreatePacketIOOptions extends DgramPacketIOOptions {
  backend?: PacketIOBackend | 'auto'
}

export function createPacketIO(options: CreatePacketIOOptions = {}): PacketIO {
  const { backend = 'auto', ...rest } = options
  if (backend === 'native') return new NativePacketIO(rest)
  if (backend === 'dgram') return new DgramPacketIO(rest)
  return addonAvailable() ? new NativePacketIO(rest) : new DgramPacketIO(rest)
}

/**
 * Starts `auto` packet I/O: native first; if that cannot start (no addon, no CAP_NET_RAW), dgram.
 * Returns the started backend.
 */
export async function startPacketIO(
  options: CreatePacketIOOptions,
  onBatch: Parameters<PacketIO['start']>[0],
  onFallback?: (reason: Error) => void,
): Promise<PacketIO> {
  const io = createPacketIO(options)
  try {
    await io.start(onBatch)
    return io
  } catch (e) {
    if ((options.backend ?? 'auto') !== 'auto' || io.backend === 'dgram') throw e
    const code = (e as { code?: string }).code
    if (code !== 'FG_ERR_IO_RAW_SOCKET' && code !== 'FG_ERR_IO_ADDON_MISSING') throw e
    onFallback?.(e as Error)
    const fallback = new DgramPacketIO(options)
    await fallback.start(onBatch)
    return fallback
  }
}
