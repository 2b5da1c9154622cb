// Rewriting Haraka's envelope addresses: the signed sender at MAIL, the tag
// removed from a recipient at RCPT (and put back when the recipient is
// refused). A new address is made with the class of the one Haraka handed over
// (its own @haraka/email-address), so it serializes, formats and queues exactly
// as Haraka's own.
import type { EnvelopeAddress } from '../core/sender'

type AddressClass = new (user: string, host?: string) => EnvelopeAddress

/**
 * A new address of `like`'s class for `wire` (no brackets, well formed: made
 * by the BATV code), or undefined when it cannot be made.
 */
export function addressLike(like: EnvelopeAddress, wire: string): EnvelopeAddress | undefined {
  const make = (like as { constructor?: unknown }).constructor
  if (typeof make !== 'function' || make === Object) return undefined
  const at = wire.lastIndexOf('@')
  try {
    const Made = make as AddressClass
    return at > 0 ? new Made(wire.slice(0, at), wire.slice(at + 1)) : new Made(`<${wire}>`)
  } catch {
    return undefined
  }
}

/**
 * Make `addr` the address `wire`, in place: Haraka handed this same object to
 * the plugins after this one and holds it in transaction.rcpt_to, so they and
 * the queue see the new address. False when `wire` does not parse.
 */
export function rewriteInPlace(addr: EnvelopeAddress, wire: string): boolean {
  const fresh = addressLike(addr, wire)
  if (!fresh) return false
  Object.assign(addr, fresh)
  return true
}

/** The address's own fields as they are now, for `restore`. */
export type AddressSnapshot = Readonly<Record<string, unknown>>

export function snapshot(addr: EnvelopeAddress): AddressSnapshot {
  return { ...addr }
}

/** Make `addr` again what `snapshot` saw, in place, exactly as the client wrote it. */
export function restore(addr: EnvelopeAddress, saved: AddressSnapshot): void {
  Object.assign(addr, saved)
}
