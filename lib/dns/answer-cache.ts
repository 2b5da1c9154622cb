// The DNS answers a checker keeps and shares. Kept: per zone and IP, bounded
// by cache_size, a listing for its TTL capped by max_ttl, a not-listed answer
// for negative_ttl, never an error. Shared: a query in flight is joined by
// every caller asking the same. A zone's generation (its count of changes of
// health state) guards both: a query sent under an older generation is neither
// joined nor kept, and only the answers of a zone in use are kept.
import { LRUCache } from 'lru-cache'

import type { DnsblResolver } from './resolver'
import type { DnsSettings, LookupResult, ZoneOutcome } from '../core/types'

type CachedResult = Exclude<LookupResult, { status: 'error' }>

/** A cached answer and the outcome a check reports for it, built once. */
interface CachedAnswer {
  readonly result: CachedResult
  readonly outcome: ZoneOutcome
}

type Lru = LRUCache<string, CachedAnswer>

interface InFlight {
  readonly result: Promise<LookupResult>
  /** The zone's generation when the query was sent. */
  readonly generation: number
}

/** What the cache needs of a zone's health. */
export interface ZoneEpochs {
  /** The zone's count of changes of health state (0 for a zone without checks). */
  generation(zone: string): number
  /** Whether the zone's answers are in use. */
  usable(zone: string): boolean
}

const keyOf = (zone: string, ip: string): string => `${zone}\n${ip}`

export class AnswerCache {
  private lru: Lru | undefined
  /** The queries in flight, by zone and IP. */
  readonly inflight = new Map<string, InFlight>()

  /**
   * `carried`: the answers a reload handed over (see handOver), else a new
   * cache unless cache_size is 0. `clock` (ms) is read on every access when
   * given, with no lru-cache timer in between: tests pass their own.
   */
  constructor(
    private readonly resolver: DnsblResolver,
    private readonly dns: DnsSettings,
    private readonly epochs: ZoneEpochs,
    { carried, clock }: { carried?: Lru | undefined; clock?: { now(): number } | undefined } = {},
  ) {
    const timing = clock ? { perf: clock, ttlResolution: 0 } : {}
    this.lru = carried ?? (dns.cacheSize > 0 ? new LRUCache({ max: dns.cacheSize, ...timing }) : undefined)
  }

  /** The outcome of the cached answer for `ip` in `zone`, if there is one. */
  outcome(zone: string, ip: string): ZoneOutcome | undefined {
    return this.lru?.get(keyOf(zone, ip))?.outcome
  }

  /** The cached answer, the query in flight for the same zone and IP, or a new query. */
  lookup(zone: string, ip: string, budgetMs: number): Promise<LookupResult> {
    const key = keyOf(zone, ip)
    const cached = this.lru?.get(key)
    if (cached) return Promise.resolve(cached.result)
    const generation = this.epochs.generation(zone)
    const joined = this.inflight.get(key)
    if (joined?.generation === generation) return joined.result
    const result = this.resolver.lookup(ip, zone, budgetMs).then((r) => {
      if (this.inflight.get(key)?.result === result) this.inflight.delete(key)
      // One obtained while the zone was failing, or before it changed state, could outlive that.
      if (this.epochs.generation(zone) === generation && this.epochs.usable(zone)) this.remember(key, zone, r)
      return r
    })
    this.inflight.set(key, { result, generation })
    return result
  }

  private remember(key: string, zone: string, result: LookupResult): void {
    if (!this.lru || result.status === 'error') return
    const ttlSeconds =
      result.status === 'listed'
        ? Math.min(result.ttlSeconds, this.dns.maxTtlSeconds)
        : this.dns.negativeTtlSeconds
    // lru-cache reads a ttl of 0 as "never expires": 0 means "do not cache" here.
    if (ttlSeconds > 0)
      this.lru.set(key, { result, outcome: outcomeOf(zone, result) }, { ttl: ttlSeconds * 1000 })
  }

  /** Drop every answer of `zone`. */
  forget(zone: string): void {
    if (!this.lru) return
    const prefix = keyOf(zone, '')
    for (const key of [...this.lru.keys()]) if (key.startsWith(prefix)) this.lru.delete(key)
  }

  /**
   * The answers for the cache of the checker that replaces this one, without
   * those of `dropped` zones. This cache keeps nothing from then on, so
   * queries still in flight cannot add answers the new settings would not give.
   */
  handOver(dropped: readonly string[]): Lru | undefined {
    for (const zone of dropped) this.forget(zone)
    const lru = this.lru
    this.lru = undefined
    return lru
  }

  get size(): number {
    return this.lru?.size ?? 0
  }

  clear(): void {
    this.lru?.clear()
  }
}

/** What a zone's answer says, as a check reports it; frozen, as a cached one is shared. */
export function outcomeOf(zone: string, result: LookupResult): ZoneOutcome {
  if (result.status === 'listed') {
    return Object.freeze({ zone, status: 'listed', codes: result.codes, reason: result.reason })
  }
  if (result.status === 'error') return Object.freeze({ zone, status: 'error', reason: result.reason })
  return Object.freeze({ zone, status: 'not-listed' })
}
