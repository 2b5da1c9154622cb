// A bounce's recipient and its tag: checked when BATV is on and the sender is
// checked for tags, removed from the address either way. Pure: plain data in,
// plain data out; the clock is an argument.
import {
  exemption,
  notChecked,
  recipientName,
  type Exemption,
  type RecipientName,
  type RecipientTag,
} from '../core/recipient'
import type { BatvSettings, Settings } from '../core/types'
import { canCarryTag, parseTag, verifyAddress } from './sign'
import { looksTagged } from './tag'

/**
 * Check the tag of a bounce's recipient `address` (wire form) at `nowMs`.
 * Only recipients in a signing domain are checked, and an untagged address too
 * long to carry a tag is judged as an unsigned domain's: it was never signed.
 */
export function checkRecipientTag(address: string, batv: BatvSettings, nowMs: number): RecipientTag {
  if (!batv.domains.has(recipientName(address).domain)) return notChecked(address)
  const check = verifyAddress(address, batv.keys, batv.lifetimeDays, nowMs)
  if (check.status === 'missing' && !canCarryTag(address)) return notChecked(address)
  const { scores } = batv
  if (check.status === 'valid') {
    return {
      result: 'valid',
      keyId: check.keyId,
      original: check.original,
      score: scores.valid,
      scored: true,
    }
  }
  if (check.status === 'invalid') {
    const keyId = 'keyId' in check ? { keyId: check.keyId } : {}
    const { reason, original } = check
    return { result: 'invalid', ...keyId, reason, original, score: scores.invalid, scored: true }
  }
  const scored = batv.missingFromMs !== undefined && nowMs >= batv.missingFromMs
  return { result: 'missing', original: address, score: scored ? scores.missing : 0, scored }
}

/** A recipient of a checked bounce as RCPT sees it, before the zones have answered. */
export interface BounceRecipient {
  /** The mailbox, its tag removed. */
  readonly rcpt: RecipientName
  /** What its tag says; `not checked` when BATV is off, the sender is not checked for tags, or the recipient is exempt. */
  readonly tag: RecipientTag
  /** Why it is always accepted, its tag not checked (see exemption); undefined when it is not. */
  readonly exempt: Exemption | undefined
}

/**
 * The recipient `address` (wire form) of a checked bounce at `nowMs`: its tag
 * checked when `checkTags` (see tagsCheckedFor), else only removed, and
 * whether it is exempt. The plugin's RCPT and the command's explain both
 * start from this.
 */
export function checkBounceRecipient(
  address: string,
  settings: Settings,
  nowMs: number,
  checkTags: boolean,
): BounceRecipient {
  const tag = checkTags
    ? checkRecipientTag(address, settings.batv, nowMs)
    : notChecked(untaggedAddress(address, settings.batv))
  const rcpt = recipientName(tag.original)
  const exempt = exemption(rcpt, settings)
  return { rcpt, tag: exempt ? notChecked(tag.original) : tag, exempt }
}

/**
 * The address without its tag, for mail that is not a checked bounce (a reply
 * to a return path): any well-formed tag to a signing domain is removed.
 */
export function untaggedAddress(address: string, batv: BatvSettings): string {
  if (!looksTagged(address) || !batv.domains.has(recipientName(address).domain)) return address
  return parseTag(address)?.original ?? address
}
