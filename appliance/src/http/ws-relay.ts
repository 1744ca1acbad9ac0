// Relays an upgraded WebSocket connection both ways through a frame parser per direction (ws-frames.ts):
// bytes pass unchanged, frames and messages are counted, and a protocol error ends the relay with a Close
// frame (1002 or 1009) to each side whose stream is on a frame boundary, then closes both.

import type { Duplex } from 'node:stream'
import type { FlowLifetime } from './flow.ts'
import type { HttpStats, WsDirection, WsOpcodeLabel } from './stats.ts'
import { closeFrame, WsFrameParser, type WsProtocolError } from './ws-frames.ts'

const OPCODE_LABEL: (WsOpcodeLabel | undefined)[] = []
OPCODE_LABEL[0] = 'continuation'
OPCODE_LABEL[1] = 'text'
OPCODE_LABEL[2] = 'binary'
OPCODE_LABEL[8] = 'close'
OPCODE_LABEL[9] = 'ping'
OPCODE_LABEL[10] = 'pong'

export interface WsRelayOptions {
  stats: HttpStats
  maxFrameBytes: number
  /** from the 101's Sec-WebSocket-Extensions (ws-frames.ts rsvMaskFor) */
  rsvMask: number
  flow: FlowLifetime
  log?: { warn(obj: object, msg: string): void }
}

/**
 * `client`/`upstream` are the upgraded sockets; `clientHead`/`upstreamHead` the bytes each had sent past
 * its handshake (already read by the HTTP parsers).
 */
export function relayWebSocket(
  client: Duplex,
  clientHead: Buffer,
  upstream: Duplex,
  upstreamHead: Buffer,
  o: WsRelayOptions,
): void {
  const { stats, flow } = o
  let failed = false
  const parser = (masked: boolean, sender: WsDirection) =>
    new WsFrameParser({
      masked,
      maxFrameBytes: o.maxFrameBytes,
      rsvMask: o.rsvMask,
      onFrame: (opcode) => {
        const label = OPCODE_LABEL[opcode]
        if (label) stats.websocketFrames[label]++
      },
      onMessage: () => stats.websocketMessages[sender]++,
    })
  const fromClient = parser(true, 'client')
  const fromServer = parser(false, 'server')

  const fail = (err: WsProtocolError, sender: WsDirection) => {
    if (failed) return
    failed = true
    stats.websocketErrors[String(err.code) as '1002' | '1009']++
    o.log?.warn({ sender, code: err.code, reason: err.reason }, 'WebSocket protocol error; connection closed')
    const reason = `flowgate: ${err.reason}`
    // Toward the server we speak as a client (masked frames), toward the client as a server (§5.1). The
    // erring direction stopped on a boundary; the other one may be mid-frame, and then gets no Close.
    const toClientOk = sender === 'client' || fromServer.atBoundary
    const toServerOk = sender === 'server' || fromClient.atBoundary
    client.pause()
    upstream.pause()
    if (toClientOk && !fromServer.closeSeen && client.writable)
      client.write(closeFrame(err.code, reason, false))
    if (toServerOk && !fromClient.closeSeen && upstream.writable)
      upstream.write(closeFrame(err.code, reason, true))
    flow.endGracefully(client)
    flow.endGracefully(upstream)
  }

  const pump = (src: Duplex, dst: Duplex, p: WsFrameParser, sender: WsDirection, head: Buffer) => {
    const feed = (chunk: Buffer): void => {
      if (failed) return
      flow.touch()
      const r = p.push(chunk)
      if (r.forward.length > 0 && !dst.write(r.forward)) {
        src.pause()
        dst.once('drain', () => {
          if (!failed) src.resume()
        })
      }
      if (r.error) fail(r.error, sender)
    }
    if (head.length > 0) feed(head)
    src.on('data', feed)
    // A half-close passes on: the WebSocket closing handshake ends with the server closing TCP (§7.1.1).
    src.on('end', () => {
      if (!failed) flow.endGracefully(dst)
    })
    src.on('close', () => {
      if (!dst.destroyed && !dst.writableEnded) flow.endGracefully(dst)
    })
  }
  pump(client, upstream, fromClient, 'client', clientHead)
  pump(upstream, client, fromServer, 'server', upstreamHead)
}
