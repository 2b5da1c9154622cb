// One recipient of a bounce: who it is (exempt? which domain's action?), what
// its BATV tag says, and what becomes of it once the zones have answered.
// Pure: plain data in, plain data out; the clock is an argument.
import { canCarryTag, parseTag, verifyAddress, type InvalidReason } from './batv'
import { looksTagged } from './batv/tag'
import { isNullSender, localPart, type EnvelopeAddress } from './sender'
import type { BatvSettings, RecipientAction, Settings } from './settings'
import type { Verdict } from './verdict'

/** A recipient's mailbox: local part unquoted, both parts lower case ('' when absent). */
export interface RecipientName {
  readonly localPart: string
  readonly domain: string
}

/** The mailbox of `address` (wire form, no angle brackets, or a bare local part). */
export function recipientName(address: string): RecipientName {
  const at = address.lastIndexOf('@')
  const local = at < 0 ? address : address.slice(0, at)
  const quoted = local.length >= 2 && local.startsWith('"') && local.endsWith('"')
  const localPart = (quoted ? local.slice(1, -1).replace(/\\(.)/g, '$1') : local).toLowerCase()
  return { localPart, domain: at < 0 ? '' : address.slice(at + 1).toLowerCase() }
}

/** Is the recipient listed by local part, by address or by @domain? */
export function matchesRecipient(rcpt: RecipientName, list: ReadonlySet<string>): boolean {
  if (list.has(rcpt.localPart)) return true
  if (rcpt.domain === '') return false
  return list.has(`${rcpt.localPart}@${rcpt.domain}`) || list.has(`@${rcpt.domain}`)
}

/** RFC 5321 §4.5.1: postmaster (and conventionally abuse) must still get mail; and whoever the operator names. */
export function isExempt(rcpt: RecipientName, settings: Settings): boolean {
  return matchesRecipient(rcpt, settings.exemptRecipients)
}

/** Does mail to this recipient leave with the sender unsigned ([batv] unsigned_recipients)? */
export function isUnsignedDestination(rcpt: RecipientName, batv: BatvSettings): boolean {
  if (batv.unsignedRecipients.size === 0) return false
  const list = batv.unsignedRecipients
  return list.has(`${rcpt.localPart}@${rcpt.domain}`) || list.has(`@${rcpt.domain}`)
}

/** The action for a recipient's domain: `[recipient_domains]`, else `[main] action`. */
export function recipientAction(rcpt: RecipientName, settings: Settings): RecipientAction {
  return settings.recipientActions.get(rcpt.domain) ?? settings.action
}

export type BatvResult = 'valid' | 'invalid' | 'missing' | 'not checked'

/** What a recipient's tag says, and what it adds to the score. */
export interface RecipientTag {
  readonly result: BatvResult
  /** The tag's key number, when it has one. */
  readonly keyId?: number
  readonly reason?: InvalidReason
  /** The address to deliver to (wire form): the tag removed wherever one can be. */
  readonly original: string
  /** What the result adds to the zones' score. */
  readonly score: number
  /** False for a result that adds nothing: not checked, or missing before [batv] missing_from. */
  readonly scored: boolean
}

export function notChecked(address: string): RecipientTag {
  return { result: 'not checked', original: address, score: 0, scored: false }
}

/**
 * Are the recipients of mail from `from` expected to carry a tag? Only a
 * bounce's: the null sender, as Exim checks, or a local part the operator
 * names in [batv] check_local_parts. Mail from postmaster is ordinary mail.
 */
export function tagsCheckedFor(from: EnvelopeAddress, batv: BatvSettings): boolean {
  if (batv.domains.size === 0) return false
  return isNullSender(from) || batv.checkLocalParts.has(localPart(from))
}

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
  /** In exempt_recipients, or its domain's action is off: always accepted, its tag not checked. */
  readonly exempt: boolean
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
  if (isExempt(rcpt, settings) || recipientAction(rcpt, settings) === 'off') {
    return { rcpt, tag: notChecked(tag.original), exempt: true }
  }
  return { rcpt, tag, exempt: false }
}

/**
 * The address without its tag, for mail that is not a checked bounce (a reply
 * to a return path): any well-formed tag to a signing domain is removed.
 */
export function untaggedAddress(address: string, batv: BatvSettings): string {
  if (!looksTagged(address) || !batv.domains.has(recipientName(address).domain)) return address
  return parseTag(address)?.original ?? address
}

/** How the results show a recipient's tag: the result first, then the key and the reason. */
export function tagResultText(tag: RecipientTag): string {
  const key = tag.keyId === undefined ? '' : ` key ${tag.keyId}`
  const reason = tag.reason ? `: ${tag.reason}` : ''
  const unscored = tag.result === 'missing' && !tag.scored ? ' (not scored before [batv] missing_from)' : ''
  return `${tag.result}${key}${reason}${unscored}`
}

export type BounceDecision =
  | {
      readonly action: 'accept'
      readonly why: 'not-listed' | 'below-threshold' | 'exempt' | 'off' | 'score-only'
      readonly score: number
    }
  | { readonly action: 'reject' | 'defer'; readonly cause: 'listing' | 'batv'; readonly score: number }

const round = (n: number): number => Math.round(n * 1000) / 1000

/**
 * What to do with one recipient of a checked bounce: the zones' score plus the
 * tag's, compared with the threshold, then the recipient's action. A refusal
 * is caused by the listing when the zones alone reach the threshold, else by
 * the tag. `verdict` undefined: the lookup failed, the zones add nothing.
 */
export function decideBounceRecipient(
  verdict: Verdict | undefined,
  rcpt: RecipientName,
  tag: Pick<RecipientTag, 'score' | 'scored'>,
  settings: Settings,
): BounceDecision {
  const score = round((verdict?.score ?? 0) + (tag.scored ? tag.score : 0))
  if (!verdict?.listed.length && !tag.scored) return { action: 'accept', why: 'not-listed', score }
  if (score < settings.threshold) return { action: 'accept', why: 'below-threshold', score }
  if (isExempt(rcpt, settings)) return { action: 'accept', why: 'exempt', score }
  const action = recipientAction(rcpt, settings)
  if (action === 'off') return { action: 'accept', why: 'off', score }
  if (action === 'score') return { action: 'accept', why: 'score-only', score }
  return { action, cause: verdict?.actionable ? 'listing' : 'batv', score }
}
