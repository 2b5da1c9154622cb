/**
 * The `$` lines of an rbldnsd dataset (rbldnsd_util.c ds_special: `$SOA`,
 * `$NS`, `$TTL`, `$MAXRANGE4`, `$TIMESTAMP`, `$0`..`$9`, `$=`) and the TXT
 * templates they feed (txtsubst).
 */
import { DIGIT_ZERO, DOLLAR, EQUALS, isDigit, isSpace } from './chars'
import { mask } from './ipv4'

/** rbldnsd's default record TTL (35 minutes) when the file has no `$TTL`. */
export const DEFAULT_TTL_SECONDS = 35 * 60
/** rbldnsd cuts an expanded TXT to 254 bytes. */
export const MAX_TXT = 254
// Longer variable or base text could never show: each takes at least one byte
// of the cut TXT per two bytes of template.
const MAX_VARIABLE = MAX_TXT
const MAX_BASE_TEMPLATE = 2 * MAX_TXT

/** What one `$` line did: taken, invalid (skipped with a warning), a warning, or a refusal of the whole file. */
export type DirectiveOutcome = 'ok' | 'invalid' | { readonly warning: string } | { readonly fatal: string }

const MDAY = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function skipSpaces(s: string): string {
  return s.replace(/^[ \t]+/, '')
}

/** rbldnsd firstword_lc: the rest after `word` (any case) and white space, or undefined. */
function firstWord(line: string, word: string): string | undefined {
  if (line.length <= word.length || line.slice(0, word.length).toLowerCase() !== word) return undefined
  if (!isSpace(line.charCodeAt(word.length))) return undefined
  return skipSpaces(line.slice(word.length))
}

// Returns [value, rest] or undefined, as rbldnsd's parse_time: digits, optional unit, then space.
function parseTime(s: string): [number, string] | undefined {
  const m = /^(\d+)([wdhmsWDHMS]?)/.exec(s)
  if (!m || m[1] === undefined) return undefined
  let n = Number(m[1])
  if (n > 0xffffffff) return undefined
  const unit = (m[2] ?? '').toLowerCase()
  const mult = unit === 'w' ? 604800 : unit === 'd' ? 86400 : unit === 'h' ? 3600 : unit === 'm' ? 60 : 1
  if (n * mult > 0xffffffff) return undefined
  n *= mult
  let rest = s.slice(m[0].length)
  if (rest !== '' && rest[0] !== ':') {
    if (!isSpace(rest.charCodeAt(0))) return undefined
    rest = skipSpaces(rest)
  }
  return [n, rest]
}

function parseUint32(s: string): [number, string] | undefined {
  const m = /^\d+/.exec(s)
  if (!m || Number(m[0]) > 0xffffffff) return undefined
  let rest = s.slice(m[0].length)
  if (rest !== '') {
    if (!isSpace(rest.charCodeAt(0))) return undefined
    rest = skipSpaces(rest)
  }
  return [Number(m[0]), rest]
}

// A domain name token (rbldnsd parse_dn): up to the next space, at most 255 characters.
function parseDn(s: string): string | undefined {
  const m = /^[^ \t]+/.exec(s)
  if (
    !m ||
    m[0].length > 255 ||
    m[0].split('.').some((l, i, all) => l.length > 63 || (l === '' && i < all.length - 1))
  )
    return undefined
  return skipSpaces(s.slice(m[0].length))
}

// rbldnsd parse_timestamp: yyyy[:-]mm[:-]dd[[:-]hh[[:-]mi[[:-]ss]]], or 0/-/: for none.
function parseTimestamp(s: string): [number, string] | undefined {
  if ((s[0] === '0' || s[0] === '-' || s[0] === ':') && (s.length === 1 || isSpace(s.charCodeAt(1)))) {
    return [0, skipSpaces(s.slice(1))]
  }
  let p = 0
  const part = (min: number, max: number, width: number): number | undefined => {
    if (!isDigit(s.charCodeAt(p))) return undefined
    let n = 0
    let w = width
    do n = n * 10 + (s.charCodeAt(p++) - DIGIT_ZERO)
    while (isDigit(s.charCodeAt(p)) && --w)
    if (n < min || n > max) return undefined
    if (s[p] === ':' || s[p] === '-') p++
    return n
  }
  const year = part(1970, 2038, 4)
  if (year === undefined) return undefined
  const mon = part(1, 12, 2)
  if (mon === undefined) return undefined
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const day = part(1, mon === 2 && leap ? 29 : (MDAY[mon - 1] ?? 31), 2)
  if (day === undefined) return undefined
  const rest = (): boolean => p < s.length && !isSpace(s.charCodeAt(p))
  let hour = 0
  let min = 0
  let sec = 0
  if (rest() && (hour = part(0, 23, 2) ?? -1) < 0) return undefined
  if (rest() && (min = part(0, 59, 2) ?? -1) < 0) return undefined
  if (rest() && (sec = part(0, 59, 2) ?? -1) < 0) return undefined
  if (p < s.length && !isSpace(s.charCodeAt(p))) return undefined
  return [Date.UTC(year, mon - 1, day, hour, min, sec) / 1000, skipSpaces(s.slice(p))]
}

/** The state the `$` lines of one file build up. */
export class ZoneDirectives {
  ttlSeconds = DEFAULT_TTL_SECONDS
  /** Unix seconds after which rbldnsd stops serving the data; 0 = never. */
  expiresAt = 0
  /** `$TIMESTAMP`: when the data was made, in Unix seconds (the latest, when several); 0 = none. */
  madeAt = 0
  /** `$MAXRANGE4`: the most addresses one entry may cover; 0 = no limit. */
  maxRange = 0
  /** `$0`..`$9`: the first definition of each wins. */
  readonly subst: (string | undefined)[] = new Array<string | undefined>(10).fill(undefined)
  /** `$=`: the base template. */
  base: string | undefined
  private soaSeen = false
  private nsSeen = false

  constructor(private readonly nowMs: number) {}

  /** rbldnsd ds_special for the text after the `$`. */
  apply(line: string): DirectiveOutcome {
    let w: string | undefined
    if ((w = firstWord(line, 'soa')) !== undefined) return this.soa(w) ? 'ok' : 'invalid'
    if ((w = firstWord(line, 'ns')) !== undefined || (w = firstWord(line, 'nameserver')) !== undefined) {
      return this.ns(w) ? 'ok' : 'invalid'
    }
    if ((w = firstWord(line, 'ttl')) !== undefined) {
      const r = parseTime(w)
      if (!r || r[1] !== '') return 'invalid'
      this.ttlSeconds = r[0] === 0 ? DEFAULT_TTL_SECONDS : r[0]
      return 'ok'
    }
    if ((w = firstWord(line, 'maxrange4')) !== undefined) return this.maxRange4(w)
    const c = line.charCodeAt(0)
    if ((isDigit(c) || c === EQUALS) && isSpace(line.charCodeAt(1))) {
      const n = c === EQUALS ? -1 : c - DIGIT_ZERO
      if (n < 0 ? this.base !== undefined : this.subst[n] !== undefined) return 'ok'
      const text = skipSpaces(line.slice(2))
      if (text === '') return 'invalid'
      if (n < 0) this.base = text.slice(0, MAX_BASE_TEMPLATE)
      else this.subst[n] = text.slice(0, MAX_VARIABLE)
      return 'ok'
    }
    if ((w = firstWord(line, 'timestamp')) !== undefined) return this.timestamp(w)
    return 'invalid' // $DATASET (combined datasets only) and anything else
  }

  private soa(w: string): boolean {
    if (this.soaSeen) return true
    let r: [number, string] | undefined = parseTime(w)
    if (!r) return false
    let rest: string | undefined = parseDn(r[1])
    if (rest === undefined || (rest = parseDn(rest)) === undefined) return false
    if (!(r = parseUint32(rest))) return false
    for (let k = 0; k < 4; k++) if (!(r = parseTime(r[1]))) return false
    if (r[1] !== '') return false
    this.soaSeen = true
    return true
  }

  private ns(w: string): boolean {
    if (this.nsSeen) return true
    const r = parseTime(w)
    if (!r) return false
    let rest = r[1]
    let names = 0
    do {
      if (rest.startsWith('-')) {
        rest = rest.replace(/^[^ \t]*[ \t]*/, '')
        continue
      }
      const next = parseDn(rest)
      if (next === undefined) return false
      rest = next
      names++
    } while (rest !== '')
    if (names > 0) this.nsSeen = true
    return true
  }

  private maxRange4(w: string): DirectiveOutcome {
    const cidr = w.startsWith('/')
    const r = parseUint32(cidr ? w.slice(1) : w)
    if (!r || r[1] !== '' || r[0] === 0) return 'invalid'
    let range = r[0]
    if (cidr) {
      if (range > 32) return 'invalid'
      range = ((~mask(range) >>> 0) + 1) >>> 0
    }
    // rbldnsd warns and keeps the smaller limit.
    if (this.maxRange && this.maxRange < range) return { warning: 'ignoring attempt to increase $MAXRANGE4' }
    this.maxRange = range
    return 'ok'
  }

  private timestamp(w: string): DirectiveOutcome {
    const t = parseTimestamp(w)
    if (!t) return 'invalid'
    const [stamp, rest] = t
    let expires = 0
    if (rest.startsWith('+')) {
      const r = parseTime(rest.slice(1))
      if (!r || r[1] !== '' || !stamp || !r[0]) return 'invalid'
      expires = stamp + r[0]
    } else if (rest !== '') {
      const e = parseTimestamp(rest)
      if (!e || e[1] !== '') return 'invalid'
      expires = e[0]
    }
    const nowSeconds = Math.floor(this.nowMs / 1000)
    if (stamp && stamp > nowSeconds) {
      return { fatal: `data timestamp is ${stamp - nowSeconds} sec in the future, aborting loading` }
    }
    if (expires && (!this.expiresAt || this.expiresAt > expires)) this.expiresAt = expires
    // rbldnsd only checks the stamp; it is kept here to tell how old a mirror's data is.
    if (stamp > this.madeAt) this.madeAt = stamp
    return 'ok'
  }
}

/**
 * rbldnsd txtsubst: expand a TXT template for `ip`. `$` is the IP, `$$` a
 * dollar, `$0`..`$9` the dataset's variables, `$=` the entry's text inside the
 * base template. The result is cut to 254 bytes.
 */
export function expandTxt(
  template: string,
  ip: string,
  subst: readonly (string | undefined)[],
  base: string | undefined,
): { text: string; usesIp: boolean } {
  let txt = template
  let s0 = ip
  let sxIsIp = false
  let sx: string
  if (txt.startsWith('=')) {
    txt = txt.slice(1)
    sx = txt
  } else if (base) {
    if (txt !== '') s0 = txt
    else sxIsIp = true
    sx = s0
    txt = base
  } else sx = txt
  let out = ''
  let usesIp = false
  let p = 0
  while (out.length < MAX_TXT) {
    const d = txt.indexOf('$', p)
    out += txt.slice(p, d < 0 ? txt.length : d)
    if (d < 0) break
    const c = txt.charCodeAt(d + 1)
    if (c === DOLLAR) {
      out += '$'
      p = d + 2
    } else if (isDigit(c)) {
      out += subst[c - DIGIT_ZERO] ?? `$${txt[d + 1]}`
      p = d + 2
    } else if (c === EQUALS) {
      out += sx
      if (sxIsIp) usesIp = true
      p = d + 2
    } else {
      out += ip
      usesIp = true
      p = d + 1
    }
  }
  return { text: out.length > MAX_TXT ? out.slice(0, MAX_TXT) : out, usesIp }
}
