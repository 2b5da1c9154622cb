/**
 * The line parser of rbldnsd's ip4set and ip4tset datasets (rbldnsd_ip4set.c,
 * ip4parse.c): entries, exclusions, values and default lines, with `$` lines
 * handed to ZoneDirectives. It reads the bytes in place and allocates nothing
 * per entry line beyond the blocks it stores; build() turns them into ZoneData.
 */
import { cleanText } from '../core/answer'
import { addRange, BlockList, LEVELS, newLevels } from './blocks'
import { BANG, COLON, DOLLAR, isComment, isSpace, LINE_FEED, NUL } from './chars'
import { ZoneDirectives } from './directives'
import { ZoneData } from './data'
import { ip4prefix, ip4range, ipToString, mask, newCursor } from './ipv4'
import type { ZoneLimits } from './limits'
import { NO_SEGMENTS, overlay } from './merge'
import { GroupTable, sweepLevel } from './sweep'

/** rbldnsd dataset types this module reads. */
export type ZoneFormat = 'ip4set' | 'ip4tset'

/** Problems kept in detail; the rest are only counted. */
export const MAX_PROBLEMS = 10

// rbldnsd's answer when no value is given: A 127.0.0.2 and no TXT.
const DEFAULT_A = 0x7f000002
// `:2` is short for 127.0.0.2.
const LOOPBACK_NET = 0x7f000000
// TXT templates are cut to 255 bytes when read.
const MAX_TEMPLATE = 255
// Lines parsed between yields.
const LINES_PER_YIELD = 4096
// Shortest entry line ("1.2.3.4\n" and some): sizes the /32 list up front.
const BYTES_PER_ENTRY_GUESS = 14

/** Builds a ZoneData from a file's bytes; all state of one parse. */
export class ZoneParser {
  private readonly levels: BlockList[]
  // Value table: id 0 is "excluded"; ids from 1 are (A, TXT template) pairs.
  private readonly valueA: number[] = [0]
  private readonly valueTxt: string[] = ['']
  // Value ids by A, then by TXT template (the template itself is the key: no copy of it).
  private readonly valueIds = new Map<number, Map<string, number>>()
  private readonly directives: ZoneDirectives
  // Where the address parsers leave what they read.
  private readonly at = newCursor()
  private defaultA = DEFAULT_A
  private defaultTxt = ''
  private defaultValue = 0
  private tsetDefaultSet = false
  entries = 0
  malformed = 0
  readonly problems: string[] = []
  /** Set when the whole file is refused: rbldnsd would refuse it, or it is over a limit. */
  fatal: string | undefined
  private lineNo = 0

  constructor(
    private readonly bytes: Buffer,
    private readonly format: ZoneFormat,
    nowMs: number,
    private readonly limits: ZoneLimits,
  ) {
    this.levels = newLevels(Math.max(64, Math.ceil(bytes.length / BYTES_PER_ENTRY_GUESS)))
    this.directives = new ZoneDirectives(nowMs)
    this.defaultValue = this.intern(DEFAULT_A, '')
  }

  private intern(a: number, txt: string): number {
    let byTxt = this.valueIds.get(a)
    if (byTxt === undefined) this.valueIds.set(a, (byTxt = new Map()))
    let id = byTxt.get(txt)
    if (id === undefined) {
      id = this.valueA.length
      this.valueA.push(a)
      this.valueTxt.push(txt)
      byTxt.set(txt, id)
    }
    return id
  }

  private problem(text: string): void {
    this.malformed++
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(`line ${this.lineNo}: ${text}`)
  }

  private warn(what: string, start: number, end: number): void {
    this.problem(
      `${what}: "${cleanText(this.bytes.toString('latin1', start, Math.min(end, start + 200)), 60)}"`,
    )
  }

  /** Parse lines; yields every few thousand lines so a caller can pause. */
  *lines(): Generator<void, void> {
    const b = this.bytes
    const len = b.length
    let pos = 0
    let batch = 0
    let nextNul = b.indexOf(NUL)
    while (pos < len && this.fatal === undefined) {
      let nl = b.indexOf(LINE_FEED, pos)
      if (nl < 0) nl = len
      this.lineNo++
      let s = pos
      let e = nl
      pos = nl + 1
      if (nextNul >= 0 && nextNul < s) nextNul = b.indexOf(NUL, s)
      if (nextNul >= 0 && nextNul < e) e = nextNul // C strings end at NUL
      while (s < e && isSpace(b[s])) s++
      while (e > s && isSpace(b[e - 1])) e--
      if (s < e) this.line(s, e)
      if (++batch === LINES_PER_YIELD) {
        batch = 0
        yield
      }
    }
  }

  private line(s: number, e: number): void {
    const b = this.bytes
    const c0 = b[s]
    if (c0 === DOLLAR || ((isComment(c0) || c0 === COLON) && s + 1 < e && b[s + 1] === DOLLAR)) {
      this.directive(b.toString('latin1', c0 === DOLLAR ? s + 1 : s + 2, e), s, e)
      return
    }
    if (isComment(c0)) return
    if (this.format === 'ip4tset') this.tsetLine(s, e)
    else this.setLine(s, e)
  }

  private directive(text: string, s: number, e: number): void {
    const outcome = this.directives.apply(text)
    if (outcome === 'ok') return
    if (outcome === 'invalid') this.warn('invalid or unrecognized special entry', s, e)
    else if ('warning' in outcome) this.problem(outcome.warning)
    else this.fatal = `line ${this.lineNo}: ${outcome.fatal}`
  }

  /** rbldnsd parse_a_txt for the text at [s, e); returns a value id, or -1 after a warning. */
  private value(s: number, e: number, defA: number, defTxt: string, lineStart: number): number {
    const b = this.bytes
    let a = defA
    let txt: string
    if (b[s] === COLON) {
      const bits = ip4prefix(b, s + 1, e, this.at)
      let v = this.at.first
      if (bits === 8) v = v >>> 24
      else if (bits === 16) v = ((v & 0xff000000) | ((v >>> 16) & 255)) >>> 0
      else if (bits === 24) v = ((v & 0xffff0000) | ((v >>> 8) & 255)) >>> 0
      if (bits <= 0 || v === 0) {
        this.warn('invalid A RR', lineStart, e)
        return -1
      }
      if (bits === 8) v = (v | LOOPBACK_NET) >>> 0
      a = v
      let i = this.at.next
      while (i < e && isSpace(b[i])) i++
      if (i < e && b[i] === COLON) {
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

  /** Count one more entry; false (and the file refused) past the limit. */
  private countEntry(): boolean {
    if (this.entries === this.limits.maxEntries) {
      this.fatal = `more than ${this.limits.maxEntries} entries (the limit)`
      return false
    }
    this.entries++
    return true
  }

  private setLine(s: number, e: number): void {
    const b = this.bytes
    const lineStart = s
    if (b[s] === COLON) {
      const id = this.value(s, e, DEFAULT_A, '', lineStart)
      if (id > 0) {
        this.defaultValue = id
        this.defaultA = this.valueA[id] ?? DEFAULT_A
        this.defaultTxt = this.valueTxt[id] ?? ''
      }
      return
    }
    let exclude = false
    if (b[s] === BANG) {
      exclude = true
      s++
      while (s < e && isSpace(b[s])) s++
    }
    const at = this.at
    const bits = ip4range(b, s, e, at)
    const next = at.next
    const c = b[next]
    if (bits <= 0 || (next < e && !isSpace(c) && !isComment(c) && c !== COLON)) {
      this.warn('invalid address', lineStart, e)
      return
    }
    const first = at.first
    const last = at.last
    if ((first & ~mask(bits)) >>> 0 !== 0) {
      this.warn('invalid range (non-zero host part)', lineStart, e)
      return
    }
    const maxRange = this.directives.maxRange
    if (maxRange && maxRange <= last - first) {
      this.warn(`too large range (${last - first + 1}) ignored (${maxRange} max)`, lineStart, e)
      return
    }
    let value = 0
    if (!exclude) {
      let i = next
      while (i < e && isSpace(b[i])) i++
      if (i >= e || isComment(b[i])) value = this.defaultValue
      else if ((value = this.value(i, e, this.defaultA, this.defaultTxt, lineStart)) < 0) return
    }
    if (this.countEntry()) addRange(this.levels, first, last, value)
  }

  private tsetLine(s: number, e: number): void {
    const b = this.bytes
    if (b[s] === COLON) {
      if (this.tsetDefaultSet) return
      const id = this.value(s, e, DEFAULT_A, '', s)
      if (id > 0) {
        this.defaultValue = id
        this.tsetDefaultSet = true
      }
      return
    }
    const bits = ip4prefix(b, s, e, this.at)
    const next = this.at.next
    const c = b[next]
    if (bits !== 32 || (next < e && !isSpace(c) && !isComment(c) && c !== COLON)) {
      this.warn('invalid address', s, e)
      return
    }
    // Every entry takes the dataset's (first) default value, whenever it appears: set in build().
    if (this.countEntry()) (this.levels[0] as BlockList).add(this.at.first, this.at.first, 1)
  }

  /**
   * Resolve overlaps and exclusions and build the lookup structure: each
   * granularity is swept on its own, then laid over the coarser ones.
   */
  *build(): Generator<void, ZoneData> {
    if (this.format === 'ip4tset') {
      // One value for every entry: the first default line, or rbldnsd's default.
      const v = this.tsetDefaultSet ? this.defaultValue : this.intern(DEFAULT_A, '')
      const l0 = this.levels[0] as BlockList
      l0.values.fill(v, 0, l0.n)
    }
    const groups = new GroupTable()
    let merged = NO_SEGMENTS
    for (let lv = LEVELS - 1; lv >= 0; lv--) {
      const swept = yield* sweepLevel(
        this.levels[lv] as BlockList,
        groups,
        this.valueA.length,
        this.limits.maxValuesPerAddress,
      )
      this.levels[lv] = new BlockList(0)
      if ('tooManyValuesAt' in swept) {
        this.fatal =
          `more than ${this.limits.maxValuesPerAddress} different values for ` +
          `${ipToString(swept.tooManyValuesAt)} (the limit)`
        return ZoneData.empty()
      }
      merged = yield* overlay(merged, swept)
    }
    const { subst, base, ttlSeconds, expiresAt, madeAt } = this.directives
    return new ZoneData(
      merged,
      groups.values,
      { a: this.valueA, txt: this.valueTxt },
      {
        subst,
        base,
        ttlSeconds,
        expiresAt,
        timestamp: madeAt,
      },
    )
  }
}
