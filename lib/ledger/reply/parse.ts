// The MIME structure of a message as readReply needs it, made by postal-mime
// (chosen by measurement against mailparser: BENCHMARKS.md, "Reading replies").
// A message the parser refuses still gives its header and its text, read plainly.
import PostalMime from 'postal-mime'

import { headerFields } from './message-id'
import type { HeaderLookup } from './markers'

/** A part that is not the message's text, its content decoded to text. */
export interface MessagePart {
  /** Lower-case MIME type, no parameters. */
  readonly type: string
  readonly text: string
}

/** A message reduced to what a reply is judged on. */
export interface ParsedMessage {
  /** The top-level header fields. */
  readonly header: HeaderLookup
  /** The decoded text of the body's text parts (HTML reduced to text when there is no plain text). */
  readonly text: string
  /** Every other part: reports, returned messages and headers, attachments. */
  readonly parts: readonly MessagePart[]
  /** The body as it came, undecoded: the last place to look when the MIME structure hides the original. */
  readonly rawBody: string
}

/** Parts whose content is worth decoding: reports, returned originals and text. Others stay unread. */
const READ_TYPES = /^(message\/|text\/)/

/** A HeaderLookup over fields by lower-case name, joined as Haraka joins repeated fields. */
export function lookupOf(fields: ReadonlyMap<string, readonly string[]>): HeaderLookup {
  return { get: (name) => (fields.get(name.toLowerCase()) ?? []).join('\n') }
}

/** HTML as plain lines: enough to find a quoted `Message-ID: &lt;…&gt;` in an HTML-only bounce. */
export function htmlToText(html: string): string {
  return html
    .replace(/<br\s*\/?>|<\/(?:p|div|tr|li|pre)>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&quot;/gi, '"')
    .replace(/&nbsp;|&#160;/gi, ' ')
    .replace(/&amp;/gi, '&')
}

const decoder = new TextDecoder('utf-8')

function contentText(content: ArrayBuffer | Uint8Array | string): string {
  return typeof content === 'string' ? content : decoder.decode(content)
}

/** Parse limits far above any real report, far below what would hold a worker. */
const PARSE_LIMITS = { maxNestingDepth: 32, maxPartCount: 500, maxHeadersSize: 1024 * 1024 } as const

/** Parse with postal-mime; a message it refuses is read plainly (`plainMessage`). */
export async function parseMessage(raw: Buffer | string): Promise<ParsedMessage> {
  try {
    const email = await PostalMime.parse(raw, {
      forceRfc822Attachments: true,
      attachmentEncoding: 'arraybuffer',
      ...PARSE_LIMITS,
    })
    const fields = new Map<string, string[]>()
    for (const h of email.headers) {
      const list = fields.get(h.key)
      if (list) list.push(h.value)
      else fields.set(h.key, [h.value])
    }
    const parts: MessagePart[] = []
    for (const a of email.attachments) {
      const type = (a.mimeType || '').toLowerCase()
      if (READ_TYPES.test(type)) parts.push({ type, text: contentText(a.content) })
    }
    const text = email.text ?? (email.html ? htmlToText(email.html) : '')
    return { header: lookupOf(fields), text, parts, rawBody: plainMessage(rawText(raw)).rawBody }
  } catch {
    return plainMessage(rawText(raw))
  }
}

const rawText = (raw: Buffer | string): string => (typeof raw === 'string' ? raw : raw.toString('latin1'))

/** The header block as fields and the rest as text, with no MIME: for what the parser refuses. */
export function plainMessage(raw: string): ParsedMessage {
  const end = /\r?\n\r?\n/.exec(raw)
  const head = end ? raw.slice(0, end.index) : raw
  const body = end ? raw.slice(end.index + end[0].length) : ''
  return { header: lookupOf(headerFields(head)), text: body, parts: [], rawBody: body }
}
