// An envelope address as Haraka parses it (@haraka/email-address), without the
// plugin harness: the pure tests of the sender need nothing more.
import { Address } from '@haraka/email-address'

export function addr(text: string): Address {
  return new Address(text.startsWith('<') ? text : `<${text}>`)
}
