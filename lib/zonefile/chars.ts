/** Bytes that structure the lines of rbldnsd's text format and the addresses in them, by name. */

export const NUL = 0x00
export const TAB = 0x09
export const LINE_FEED = 0x0a
export const SPACE = 0x20
/** `!` before an address: an exclusion. */
export const BANG = 0x21
/** `#` starts a comment (and `#$` a directive rbldnsd still reads). */
export const HASH = 0x23
/** `$` starts a directive; in TXT, the IP. */
export const DOLLAR = 0x24
/** `-` between the two ends of a range. */
export const DASH = 0x2d
export const DOT = 0x2e
/** `/` before a CIDR's prefix length. */
export const SLASH = 0x2f
export const DIGIT_ZERO = 0x30
const DIGIT_NINE = 0x39
/** `:` starts a value (`:A:TXT`); at the start of a line, the default value. */
export const COLON = 0x3a
/** `;` starts a comment. */
export const SEMICOLON = 0x3b
/** `=` after `$`: the base template. */
export const EQUALS = 0x3d

export function isSpace(c: number | undefined): boolean {
  return c === SPACE || c === TAB
}

export function isComment(c: number | undefined): boolean {
  return c === HASH || c === SEMICOLON
}

export function isDigit(c: number | undefined): c is number {
  return c !== undefined && c >= DIGIT_ZERO && c <= DIGIT_NINE
}
