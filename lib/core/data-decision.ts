// The decision at the end of DATA, when the sent-mail ledger has read what a
// machine's reply refers to. Each recipient is decided as at RCPT, with the
// ledger's score added; but a refusal now answers the whole message, so it is
// made only when every recipient would be refused. Pure.
import {
  decideBounceRecipient,
  roundScore,
  type BounceDecision,
  type LedgerScore,
  type RecipientName,
  type RecipientTag,
} from './recipient'
import type { ReplyKind, Settings, Verdict } from './types'

/** A recipient accepted at RCPT, as the decision at DATA needs it. */
export interface DataRecipient {
  /** Wire form, tag removed. */
  readonly address: string
  readonly rcpt: RecipientName
  readonly tag: Pick<RecipientTag, 'result' | 'score' | 'scored'>
}

export type Refused = Extract<BounceDecision, { cause: unknown }>

export type DataDecision =
  | {
      readonly action: 'accept'
      /**
       * ours: the ledger knows the mail it refers to; none: no recipient reaches a
       * refusal; some: only some would be refused, and one reply cannot refuse
       * only those, so the message goes on (fail open).
       */
      readonly why: 'ours' | 'none-refused' | 'some-refused'
      readonly score: number
    }
  | {
      readonly action: 'reject' | 'defer'
      readonly cause: Refused['cause']
      readonly score: number
      /** The first recipient refused with `action`: its reply is the message's. */
      readonly recipient: DataRecipient
    }

/** The ledger's score for its result: ours_score, not_ours_score, or nothing. */
export function ledgerScore(
  result: LedgerScore['result'],
  scores: { readonly ours: number; readonly notOurs: number },
): LedgerScore {
  return { result, score: result === 'ours' ? scores.ours : result === 'not-ours' ? scores.notOurs : 0 }
}

/**
 * Every recipient decided with the ledger's score; the message is refused when
 * all of them are, deferred when any of those is deferred (the milder answer).
 */
export function decideAtData(
  verdict: Verdict | undefined,
  recipients: readonly DataRecipient[],
  ledger: LedgerScore,
  settings: Settings,
): DataDecision {
  const base = roundScore((verdict?.score ?? 0) + (ledger.result === 'unknown' ? 0 : ledger.score))
  if (ledger.result === 'ours') return { action: 'accept', why: 'ours', score: base }
  const decided = recipients.map((r) => ({
    r,
    d: decideBounceRecipient(verdict, r.rcpt, r.tag, settings, ledger),
  }))
  const refused = decided.filter((x): x is { r: DataRecipient; d: Refused } => x.d.action !== 'accept')
  const score = Math.max(base, ...decided.map((x) => x.d.score))
  if (refused.length === 0) return { action: 'accept', why: 'none-refused', score }
  if (refused.length < decided.length) return { action: 'accept', why: 'some-refused', score }
  const first = refused.find((x) => x.d.action === 'defer') ?? refused[0]
  if (!first) return { action: 'accept', why: 'none-refused', score }
  return { action: first.d.action, cause: first.d.cause, score: first.d.score, recipient: first.r }
}

const KIND_WORDS: Record<ReplyKind, string> = {
  dsn: 'bounce',
  mdn: 'read receipt',
  'auto-reply': 'auto-reply',
  challenge: 'challenge',
  none: 'message',
}

/** The reply text for a message refused because the ledger never saw the mail it refers to. */
export function ledgerReplyText(kind: ReplyKind): string {
  return `Backscatter refused: this ${KIND_WORDS[kind]} is about a message that was not sent from here`
}
