import { cleanText } from './answer'
import {
  decideBounceRecipient,
  notChecked,
  recipientName,
  roundScore,
  type BatvResult,
  type BounceDecision,
  type RecipientTag,
} from './recipient'
import { fillTemplate } from './template'
import type {
  Action,
  LedgerResult,
  ListedOutcome,
  Settings,
  Verdict,
  ZoneOutcome,
  ZoneSettings,
} from './types'

/** Longest reply text; with the code it stays inside RFC 5321's 512-octet reply line. */
export const MAX_REPLY_LENGTH = 400

/** Score of one listing: the best per-answer score that matches, else the zone's score. */
export function listingScore(zone: ZoneSettings, codes: readonly string[]): number {
  let best: number | undefined
  for (const code of codes) {
    const s = zone.answerScores.get(code)
    if (s !== undefined && (best === undefined || s > best)) best = s
  }
  return best ?? zone.score
}

/** Sum the listings SpamAssassin style and compare with the threshold. */
export function decideVerdict(ip: string, outcomes: readonly ZoneOutcome[], settings: Settings): Verdict {
  const scored: { outcome: ListedOutcome; score: number }[] = []
  for (const o of outcomes) {
    if (o.status !== 'listed') continue
    const zone = settings.zones.find((z) => z.name === o.zone)
    scored.push({ outcome: o, score: zone ? listingScore(zone, o.codes) : 0 })
  }
  scored.sort((a, b) => b.score - a.score)
  const score = roundScore(scored.reduce((sum, s) => sum + s.score, 0))
  return {
    ip,
    outcomes,
    listed: scored.map((s) => s.outcome),
    score,
    actionable: scored.length > 0 && score >= settings.threshold,
  }
}

/**
 * What the zones alone make of one recipient of a checked transaction, its tag
 * not checked. `recipient`: a local part, or an address (then exempt addresses
 * and @domains, and the domain's action in [recipient_domains], apply too).
 */
export function decideRecipient(verdict: Verdict, recipient: string, settings: Settings): BounceDecision {
  return decideBounceRecipient(verdict, recipientName(recipient), notChecked(recipient), settings)
}

const HAS_URL = /\bhttps?:\/\/|\bwww\./i

/**
 * The reply text for a refused recipient, from `[main] message`. `{url}` is the
 * zone's lookup_url, or the zone's name when it has none or the reason holds a URL.
 */
export function formatReply(verdict: Verdict, settings: Settings): string {
  const top = verdict.listed[0]
  const zoneName = top?.zone ?? ''
  const zone = settings.zones.find((z) => z.name === zoneName)
  const reason = top?.reason || 'listed'
  // A reason that already points somewhere (the list's own TXT does) is not repeated.
  const url =
    zone?.lookupUrl && !HAS_URL.test(reason) ? zone.lookupUrl.replaceAll('{ip}', verdict.ip) : zoneName
  const values = {
    ip: verdict.ip,
    zone: zoneName,
    reason,
    url,
    score: String(verdict.score),
  }
  return cleanText(fillTemplate(settings.messageTemplate, values), MAX_REPLY_LENGTH)
}

/**
 * Value of the `[main] header` field: score; `listed=` the zones that list the
 * client, `none` only when every zone answered and none lists it, `unknown`
 * when none lists it but some zone gave no answer; `unchecked=` the zones that
 * gave no answer (the lookup failed, the zone is suspended, or it is not asked
 * for this address family), so that "not checked" never reads as "clean"; the
 * BATV results of the accepted recipients (`batv`: given when BATV is on;
 * `none` when no recipient was checked); what the sent-mail ledger said of
 * the mail it refers to (`ledger`, when it was asked); the client IP.
 */
export function headerValue(
  verdict: Verdict,
  batv?: readonly BatvResult[],
  ledger?: { readonly result: LedgerResult },
): string {
  const parts = [`score=${verdict.score}`]
  const unchecked = verdict.outcomes.filter((o) => o.status === 'error' || o.status === 'skipped')
  const listed = verdict.listed.length
    ? verdict.listed.map((o) => o.zone).join(',')
    : unchecked.length
      ? 'unknown'
      : 'none'
  parts.push(`listed=${listed}`)
  if (unchecked.length) parts.push(`unchecked=${unchecked.map((o) => o.zone).join(',')}`)
  if (batv) {
    const checked = [...new Set(batv.filter((r) => r !== 'not checked'))]
    parts.push(`batv=${checked.length ? checked.join(',') : 'none'}`)
  }
  if (ledger) parts.push(`ledger=${ledger.result}`)
  parts.push(`ip=${verdict.ip}`)
  return parts.join('; ')
}

/** The header of a message a machine sent in reply from a sender that is not bounce-type: no zone was asked, the ledger was. */
export function ledgerHeaderValue(result: LedgerResult): string {
  return `ledger=${result}`
}

/** The reply text for a recipient refused because of its tag, not because of a listing. */
export function formatBatvReply(address: string, tag: Pick<RecipientTag, 'result'>): string {
  const text =
    tag.result === 'invalid'
      ? `Bounce refused: the signature (BATV) of <${address}> is invalid or expired; this bounce is not about mail sent from here`
      : `Bounce refused: <${address}> takes bounces only at its signed return path (BATV); this bounce is not about mail sent from here`
  return cleanText(text, MAX_REPLY_LENGTH)
}

/** The reply text of a refused recipient: the listing's when the zones alone refuse, else its tag's. */
export function refusalText(
  decision: Extract<BounceDecision, { cause: unknown }>,
  verdict: Verdict | undefined,
  address: string,
  tag: Pick<RecipientTag, 'result'>,
  settings: Settings,
): string {
  return decision.cause === 'listing' && verdict
    ? formatReply(verdict, settings)
    : formatBatvReply(address, tag)
}

/** How a refused recipient is answered; the plugin and the command both use it. */
export interface Refusal {
  /** SMTP reply code: 550 to reject, 450 to defer. */
  readonly code: 550 | 450
  /** Subject and detail of the enhanced status code (RFC 3463 X.7.1, delivery not authorized), as haraka-dsn takes them. */
  readonly subject: 7
  readonly detail: 1
  /** The enhanced status code: `5.7.1` or `4.7.1`. */
  readonly enhanced: string
  readonly text: string
  /** The reply as the client sees it: `550 5.7.1 text`. */
  readonly line: string
}

/** The reply for a refused recipient: 550 5.7.1 to reject, 450 4.7.1 to defer. */
export function refusal(action: Exclude<Action, 'score'>, text: string): Refusal {
  const code = action === 'reject' ? 550 : 450
  const enhanced = `${action === 'reject' ? 5 : 4}.7.1`
  return { code, subject: 7, detail: 1, enhanced, text, line: `${code} ${enhanced} ${text}` }
}
