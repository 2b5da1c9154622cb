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

/**
 * Is the recipient in a list of local parts, addresses and @domains (as the
 * settings read them)? A quoted local part that holds an `@` is still a local
 * part: `"noreply@example.com"@example.net` is not noreply@example.com.
 */
export function matchesRecipient(rcpt: RecipientName, list: ReadonlySet<string>): boolean {
  if (!rcpt.localPart.includes('@') && list.has(rcpt.localPart)) return true
  if (rcpt.domain === '') return false
  return list.has(`${rcpt.localPart}@${rcpt.domain}`) || list.has(`@${rcpt.domain}`)
}

/** RFC 5321 §4.5.1: postmaster (and conventionally abuse) must still get mail; and whoever the operator names. */
export function isExempt(rcpt: RecipientName, settings: Settings): boolean {
  return matchesRecipient(rcpt, settings.exemptRecipients)
}

/** Does mail to this recipient leave with the sender unsigned ([batv] unsigned_recipients: addresses and @domains)? */
export function isUnsignedDestination(rcpt: RecipientName, batv: BatvSettings): boolean {
  return matchesRecipient(rcpt, batv.unsignedRecipients)
}

/** The action for a recipient's domain: `[recipient_domains]`, else `[main] action`. */
export function recipientAction(rcpt: RecipientName, settings: Settings): RecipientAction {
  return settings.recipientActions.get(rcpt.domain) ?? settings.action
}

/** Why a recipient always gets its mail: named in [main] exempt_recipients, or its domain's action is off. */
export type Exemption = 'exempt' | 'off'

/** Why this recipient is never refused and its tag never checked, or undefined when it may be. */
export function exemption(rcpt: RecipientName, settings: Settings): Exemption | undefined {
  if (isExempt(rcpt, settings)) return 'exempt'
  return recipientAction(rcpt, settings) === 'off' ? 'off' : undefined
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

/** What becomes of one recipient of a checked bounce, and the score it was judged on. */
export type BounceDecision =
  | {
      readonly action: 'accept'
      readonly why: 'not-listed' | 'below-threshold' | Exemption | 'score-only' | 'ours'
      readonly score: number
    }
  | {
      readonly action: 'reject' | 'defer'
      /** What reached the threshold: the zones alone, with the tag's score, or with the ledger's. */
      readonly cause: 'listing' | 'batv' | 'ledger'
      readonly score: number
    }

/** A score to three decimals, as written in the settings: 0.7 + 0.1 is 0.8, reaches a threshold of 0.8 and reads 0.8. */
export function roundScore(n: number): number {
  return Math.round(n * 1000) / 1000
}

/** What the sent-mail ledger said about the message, and what that adds to the score. */
export interface LedgerScore {
  readonly result: 'ours' | 'not-ours' | 'unknown'
  /** Added to the zones' and the tag's score; 0 for unknown. */
  readonly score: number
}

/**
 * What to do with one recipient of a checked bounce: the zones' score plus the
 * tag's (plus the ledger's, at the end of DATA), compared with the threshold,
 * then the recipient's action. A refusal is caused by the listing when the
 * zones alone reach the threshold, else by the tag when it gets there with
 * them, else by the ledger. `verdict` undefined: the lookup failed or was not
 * made, the zones add nothing. A message the ledger knows as ours is a bounce
 * of our own mail, never backscatter: it is accepted whatever the rest says.
 */
export function decideBounceRecipient(
  verdict: Verdict | undefined,
  rcpt: RecipientName,
  tag: Pick<RecipientTag, 'score' | 'scored'>,
  settings: Settings,
  ledger?: LedgerScore,
): BounceDecision {
  const zonesAndTag = roundScore((verdict?.score ?? 0) + (tag.scored ? tag.score : 0))
  const ledgerScored = ledger !== undefined && ledger.result !== 'unknown'
  const score = roundScore(zonesAndTag + (ledgerScored ? ledger.score : 0))
  if (ledger?.result === 'ours') return { action: 'accept', why: 'ours', score }
  if (!verdict?.listed.length && !tag.scored && !ledgerScored)
    return { action: 'accept', why: 'not-listed', score }
  if (score < settings.threshold) return { action: 'accept', why: 'below-threshold', score }
  const exempt = exemption(rcpt, settings)
  if (exempt) return { action: 'accept', why: exempt, score }
  const action = recipientAction(rcpt, settings)
  if (action === 'reject' || action === 'defer') {
    const cause = verdict?.actionable ? 'listing' : zonesAndTag >= settings.threshold ? 'batv' : 'ledger'
    return { action, cause, score }
  }
  return { action: 'accept', why: 'score-only', score }
}
