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
 * The pieces, in the order the data flows: chars and ipv4 (reading lines and
 * addresses), directives (`$` lines, TXT templates), parser (lines), blocks
 * (the granularities), sweep with min-heap, and merge (overlaps into ranges),
 * data (lookups); limits bound what a file may hold.
 */
import { performance } from 'node:perf_hooks'

import { ZoneData } from './data'
import { ZONE_LIMITS, type ZoneLimits } from './limits'
import { ZoneParser, type ZoneFormat } from './parser'

export { ZoneData, type ZoneAnswer } from './data'
export { DEFAULT_TTL_SECONDS } from './directives'
export { ipToString, parseIPv4 } from './ipv4'
export { ZONE_LIMITS, type ZoneLimits } from './limits'
export { MAX_PROBLEMS, type ZoneFormat } from './parser'

export interface ParseOptions {
  /** Dataset type, as rbldnsd's `zone:TYPE:file`. Default `ip4set`. */
  readonly format?: ZoneFormat
  /** Current time in ms, for `$TIMESTAMP` checks. Default `Date.now()`. */
  readonly now?: number
  /** Limits on entries and values per address. Default ZONE_LIMITS. */
  readonly limits?: Partial<ZoneLimits>
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
  /**
   * Set when the whole file is refused: rbldnsd would refuse it (a
   * `$TIMESTAMP` in the future), or it is over one of the limits.
   */
  readonly fatal?: string
}

function toBuffer(input: string | Uint8Array): Buffer {
  if (typeof input === 'string') return Buffer.from(input, 'utf8')
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
}

function* parseSteps(input: string | Uint8Array, options: ParseOptions): Generator<void, ParseResult> {
  const parser = new ZoneParser(toBuffer(input), options.format ?? 'ip4set', options.now ?? Date.now(), {
    ...ZONE_LIMITS,
    ...options.limits,
  })
  yield* parser.lines()
  const data = parser.fatal === undefined ? yield* parser.build() : ZoneData.empty()
  const result = { data, entries: parser.entries, malformed: parser.malformed, problems: parser.problems }
  return parser.fatal === undefined ? result : { ...result, data: ZoneData.empty(), fatal: parser.fatal }
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
