// Message-IDs as the ledger keys them: `<left@right>`, found in header values
// and in header blocks that a report returns or quotes.

/** RFC 5322 allows longer IDs, but a line is 998 octets and real ones stay far below this. */
const MAX_ID_LENGTH = 250

/** `<left@right>` with no space, no bracket and no second `<` inside. */
const BRACKETED = /<([^<>\s@]+@[^<>\s@]+)>/g

/**
 * RFC 5322 §3.6.4 id-left and id-right: dot-atom text (UTF-8 allowed, RFC 6532)
 * or a domain literal. Keeps out what is not an ID, such as an HTML-escaped
 * `&lt;id@host&gt;` or a quoted-printable line cut at `=`.
 */
const ID_LEFT = /^[\w!#$%&'*+/=?^`{|}~.\u0080-\uffff-]+$/
const ID_RIGHT = /^(?:[\w!#$%&'*+/=?^`{|}~.\u0080-\uffff-]+|\[[^[\]\\]*\])$/

/** A bare `left@right` token, as some MTAs quote the original's Message-ID. */
const BARE = /^([^<>\s@"]+@[^<>\s@"]+)$/

/** The IDs in a header value (Message-ID, In-Reply-To, References), in order, each `<left@right>`. */
export function messageIds(value: string | undefined): string[] {
  if (!value) return []
  const ids: string[] = []
  for (const m of value.matchAll(BRACKETED)) {
    const id = tidy(m[1] ?? '')
    if (id) ids.push(id)
  }
  if (ids.length === 0) {
    const bare = BARE.exec(value.trim())
    const id = bare ? tidy(bare[1] ?? '') : ''
    if (id) ids.push(id)
  }
  return ids
}

/** `<left@right>`, or '' when it is too long or not an ID's syntax. */
function tidy(inner: string): string {
  if (inner.length + 2 > MAX_ID_LENGTH) return ''
  const at = inner.indexOf('@')
  if (!ID_LEFT.test(inner.slice(0, at)) || !ID_RIGHT.test(inner.slice(at + 1))) return ''
  // A quoted-printable soft break left at the end (`…@mail.gmail=`) is a cut, not an ID.
  if (inner.endsWith('=')) return ''
  return `<${inner}>`
}

/**
 * The header fields at the start of `block` (up to the first empty line),
 * unfolded, by lower-case name, repeated fields in order. A line that is
 * neither a field nor indented continues the field before it: copies of
 * returned originals often lose the indentation of their folded lines.
 */
export function headerFields(block: string, maxLines = 1000): Map<string, string[]> {
  const fields = new Map<string, string[]>()
  let name = ''
  let value = ''
  const flush = (): void => {
    if (!name) return
    const list = fields.get(name)
    if (list) list.push(value.trim())
    else fields.set(name, [value.trim()])
  }
  for (const line of block.split(/\r?\n|\r/, maxLines)) {
    if (line.trim() === '') break
    const field = /^([!-9;-~]+)[ \t]*:(.*)$/.exec(line)
    if (field && !line.startsWith(' ') && !line.startsWith('\t')) {
      flush()
      name = (field[1] ?? '').toLowerCase()
      value = field[2] ?? ''
    } else if (name) {
      value += ` ${line.trim()}`
    }
  }
  flush()
  return fields
}

/** A `Message-ID:` line, quoted or indented; its value may be on the next line. */
const QUOTED_FIELD = /^[ \t>|]*message-id[ \t]*:[ \t]*(.*)$/i
const QUOTE_MARKS = /^[ \t>|]*/

/**
 * The Message-IDs of header blocks quoted in a text: lines such as
 * `Message-ID: <id@host>`, also indented or quoted with `>` or `|`, the value
 * on the next line when the field is folded. Only Message-ID lines: a quoted
 * In-Reply-To or References names mail the original answered, not the original.
 */
export function quotedMessageIds(text: string, max: number): string[] {
  const ids: string[] = []
  const lines = text.split(/\r?\n|\r/)
  for (let i = 0; i < lines.length && ids.length < max; i++) {
    const m = QUOTED_FIELD.exec(lines[i] ?? '')
    if (!m) continue
    const value = m[1]?.trim() ? m[1] : (lines[i + 1] ?? '').replace(QUOTE_MARKS, '')
    // Distinct IDs up to `max`: a report that quotes one header twice does not use up the count.
    for (const id of messageIds(value)) if (ids.length < max && !ids.includes(id)) ids.push(id)
  }
  return ids
}
