// One notion of a mail domain: the lower-case ASCII form that Haraka routes on.
// @haraka/email-address maps a domain typed in Unicode (fullwidth letters,
// U+3002 dots, soft hyphens, IDN labels) with node's UTS #46 mapping, then
// lower-cases it; every domain decision and signature uses that same form.
import { domainToASCII } from 'node:url'

import { get_organizational_domain, is_public_suffix, public_suffix_list } from 'haraka-tld'

const NON_ASCII = /[^\0-\x7f]/

/** `domain` as Haraka routes on it, or undefined when it cannot be mapped to ASCII. */
export function routingDomain(domain: string): string | undefined {
  const ascii = NON_ASCII.test(domain) ? domainToASCII(domain) : domain
  return ascii === '' ? undefined : ascii.toLowerCase()
}

/**
 * The organizational domain of a routing domain (RFC 7489 §3.2): the name
 * registered under its public suffix, by the Public Suffix List haraka-tld
 * loads and keeps current. Under a top-level name the list does not know
 * (`.example`, `.test`) the list's default rule `*` applies: the last two
 * labels. Undefined for a public suffix itself, a single label, or before the
 * list is loaded (haraka-tld reads it at start), so that nothing is ever
 * aligned on a guess.
 */
export function organizationalDomain(domain: string): string | undefined {
  const labels = domain.split('.')
  if (labels.length < 2 || labels.includes('') || public_suffix_list.size === 0) return undefined
  const registered = get_organizational_domain(domain)
  if (registered) return registered
  const suffixes = labels.map((_, i) => labels.slice(i).join('.'))
  return suffixes.some((s) => is_public_suffix(s)) ? undefined : labels.slice(-2).join('.')
}
