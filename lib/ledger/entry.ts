// Where a sent message lives in the ledger: a keyed hash of its Message-ID,
// split into a per-day bucket (a Redis hash) and a short field of it. Many
// fields share one small hash, which Redis keeps as a compact listpack, so a
// message costs a few bytes instead of a key of its own (BENCHMARKS.md).
import crypto, { type KeyObject } from 'node:crypto'

/** Milliseconds in a day: days count whole UTC days since 1970-01-01. */
export const DAY_MS = 86_400_000

/** Buckets per day: 2^12, so a bucket stays a listpack (512 fields) up to about 1.8 M messages a day. */
export const BUCKET_BITS = 12

/** Bytes of the hash kept as the field: a false match needs 48 equal bits in the same bucket. */
export const FIELD_BYTES = 6

/** Every key of the ledger starts with this. */
export const KEY_PREFIX = 'bs:l:'

/**
 * A sorted set whose member for a key (sinceMember) scores the first whole day
 * from which the ledger holds every message sent under that key: the day after
 * it started recording, or after a record was lost. A sorted set, so that
 * ZADD NX sets it once and ZADD GT only ever moves it later, in one command
 * each.
 */
export const SINCE_KEY = `${KEY_PREFIX}since`

/**
 * The member of SINCE_KEY for a ledger key: a new key finds none of what the
 * old one recorded, so it starts a ledger of its own, young for a window,
 * rather than call every bounce of the mail sent before "not ours".
 */
export function sinceMember(key: KeyObject): string {
  return `start:${crypto.createHmac('sha256', key).update(SINCE_KEY).digest('hex').slice(0, 16)}`
}

/** The bucket and the field that stand for one Message-ID. */
export interface LedgerEntry {
  /** 0 .. 2^BUCKET_BITS - 1: the hash's first bits. */
  readonly bucket: number
  readonly field: Buffer
}

/** Whole UTC days since 1970-01-01 at `ms`. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS)
}

/**
 * A Message-ID as both ends compare it: the text between < and >, without the
 * spaces and line folding that a header may put in, the part after the last @
 * lower-cased. The domain is case-insensitive and MTAs that quote a header
 * (in a bounce or a References list) sometimes fold or re-case it; the left
 * part is kept as written. Undefined when nothing is left.
 */
export function canonicalMessageId(raw: string): string | undefined {
  const open = raw.indexOf('<')
  const close = open < 0 ? -1 : raw.indexOf('>', open + 1)
  const inside = open >= 0 && close > open ? raw.slice(open + 1, close) : raw
  const id = inside.replace(/\s+/g, '')
  if (id === '') return undefined
  const at = id.lastIndexOf('@')
  return at < 0 ? id : id.slice(0, at) + id.slice(at).toLowerCase()
}

/** The entry of a Message-ID under `key`, or undefined when the text holds no Message-ID. */
export function ledgerEntry(key: KeyObject, messageId: string): LedgerEntry | undefined {
  const id = canonicalMessageId(messageId)
  if (id === undefined) return undefined
  const hash = crypto.createHmac('sha256', key).update(id, 'utf8').digest()
  // The bucket from the first two bytes, the field from the next six: no bit serves both.
  return { bucket: hash.readUInt16BE(0) >> (16 - BUCKET_BITS), field: hash.subarray(2, 2 + FIELD_BYTES) }
}

/** The Redis key of one day's bucket: `bs:l:<day>:<bucket in hex>`. */
export function bucketKey(day: number, bucket: number): string {
  return `${KEY_PREFIX}${day}:${bucket.toString(16).padStart(Math.ceil(BUCKET_BITS / 4), '0')}`
}

const BUCKET_KEY = new RegExp(`^${KEY_PREFIX}(\\d+):[0-9a-f]+$`)

/** The day of a bucket's key, the inverse of bucketKey; undefined for any other key. */
export function dayOfBucketKey(key: string): number | undefined {
  const m = BUCKET_KEY.exec(key)
  return m ? Number(m[1]) : undefined
}

/** Seconds a bucket lives after its last write: the window and the day it was written on. */
export function bucketTtlSeconds(windowDays: number): number {
  return ((windowDays + 1) * DAY_MS) / 1000
}

/** The days a check looks at on `today`: today and the `windowDays` before it. */
export function daysOfWindow(today: number, windowDays: number): number[] {
  return Array.from({ length: windowDays + 1 }, (_, i) => today - i)
}
