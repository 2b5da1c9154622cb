// What a machine's reply is and which of our messages it answers: the kind
// (a delivery report, a read receipt, an auto-reply, a challenge) from its
// structure, and the Message-IDs of the original from wherever that kind
// carries them. The ledger then says whether we sent any of them.
import { headerFields, messageIds, quotedMessageIds } from './message-id'
import {
  DSN_TYPES,
  MDN_TYPES,
  autoSubmitted,
  fieldValues,
  hasAutoReplyMarker,
  hasChallengeMarker,
  isDaemonLocalPart,
  mimeType,
  reportType,
} from './markers'
import { parseMessage, type MessagePart, type ParsedMessage } from './parse'

import type { ReplyKind } from '../../core/types'

export type { ReplyKind }

export interface ReplyReading {
  readonly kind: ReplyKind
  /** The original's Message-IDs, `<left@right>`, most telling first; at most MAX_REFERENCES. */
  readonly references: readonly string[]
  /** Set when the message named more than MAX_REFERENCES: not every one it names is in `references`. */
  readonly truncated?: true
}

export interface ReadReplyOptions {
  /** Octets read from the start of the message; the rest is never parsed. Default MAX_REPLY_BYTES. */
  readonly maxBytes?: number
  /**
   * Whether the envelope sender was `<>`, which only automatic mail uses
   * (RFC 5321 §4.5.5, RFC 3834 §3.3). Undefined: a `Return-Path: <>` field says so.
   */
  readonly nullSender?: boolean
}

/**
 * How much of a message is read. A report puts the returned original's
 * header after a notification of a few KiB; in the corpus of real reports
 * (test/fixtures/replies) the farthest such Message-ID starts at byte 65 029,
 * after an AOL bounce's HTML. Four times that leaves room for longer
 * notifications and bounds the parse of a report that returns a large message.
 */
export const MAX_REPLY_BYTES = 256 * 1024

/** Enough for an auto-reply's References chain; bounds the ledger's lookups per message. */
export const MAX_REFERENCES = 10

const NONE: ReplyReading = Object.freeze({ kind: 'none', references: Object.freeze([]) })

/** Parts that return the original, whole or its header only (RFC 3462, RFC 3464, RFC 6533). */
const ORIGINAL_TYPES: ReadonlySet<string> = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'text/rfc822-header',
  'message/global-headers',
  'message/partial',
])

/** Subjects of the bounces that carry no report: Exchange, qmail, old Sendmail, Postfix, Notes, webmail. */
const BOUNCE_SUBJECT =
  /undeliver|delivery (?:status notification|failure|has failed|failed|problem|report|notification)|returned mail|failure notice|mail delivery fail|non[- ]?deliver|could not be delivered|not delivered|returned to sender|mail system error|permanent error|delivery error|error sending|could not send/i

/** Openings of the bounce texts that carry no report. */
const BOUNCE_TEXT =
  /qmail-send program|this is the mail system at host|created automatically by mail delivery software|delivery has failed to these recipients|could not be delivered|permanent fatal errors|did not reach some or all of the intended recipients|following recipient\(s\) could not|failed to deliver|delivery to the following recipient|unable to deliver|wasn't able to deliver|message delivery failure|undeliverable|returned to sender|user unknown/i

/** The address in a From field, lower-cased local part: `Mail Delivery System <MAILER-DAEMON@x>` → `mailer-daemon`. */
function fromLocalPart(parsed: ParsedMessage): string {
  const from = fieldValues(parsed.header, 'From')[0] ?? ''
  const m = /<([^<>@\s]+)@[^<>]*>/.exec(from) ?? /(?:^|\s)([^<>@\s"]+)@\S+/.exec(from)
  return (m?.[1] ?? '').toLowerCase()
}

const originalParts = (parsed: ParsedMessage): MessagePart[] =>
  parsed.parts.filter((p) => ORIGINAL_TYPES.has(p.type))

/** The Message-ID of each returned original's header block. */
function originalIds(parsed: ParsedMessage): string[] {
  const ids: string[] = []
  for (const part of originalParts(parsed)) {
    const fields = headerFields(part.text.replace(/^(?:[ \t]*\r?\n)+/, ''))
    ids.push(...messageIds(fields.get('message-id')?.[0]))
  }
  return ids
}

/**
 * Message-ID lines quoted in the text, in text parts sent as attachments, and
 * in delivery-status parts, where a report with a broken boundary leaves the
 * returned header.
 */
function quotedIds(parsed: ParsedMessage): string[] {
  const quoting = parsed.parts.filter((p) => p.type === 'text/plain' || DSN_TYPES.has(p.type))
  const texts = [parsed.text, ...quoting.map((p) => p.text)]
  // One more than is kept: enough to tell that some were left out.
  return texts.flatMap((t) => quotedMessageIds(t, MAX_REFERENCES + 1))
}

/** `Original-Message-ID` of each disposition notification (RFC 8098 §3.2.5). */
function mdnIds(parsed: ParsedMessage): string[] {
  return parsed.parts
    .filter((p) => MDN_TYPES.has(p.type))
    .flatMap((p) => messageIds(headerFields(p.text).get('original-message-id')?.[0]))
}

const inReplyTo = (parsed: ParsedMessage): string[] =>
  fieldValues(parsed.header, 'In-Reply-To').flatMap(messageIds)

/** References, newest first: the message answered comes last in the field (RFC 5322 §3.6.4). */
const references = (parsed: ParsedMessage): string[] =>
  fieldValues(parsed.header, 'References').flatMap(messageIds).reverse()

function isNullSender(parsed: ParsedMessage, given: boolean | undefined): boolean {
  if (given !== undefined) return given
  const returnPath = fieldValues(parsed.header, 'Return-Path')[0]
  return returnPath !== undefined && /^<\s*>$/.test(returnPath)
}

/** Does it carry a returned original: a part, or header lines quoted in its text? */
const carriesOriginal = (parsed: ParsedMessage): boolean =>
  originalParts(parsed).length > 0 || quotedIds(parsed).length > 0

/** A bounce without a report: Exim's X-Failed-Recipients, or a daemon's (or `<>`'s) bounce subject or text. */
function isPlainBounce(parsed: ParsedMessage, nullSender: boolean): boolean {
  if (fieldValues(parsed.header, 'X-Failed-Recipients').length) return true
  const from = fieldValues(parsed.header, 'From')[0] ?? ''
  const fromDaemon =
    isDaemonLocalPart(fromLocalPart(parsed)) ||
    /\b(?:mailer-daemon|mail delivery (?:subsystem|system))\b/i.test(from)
  if (!fromDaemon && !nullSender) return false
  const subject = fieldValues(parsed.header, 'Subject')[0] ?? ''
  if (BOUNCE_SUBJECT.test(subject)) return true
  if (BOUNCE_TEXT.test(parsed.text.slice(0, 4096))) return true
  // A daemon's message that returns an original is a bounce, whatever its words.
  return fromDaemon && carriesOriginal(parsed)
}

/** The kind of a parsed message: its structure first, then its markers, then its envelope. */
export function replyKind(parsed: ParsedMessage, givenNullSender?: boolean): ReplyKind {
  const contentType = fieldValues(parsed.header, 'Content-Type')[0] ?? ''
  const type = mimeType(contentType)
  const report = type === 'multipart/report' ? reportType(contentType) : ''
  const partTypes = new Set(parsed.parts.map((p) => p.type))
  if (report === 'delivery-status' || report === 'global-delivery-status') return 'dsn'
  if (report === 'disposition-notification' || report === 'global-disposition-notification') return 'mdn'
  if (DSN_TYPES.has(type) || [...DSN_TYPES].some((t) => partTypes.has(t))) return 'dsn'
  if (MDN_TYPES.has(type) || [...MDN_TYPES].some((t) => partTypes.has(t))) return 'mdn'
  // Other reports (RFC 5965 abuse feedback, TLS reports) go to a reporting address, not back to a sender.
  if (report !== '' || partTypes.has('message/feedback-report')) return 'none'
  if (hasChallengeMarker(parsed.header)) return 'challenge'
  const nullSender = isNullSender(parsed, givenNullSender)
  if (isPlainBounce(parsed, nullSender)) return 'dsn'
  if (hasAutoReplyMarker(parsed.header)) return 'auto-reply'
  if (nullSender) {
    if (carriesOriginal(parsed)) return 'dsn'
    const submitted = autoSubmitted(parsed.header)
    if (
      (submitted !== '' && submitted !== 'no') ||
      fieldValues(parsed.header, 'X-Auto-Response-Suppress').length
    )
      return 'auto-reply'
    if (inReplyTo(parsed).length || references(parsed).length) return 'auto-reply'
  }
  return 'none'
}

/** The references of a parsed message of a known kind, in the order that kind makes most telling. */
export function replyReferences(parsed: ParsedMessage, kind: ReplyKind): string[] {
  let found: string[]
  switch (kind) {
    case 'dsn':
      found = [...originalIds(parsed), ...quotedIds(parsed), ...inReplyTo(parsed), ...references(parsed)]
      // A returned header that the MIME structure swallowed (a part without a Content-Type) is still in the raw body.
      if (found.length === 0) found = quotedMessageIds(parsed.rawBody, MAX_REFERENCES + 1)
      break
    case 'mdn':
      found = [...mdnIds(parsed), ...originalIds(parsed), ...inReplyTo(parsed), ...references(parsed)]
      break
    case 'auto-reply':
      found = [...inReplyTo(parsed), ...references(parsed), ...originalIds(parsed)]
      break
    case 'challenge':
      found = [...originalIds(parsed), ...quotedIds(parsed), ...inReplyTo(parsed), ...references(parsed)]
      break
    default:
      return []
  }
  // The report's own IDs name the report, never what it answers.
  const own = new Set(
    ['Message-ID', 'Resent-Message-ID'].flatMap((n) => fieldValues(parsed.header, n)).flatMap(messageIds),
  )
  return [...new Set(found)].filter((id) => !own.has(id))
}

/** Kind and references of a parsed message; never throws. */
export function readParsed(parsed: ParsedMessage, nullSender?: boolean): ReplyReading {
  try {
    const kind = replyKind(parsed, nullSender)
    if (kind === 'none') return NONE
    const all = replyReferences(parsed, kind)
    const references = all.slice(0, MAX_REFERENCES)
    return all.length > MAX_REFERENCES ? { kind, references, truncated: true } : { kind, references }
  } catch {
    return NONE
  }
}

/**
 * Read a message as a machine's reply: its kind and the Message-IDs of the
 * original it answers. Parses at most `maxBytes` from the start. Never
 * throws: what cannot be read is `{kind: 'none', references: []}`.
 */
export async function readReply(raw: Buffer | string, options: ReadReplyOptions = {}): Promise<ReplyReading> {
  try {
    if (typeof raw !== 'string' && !Buffer.isBuffer(raw)) return NONE
    const max = Math.max(0, Math.floor(options.maxBytes ?? MAX_REPLY_BYTES))
    // A character takes at least one octet, so the first `max` characters hold the first `max` octets.
    const prefix =
      typeof raw === 'string' ? Buffer.from(raw.slice(0, max)).subarray(0, max) : raw.subarray(0, max)
    return readParsed(await parseMessage(prefix), options.nullSender)
  } catch {
    return NONE
  }
}
