import { randomBytes } from 'node:crypto'
import test from 'ava'
import {
  adjust,
  checksum,
  fold,
  pseudoSum4,
  pseudoSum6,
  sum16,
  update16,
  update32,
} from '../../appliance/src/wire/checksum.ts'
import { rng } from '../support/random-policies.ts'
import { refChecksum } from './packets.ts'

test('RFC 1071 §3 worked example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', (t) => {
  const b = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])
  t.is(fold(sum16(b, 0, 8)), 0xddf2)
  t.is(checksum(b, 0, 8), ~0xddf2 & 0xffff)
})

test('full checksum matches the reference for every length 0..300 and random offsets', (t) => {
  const r = rng(1)
  for (let len = 0; len <= 300; len++) {
    const b = randomBytes(len + 8)
    const off = Math.floor(r() * 8)
    t.is(checksum(b, off, len), refChecksum(b.subarray(off, off + len)), `len ${len}`)
  }
  const big = Buffer.alloc(65535, 0xff)
  t.is(checksum(big, 0, big.length), refChecksum(big))
})

test('a buffer with its checksum inserted verifies (sum folds to 0xffff)', (t) => {
  const b = randomBytes(64)
  b.writeUInt16BE(0, 10)
  b.writeUInt16BE(checksum(b, 0, 64), 10)
  t.is(fold(sum16(b, 0, 64)), 0xffff)
})

test('pseudo-header sums agree with the reference over the assembled pseudo-header', (t) => {
  const b = randomBytes(40)
  const seg = randomBytes(33)
  const ph4 = Buffer.concat([b.subarray(0, 4), b.subarray(4, 8), Buffer.from([0, 6, 0, 33])])
  t.is(checksum(seg, 0, 33, pseudoSum4(b, 0, 4, 6, 33)), refChecksum(ph4, seg))
  const l = Buffer.alloc(8)
  l.writeUInt32BE(33)
  l[7] = 17
  const ph6 = Buffer.concat([b.subarray(0, 16), b.subarray(16, 32), l])
  t.is(checksum(seg, 0, 33, pseudoSum6(b, 0, 16, 17, 33)), refChecksum(ph6, seg))
})

test('RFC 1624 incremental updates equal a full recomputation (10,000 random edits)', (t) => {
  const r = rng(7)
  for (let k = 0; k < 10_000; k++) {
    const b = randomBytes(20)
    const c = refChecksum(b)
    const at = Math.floor(r() * 9) * 2
    const old16 = b.readUInt16BE(at)
    const new16 = Math.floor(r() * 65536)
    b.writeUInt16BE(new16, at)
    const want = refChecksum(b)
    const got = update16(c, old16, new16)
    // ones' complement has two zeros: 0x0000 and 0xffff encode the same sum (RFC 1624 §3)
    t.true(got === want || (got ^ want) === 0xffff, `edit ${k}`)
    const old32 = b.readUInt32BE(0)
    const c2 = refChecksum(b)
    const new32 = Math.floor(r() * 2 ** 32)
    b.writeUInt32BE(new32, 0)
    const g2 = update32(c2, old32, new32)
    const w2 = refChecksum(b)
    t.true(g2 === w2 || (g2 ^ w2) === 0xffff)
  }
  t.pass()
})

test('adjust carries an existing checksum error over instead of laundering it', (t) => {
  const b = randomBytes(30)
  const good = refChecksum(b)
  const bad = (good + 1) & 0xffff
  const oldSum = sum16(b, 0, 30)
  b[3]! ^= 0x55
  const newSum = sum16(b, 0, 30)
  t.is(adjust(good, oldSum, newSum), refChecksum(b))
  t.not(adjust(bad, oldSum, newSum), refChecksum(b))
})
