// What the envelope and the top-level header fields say about who sent a
// message: a machine answering mail (a bounce, a receipt, an auto-reply, a
// challenge) or anyone else. Only the first needs its body read.
import { isNullSender, localPart, type EnvelopeAddress } from '../../core/sender'

/**
 * Header fields by name, as Haraka's `transaction.header` gives them: the raw
 * value, trailing line break and folding kept, repeated fields joined by `\n`;
 * '' when absent. Names are case-insensitive.
 */
export interface HeaderLookup {
  get(name: string): string
}

/**
 * Local parts that MTAs send bounces from when they do not use `<>`
 * (RFC 5321 §4.5.1 postmaster; the MAILER-DAEMON of Sendmail, Postfix, Exim, Exchange).
 */
const DAEMON_LOCAL_PARTS: ReadonlySet<string> = new Set([
  'mailer-daemon',
  'mailerdaemon',
  'mailer_daemon',
  'mail-daemon',
  'postmaster',
  'double-bounce',
])

/** The header's values, one per field, trimmed and unfolded; [] when absent. */
export function fieldValues(header: HeaderLookup, name: string): string[] {
  let raw: string
  try {
    raw = header.get(name)
  } catch {
    return []
  }
  if (typeof raw !== 'string' || raw === '') return []
  // Repeated fields are joined by a line break; a folded line starts with white space.
  return raw
    .split(/\r?\n(?![ \t])/)
    .map((v) => v.replace(/\r?\n[ \t]+/g, ' ').trim())
    .filter((v) => v !== '')
}

/** The first value of a field, lower-cased, '' when absent. */
const firstLower = (header: HeaderLookup, name: string): string =>
  (fieldValues(header, name)[0] ?? '').toLowerCase()

/** The MIME type of a Content-Type value, lower-case, no parameters. */
export const mimeType = (contentType: string): string =>
  (contentType.split(';', 1)[0] ?? '').trim().toLowerCase()

/** The `report-type` parameter of a Content-Type value, lower-case, '' when absent. */
export function reportType(contentType: string): string {
  const m = /;\s*report-type\s*=\s*"?([^";\s]+)/i.exec(contentType)
  return (m?.[1] ?? '').toLowerCase()
}

/** MIME types that only reports have, at the top level or as a part. */
export const DSN_TYPES: ReadonlySet<string> = new Set([
  'message/delivery-status',
  'message/global-delivery-status',
])
export const MDN_TYPES: ReadonlySet<string> = new Set([
  'message/disposition-notification',
  'message/global-disposition-notification',
])

/** The keyword of Auto-Submitted (RFC 3834 §5), lower-case: `auto-replied`, `auto-generated`, `no`; '' when absent. */
export const autoSubmitted = (header: HeaderLookup): string =>
  (firstLower(header, 'Auto-Submitted').split(/[\s;(]/, 1)[0] ?? '').trim()

/**
 * Subjects that only responders write (Exchange's "Automatic reply:", Apple's
 * "Auto reply:"); a person answering one writes "Re: Automatic reply:".
 */
const AUTO_REPLY_SUBJECT = /^(?:auto(?:matic)?[ -]?reply|auto[ -]?response)\s*:/i

/**
 * The markers of an automatic reply: RFC 3834 `Auto-Submitted: auto-replied`,
 * the older fields that vacation programs and hosting panels still set, and
 * a responder's subject. `auto-generated` is not among them: it marks mail
 * that answers nothing (a notification, a report), so its In-Reply-To is not
 * a reply's.
 */
export function hasAutoReplyMarker(header: HeaderLookup): boolean {
  if (autoSubmitted(header) === 'auto-replied') return true
  if (AUTO_REPLY_SUBJECT.test(fieldValues(header, 'Subject')[0] ?? '')) return true
  for (const name of ['X-Autoreply', 'X-Autorespond', 'X-Autoresponder', 'X-Auto-Reply']) {
    const value = firstLower(header, name)
    if (value !== '' && value !== 'no' && value !== 'false' && value !== '0') return true
  }
  return fieldValues(header, 'Precedence').some((v) => /^auto[_-]reply\b/i.test(v))
}

/**
 * Challenge-response systems, by the header markers that SpamAssassin's
 * VBounce rules (20_vbounce.cf, CRBOUNCE_MESSAGE) know them by: TMDA, ASK,
 * Spamazoid, Spamlion, BoxTrapper, Bluebottle, ExiSpam and the
 * `Precedence: spam` of /cgi-bin/notaspammer.
 */
export function hasChallengeMarker(header: HeaderLookup): boolean {
  for (const name of ['X-AskVersion', 'X-Spamazoid-MD', 'Spamlion', 'X-Boxtrapper', 'X-Bluebottle-Request']) {
    if (fieldValues(header, name).length) return true
  }
  if (/exispam/i.test(firstLower(header, 'X-ExiSpam'))) return true
  if (fieldValues(header, 'Precedence').some((v) => /^spam\b/i.test(v))) return true
  if (/@\S+-tmda-confirm>$/i.test(fieldValues(header, 'Message-ID')[0] ?? '')) return true
  return /^unverified email to /i.test(fieldValues(header, 'Subject')[0] ?? '')
}

/** A local part that bounces come from: MAILER-DAEMON, postmaster and their kin. */
export const isDaemonLocalPart = (local: string): boolean => DAEMON_LOCAL_PARTS.has(local.toLowerCase())

/**
 * Must this message's body be read to know what it answers? Only when the
 * envelope or the top-level header says a machine sent it: the null sender,
 * a MAILER-DAEMON-style sender, a report's Content-Type, Exim's
 * X-Failed-Recipients, Auto-Submitted other than `no`, an auto-reply or a
 * challenge marker. Ordinary mail and a person's reply answer false, so they
 * cost nothing and are never judged. Never throws.
 */
export function mayBeMachineReply(
  sender: EnvelopeAddress | null | undefined,
  header: HeaderLookup | null | undefined,
): boolean {
  try {
    if (sender && (isNullSender(sender) || isDaemonLocalPart(localPart(sender)))) return true
    if (!header) return false
    const contentType = firstLower(header, 'Content-Type')
    const type = mimeType(contentType)
    if (type === 'multipart/report' || DSN_TYPES.has(type) || MDN_TYPES.has(type)) return true
    if (fieldValues(header, 'X-Failed-Recipients').length) return true
    const submitted = autoSubmitted(header)
    if (submitted !== '' && submitted !== 'no') return true
    return hasAutoReplyMarker(header) || hasChallengeMarker(header)
  } catch {
    return false
  }
}
