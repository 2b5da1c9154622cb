// The outbound guard's decision: is the DSN Haraka is about to send going to a
// sender that was never verified, for a message accepted from outside? Such a
// DSN is backscatter when the sender was forged, and gets this host listed.
// Everything here reads plain values (what survives into the queue file's
// todo.notes), and a value it cannot read lets the DSN go.
import { isOwnClient, type Provenance } from './client'
import { organizationalDomain, routingDomain } from './domain'
import { SPF_RESULTS, type OutboundGuardSettings, type SpfResult } from './types'

/** The key of transaction.notes (and so of the queue file's todo.notes) that holds the provenance. */
export const PROVENANCE_NOTE = 'backscatter_provenance'

/** What the bounce hook finds in hmail.todo, as found: none of it is trusted to have a shape. */
export interface BounceFacts {
  /** The original envelope sender (todo.mail_from); no user means `<>`. */
  readonly sender: { readonly user?: unknown; readonly host?: unknown } | null | undefined
  /** todo.notes[PROVENANCE_NOTE]. */
  readonly provenance: unknown
  /** todo.notes.spf_mail_result, as haraka-plugin-spf left it (`Pass`, `Fail` …). */
  readonly spf: unknown
  /** todo.notes.dkim_results, as haraka-plugin-dkim left it: `[{domain, result, …}]`. */
  readonly dkim: unknown
}

/**
 * suppressed: the DSN is not sent; would-suppress: mode log, it is sent;
 * sent: the sender was verified or the client is ours; not-judged: nothing to
 * judge by (no provenance, the original was a bounce), the DSN goes as Haraka decides.
 */
export const GUARD_DECISIONS = ['suppressed', 'would-suppress', 'sent', 'not-judged'] as const
export type GuardDecision = (typeof GUARD_DECISIONS)[number]

export interface GuardJudgement {
  readonly decision: GuardDecision
  /** Why, in words, in the order they were weighed. */
  readonly reasons: readonly string[]
}

const judged = (decision: GuardDecision, ...reasons: string[]): GuardJudgement => ({ decision, reasons })

/**
 * The provenance read back from the queue file; undefined when there is none,
 * 'unreadable' when it is not one. Keys it does not know (an earlier version's
 * privateClient) are ignored.
 */
export function readProvenance(value: unknown): Provenance | 'unreadable' | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object') return 'unreadable'
  const v = value as Record<string, unknown>
  const relaying = v.relaying
  if (
    typeof v.authenticated !== 'boolean' ||
    (relaying !== 'client' && relaying !== 'recipient' && relaying !== 'no')
  )
    return 'unreadable'
  return {
    authenticated: v.authenticated,
    relaying,
    ip: typeof v.ip === 'string' ? v.ip : '',
  }
}

/** haraka-plugin-spf's result in the guard's words; undefined for a value it does not know. */
export function spfResultOf(value: unknown): SpfResult | undefined {
  if (value === undefined || value === null || value === '') return 'absent'
  if (typeof value !== 'string') return undefined
  const word = value.trim().toLowerCase()
  return word !== 'absent' && (SPF_RESULTS as readonly string[]).includes(word)
    ? (word as SpfResult)
    : undefined
}

const domainOf = (name: unknown): string | undefined =>
  typeof name === 'string' ? routingDomain(name.trim().replace(/\.$/, '')) : undefined

/**
 * Does a signature by `signer` speak for mail from `sender`? The same domain,
 * or the same organizational domain (DMARC's relaxed alignment): under a public
 * suffix such as duckdns.org every name has its own registrant, so
 * attacker.duckdns.org never speaks for duckdns.org or for a sibling.
 */
export function alignedDomains(sender: string, signer: string): boolean {
  if (!sender.includes('.') || !signer.includes('.')) return false
  if (sender === signer) return true
  const organization = organizationalDomain(sender)
  return organization !== undefined && organization === organizationalDomain(signer)
}

/** The domains of the passing DKIM signatures aligned with the sender's domain. */
export function alignedDkimPasses(dkim: unknown, senderDomain: string): string[] {
  if (!Array.isArray(dkim)) return []
  const domains: string[] = []
  for (const signature of dkim as unknown[]) {
    if (!signature || typeof signature !== 'object') continue
    const { domain, result } = signature as Record<string, unknown>
    const signer = domainOf(domain)
    if (typeof result !== 'string' || result.toLowerCase() !== 'pass' || !signer) continue
    if (alignedDomains(senderDomain, signer) && !domains.includes(signer)) domains.push(signer)
  }
  return domains
}

function outsideReason(p: Provenance): string {
  const from = p.ip ? `from ${p.ip}` : 'from a client'
  return p.relaying === 'recipient'
    ? `accepted ${from}, relayed for the recipient's domain only (the client neither authenticated nor allowed to relay)`
    : `accepted ${from}, which neither authenticated nor was allowed to relay`
}

/** What becomes of the DSN for one bounced message, and why. Never throws. */
export function judgeBounce(facts: BounceFacts, settings: OutboundGuardSettings): GuardJudgement {
  if (settings.mode === 'off') return judged('not-judged', '[outbound_guard] mode = off')
  const user = facts.sender?.user
  if (typeof user !== 'string' || user === '')
    return judged('not-judged', 'the original sender is <>: Haraka sends no DSN for a bounce')
  const provenance = readProvenance(facts.provenance)
  if (provenance === undefined)
    return judged(
      'not-judged',
      'no provenance recorded: the message did not come in over SMTP through this plugin',
    )
  if (provenance === 'unreadable') return judged('not-judged', `the ${PROVENANCE_NOTE} note is unreadable`)
  if (isOwnClient(provenance))
    return judged(
      'sent',
      provenance.authenticated ? 'the client authenticated' : 'the client was allowed to relay',
    )

  const domain = domainOf(facts.sender?.host)
  if (!domain) return judged('not-judged', 'the original sender has no domain to verify')
  const signers = alignedDkimPasses(facts.dkim, domain)
  if (signers.length)
    return judged('sent', `a DKIM signature of ${signers.join(', ')} passed, aligned with ${domain}`)
  const spf = spfResultOf(facts.spf)
  if (spf === undefined) {
    const shown = typeof facts.spf === 'string' ? `"${facts.spf}"` : `of type ${typeof facts.spf}`
    return judged('not-judged', `the SPF result ${shown} is not one this guard knows`)
  }
  if (spf === 'pass') return judged('sent', `SPF pass for ${domain}`)
  const spfText = spf === 'absent' ? `no SPF result for ${domain}` : `SPF ${spf} for ${domain}`
  if (!settings.unverifiedSpf.has(spf))
    return judged('sent', `${spfText}, which [outbound_guard] unverified_spf does not count as unverified`)
  return judged(
    settings.mode === 'suppress' ? 'suppressed' : 'would-suppress',
    outsideReason(provenance),
    spfText,
    `no passing DKIM signature aligned with ${domain}`,
  )
}
