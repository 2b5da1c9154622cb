// What the plugin does with a bounce, in words: accept and why, or the reply it refuses with.
import type { BounceDecision } from '../core/recipient'
import { decideRecipient, formatReply, refusal } from '../core/verdict'
import type { IpReport } from './lookups'
import type { Settings, Verdict } from '../core/types'

type AcceptWhy = Extract<BounceDecision, { action: 'accept' }>['why']

const ACCEPT_WHY: Record<AcceptWhy, string> = {
  'not-listed': 'not listed',
  'below-threshold': 'score below the threshold',
  exempt: 'exempt recipient ([main] exempt_recipients)',
  off: "the recipient domain's action is off ([recipient_domains])",
  'score-only': 'action is score: the score is recorded, nothing is refused',
  ours: 'the sent-mail ledger shows it is about mail sent from here',
}

/**
 * Why a recipient is accepted. A zone that gave no answer is named: the plugin
 * goes on without it (fails open), which is not the same as "not listed".
 */
export function acceptWhy(report: IpReport, why: AcceptWhy, settings: Settings): string {
  if (why !== 'not-listed' && why !== 'below-threshold') return ACCEPT_WHY[why]
  if (report.failed.length) {
    const named = settings.zones.length > 1
    const failures = report.failed.map((f) => (named ? `${f.zone}: ${f.reason}` : f.reason)).join('; ')
    const answered = report.rows.filter((r) => r.counted && r.status === 'not-listed').map((r) => r.zone)
    const before =
      why === 'below-threshold'
        ? `${ACCEPT_WHY[why]}; `
        : answered.length
          ? `not listed on ${answered.join(', ')}; `
          : ''
    return `${before}lookup failed (${failures}), the plugin fails open`
  }
  if (why === 'not-listed' && !report.rows.some((r) => r.counted)) {
    const details = [...new Set(report.rows.map((r) => r.detail))].join('; ')
    const queried = report.rows.some((r) => r.status !== 'skipped')
    return `${queried ? 'no zone in use' : 'no zone queried'} (${details})`
  }
  return ACCEPT_WHY[why]
}

/** The reply line a refused recipient gets: `550 5.7.1 text` or `450 4.7.1 text`. */
export function replyLine(action: 'reject' | 'defer', verdict: Verdict, settings: Settings): string {
  return refusal(action, formatReply(verdict, settings)).line
}

export interface BounceVerdict {
  readonly action: 'accept' | 'reject' | 'defer'
  readonly why: string
  readonly score: number
  readonly threshold: number
  readonly reply: string
}

/** What a bounce from the report's IP to an ordinary (not exempt) recipient would get. */
export function bounceVerdict(report: IpReport, settings: Settings): BounceVerdict {
  const common = { score: report.verdict.score, threshold: settings.threshold }
  if (report.skip) {
    return { ...common, score: 0, action: 'accept', why: `never looked up: ${report.skip}`, reply: '' }
  }
  const d = decideRecipient(report.verdict, '', settings)
  if (d.action === 'accept')
    return { ...common, action: 'accept', why: acceptWhy(report, d.why, settings), reply: '' }
  const exempt = [...settings.exemptRecipients].join(', ')
  const why = `score reached the threshold${exempt ? `; ${exempt} still accepted` : ''}`
  return { ...common, action: d.action, why, reply: replyLine(d.action, report.verdict, settings) }
}
