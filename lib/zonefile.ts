/**
 * Answer DNSBL lookups from a local rbldnsd zone file (a mirror of the list)
 * instead of DNS.
 *
 * The parser follows rbldnsd's ip4set and ip4tset datasets line for line
 * (rbldnsd_ip4set.c, ip4parse.c, rbldnsd_util.c), so the answers equal those a
 * default `rbldnsd` serving the same file gives: the same A records, the same
 * TXT text (with `$` replaced by the IP, `$n` variables and the `$=` base
 * template), the same TTL. Overlaps resolve as in rbldnsd: entries are kept at
 * octet granularity (/32, /24, /16, /8); the most specific granularity holding
 * any entry for an address decides, an exclusion at that granularity wins, and
 * several values there are all returned.
 *
 * The data is held as sorted, non-overlapping ranges in typed arrays
 * (start, end, answer group) with a /16 index, so a lookup is a short binary
 * search and allocates nothing unless the TXT names the IP.
 */
import net from 'node:net'
import { performance } from 'node:perf_hooks'

import { classifyAnswer, cleanText, MAX_TEXT_LENGTH, reasonFromTxt } from './answer'
import type { LookupResult } from './resolver'

/** rbldnsd dataset types this module reads. */
export type ZoneFormat = 'ip4set' | 'ip4tset'

export interface ParseOptions {
  /** Dataset type, as rbldnsd's `zone:TYPE:file`. Default `ip4set`. */
  readonly format?: ZoneFormat
  /** Current time in ms, for `$TIMESTAMP` checks. Default `Date.now()`. */
  readonly now?: number
}

export interface AsyncParseOptions extends ParseOptions {
  /** Longest run of parsing between yields to the event loop, in ms. Default 8. */
  readonly sliceMs?: number
}

/** What parsing a zone found. Parsing never throws: bad lines are counted and skipped. */
export interface ParseResult {
  readonly data: ZoneData
  /** Entry lines accepted (listings and exclusions). */
  readonly entries: number
  /** Lines rbldnsd would warn about and skip. */
  readonly malformed: number
  /** The first few problems, `line N: what: "text"`. */
  readonly problems: readonly string[]
  /** Set when rbldnsd would refuse the whole file (a `$TIMESTAMP` in the future). */
  readonly fatal?: string
}

/** The raw DNS answer rbldnsd would give for one IP: A and TXT records in answer order. */
export interface ZoneAnswer {
  readonly a: readonly string[]
  readonly txt: readonly string[]
  readonly ttlSeconds: number
}

/** rbldnsd's default record TTL (35 minutes) when the file has no `$TTL`. */
export const DEFAULT_TTL_SECONDS = 35 * 60
/** Problems kept in detail; the rest are only counted. */
export const MAX_PROBLEMS = 10

const NOT_LISTED: LookupResult = Object.freeze({ status: 'not-listed' })
const NOT_AN_IP: LookupResult = Object.freeze({ status: 'error', reason: 'not an IP address' })
const EXPIRED: LookupResult = Object.freeze({ status: 'error', reason: 'zone data expired ($TIMESTAMP)' })

// rbldnsd's answer when no value is given: A 127.0.0.2 and no TXT.
const DEFAULT_A = 0x7f000002
// TXT templates are cut to 255 bytes when read, expanded TXT to 254 bytes.
const MAX_TEMPLATE = 255
const MAX_TXT = 254

// Granularities, as rbldnsd's E32/E24/E16/E08 arrays.
const LEVEL_SIZE = [1, 256, 65536, 16777216] as const

function mask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
}

function isSpace(c: number | undefined): boolean {
  return c === 32 || c === 9
}

function isComment(c: number | undefined): boolean {
  return c === 35 || c === 59
}

function isDigit(c: number | undefined): c is number {
  return c !== undefined && c >= 48 && c <= 57
}

/** Dotted quad of a 32-bit address, as rbldnsd's ip4atos. */
export function ipToString(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/** A canonical dotted-quad IPv4 address as a number, or -1. */
export function parseIPv4(s: string): number {
  const len = s.length
  if (len < 7 || len > 15) return -1
  let addr = 0
  let oct = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1
      addr = addr * 256 + oct
      oct = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && oct === 0) return -1
      oct = oct * 10 + (c - 48)
      if (++digits > 3 || oct > 255) return -1
    } else return -1
  }
  if (digits === 0 || dots !== 3) return -1
  return addr * 256 + oct
}

// Results of the address parsers (no allocation per line).
let pAddr = 0
let pEnd = 0
let pNext = 0

/** rbldnsd ip4prefix: `a`, `a.b`, `a.b.c` or `a.b.c.d`; returns bits (8..32) or -1. */
function ip4prefix(b: Uint8Array, i: number, end: number): number {
  let addr = 0
  for (let k = 0; k < 4; k++) {
    let c = b[i]
    if (i >= end || !isDigit(c)) return -1
    let o = c - 48
    i++
    while (i < end && isDigit((c = b[i]))) {
      o = o * 10 + (c - 48)
      if (o > 255) return -1
      i++
    }
    addr += o * 2 ** (24 - 8 * k)
    if (k === 3 || i >= end || b[i] !== 46) {
      pAddr = addr
      pNext = i
      return 8 * (k + 1)
    }
    i++
  }
  return -1
}

/** rbldnsd ip4range: prefix, CIDR or `a-b` range; returns bits (32 for a range) or -1. */
function ip4range(b: Uint8Array, i: number, end: number): number {
  let bits = ip4prefix(b, i, end)
  if (bits < 0) return -1
  const a = pAddr
  i = pNext
  if (i < end && b[i] === 45) {
    let bbits = ip4prefix(b, i + 1, end)
    if (bbits < 0) return -1
    let last = pAddr
    if (bbits === 8) {
      // 127.0.0.1-2 means 127.0.0.1-127.0.0.2: the single octet replaces the last one given.
      last = ((last >>> (bits - 8)) | (a & mask(bits - 8))) >>> 0
      bbits = bits
    } else if (bbits !== bits) return -1
    if (bbits !== 32) last = (last | ~mask(bbits)) >>> 0
    if (a > last) return -1
    pAddr = a
    pEnd = last
    return 32
  }
  if (i < end && b[i] === 47) {
    i++
    let c = b[i]
    if (i >= end || !isDigit(c)) return -1
    bits = c - 48
    i++
    while (i < end && isDigit((c = b[i]))) {
      bits = bits * 10 + (c - 48)
      if (bits > 32) return -1
      i++
    }
  } else if (bits === 8) return -1 // a bare number: rbldnsd wants 10/8
  pAddr = a
  pEnd = (a | ~mask(bits)) >>> 0
  pNext = i
  return bits
}

// ---------------------------------------------------------------------------
// Special ($) lines

/** rbldnsd firstword_lc: the rest after `word` (any case) and white space, or undefined. */
function firstWord(line: string, word: string): string | undefined {
  if (line.length <= word.length || line.slice(0, word.length).toLowerCase() !== word) return undefined
  if (!isSpace(line.charCodeAt(word.length))) return undefined
  return line.slice(word.length).replace(/^[ \t]+/, '')
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
    rest = rest.replace(/^[ \t]+/, '')
  }
  return [n, rest]
}

function parseUint32(s: string): [number, string] | undefined {
  const m = /^\d+/.exec(s)
  if (!m || Number(m[0]) > 0xffffffff) return undefined
  let rest = s.slice(m[0].length)
  if (rest !== '') {
    if (!isSpace(rest.charCodeAt(0))) return undefined
    rest = rest.replace(/^[ \t]+/, '')
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
  return s.slice(m[0].length).replace(/^[ \t]+/, '')
}

const MDAY = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

// rbldnsd parse_timestamp: yyyy[:-]mm[:-]dd[[:-]hh[[:-]mi[[:-]ss]]], or 0/-/: for none.
function parseTimestamp(s: string): [number, string] | undefined {
  if ((s[0] === '0' || s[0] === '-' || s[0] === ':') && (s.length === 1 || isSpace(s.charCodeAt(1)))) {
    return [0, s.slice(1).replace(/^[ \t]+/, '')]
  }
  let p = 0
  const part = (min: number, max: number, width: number): number | undefined => {
    if (!isDigit(s.charCodeAt(p))) return undefined
    let n = 0
    let w = width
    do n = n * 10 + (s.charCodeAt(p++) - 48)
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
  return [Date.UTC(year, mon - 1, day, hour, min, sec) / 1000, s.slice(p).replace(/^[ \t]+/, '')]
}

// ---------------------------------------------------------------------------
// TXT templates

/**
 * rbldnsd txtsubst: expand a TXT template for `ip`. `$` is the IP, `$$` a
 * dollar, `$0`..`$9` the dataset's variables, `$=` the entry's text inside the
 * base template. The result is cut to 254 bytes.
 */
function expandTxt(
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
    if (c === 36) {
      out += '$'
      p = d + 2
    } else if (isDigit(c)) {
      out += subst[c - 48] ?? `$${txt[d + 1]}`
      p = d + 2
    } else if (c === 61) {
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

// ---------------------------------------------------------------------------
// Parsing

interface Level {
  keys: Uint32Array
  vals: Uint32Array
  n: number
}

function newLevel(capacity: number): Level {
  return { keys: new Uint32Array(capacity), vals: new Uint32Array(capacity), n: 0 }
}

function addToLevel(level: Level, start: number, count: number, step: number, value: number): void {
  if (count <= 0) return
  if (level.n + count > level.keys.length) {
    let cap = Math.max(64, level.keys.length * 2)
    while (cap < level.n + count) cap *= 2
    const keys = new Uint32Array(cap)
    keys.set(level.keys.subarray(0, level.n))
    const vals = new Uint32Array(cap)
    vals.set(level.vals.subarray(0, level.n))
    level.keys = keys
    level.vals = vals
  }
  let n = level.n
  const { keys, vals } = level
  for (let a = start; count-- > 0; a += step, n++) {
    keys[n] = a
    vals[n] = value
  }
  level.n = n
}

/** Builds a ZoneData from lines; all state of one parse. */
class ZoneParser {
  readonly levels: Level[]
  // Value table: id 0 is "excluded"; ids from 1 are (A, TXT template) pairs.
  readonly valueA: number[] = [0]
  readonly valueTxt: string[] = ['']
  private readonly valueIds = new Map<string, number>()
  private defaultA = DEFAULT_A
  private defaultTxt = ''
  private defaultValue = 0
  private tsetDefaultSet = false
  readonly subst: (string | undefined)[] = new Array<string | undefined>(10).fill(undefined)
  base: string | undefined
  ttl = DEFAULT_TTL_SECONDS
  expiresAt = 0
  private maxRange = 0
  private soaSeen = false
  private nsSeen = false
  entries = 0
  malformed = 0
  readonly problems: string[] = []
  fatal: string | undefined
  lineNo = 0

  constructor(
    private readonly bytes: Buffer,
    private readonly format: ZoneFormat,
    private readonly now: number,
  ) {
    this.levels = [
      newLevel(Math.max(64, Math.ceil(bytes.length / 14))),
      newLevel(64),
      newLevel(64),
      newLevel(64),
    ]
    this.defaultValue = this.intern(DEFAULT_A, '')
  }

  private intern(a: number, txt: string): number {
    const key = `${a} ${txt}`
    let id = this.valueIds.get(key)
    if (id === undefined) {
      id = this.valueA.length
      this.valueA.push(a)
      this.valueTxt.push(txt)
      this.valueIds.set(key, id)
    }
    return id
  }

  private warn(what: string, start: number, end: number): void {
    this.malformed++
    if (this.problems.length < MAX_PROBLEMS) {
      const text = cleanText(this.bytes.toString('latin1', start, Math.min(end, start + 200)), 60)
      this.problems.push(`line ${this.lineNo}: ${what}: "${text}"`)
    }
  }

  /** Parse lines; yields every few thousand lines so a caller can pause. */
  *lines(): Generator<void, void> {
    const b = this.bytes
    const len = b.length
    let pos = 0
    let batch = 0
    let nextNul = b.indexOf(0)
    while (pos < len && this.fatal === undefined) {
      let nl = b.indexOf(10, pos)
      if (nl < 0) nl = len
      this.lineNo++
      let s = pos
      let e = nl
      pos = nl + 1
      if (nextNul >= 0 && nextNul < s) nextNul = b.indexOf(0, s)
      if (nextNul >= 0 && nextNul < e) e = nextNul // C strings end at NUL
      while (s < e && isSpace(b[s])) s++
      while (e > s && isSpace(b[e - 1])) e--
      if (s < e) this.line(s, e)
      if (++batch === 4096) {
        batch = 0
        yield
      }
    }
  }

  private line(s: number, e: number): void {
    const b = this.bytes
    const c0 = b[s]
    if (c0 === 36 || ((isComment(c0) || c0 === 58) && s + 1 < e && b[s + 1] === 36)) {
      const ok = this.special(b.toString('latin1', c0 === 36 ? s + 1 : s + 2, e))
      if (!ok) this.warn('invalid or unrecognized special entry', s, e)
      return
    }
    if (isComment(c0)) return
    if (this.format === 'ip4tset') this.tsetLine(s, e)
    else this.setLine(s, e)
  }

  /** rbldnsd parse_a_txt for the text at [s, e); returns a value id, or -1 after a warning. */
  private value(s: number, e: number, defA: number, defTxt: string, lineStart: number): number {
    const b = this.bytes
    let a = defA
    let txt: string
    if (b[s] === 58) {
      const bits = ip4prefix(b, s + 1, e)
      let v = pAddr
      if (bits === 8) v = v >>> 24
      else if (bits === 16) v = ((v & 0xff000000) | ((v >>> 16) & 255)) >>> 0
      else if (bits === 24) v = ((v & 0xffff0000) | ((v >>> 8) & 255)) >>> 0
      if (bits <= 0 || v === 0) {
        this.warn('invalid A RR', lineStart, e)
        return -1
      }
      if (bits === 8) v = (v | 0x7f000000) >>> 0 // `:2` is 127.0.0.2
      a = v
      let i = pNext
      while (i < e && isSpace(b[i])) i++
      if (i < e && b[i] === 58) {
        i++
        while (i < e && isSpace(b[i])) i++
        txt = b.toString('latin1', i, Math.min(e, i + MAX_TEMPLATE))
      } else if (i < e) {
        this.warn('unrecognized value for an entry', lineStart, e)
        return -1
      } else txt = defTxt
    } else txt = b.toString('latin1', s, Math.min(e, s + MAX_TEMPLATE))
    return this.intern(a, txt)
  }

  private setLine(s: number, e: number): void {
    const b = this.bytes
    const lineStart = s
    if (b[s] === 58) {
      const id = this.value(s, e, DEFAULT_A, '', lineStart)
      if (id > 0) {
        this.defaultValue = id
        this.defaultA = this.valueA[id] ?? DEFAULT_A
        this.defaultTxt = this.valueTxt[id] ?? ''
      }
      return
    }
    let exclude = false
    if (b[s] === 33) {
      exclude = true
      s++
      while (s < e && isSpace(b[s])) s++
    }
    const bits = ip4range(b, s, e)
    const next = pNext
    const c = b[next]
    if (bits <= 0 || (next < e && !isSpace(c) && !isComment(c) && c !== 58)) {
      this.warn('invalid address', lineStart, e)
      return
    }
    const first = pAddr
    const last = pEnd
    if ((first & ~mask(bits)) >>> 0 !== 0) {
      this.warn('invalid range (non-zero host part)', lineStart, e)
      return
    }
    if (this.maxRange && this.maxRange <= last - first) {
      this.warn(`too large range (${last - first + 1}) ignored (${this.maxRange} max)`, lineStart, e)
      return
    }
    let value = 0
    if (!exclude) {
      let i = next
      while (i < e && isSpace(b[i])) i++
      if (i >= e || isComment(b[i])) value = this.defaultValue
      else if ((value = this.value(i, e, this.defaultA, this.defaultTxt, lineStart)) < 0) return
    }
    this.entries++
    this.expand(first, last, value)
  }

  /** Store [a, b] at octet granularity exactly as rbldnsd's ip4range_expand. */
  private expand(a: number, b: number, value: number): void {
    const lv = this.levels
    for (let idx = 0; idx < 3; idx++) {
      const level = lv[idx] as Level
      const step = LEVEL_SIZE[idx] as number
      if ((a | 255) >>> 0 >= b) {
        if (b - a === 255) addToLevel(lv[idx + 1] as Level, a * step, 1, step * 256, value)
        else addToLevel(level, a * step, b - a + 1, step, value)
        return
      }
      if (a & 255) {
        addToLevel(level, a * step, 256 - (a & 255), step, value)
        a = Math.floor(a / 256) + 1
      } else a = Math.floor(a / 256)
      if ((b & 255) !== 255) {
        addToLevel(level, (b - (b & 255)) * step, (b & 255) + 1, step, value)
        b = Math.floor(b / 256) - 1
      } else b = Math.floor(b / 256)
    }
    addToLevel(lv[3] as Level, a * 16777216, b - a + 1, 16777216, value)
  }

  private tsetLine(s: number, e: number): void {
    const b = this.bytes
    if (b[s] === 58) {
      if (this.tsetDefaultSet) return
      const id = this.value(s, e, DEFAULT_A, '', s)
      if (id > 0) {
        this.defaultValue = id
        this.tsetDefaultSet = true
      }
      return
    }
    const bits = ip4prefix(b, s, e)
    const next = pNext
    const c = b[next]
    if (bits !== 32 || (next < e && !isSpace(c) && !isComment(c) && c !== 58)) {
      this.warn('invalid address', s, e)
      return
    }
    this.entries++
    // Every entry takes the dataset's (first) default value, whenever it appears: fixed up in build().
    addToLevel(this.levels[0] as Level, pAddr, 1, 1, 1)
  }

  /** rbldnsd ds_special; false when the line is invalid or not recognised. */
  private special(line: string): boolean {
    let w: string | undefined
    if ((w = firstWord(line, 'soa')) !== undefined) {
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
    if ((w = firstWord(line, 'ns')) !== undefined || (w = firstWord(line, 'nameserver')) !== undefined) {
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
    if ((w = firstWord(line, 'ttl')) !== undefined) {
      const r = parseTime(w)
      if (!r || r[1] !== '') return false
      this.ttl = r[0] === 0 ? DEFAULT_TTL_SECONDS : r[0]
      return true
    }
    if ((w = firstWord(line, 'maxrange4')) !== undefined) {
      const cidr = w.startsWith('/')
      const r = parseUint32(cidr ? w.slice(1) : w)
      if (!r || r[1] !== '' || r[0] === 0) return false
      let range = r[0]
      if (cidr) {
        if (range > 32) return false
        range = ((~mask(range) >>> 0) + 1) >>> 0
      }
      if (this.maxRange && this.maxRange < range) {
        this.malformed++ // rbldnsd warns and keeps the smaller limit
        if (this.problems.length < MAX_PROBLEMS) {
          this.problems.push(`line ${this.lineNo}: ignoring attempt to increase $MAXRANGE4`)
        }
      } else this.maxRange = range
      return true
    }
    const c = line.charCodeAt(0)
    if ((isDigit(c) || c === 61) && isSpace(line.charCodeAt(1))) {
      const n = c === 61 ? -1 : c - 48
      if (n < 0 ? this.base !== undefined : this.subst[n] !== undefined) return true
      const text = line.slice(2).replace(/^[ \t]+/, '')
      if (text === '') return false
      if (n < 0) this.base = text
      else this.subst[n] = text
      return true
    }
    if ((w = firstWord(line, 'timestamp')) !== undefined) return this.timestamp(w)
    return false // $DATASET (combined datasets only) and anything else
  }

  private timestamp(w: string): boolean {
    const t = parseTimestamp(w)
    if (!t) return false
    const [stamp, rest] = t
    let expires = 0
    if (rest.startsWith('+')) {
      const r = parseTime(rest.slice(1))
      if (!r || r[1] !== '' || !stamp || !r[0]) return false
      expires = stamp + r[0]
    } else if (rest !== '') {
      const e = parseTimestamp(rest)
      if (!e || e[1] !== '') return false
      expires = e[0]
    }
    const nowSeconds = Math.floor(this.now / 1000)
    if (stamp && stamp > nowSeconds) {
      this.fatal = `line ${this.lineNo}: data timestamp is ${stamp - nowSeconds} sec in the future, aborting loading`
      return true
    }
    if (expires && (!this.expiresAt || this.expiresAt > expires)) this.expiresAt = expires
    return true
  }

  /** Sort, resolve overlaps and exclusions, and build the lookup structure. */
  *build(): Generator<void, ZoneData> {
    if (this.format === 'ip4tset') {
      // One value for every entry: the first default line, or rbldnsd's default.
      const v = this.tsetDefaultSet ? this.defaultValue : this.intern(DEFAULT_A, '')
      const l0 = this.levels[0] as Level
      l0.vals.fill(v, 0, l0.n)
    }
    const groups = new GroupTable()
    const grouped: { keys: Uint32Array; groups: Uint32Array; n: number }[] = []
    for (const level of this.levels) {
      yield* sortPairs(level)
      grouped.push(yield* groupLevel(level, groups))
      level.keys = new Uint32Array(0)
      level.vals = new Uint32Array(0)
      yield
    }
    const ranges = yield* sweep(grouped)
    yield
    return new ZoneData(ranges, groups.values, this.valueA, this.valueTxt, {
      subst: this.subst,
      base: this.base,
      ttlSeconds: this.ttl,
      expiresAt: this.expiresAt,
    })
  }
}

// Elements handled between yields while sorting and grouping.
const CHUNK = 65536

/**
 * LSD radix sort of (key, value) pairs by key, 11 bits per pass (cache-friendly
 * buckets), stable: equal keys keep file order. Yields between chunks.
 */
function* sortPairs(level: Level): Generator<void, void> {
  const n = level.n
  let { keys, vals } = level
  let sorted = true
  for (let i = 1; i < n; i++) {
    if ((keys[i] as number) < (keys[i - 1] as number)) {
      sorted = false
      break
    }
  }
  if (sorted) return
  let k2: Uint32Array = new Uint32Array(n)
  let v2: Uint32Array = new Uint32Array(n)
  const counts = new Uint32Array(2049)
  for (let shift = 0; shift < 32; shift += 11) {
    counts.fill(0)
    for (let from = 0; from < n; from += CHUNK) {
      const to = Math.min(n, from + CHUNK)
      for (let i = from; i < to; i++) (counts[(((keys[i] as number) >>> shift) & 0x7ff) + 1] as number)++
      yield
    }
    let full = false
    for (let d = 1; d <= 2048; d++) if (counts[d] === n) full = true
    if (full) continue // every key has the same digit: this pass changes nothing
    for (let d = 1; d <= 2048; d++) counts[d] = (counts[d] as number) + (counts[d - 1] as number)
    for (let from = 0; from < n; from += CHUNK) {
      const to = Math.min(n, from + CHUNK)
      for (let i = from; i < to; i++) {
        const k = keys[i] as number
        const d = (k >>> shift) & 0x7ff
        const at = counts[d] as number
        counts[d] = at + 1
        k2[at] = k
        v2[at] = vals[i] as number
      }
      yield
    }
    ;[keys, k2] = [k2, keys]
    ;[vals, v2] = [v2, vals]
  }
  level.keys = keys
  level.vals = vals
}

/** Distinct answer groups: the list of value ids one address answers with. Group 0 = excluded. */
class GroupTable {
  readonly values: number[][] = [[]]
  private readonly single: number[] = []
  private readonly multi = new Map<string, number>()

  forValue(v: number): number {
    let g = this.single[v]
    if (g === undefined) {
      g = this.values.length
      this.values.push([v])
      this.single[v] = g
    }
    return g
  }

  forValues(vs: number[]): number {
    if (vs.length === 1) return this.forValue(vs[0] as number)
    const key = vs.join(',')
    let g = this.multi.get(key)
    if (g === undefined) {
      g = this.values.length
      this.values.push(vs)
      this.multi.set(key, g)
    }
    return g
  }
}

/** Collapse equal addresses of one granularity into (address, group). */
function* groupLevel(
  level: Level,
  table: GroupTable,
): Generator<void, { keys: Uint32Array; groups: Uint32Array; n: number }> {
  const { keys, vals, n } = level
  const outKeys = new Uint32Array(n)
  const outGroups = new Uint32Array(n)
  let m = 0
  let pause = CHUNK
  for (let i = 0; i < n;) {
    if (i >= pause) {
      pause = i + CHUNK
      yield
    }
    const k = keys[i] as number
    let j = i + 1
    while (j < n && keys[j] === k) j++
    let g: number
    if (j === i + 1) g = vals[i] === 0 ? 0 : table.forValue(vals[i] as number)
    else {
      const vs: number[] = []
      let excluded = false
      for (let x = i; x < j; x++) {
        const v = vals[x] as number
        if (v === 0) excluded = true
        else if (!vs.includes(v)) vs.push(v)
      }
      g = excluded ? 0 : table.forValues(vs)
    }
    outKeys[m] = k
    outGroups[m++] = g
    i = j
  }
  return { keys: outKeys.slice(0, m), groups: outGroups.slice(0, m), n: m }
}

interface Ranges {
  starts: Uint32Array
  ends: Uint32Array
  groups: Uint32Array
}

/**
 * Merge the four granularities into non-overlapping ranges: blocks are nested
 * or disjoint, and an inner (finer) block overrides the outer one.
 */
function* sweep(levels: { keys: Uint32Array; groups: Uint32Array; n: number }[]): Generator<void, Ranges> {
  let cap = 1024
  for (const l of levels) cap += l.n
  let starts: Uint32Array = new Uint32Array(cap)
  let ends: Uint32Array = new Uint32Array(cap)
  let groups: Uint32Array = new Uint32Array(cap)
  let out = 0
  const emit = (from: number, to: number, g: number): void => {
    if (g === 0 || from > to) return
    if (out > 0 && groups[out - 1] === g && (ends[out - 1] as number) + 1 === from) {
      ends[out - 1] = to
      return
    }
    if (out === starts.length) {
      const grow = (a: Uint32Array): Uint32Array => {
        const b = new Uint32Array(a.length * 2)
        b.set(a)
        return b
      }
      starts = grow(starts)
      ends = grow(ends)
      groups = grow(groups)
    }
    starts[out] = from
    ends[out] = to
    groups[out++] = g
  }
  const heads = [0, 0, 0, 0]
  const stackEnd: number[] = []
  const stackGroup: number[] = []
  let pos = 0
  let count = 0
  for (;;) {
    // Next block: lowest start; at equal starts the coarser block first.
    let best = -1
    let bestStart = 0
    for (let lv = 3; lv >= 0; lv--) {
      const l = levels[lv] as { keys: Uint32Array; n: number }
      const h = heads[lv] as number
      if (h < l.n) {
        const st = l.keys[h] as number
        if (best < 0 || st < bestStart) {
          best = lv
          bestStart = st
        }
      }
    }
    if (best < 0) break
    const l = levels[best] as { keys: Uint32Array; groups: Uint32Array }
    const h = heads[best] as number
    heads[best] = h + 1
    const end = bestStart + (LEVEL_SIZE[best] as number) - 1
    while (stackEnd.length > 0 && (stackEnd[stackEnd.length - 1] as number) < bestStart) {
      const e = stackEnd.pop() as number
      emit(pos, e, stackGroup.pop() as number)
      pos = Math.max(pos, e + 1)
    }
    if (stackEnd.length > 0) emit(pos, bestStart - 1, stackGroup[stackGroup.length - 1] as number)
    pos = bestStart
    stackEnd.push(end)
    stackGroup.push(l.groups[h] as number)
    if (++count % 8192 === 0) yield
  }
  while (stackEnd.length > 0) {
    const e = stackEnd.pop() as number
    emit(pos, e, stackGroup.pop() as number)
    pos = Math.max(pos, e + 1)
  }
  return { starts: starts.slice(0, out), ends: ends.slice(0, out), groups: groups.slice(0, out) }
}

function toBuffer(input: string | Uint8Array): Buffer {
  if (typeof input === 'string') return Buffer.from(input, 'utf8')
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
}

function* parseSteps(input: string | Uint8Array, options: ParseOptions): Generator<void, ParseResult> {
  const parser = new ZoneParser(toBuffer(input), options.format ?? 'ip4set', options.now ?? Date.now())
  yield* parser.lines()
  const data = parser.fatal === undefined ? yield* parser.build() : ZoneData.empty()
  const result = { data, entries: parser.entries, malformed: parser.malformed, problems: parser.problems }
  return parser.fatal === undefined ? result : { ...result, fatal: parser.fatal }
}

/** Parse an rbldnsd ip4set/ip4tset zone in one go. Never throws on bad input. */
export function parseZone(input: string | Uint8Array, options: ParseOptions = {}): ParseResult {
  const steps = parseSteps(input, options)
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
  }
}

/**
 * Parse like parseZone, yielding to the event loop whenever a slice of work
 * has run for `sliceMs`, so SMTP sessions keep running during a large load.
 */
export async function parseZoneAsync(
  input: string | Uint8Array,
  options: AsyncParseOptions = {},
): Promise<ParseResult> {
  const sliceMs = options.sliceMs ?? 8
  const steps = parseSteps(input, options)
  let deadline = performance.now() + sliceMs
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
    if (performance.now() >= deadline) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      deadline = performance.now() + sliceMs
    }
  }
}

// ---------------------------------------------------------------------------
// Lookup structure

interface ZoneMeta {
  readonly subst: readonly (string | undefined)[]
  readonly base: string | undefined
  readonly ttlSeconds: number
  /** Unix seconds after which rbldnsd stops serving the data; 0 = never. */
  readonly expiresAt: number
}

/** An in-memory zone: answers like rbldnsd serving the parsed file. */
export class ZoneData {
  private readonly starts: Uint32Array
  private readonly ends: Uint32Array
  private readonly groups: Uint32Array
  /** index[h] = first range whose start is at or above h << 16. */
  private readonly index: Uint32Array
  // Per group: the result when it does not depend on the IP, else undefined.
  private readonly fixed: (LookupResult | undefined)[]
  private readonly codes: (readonly string[])[]
  // Per group: the clean reason split where the IP goes, when a plain join gives
  // exactly what cleaning the expanded TXT gives (the fast path for hits).
  private readonly pieces: (readonly string[] | undefined)[]

  constructor(
    ranges: Ranges,
    private readonly groupValues: readonly (readonly number[])[],
    private readonly valueA: readonly number[],
    private readonly valueTxt: readonly string[],
    private readonly meta: ZoneMeta,
  ) {
    this.starts = ranges.starts
    this.ends = ranges.ends
    this.groups = ranges.groups
    this.index = new Uint32Array(65537)
    const n = this.starts.length
    let i = 0
    for (let h = 0; h <= 65536; h++) {
      while (i < n && (this.starts[i] as number) >>> 16 < h) i++
      this.index[h] = i
    }
    this.fixed = []
    this.codes = []
    this.pieces = []
    for (let g = 0; g < groupValues.length; g++) {
      this.pieces.push(this.splitAtIp(g))
      const a = this.aRecords(g)
      const cls = classifyAnswer(a)
      this.codes.push(cls.kind === 'listed' ? cls.codes : [])
      if (cls.kind === 'error') {
        this.fixed.push(Object.freeze({ status: 'error', reason: cls.reason }))
      } else if (cls.kind === 'not-listed') {
        this.fixed.push(NOT_LISTED)
      } else {
        const txt = this.txtRecords(g, '0.0.0.0')
        this.fixed.push(
          txt.usesIp
            ? undefined
            : Object.freeze({
                status: 'listed',
                codes: cls.codes,
                reason: reasonFromTxt(txt.records.map((t) => [t])),
                ttlSeconds: meta.ttlSeconds,
              }),
        )
      }
    }
  }

  /**
   * The group's only TXT template expanded with a marker for the IP and split
   * there, if joining the pieces with any IP needs no cleaning: printable ASCII,
   * no double spaces, no space at either end, short enough never to be cut.
   */
  private splitAtIp(g: number): readonly string[] | undefined {
    const values = this.groupValues[g] ?? []
    if (values.length !== 1) return undefined
    const t = expandTxt(this.valueTxt[values[0] as number] ?? '', '\u0000', this.meta.subst, this.meta.base)
    if (!t.usesIp) return undefined
    const pieces = t.text.split('\u0000')
    const longest = t.text.length + (pieces.length - 1) * ('255.255.255.255'.length - 1)
    if (longest > MAX_TEXT_LENGTH || !/^[\x20-\x7e]*$/.test(pieces.join(''))) return undefined
    if (
      pieces.some((p) => p.includes('  ')) ||
      pieces[0]?.startsWith(' ') ||
      pieces[pieces.length - 1]?.endsWith(' ')
    ) {
      return undefined
    }
    return pieces
  }

  /** A zone that lists nothing. */
  static empty(): ZoneData {
    const none = new Uint32Array(0)
    return new ZoneData({ starts: none, ends: none, groups: none }, [[]], [0], [''], {
      subst: [],
      base: undefined,
      ttlSeconds: DEFAULT_TTL_SECONDS,
      expiresAt: 0,
    })
  }

  /** Number of non-overlapping ranges held. */
  get size(): number {
    return this.starts.length
  }

  /** TTL of the answers, in seconds ($TTL, or rbldnsd's default 35 minutes). */
  get ttlSeconds(): number {
    return this.meta.ttlSeconds
  }

  /** When the data expires ($TIMESTAMP), as Unix seconds; 0 = never. */
  get expiresAt(): number {
    return this.meta.expiresAt
  }

  private aRecords(g: number): string[] {
    const out: string[] = []
    for (const v of this.groupValues[g] ?? []) {
      const a = ipToString(this.valueA[v] ?? 0)
      if (!out.includes(a)) out.push(a)
    }
    return out
  }

  private txtRecords(g: number, ip: string): { records: string[]; usesIp: boolean } {
    const records: string[] = []
    let usesIp = false
    for (const v of this.groupValues[g] ?? []) {
      const t = expandTxt(this.valueTxt[v] ?? '', ip, this.meta.subst, this.meta.base)
      usesIp ||= t.usesIp
      if (t.text !== '' && !records.includes(t.text)) records.push(t.text)
    }
    return { records, usesIp }
  }

  /** The answer group of address `n`, or -1 when it is not listed. */
  private find(n: number): number {
    const h = n >>> 16
    const starts = this.starts
    let lo = this.index[h] as number
    let hi = (this.index[h + 1] as number) - 1
    let at = lo - 1
    while (lo <= hi) {
      const m = (lo + hi) >>> 1
      if ((starts[m] as number) <= n) {
        at = m
        lo = m + 1
      } else hi = m - 1
    }
    if (at < 0 || (this.ends[at] as number) < n) return -1
    return this.groups[at] as number
  }

  private expired(): boolean {
    return this.meta.expiresAt > 0 && Date.now() / 1000 > this.meta.expiresAt
  }

  /**
   * What the DNS path would conclude for `ip`: listed (A codes, clean TXT
   * reason, TTL), not-listed, or error (A outside 127/8 or 127.255.255.x, data
   * expired, not an IP). IPv6 addresses are never listed in IPv4 datasets.
   */
  lookup(ip: string): LookupResult {
    const n = parseIPv4(ip)
    if (n < 0) return net.isIPv6(ip) ? NOT_LISTED : NOT_AN_IP
    if (this.meta.expiresAt > 0 && this.expired()) return EXPIRED
    const g = this.find(n)
    if (g < 0) return NOT_LISTED
    const fixed = this.fixed[g]
    if (fixed) return fixed
    const pieces = this.pieces[g]
    if (pieces) {
      let reason = pieces[0] as string
      for (let i = 1; i < pieces.length; i++) reason += ip + (pieces[i] as string)
      return { status: 'listed', codes: this.codes[g] ?? [], reason, ttlSeconds: this.meta.ttlSeconds }
    }
    return {
      status: 'listed',
      codes: this.codes[g] ?? [],
      reason: reasonFromTxt(this.txtRecords(g, ip).records.map((t) => [t])),
      ttlSeconds: this.meta.ttlSeconds,
    }
  }

  /** The raw records rbldnsd would answer for `ip` (A, TXT), or undefined when it answers none. */
  answers(ip: string): ZoneAnswer | undefined {
    const n = parseIPv4(ip)
    if (n < 0 || (this.meta.expiresAt > 0 && this.expired())) return undefined
    const g = this.find(n)
    if (g < 0) return undefined
    return { a: this.aRecords(g), txt: this.txtRecords(g, ip).records, ttlSeconds: this.meta.ttlSeconds }
  }
}
