// The local part of an address, read the same way wherever it is compared or signed.

/**
 * The local part without its quotes, each quoted pair resolved to the
 * character after the backslash; letter case kept. RFC 5321 §4.1.2:
 * `"postmaster"` is postmaster. A backslash quotes any character, a line break
 * too (RFC 5322's obs-qp): RFC 5321 allows only printable ASCII there, so this
 * only settles what invalid input means, once for every reader.
 */
export function unquoteLocalPart(localPart: string): string {
  if (localPart.length < 2 || !localPart.startsWith('"') || !localPart.endsWith('"')) return localPart
  return localPart.slice(1, -1).replace(/\\(.)/gs, '$1')
}
