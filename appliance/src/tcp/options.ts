// Option negotiation: MSS (RFC 9293 §3.7.1) clamped for the GWLB path, window scaling and timestamps with
// PAWS (RFC 7323), SACK-permitted (RFC 2018 §2).

import type { TcpRepr } from './segment.ts'

/** GWLB.md: inner packets go up to 8,500 bytes, and nothing on the path fragments or sends PTB. */
export const GWLB_INNER_MTU = 8500
export const IPV4_HEADER = 20
export const IPV6_HEADER = 40
export const TCP_HEADER = 20

/**
 * The MSS we advertise and clamp to: the GWLB inner MTU minus the IP and TCP headers. Path MTU discovery
 * cannot work through GWLB, so this is the only protection against segments the path would drop.
 */
export function gwlbMss(family: 4 | 6): number {
  return GWLB_INNER_MTU - (family === 4 ? IPV4_HEADER : IPV6_HEADER) - TCP_HEADER
}

/** 8,440: valid for both families, the default when the stack does not know the family. */
export const DEFAULT_MSS = gwlbMss(6)

/**
 * RFC 9293 §3.7.1: without an MSS option the sender MUST assume 536 (IPv4); RFC 8200 §5 gives 1220 for IPv6.
 * We use 536, valid for both.
 */
export const DEFAULT_PEER_MSS = 536

/** Bytes the timestamps option takes in every segment once negotiated (10, padded to 12 with NOPs). */
export const TS_OPTION_SPACE = 12

/** RFC 7323 §2.3: "the shift count MUST be limited to 14". */
export const MAX_WINDOW_SCALE = 14

/** The smallest shift that lets a 16-bit window field express `buffer` bytes. */
export function windowScaleFor(buffer: number): number {
  let s = 0
  while (s < MAX_WINDOW_SCALE && Math.floor(buffer / 2 ** s) > 0xffff) s++
  return s
}

export interface OptionConfig {
  mss: number
  windowScaling: boolean
  timestamps: boolean
  sack: boolean
  rcvBufSize: number
  /** The receive buffer may grow to this (autotuning): the window scale must allow it. */
  rcvBufMax?: number
}

export interface Negotiated {
  /** Largest payload we send in one segment (options already subtracted). */
  sndMss: number
  /** Shift applied to windows the peer advertises; 0 without scaling. */
  sndWscale: number
  /** Shift applied to windows we advertise; 0 without scaling. */
  rcvWscale: number
  /** Window scaling agreed (both SYNs carried the option), even if our shift is 0. */
  wsOk: boolean
  tsOk: boolean
  sackOk: boolean
}

/**
 * Agrees on options from the peer's SYN (or SYN-ACK) and what we offered. Each extension is in force only
 * when both SYNs carried it (RFC 7323 §2.2, §3.2; RFC 2018 §2).
 */
export function negotiate(cfg: OptionConfig, peerSyn: TcpRepr, weOffered: boolean = true): Negotiated {
  const wsOk = cfg.windowScaling && weOffered && peerSyn.windowScale !== undefined
  const tsOk = cfg.timestamps && weOffered && peerSyn.timestamp !== undefined
  const sackOk = cfg.sack && weOffered && peerSyn.sackPermitted === true
  // RFC 9293 §3.7.1: the send MSS is the smaller of the peer's MSS option and what our path allows (the
  // clamp), less the options every segment carries: "Eff.snd.MSS = min(SendMSS+20, MMS_S) - TCPhdrsize".
  const peerMss = peerSyn.mss !== undefined && peerSyn.mss > 0 ? peerSyn.mss : DEFAULT_PEER_MSS
  const mss = Math.min(peerMss, cfg.mss) - (tsOk ? TS_OPTION_SPACE : 0)
  return {
    sndMss: Math.max(mss, 64),
    // RFC 7323 §2.3: a shift above 14 is used as 14.
    sndWscale: wsOk ? Math.min(peerSyn.windowScale!, MAX_WINDOW_SCALE) : 0,
    rcvWscale: wsOk ? windowScaleFor(Math.max(cfg.rcvBufSize, cfg.rcvBufMax ?? 0)) : 0,
    wsOk,
    tsOk,
    sackOk,
  }
}

/** Timestamp values are compared modulo 2^32 like sequence numbers (RFC 7323 §5.2). */
export function tsLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0
}

/**
 * TSval ticks a segment may lag TS.Recent by and still pass PAWS (Linux's TCP_PAWS_WINDOW). Peers tick in
 * milliseconds: a segment reordered across a tick — a few hundred microseconds late on a fast path — is not
 * an old duplicate from a previous wrap of the sequence space, which is what PAWS is for (RFC 7323 §5).
 */
export const PAWS_WINDOW = 1

/**
 * RFC 7323 §5.3 R1: "If there is a Timestamps option in the arriving segment, SEG.TSval < TS.Recent, TS.Recent
 * is valid ..., and the RST bit is not set, then treat the arriving segment as not acceptable" — with
 * PAWS_WINDOW ticks of slack.
 */
export function pawsRejects(seg: TcpRepr, tsRecent: number, rst: boolean): boolean {
  return !rst && seg.timestamp !== undefined && ((tsRecent - seg.timestamp.val) | 0) > PAWS_WINDOW
}

/** SACK blocks that fit beside the other options in 40 bytes (RFC 2018 §3). */
export function maxSackBlocks(tsOk: boolean): number {
  return tsOk ? 3 : 4
}
