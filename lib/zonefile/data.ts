/**
 * The lookup side of a loaded zone: sorted, non-overlapping ranges in typed
 * arrays (first, last, answer group) with a /16 index, so a lookup is a short
 * binary search and allocates nothing unless the TXT names the IP.
 */
import net from 'node:net'

import { classifyAnswer, reasonFromTxt } from '../core/answer'
import { DEFAULT_TTL_SECONDS, expandTxt } from './directives'
import { ipToString, parseIPv4 } from './ipv4'
import { NO_SEGMENTS, type Segments } from './merge'
import type { LookupResult } from '../core/types'

/** The raw DNS answer rbldnsd would give for one IP: A and TXT records in answer order. */
export interface ZoneAnswer {
  readonly a: readonly string[]
  readonly txt: readonly string[]
  readonly ttlSeconds: number
}

/** What the `$` lines of the file set for every answer. */
export interface ZoneMeta {
  readonly subst: readonly (string | undefined)[]
  readonly base: string | undefined
  readonly ttlSeconds: number
  /** Unix seconds after which rbldnsd stops serving the data; 0 = never. */
  readonly expiresAt: number
  /** `$TIMESTAMP`: when the data was made, in Unix seconds; 0 = the file has none. */
  readonly timestamp: number
}

/** The values answers are made of: id 0 is "excluded", ids from 1 are (A, TXT template) pairs. */
export interface ZoneValues {
  readonly a: readonly number[]
  readonly txt: readonly string[]
}

const NOT_LISTED: LookupResult = Object.freeze({ status: 'not-listed' })
const NOT_AN_IP: LookupResult = Object.freeze({ status: 'error', reason: 'not an IP address' })
const EXPIRED: LookupResult = Object.freeze({ status: 'error', reason: 'zone data expired ($TIMESTAMP)' })

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

  constructor(
    ranges: Segments,
    private readonly groupValues: readonly (readonly number[])[],
    private readonly values: ZoneValues,
    private readonly meta: ZoneMeta,
  ) {
    this.starts = ranges.firsts
    this.ends = ranges.lasts
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
    for (let g = 0; g < groupValues.length; g++) {
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

  /** A zone that lists nothing. */
  static empty(): ZoneData {
    return new ZoneData(
      NO_SEGMENTS,
      [[]],
      { a: [0], txt: [''] },
      {
        subst: [],
        base: undefined,
        ttlSeconds: DEFAULT_TTL_SECONDS,
        expiresAt: 0,
        timestamp: 0,
      },
    )
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

  /** When the data was made ($TIMESTAMP), as Unix seconds; 0 = the file does not say. */
  get timestamp(): number {
    return this.meta.timestamp
  }

  private aRecords(g: number): string[] {
    const out: string[] = []
    for (const v of this.groupValues[g] ?? []) {
      const a = ipToString(this.values.a[v] ?? 0)
      if (!out.includes(a)) out.push(a)
    }
    return out
  }

  private txtRecords(g: number, ip: string): { records: string[]; usesIp: boolean } {
    const records: string[] = []
    let usesIp = false
    for (const v of this.groupValues[g] ?? []) {
      const t = expandTxt(this.values.txt[v] ?? '', ip, this.meta.subst, this.meta.base)
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
