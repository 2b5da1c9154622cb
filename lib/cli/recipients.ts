// explain's recipients: what the plugin's RCPT makes of each, through the same
// core (checkBounceRecipient, decideBounceRecipient, refusalText), with the
// BATV tag check of a recipient that is tagged or in a signing domain.
import type { Address } from '@haraka/email-address'

import { canCarryTag } from '../batv/sign'
import { looksTagged } from '../batv/tag'
import {
  decideBounceRecipient,
  notChecked,
  recipientName,
  tagResultText,
  type BatvResult,
  type Exemption,
  type RecipientTag,
} from '../core/recipient'
import { isNullSender, wireAddress } from '../core/sender'
import { refusal, refusalText } from '../core/verdict'
import { acceptWhy } from './decision'
import type { IpReport } from './lookups'
import type { Settings } from '../core/types'
import { checkBounceRecipient, untaggedAddress } from '../batv/recipient'

/** An address as given on the command line: `<>`, `<user@host>`, `<postmaster>`. */
export function addressText(a: Address): string {
  if (isNullSender(a)) return '<>'
  return a.host ? `<${a.user ?? ''}@${a.host}>` : `<${a.user ?? ''}>`
}

/** A recipient's tag check, as explain shows it. */
export interface TagLine {
  readonly result: BatvResult
  /** As the plugin records it under `backscatter` (`valid key 1`, `invalid key 2: bad signature`…). */
  readonly recorded: string
  readonly key?: number
  readonly reason?: string
  /** Why the tag was not checked, when it was not. */
  readonly why?: string
  /** What the tag adds to the zones' score (0 when it does not count). */
  readonly score: number
  readonly scored: boolean
  /** The address delivered to: the tag removed. */
  readonly original: string
}

export interface RecipientLine {
  readonly rcpt: string
  readonly action: 'accept' | 'reject' | 'defer'
  readonly why: string
  readonly reply: string
  /** The zones' score plus the tag's, compared with the threshold; null when nothing was scored. */
  readonly score: number | null
  /** For a recipient that is tagged or in a [batv] domain. */
  readonly tag?: TagLine
}

function tagLine(tag: RecipientTag, notCheckedWhy: string): TagLine {
  return {
    result: tag.result,
    recorded: tagResultText(tag),
    ...(tag.keyId === undefined ? {} : { key: tag.keyId }),
    ...(tag.reason === undefined ? {} : { reason: tag.reason }),
    ...(tag.result === 'not checked' ? { why: notCheckedWhy } : {}),
    score: tag.score,
    scored: tag.scored,
    original: tag.original,
  }
}

/** Why a tagged or signing-domain recipient's tag is not checked, when it is not. */
function notCheckedWhy(
  wire: string,
  exempt: boolean,
  checked: boolean,
  checkTags: boolean,
  settings: Settings,
): string {
  if (settings.batv.domains.size === 0) return 'BATV is off ([batv] domains is empty)'
  if (!checked) return 'not a checked bounce'
  if (!checkTags) return 'tags are checked on bounces from <> only ([batv] check_local_parts)'
  if (exempt) return 'exempt recipient'
  const { domain } = recipientName(wire)
  if (settings.batv.domains.has(domain) && !canCarryTag(wire)) {
    return 'too long to carry a tag (RFC 5321): never signed, judged as unsigned'
  }
  return `${domain || 'no domain'} is not in [batv] domains`
}

function exemptWhy(exempt: Exemption, domain: string): string {
  return exempt === 'exempt'
    ? 'exempt recipient ([main] exempt_recipients)'
    : `action off for ${domain} ([recipient_domains])`
}

/**
 * What the plugin does with recipient `rcpt` at `nowMs`: of a checked bounce
 * when `report` is given, else of mail it does not check (a tag to a signing
 * domain is only removed), and `uncheckedWhy` says why it is not checked. `checkTags`: the
 * sender is checked for tags (tagsCheckedFor).
 */
export function explainRecipient(
  rcpt: Address,
  report: IpReport | undefined,
  settings: Settings,
  nowMs: number,
  checkTags: boolean,
  uncheckedWhy = 'transaction not checked',
): RecipientLine {
  const wire = wireAddress(rcpt)
  const shown = addressText(rcpt)
  const showTag = looksTagged(wire) || settings.batv.domains.has(recipientName(wire).domain)
  const withTag = (tag: RecipientTag, exempt: boolean): { tag?: TagLine } =>
    showTag
      ? { tag: tagLine(tag, notCheckedWhy(wire, exempt, report !== undefined, checkTags, settings)) }
      : {}

  if (!report) {
    const tag = notChecked(untaggedAddress(wire, settings.batv))
    const why = uncheckedWhy
    return { rcpt: shown, action: 'accept', why, reply: '', score: null, ...withTag(tag, false) }
  }
  const { rcpt: name, tag, exempt } = checkBounceRecipient(wire, settings, nowMs, checkTags)
  if (exempt) {
    const why = exemptWhy(exempt, name.domain)
    return { rcpt: shown, action: 'accept', why, reply: '', score: null, ...withTag(tag, true) }
  }
  const d = decideBounceRecipient(report.verdict, name, tag, settings)
  const scored = { score: d.score, ...withTag(tag, false) }
  if (d.action === 'accept') {
    return { rcpt: shown, action: 'accept', why: acceptWhy(report, d.why, settings), reply: '', ...scored }
  }
  const why =
    d.cause === 'listing' ? 'score reached the threshold' : "score reached the threshold with the tag's"
  const reply = refusal(d.action, refusalText(d, report.verdict, wire, tag, settings)).line
  return { rcpt: shown, action: d.action, why, reply, ...scored }
}

/** The BATV results of the accepted recipients, for the header (as hook_data_post writes it). */
export function acceptedResults(lines: readonly RecipientLine[]): BatvResult[] {
  return lines.filter((l) => l.action === 'accept').map((l) => l.tag?.result ?? 'not checked')
}
