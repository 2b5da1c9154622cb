/**
 * IPv4 addresses and the address forms of rbldnsd's ip4set lines (ip4parse.c):
 * prefixes (`10.1`), CIDRs (`10.1.0.0/16`) and ranges (`10.0.0.1-10.0.0.9`,
 * `10.0.0.1-9`). The line parsers read bytes in place and report through a
 * cursor their caller owns, so a line costs no allocation.
 */
import net from 'node:net'

import { DASH, DIGIT_ZERO, DOT, isDigit, SLASH } from './chars'

/** Where an address parser stopped and what it read; reused from line to line. */
export interface Ip4Cursor {
  /** First address read. */
  first: number
  /** Last address of the range or CIDR (ip4range only). */
  last: number
  /** Offset of the first byte after the address. */
  next: number
}

export function newCursor(): Ip4Cursor {
  return { first: 0, last: 0, next: 0 }
}

/** The network mask of a prefix length, as an unsigned 32-bit number. */
export function mask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
}

/** Dotted quad of a 32-bit address, as rbldnsd's ip4atos. */
export function ipToString(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/** A canonical dotted-quad IPv4 address (no leading zeros, as net.isIPv4 wants) as a number, or -1. */
export function parseIPv4(s: string): number {
  if (!net.isIPv4(s)) return -1
  return s.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
}

/**
 * rbldnsd ip4prefix: `a`, `a.b`, `a.b.c` or `a.b.c.d` in b[i, end). Returns
 * the bits given (8..32) with the address in `at.first` and the offset after
 * it in `at.next`, or -1.
 */
export function ip4prefix(b: Uint8Array, i: number, end: number, at: Ip4Cursor): number {
  let addr = 0
  for (let k = 0; k < 4; k++) {
    let c = b[i]
    if (i >= end || !isDigit(c)) return -1
    let o = c - DIGIT_ZERO
    i++
    while (i < end && isDigit((c = b[i]))) {
      o = o * 10 + (c - DIGIT_ZERO)
      if (o > 255) return -1
      i++
    }
    addr += o * 2 ** (24 - 8 * k)
    if (k === 3 || i >= end || b[i] !== DOT) {
      at.first = addr
      at.next = i
      return 8 * (k + 1)
    }
    i++
  }
  return -1
}

/**
 * rbldnsd ip4range: a prefix, CIDR or `a-b` range in b[i, end). Returns the
 * prefix length (32 for a range) with [at.first, at.last] and at.next, or -1.
 */
export function ip4range(b: Uint8Array, i: number, end: number, at: Ip4Cursor): number {
  let bits = ip4prefix(b, i, end, at)
  if (bits < 0) return -1
  const a = at.first
  i = at.next
  if (i < end && b[i] === DASH) {
    let bbits = ip4prefix(b, i + 1, end, at)
    if (bbits < 0) return -1
    let last = at.first
    if (bbits === 8) {
      // 127.0.0.1-2 means 127.0.0.1-127.0.0.2: the single octet replaces the last one given.
      last = ((last >>> (bits - 8)) | (a & mask(bits - 8))) >>> 0
      bbits = bits
    } else if (bbits !== bits) return -1
    if (bbits !== 32) last = (last | ~mask(bbits)) >>> 0
    if (a > last) return -1
    at.first = a
    at.last = last
    return 32
  }
  if (i < end && b[i] === SLASH) {
    i++
    let c = b[i]
    if (i >= end || !isDigit(c)) return -1
    bits = c - DIGIT_ZERO
    i++
    while (i < end && isDigit((c = b[i]))) {
      bits = bits * 10 + (c - DIGIT_ZERO)
      if (bits > 32) return -1
      i++
    }
  } else if (bits === 8) return -1 // a bare number: rbldnsd wants 10/8
  at.first = a
  at.last = (a | ~mask(bits)) >>> 0
  at.next = i
  return bits
}
