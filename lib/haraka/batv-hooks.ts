// The envelope changes of signed bounces (BATV) at MAIL and RCPT: sign the
// sender of a relaying client, put the sender back for a destination that must
// not see it signed, take the tag off a recipient that is not a checked bounce.
import { signAddress, type SignRefusal } from '../batv/sign'
import { looksTagged } from '../batv/tag'
import { addressLike, rewriteInPlace, snapshot, type AddressSnapshot } from './envelope-rewrite'
import { isUnsignedDestination, recipientName } from '../core/recipient'
import { isNullSender, wireAddress, type EnvelopeAddress } from '../core/sender'
import type { BatvSettings } from '../core/types'
import { untaggedAddress } from '../batv/recipient'

/** A transaction whose sender was signed. */
export interface SignedSender {
  /** The sender as the client gave it. */
  readonly original: EnvelopeAddress
  /** Put back for a recipient in [batv] unsigned_recipients: the message leaves unsigned. */
  restored: boolean
}

interface Envelope {
  mail_from: EnvelopeAddress | null | undefined
}

/**
 * MAIL FROM of a relaying client: replace the transaction's sender with its
 * signed form when its domain signs. Never `<>`, never a tagged sender (never
 * twice); outbound delivery and queue/smtp_forward send the signed form.
 * 'too long': a sender of a signing domain left unsigned, its tag would break RFC 5321.
 */
export function signSender(
  batv: BatvSettings,
  txn: Envelope,
  from: EnvelopeAddress,
  nowMs: number,
): SignedSender | Extract<SignRefusal, 'too long'> | undefined {
  const key = batv.signKey
  if (!key || !batv.sign || isNullSender(from)) return undefined
  if (typeof from.host !== 'string' || !batv.domains.has(from.host)) return undefined
  const signed = signAddress(wireAddress(from), key, batv.lifetimeDays, nowMs)
  if (!signed.ok) return signed.reason === 'too long' ? signed.reason : undefined
  const address = addressLike(from, signed.address)
  if (!address) return undefined
  const original = txn.mail_from ?? from
  txn.mail_from = address
  return { original, restored: false }
}

/**
 * A recipient of a signed transaction in [batv] unsigned_recipients: the
 * sender goes back to the unsigned form for the whole message (one envelope
 * sender per transaction). True when it was put back now.
 */
export function keepUnsignedFor(
  batv: BatvSettings,
  txn: Envelope,
  signed: SignedSender,
  rcpt: EnvelopeAddress,
): boolean {
  if (signed.restored || !isUnsignedDestination(recipientName(wireAddress(rcpt)), batv)) return false
  txn.mail_from = signed.original
  signed.restored = true
  return true
}

/** Recipients whose tag was removed, with the address as the client sent it. */
export type Untagged = WeakMap<EnvelopeAddress, AddressSnapshot>

/**
 * Make recipient `rcpt` the untagged address `wire`, in place, so that the
 * plugins after this one judge the real mailbox, as Exim's router does; what
 * it was is kept in `untagged`, to be put back if the recipient is refused.
 */
export function untag(rcpt: EnvelopeAddress, wire: string, untagged: Untagged): void {
  const before = snapshot(rcpt)
  if (rewriteInPlace(rcpt, wire)) untagged.set(rcpt, before)
}

/** A recipient of mail that is not a checked bounce: remove a tag to a signing domain, in place. */
export function stripTag(batv: BatvSettings, rcpt: EnvelopeAddress, untagged: Untagged): void {
  // Most recipients carry no tag: test the local part before building any string.
  if (batv.domains.size === 0 || typeof rcpt.user !== 'string' || !looksTagged(rcpt.user)) return
  const wire = wireAddress(rcpt)
  const original = untaggedAddress(wire, batv)
  if (original !== wire) untag(rcpt, original, untagged)
}
