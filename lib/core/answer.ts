import net from 'node:net'

/** What a zone's A records say about a client. */
export type Classification =
  | { readonly kind: 'listed'; readonly codes: readonly string[] }
  | { readonly kind: 'not-listed' }
  | { readonly kind: 'error'; readonly reason: string }

/**
 * Classify the A records of a DNSBL answer (RFC 5782 §2.1): only addresses in
 * 127.0.0.0/8 are listings. An address outside 127/8 (a parked or hijacked zone,
 * a wildcard) or a 127.255.255.x error code (typo, public resolver, over limit)
 * makes the whole answer an error, never a listing.
 */
export function classifyAnswer(addresses: readonly string[]): Classification {
  if (addresses.length === 0) return { kind: 'not-listed' }
  const codes = new Set<string>()
  for (const addr of addresses) {
    if (!net.isIPv4(addr)) return { kind: 'error', reason: `answer ${cleanText(addr, 64)} is not IPv4` }
    if (!addr.startsWith('127.')) return { kind: 'error', reason: `answer ${addr} is outside 127.0.0.0/8` }
    if (addr.startsWith('127.255.255.')) return { kind: 'error', reason: `answer ${addr} is an error code` }
    codes.add(addr)
  }
  return { kind: 'listed', codes: [...codes].sort() }
}

/** Longest TXT reason kept, in characters; a reply line must stay well under 512 octets. */
export const MAX_TEXT_LENGTH = 200

/**
 * Make text from DNS safe for an SMTP reply, a log line or a header: control
 * characters (CR, LF, NUL, DEL, C1…) become spaces, runs of white space fold,
 * non-ASCII is dropped, and the result is cut to `max` characters.
 */
export function cleanText(text: string, max = MAX_TEXT_LENGTH): string {
  const folded = text
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim()
  return folded.length > max ? `${folded.slice(0, max - 3).trimEnd()}...` : folded
}

/** Join the strings of the TXT records into one clean reason. */
export function reasonFromTxt(records: readonly (readonly string[])[]): string {
  // Bound the work before joining: a hostile answer may carry thousands of strings.
  let joined = ''
  for (const record of records) {
    for (const part of record) {
      joined += part
      if (joined.length > MAX_TEXT_LENGTH * 4) return cleanText(joined)
    }
    joined += ' '
  }
  return cleanText(joined)
}
