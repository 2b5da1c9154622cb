// One recipient of a bounce: who it is (exempt? which domain's action?), what
// its BATV tag says, and what becomes of it once the zones have answered.
// Pure: plain data in, plain data out; the clock is an argument.
import { unquoteLocalPart } from './address'
import { isNullSender, localPart, type EnvelopeAddress } from './sender'
import type { BatvSettings, InvalidReason, RecipientAction, Settings, Verdict } from './types'

/** A recipient's mailbox: local part unquoted, both parts lower case ('' when absent). */
export interface RecipientName {
  readonly localPart: string
  readonly domain: string
}

/** The mailbox of `address` (wire form, no angle brackets, or a bare local part). */
export function recipientName(address: string): RecipientName {
  const at = address.lastIndexOf('@')
  const localPart = unquoteLocalPart(at < 0 ? address : address.slice(0, at)).toLowerCase()
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
