import { unquoteLocalPart } from './address'

/** The parts of an envelope address the sender test needs (Haraka's Address has them). */
export interface EnvelopeAddress {
  readonly user: string | null | undefined
  /** The domain as Haraka routes on it: ASCII, lower case (see domain.ts). */
  readonly host: string | null | undefined
  isNull?: () => boolean
}

export interface SenderRules {
  /** Treat the null reverse-path `<>` as a bounce (RFC 5321 §4.5.5). */
  readonly null: boolean
  /** Lower-case local parts that claim to be a bounce, postmaster among them. */
  readonly localParts: ReadonlySet<string>
}

/** Is this MAIL FROM the null sender `<>`? */
export function isNullSender(from: EnvelopeAddress): boolean {
  if (typeof from.isNull === 'function') return from.isNull()
  return !from.user && !from.host
}

/**
 * Does the envelope sender claim to be a bounce: `<>`, or a local part such as
 * postmaster (any letter case, any domain, bare `<postmaster>` included)?
 * Only such mail is looked up on the list ("safe mode").
 */
export function isBounceSender(from: EnvelopeAddress | null | undefined, rules: SenderRules): boolean {
  if (!from) return false
  if (isNullSender(from)) return rules.null
  const user = localPart(from)
  return user !== '' && rules.localParts.has(user)
}

/**
 * The local part as a mailbox name: unquoted, quoted pairs resolved, lower-cased;
 * '' when absent. RFC 5321 §4.1.2: `"postmaster"@example.com` is postmaster@example.com.
 */
export function localPart(addr: EnvelopeAddress | null | undefined): string {
  const user = addr?.user
  return user ? unquoteLocalPart(user).toLowerCase() : ''
}

/**
 * The address in wire form, no angle brackets: the local part as written
 * (quoted if it was) and the domain Haraka routes on, never the domain as the
 * client typed it (`original_host`): a domain typed in fullwidth letters must
 * meet the same checks as its ASCII form. '' for the null sender, the bare
 * local part when there is no domain (`<postmaster>`).
 */
export function wireAddress(addr: EnvelopeAddress | null | undefined): string {
  const user = addr?.user
  if (!user || typeof user !== 'string') return ''
  const host = addr.host
  return typeof host === 'string' && host !== '' ? `${user}@${host}` : user
}
