// One notion of a mail domain: the lower-case ASCII form that Haraka routes on.
// @haraka/email-address maps a domain typed in Unicode (fullwidth letters,
// U+3002 dots, soft hyphens, IDN labels) with node's UTS #46 mapping, then
// lower-cases it; every domain decision and signature uses that same form.
import { domainToASCII } from 'node:url'

const NON_ASCII = /[^\0-\x7f]/

/** `domain` as Haraka routes on it, or undefined when it cannot be mapped to ASCII. */
export function routingDomain(domain: string): string | undefined {
  const ascii = NON_ASCII.test(domain) ? domainToASCII(domain) : domain
  return ascii === '' ? undefined : ascii.toLowerCase()
}
