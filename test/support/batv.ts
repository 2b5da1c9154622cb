// Shared by the tests of the BATV core (batv*.test.ts): keys, signing that must
// succeed, and the tag computed by the letter of the format as a reference.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'

import { BatvKey, prepareKeys, signAddress } from '../../lib/batv/sign'
import { DAY_MS } from '../../lib/batv/tag'

/** The DOMAIN.md example's day. */
export const DAY = 20785

/** Noon UTC of day number `day`: far from midnight, so no test depends on the hour. */
export const noonOf = (day: number): number => day * DAY_MS + DAY_MS / 2

export function key(id: number, secret: string): BatvKey {
  const k = BatvKey.create(id, secret)
  assert.ok(k instanceof BatvKey, `key ${id} should be usable`)
  return k
}

/** The DOMAIN.md example's key: 1, secret s3cret. */
export const k1 = key(1, 's3cret')

export function keysOf(entries: [number, string][]): ReadonlyMap<number, BatvKey> {
  const { keys, problems } = prepareKeys(new Map(entries))
  assert.deepEqual(problems, [])
  return keys
}

export function sign(address: string, k: BatvKey, lifetimeDays: number, nowMs: number): string {
  const out = signAddress(address, k, lifetimeDays, nowMs)
  assert.ok(out.ok, `${address} should be signed, got ${JSON.stringify(out)}`)
  return out.address
}

/** The tag by the letter of the format, computed with node:crypto as an independent reference. */
export function referenceTag(address: string, keyId: number, secret: string, expiry: number): string {
  const ddd = String(expiry % 1000).padStart(3, '0')
  const hex = crypto.createHmac('sha1', secret).update(`${keyId}${ddd}${address}`).digest('hex').slice(0, 6)
  return `prvs=${keyId}${ddd}${hex}=${address}`
}
