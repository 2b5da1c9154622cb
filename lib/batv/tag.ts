// The text of a BATV "prvs" tag (draft-levine-smtp-batv, as Exim writes it):
//   prvs=KDDDSSSSSS=local@domain
// K the key number, DDD the expiry day modulo 1000, SSSSSS six hex digits of
// signature. Reading and writing the text only; signing lives in sign.ts.
import { unquoteLocalPart } from '../core/address'

/** Milliseconds in a day: day numbers count whole UTC days since 1970-01-01, as Exim does. */
export const DAY_MS = 86_400_000

/** The day stamp DDD counts modulo this. */
export const DAY_CYCLE = 1000

/** The longest address written on the wire, in octets (RFC 5321 §4.5.3.1.3: 256 with the brackets). */
export const MAX_ADDRESS_OCTETS = 254

/** The longest local part, in octets (RFC 5321 §4.5.3.1.1). */
export const MAX_LOCAL_PART_OCTETS = 64

/** The parts of a prvs tag. */
export interface ParsedTag {
  /** Key number, 0..9. */
  readonly keyId: number
  /** Expiry day modulo 1000, 0..999. */
  readonly expiryStamp: number
  /** The value of the six signature hex digits, 0..0xffffff. */
  readonly signature: number
  /** The original address in wire form, case kept: what a stripped recipient becomes. */
  readonly original: string
  /** The original address with its local part unquoted, case kept: the text the signature covers (lower-cased). */
  readonly mailbox: string
}

/** Characters before the original local part: `prvs=KDDDSSSSSS=`. */
export const TAG_LENGTH = 16

const TAG_PREFIX = /^"?prvs=/i
// `prvs=KDDDSSSSSS=`: the key digit, the day, the signature; prvs and the hex digits in any case.
const TAG_HEAD = /^prvs=(\d)(\d{3})([0-9a-f]{6})=/i
// A local part quoted already, as in Exim's `${prvs}` of a quoted address (`prvs=…="a b"@x`).
const QUOTED_STRING = /^"(?:[^"\\]|\\.)*"$/s
// RFC 5321 Dot-string, with RFC 6532's UTF-8 allowed in atext.
const DOT_STRING = /^[\w!#$%&'*+/=?^`{|}~\u0080-\uffff-]+(?:\.[\w!#$%&'*+/=?^`{|}~\u0080-\uffff-]+)*$/

/** Whole UTC days since 1970-01-01 at `nowMs`. */
export function dayNumber(nowMs: number): number {
  return Math.floor(nowMs / DAY_MS)
}

/** The DDD of a tag signed at `nowMs` that lives `lifetimeDays`: its expiry day modulo 1000. */
export function expiryStamp(nowMs: number, lifetimeDays: number): number {
  return mod(dayNumber(nowMs) + lifetimeDays, DAY_CYCLE)
}

/**
 * Days from today until the tag's expiry day, counted forward around the
 * 1000-day cycle: 0 on its last valid day, `lifetimeDays` on the day it was
 * signed, 999 the day after it expired.
 */
export function daysToExpiry(expiry: number, nowMs: number): number {
  return mod(expiry - dayNumber(nowMs), DAY_CYCLE)
}

/** Lower-case ASCII letters only, as Exim does (other bytes, UTF-8 among them, are left alone). */
export function asciiLower(text: string): string {
  // Not toLowerCase() on the whole: it would also change some non-ASCII letters.
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase())
}

/** Does the address start like a prvs tag (`prvs=`, any case, quoted or not), well formed or not? */
export function looksTagged(address: string): boolean {
  return TAG_PREFIX.test(address)
}

/** Split at the last `@` (as Exim does); undefined without a local part or a domain. */
export function splitAddress(address: string): { localPart: string; domain: string } | undefined {
  const at = address.lastIndexOf('@')
  if (at <= 0 || at === address.length - 1) return undefined
  const localPart = unquoteLocalPart(address.slice(0, at))
  if (localPart === '') return undefined
  return { localPart, domain: address.slice(at + 1) }
}

/** The wire form of an address: the local part quoted when it is not a plain dot-string. */
export function joinAddress(localPart: string, domain: string): string {
  const plain = DOT_STRING.test(localPart) || QUOTED_STRING.test(localPart)
  return `${plain ? localPart : quote(localPart)}@${domain}`
}

/** The tagged local part `prvs=KDDDSSSSSS=local`, from its parts (signature: 0..0xffffff). */
export function tagLocalPart(keyId: number, expiry: number, signature: number, localPart: string): string {
  const ddd = String(expiry).padStart(3, '0')
  return `prvs=${keyId}${ddd}${signature.toString(16).padStart(6, '0')}=${localPart}`
}

/**
 * The tag parts of `address` (wire form, no angle brackets), or undefined when
 * it is not exactly a prvs tag: `prvs=`, `prvs==x@y`, a key that is not one
 * digit, a day that is not three digits, a signature that is not six hex
 * digits, or no original local part or domain behind the tag. Letter case of
 * `prvs` and of the hex digits does not matter (Exim reads them case-blind).
 */
export function parseTag(address: string): ParsedTag | undefined {
  if (address.startsWith('"')) {
    // Quoted: unquote, read the tag, quote the original again if it needs it.
    const parts = splitAddress(address)
    const head = parts && TAG_HEAD.exec(parts.localPart)
    if (!parts || !head || parts.localPart.length <= TAG_LENGTH) return undefined
    const localPart = parts.localPart.slice(TAG_LENGTH)
    return tagParts(head, joinAddress(localPart, parts.domain), `${localPart}@${parts.domain}`)
  }
  const at = address.lastIndexOf('@')
  const head = TAG_HEAD.exec(address)
  if (!head || at <= TAG_LENGTH || at === address.length - 1) return undefined
  const original = address.slice(TAG_LENGTH)
  return tagParts(head, original, original)
}

function tagParts(head: RegExpExecArray, original: string, mailbox: string): ParsedTag {
  const [, keyId, expiry, signature] = head
  return {
    keyId: Number(keyId),
    expiryStamp: Number(expiry),
    signature: Number.parseInt(signature ?? '', 16),
    original,
    mailbox,
  }
}

function quote(localPart: string): string {
  return `"${localPart.replace(/["\\]/g, '\\$&')}"`
}

function mod(n: number, m: number): number {
  return ((n % m) + m) % m
}
