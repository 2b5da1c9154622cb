// Signed bounces (BATV, draft-levine-smtp-batv) in Exim's "prvs" format:
// sign an envelope sender, and check that a bounce is addressed to a signed
// sender of ours. Pure: no I/O, the clock is an argument.
//
// What is signed, and what is checked: the address lower-cased (ASCII letters)
// with its local part unquoted. That is what Exim's RCPT ACL check hashes
// (`${prvscheck {$local_part@$domain}…}`, where Exim has lower-cased and
// unquoted both parts, tag included), so a site running Exim beside this
// plugin gets one verdict for every tag: `PRVS=`, upper-case hex and an
// upper-case local part are valid on both; a signature over a mixed-case
// address (what Exim's `${prvs}` makes of a mixed-case return path) is invalid
// on both.
//
// Expiry: a tag is valid from signing until the end of its expiry day DDD, that
// is while DDD is today or at most `lifetimeDays` days ahead, counted forward
// around the 1000-day cycle (so 999 → 000 is one day). Exim's prvscheck instead
// accepts any DDD from today to 999 (and 000–006 from day 993 on): it agrees
// with this rule on every tag this rule accepts when lifetimeDays ≤ 7, and
// also accepts long-expired tags that this rule refuses.
import crypto from 'node:crypto'
import type { InvalidReason, TagKey } from '../core/types'

export type { InvalidReason } from '../core/types'

import {
  asciiLower,
  daysToExpiry,
  expiryStamp,
  joinAddress,
  looksTagged,
  MAX_ADDRESS_OCTETS,
  MAX_LOCAL_PART_OCTETS,
  parseTag,
  splitAddress,
  tagLocalPart,
  type ParsedTag,
} from './tag'

export { dayNumber, parseTag, type ParsedTag } from './tag'

/** Exim's `${prvs}` always signs for this many days; keep `lifetimeDays` at it in a fleet with Exim. */
export const EXIM_LIFETIME_DAYS = 7

/** The longest lifetime accepted. DDD repeats every 1000 days, so a lifetime must stay far below that. */
export const MAX_LIFETIME_DAYS = 365

/** Exim refuses HMAC secrets longer than this many bytes (one SHA-1 block). */
export const MAX_SECRET_BYTES = 64

/** A key ready to sign and check tags. Its secret is held in a KeyObject, which never prints it. */
export class BatvKey implements TagKey {
  /** Key number 0..9, the K of the tag. */
  readonly id: number
  readonly #secret: crypto.KeyObject

  private constructor(id: number, secret: crypto.KeyObject) {
    this.id = id
    this.#secret = secret
  }

  /**
   * The key numbered `id` (a digit 0..9) with `secret` (text, used as its
   * UTF-8 bytes, 1..64 of them as Exim allows), or the problem with them. The
   * problem's text never contains the secret.
   */
  static create(id: number, secret: string): BatvKey | { problem: string } {
    if (!isKeyId(id)) return { problem: `key number ${String(id)} is not a digit 0-9` }
    const problem = secretProblem(secret)
    if (problem) return { problem: `key ${id}: ${problem}` }
    return new BatvKey(id, crypto.createSecretKey(Buffer.from(secret, 'utf8')))
  }

  /** The six-hex-digit signature of `head` then `text`: the first 3 bytes of HMAC-SHA1, as a number 0..0xffffff. */
  signatureOf(text: string, head = ''): number {
    return crypto
      .createHmac('sha1', this.#secret)
      .update(head, 'utf8')
      .update(text, 'utf8')
      .digest()
      .readUIntBE(0, 3)
  }
}

/** What is wrong with a secret, or undefined: empty, or longer than Exim's 64 bytes. Never quotes it. */
export function secretProblem(secret: string): string | undefined {
  if (secret === '') return 'the secret is empty'
  const bytes = Buffer.byteLength(secret, 'utf8')
  if (bytes > MAX_SECRET_BYTES) {
    return `the secret is ${bytes} bytes long; Exim refuses secrets over ${MAX_SECRET_BYTES} bytes`
  }
  return undefined
}

/** The keys that check tags, by number, from numbered secrets; a key with a problem is left out. */
export function prepareKeys(secrets: ReadonlyMap<number, string>): {
  keys: ReadonlyMap<number, BatvKey>
  problems: string[]
} {
  const keys = new Map<number, BatvKey>()
  const problems: string[] = []
  for (const [id, secret] of secrets) {
    const key = BatvKey.create(id, secret)
    if (key instanceof BatvKey) keys.set(id, key)
    else problems.push(key.problem)
  }
  return { keys, problems }
}

/** Why an address was left unsigned. */
export type SignRefusal =
  /** `<>`: a bounce must never be signed (nor bounced). */
  | 'null sender'
  /** No local part or no domain. */
  | 'not an address'
  /** Starts with `prvs=` already: never sign twice. */
  | 'already tagged'
  /** The signed local part would be over 64 octets, or the address over 254 (RFC 5321 §4.5.3.1). */
  | 'too long'
  /** `lifetimeDays` is not a whole number 1..MAX_LIFETIME_DAYS, or `nowMs` not a finite number. */
  | 'bad lifetime or clock'

export type SignOutcome = { ok: true; address: string } | { ok: false; reason: SignRefusal }

/**
 * The signed form of `address` (wire form, no angle brackets): lower-cased,
 * tagged with `key`, valid from `nowMs` until the end of the day
 * `lifetimeDays` later (UTC). Or why it stays unsigned.
 */
export function signAddress(address: string, key: TagKey, lifetimeDays: number, nowMs: number): SignOutcome {
  if (address === '') return { ok: false, reason: 'null sender' }
  if (!isLifetimeDays(lifetimeDays) || !Number.isFinite(nowMs)) {
    return { ok: false, reason: 'bad lifetime or clock' }
  }
  if (looksTagged(address)) return { ok: false, reason: 'already tagged' }
  const parts = splitAddress(address)
  if (!parts) return { ok: false, reason: 'not an address' }
  const localPart = asciiLower(parts.localPart)
  const domain = asciiLower(parts.domain)
  const expiry = expiryStamp(nowMs, lifetimeDays)
  const signature = key.signatureOf(signedText(key.id, expiry, `${localPart}@${domain}`))
  const signed = joinAddress(tagLocalPart(key.id, expiry, signature, localPart), domain)
  if (!fitsRfc5321(signed)) return { ok: false, reason: 'too long' }
  return { ok: true, address: signed }
}

/**
 * Can `address` (wire form) carry a tag within RFC 5321's limits: a local part
 * of at most 64 octets and an address of at most 254 once tagged? An address
 * that cannot is never signed, so its bounces are not expected back tagged.
 */
export function canCarryTag(address: string): boolean {
  const parts = splitAddress(address)
  return parts !== undefined && fitsRfc5321(joinAddress(tagLocalPart(0, 0, 0, parts.localPart), parts.domain))
}

function fitsRfc5321(address: string): boolean {
  const at = address.lastIndexOf('@')
  return (
    Buffer.byteLength(address.slice(0, at), 'utf8') <= MAX_LOCAL_PART_OCTETS &&
    Buffer.byteLength(address, 'utf8') <= MAX_ADDRESS_OCTETS
  )
}

/** The result of checking a recipient address for a tag. `original` is the address to deliver to. */
export type TagCheck =
  | { status: 'valid'; keyId: number; original: string }
  | { status: 'invalid'; reason: 'malformed'; original: string }
  | { status: 'invalid'; reason: Exclude<InvalidReason, 'malformed'>; keyId: number; original: string }
  | { status: 'missing'; original: string }

/**
 * Check the tag of `address` (wire form, no angle brackets) with `keys` at
 * `nowMs`. `missing`: no tag, `original` is the address itself; `invalid`
 * with a reason: `original` is the address without the tag, except for a
 * malformed one (no tag can be removed); `valid`: a tag this server's keys
 * made within `lifetimeDays` (a whole number 1..MAX_LIFETIME_DAYS).
 * Signatures are compared in constant time.
 */
export function verifyAddress(
  address: string,
  keys: ReadonlyMap<number, TagKey>,
  lifetimeDays: number,
  nowMs: number,
): TagCheck {
  if (!looksTagged(address)) return { status: 'missing', original: address }
  const tag = parseTag(address)
  if (!tag) return { status: 'invalid', reason: 'malformed', original: address }
  const { keyId, original } = tag
  const key = keys.get(keyId)
  if (!key) return { status: 'invalid', reason: 'unknown key', keyId, original }
  if (!signatureMatches(key, tag)) {
    return { status: 'invalid', reason: 'bad signature', keyId, original }
  }
  if (!(daysToExpiry(tag.expiryStamp, nowMs) <= lifetimeDays)) {
    return { status: 'invalid', reason: 'expired', keyId, original }
  }
  return { status: 'valid', keyId, original }
}

/** Is `n` a whole number of days that a tag may live? */
export function isLifetimeDays(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= MAX_LIFETIME_DAYS
}

/** Is `n` a key number, a digit 0..9? */
export function isKeyId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 9
}

// The text the signature covers: key digit, three-digit day, then the address.
function signedText(keyId: number, expiry: number, address: string): string {
  return `${signedHead(keyId, expiry)}${address}`
}

function signedHead(keyId: number, expiry: number): string {
  return `${keyId}${String(expiry).padStart(3, '0')}`
}

// Over the lower-cased address only, as Exim's RCPT ACL check: one verdict on both.
function signatureMatches(key: TagKey, tag: ParsedTag): boolean {
  const expected = key.signatureOf(asciiLower(tag.mailbox), signedHead(tag.keyId, tag.expiryStamp))
  return crypto.timingSafeEqual(signatureBytes(tag.signature), signatureBytes(expected))
}

function signatureBytes(signature: number): Buffer {
  const bytes = Buffer.alloc(3)
  bytes.writeUIntBE(signature, 0, 3)
  return bytes
}
