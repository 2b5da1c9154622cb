// What the plugin did, counted for a Prometheus scrape of /metrics. The mail path
// only adds to plain numbers (a few nanoseconds); prom-client reads them when a
// scrape asks. Labels take values from fixed sets and zone names from the config:
// never a client IP, an address or a secret, so the number of series stays bounded.
import { Counter, Gauge, Registry } from 'prom-client'

import type { AnswerSource } from '../dns/checker'
import { BucketTally, talliedHistogram } from './histogram'
import type { ZoneOutcome } from '../core/types'

export const METRIC_PREFIX = 'haraka_backscatter_'

export type LookupStatus = ZoneOutcome['status']
/** Where a zone's answer came from. */
export type LookupSource = AnswerSource
/** What became of one recipient of a checked bounce. */
export type RecipientDecision = 'accepted' | 'refused' | 'deferred' | 'exempt'
export type BatvResult = 'signed' | 'valid' | 'invalid' | 'missing'

// Index of each label value in the tallies; the order is the exposition's.
const STATUS_INDEX = { listed: 0, 'not-listed': 1, error: 2, skipped: 3 } as const
const OUTCOMES = ['listed', 'not_listed', 'error', 'skipped'] as const
const SOURCE_INDEX = { dns: 0, file: 1, cache: 2 } as const
const SOURCES = ['dns', 'file', 'cache'] as const
const DECISION_INDEX = { accepted: 0, refused: 1, deferred: 2, exempt: 3 } as const
const DECISIONS = ['accepted', 'refused', 'deferred', 'exempt'] as const
const BATV_INDEX = { signed: 0, valid: 1, invalid: 2, missing: 3 } as const
const BATV_RESULTS = ['signed', 'valid', 'invalid', 'missing'] as const

/**
 * Upper bounds of lookup_seconds, in seconds: a zone file answers in
 * microseconds, a DNS server in milliseconds, a dead one at the lookup budget.
 */
export const LOOKUP_SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
])

/** One zone's state as a scrape shows it. */
export interface ZoneState {
  readonly zone: string
  /** Its answers are used (health check passed, or no checks configured). */
  readonly usable: boolean
  /** Entries of a zone answered from a file, once its data is loaded. */
  readonly entries?: number
  /** When the data in use of a zone answered from a file was loaded, in Unix seconds. */
  readonly loadedAtSeconds?: number
  /** The `$TIMESTAMP` of the zone file in use, in Unix seconds, where it has one. */
  readonly fileTimestampSeconds?: number
}

/** What the gauges show, read at scrape time from whoever holds the state. */
export interface MetricsState {
  readonly zones: readonly ZoneState[]
  /** Answers in the lookup cache. */
  readonly cacheEntries: number
}

const NO_STATE: MetricsState = Object.freeze({ zones: [], cacheEntries: 0 })

/** One zone's counts: lookups by outcome and source, and how long the uncached ones took. */
class ZoneTally {
  /** [outcome * SOURCES.length + source] */
  readonly lookups = new Float64Array(OUTCOMES.length * SOURCES.length)
  readonly seconds = new BucketTally(LOOKUP_SECONDS_BUCKETS)
}

/**
 * The plugin's counters, gauges and lookup-time histogram, in a registry of
 * their own (nothing in prom-client's global registry). One per process, kept
 * over config reloads: counters only ever grow.
 */
export class BackscatterMetrics {
  readonly registry = new Registry()
  private readonly zones = new Map<string, ZoneTally>()
  private readonly recipients = new Float64Array(DECISIONS.length)
  private readonly batvResults = new Float64Array(BATV_RESULTS.length)
  private readState: () => MetricsState = () => NO_STATE

  constructor() {
    const registers = [this.registry]
    const zones = this.zones
    const recipients = this.recipients
    const batvResults = this.batvResults
    const state = (): MetricsState => this.readState()

    new Counter({
      name: `${METRIC_PREFIX}lookups_total`,
      help: 'Zone lookups for bounces, by zone, outcome (listed, not_listed, error, skipped) and where the answer came from (dns, file, cache).',
      labelNames: ['zone', 'outcome', 'source'],
      registers,
      collect() {
        this.reset()
        for (const [zone, tally] of zones) {
          tally.lookups.forEach((n, i) => {
            if (n === 0) return
            const outcome = OUTCOMES[Math.floor(i / SOURCES.length)] as string
            const source = SOURCES[i % SOURCES.length] as string
            this.inc({ zone, outcome, source }, n)
          })
        }
      },
    })
    new Counter({
      name: `${METRIC_PREFIX}recipients_total`,
      help: 'Recipients of checked bounces, by decision (accepted, refused, deferred, exempt); a recipient only scored counts as accepted.',
      labelNames: ['decision'],
      registers,
      collect() {
        this.reset()
        DECISIONS.forEach((decision, i) => this.inc({ decision }, recipients[i] as number))
      },
    })
    new Counter({
      name: `${METRIC_PREFIX}batv_total`,
      help: 'Signed-bounce (BATV) checks, by result (signed, valid, invalid, missing).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset()
        BATV_RESULTS.forEach((result, i) => this.inc({ result }, batvResults[i] as number))
      },
    })
    this.registry.registerMetric(
      talliedHistogram({
        name: `${METRIC_PREFIX}lookup_seconds`,
        help: 'Time a bounce waited for a zone answered by DNS or from a file, in seconds (cached answers not counted).',
        label: 'zone',
        bounds: LOOKUP_SECONDS_BUCKETS,
        read: () => [...zones].filter(([, t]) => t.seconds.count > 0).map(([zone, t]) => [zone, t.seconds]),
      }),
    )
    // Across cluster workers: a zone counts as usable only where every worker uses it.
    new Gauge({
      name: `${METRIC_PREFIX}zone_usable`,
      help: 'Whether a zone is in use (1) or suspended or not yet checked (0).',
      labelNames: ['zone'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset()
        for (const z of state().zones) this.set({ zone: z.zone }, z.usable ? 1 : 0)
      },
    })
    // Every worker loads the same file: the largest count, not their sum.
    new Gauge({
      name: `${METRIC_PREFIX}zone_entries`,
      help: 'Entries loaded from the zone file of a zone answered from a file.',
      labelNames: ['zone'],
      registers,
      aggregator: 'max',
      collect() {
        this.reset()
        for (const z of state().zones) if (z.entries !== undefined) this.set({ zone: z.zone }, z.entries)
      },
    })
    // A worker whose reload failed holds older data than the others: the oldest is what to watch.
    new Gauge({
      name: `${METRIC_PREFIX}zone_file_loaded_timestamp_seconds`,
      help: 'When the data in use of a zone answered from a file was loaded, in seconds since the epoch.',
      labelNames: ['zone'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset()
        for (const z of state().zones) {
          if (z.loadedAtSeconds !== undefined) this.set({ zone: z.zone }, z.loadedAtSeconds)
        }
      },
    })
    new Gauge({
      name: `${METRIC_PREFIX}zone_file_data_timestamp_seconds`,
      help: 'The $TIMESTAMP of the zone file in use (when its data was made), in seconds since the epoch; only for files that have one.',
      labelNames: ['zone'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset()
        for (const z of state().zones) {
          if (z.fileTimestampSeconds !== undefined) this.set({ zone: z.zone }, z.fileTimestampSeconds)
        }
      },
    })
    // Each worker has a cache of its own: their sum is what is held.
    new Gauge({
      name: `${METRIC_PREFIX}cache_entries`,
      help: 'Answers held in the lookup cache.',
      registers,
      aggregator: 'sum',
      collect() {
        this.set(state().cacheEntries)
      },
    })
  }

  /**
   * One zone's outcome for one bounce. `seconds`: how long a lookup by DNS or
   * from a file took; none for a cached answer or when no lookup was made.
   */
  lookup(zone: string, status: LookupStatus, source: LookupSource, seconds?: number): void {
    let tally = this.zones.get(zone)
    if (!tally) this.zones.set(zone, (tally = new ZoneTally()))
    const i = STATUS_INDEX[status] * SOURCES.length + SOURCE_INDEX[source]
    tally.lookups[i] = (tally.lookups[i] as number) + 1
    if (seconds !== undefined && source !== 'cache') tally.seconds.observe(seconds)
  }

  recipient(decision: RecipientDecision): void {
    const i = DECISION_INDEX[decision]
    this.recipients[i] = (this.recipients[i] as number) + 1
  }

  batv(result: BatvResult): void {
    const i = BATV_INDEX[result]
    this.batvResults[i] = (this.batvResults[i] as number) + 1
  }

  /** Where the gauges read zone health, zone file sizes and the cache size when scraped. */
  observeState(read: () => MetricsState): void {
    this.readState = read
  }

  /** This process's metrics in the Prometheus text format. */
  exposition(): Promise<string> {
    return this.registry.metrics()
  }
}
