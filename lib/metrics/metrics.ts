// What the plugin did, counted for a Prometheus scrape of /metrics on prom-client's
// own metrics, in a registry of the plugin's own. Labels take values from fixed sets
// and zone names from the config: never a client IP, an address or a secret, so the
// number of series stays bounded.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

import type { AnswerSource } from '../dns/checker'
import type { BatvResult } from '../core/recipient'
import type { GuardDecision } from '../core/outbound-guard'
import type { LedgerResult, ReplyKind, ZoneOutcome } from '../core/types'
import type { RecordResult } from '../ledger/ledger'

export const METRIC_PREFIX = 'haraka_backscatter_'

/** What became of one recipient of a checked bounce, as recipients_total counts it. */
export type CountedRecipient = 'accepted' | 'refused' | 'deferred' | 'exempt'
/** What batv_total counts: a bounce address signed on the way out, or a recipient's tag checked. */
export type CountedTag = 'signed' | Exclude<BatvResult, 'not checked'>

// Prometheus label values use underscores where the core's statuses use hyphens.
const OUTCOME_LABEL = {
  listed: 'listed',
  'not-listed': 'not_listed',
  error: 'error',
  skipped: 'skipped',
} as const satisfies Record<ZoneOutcome['status'], string>
const RECIPIENTS: readonly CountedRecipient[] = ['accepted', 'refused', 'deferred', 'exempt']
const TAGS: readonly CountedTag[] = ['signed', 'valid', 'invalid', 'missing']
/** What outbound_bounces_total counts: the guard's decision on a DSN, or an error that let it go. */
export type CountedBounce = GuardDecision | 'error'
const BOUNCE_LABEL = {
  suppressed: 'suppressed',
  'would-suppress': 'would_suppress',
  sent: 'sent',
  'not-judged': 'not_judged',
  error: 'error',
} as const satisfies Record<CountedBounce, string>

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
  /** The sent-mail ledger: its mode and whether Redis answers; undefined while the ledger is off. */
  readonly ledger?: { readonly mode: 'record' | 'check'; readonly up: boolean }
}

const NO_STATE: MetricsState = Object.freeze({ zones: [], cacheEntries: 0 })

/**
 * The plugin's counters, gauges and lookup-time histogram. One per process, kept
 * over config reloads, so counters only ever grow.
 */
export class BackscatterMetrics {
  readonly registry = new Registry()
  private readonly lookups: Counter<'zone' | 'outcome' | 'source'>
  private readonly recipients: Counter<'decision'>
  private readonly tags: Counter<'result'>
  private readonly bounces: Counter<'decision'>
  private readonly lookupSeconds: Histogram<'zone'>
  private readonly ledgerRecords: Counter<'result'>
  private readonly ledgerChecks: Counter<'kind' | 'result'>
  private readonly ledgerWouldRefuseCounter: Counter<'domain' | 'young'>
  private readonly dataRefusals: Counter<'action' | 'cause'>
  private readState: () => MetricsState = () => NO_STATE

  constructor() {
    const registers = [this.registry]
    const state = (): MetricsState => this.readState()

    this.lookups = new Counter({
      name: `${METRIC_PREFIX}lookups_total`,
      help: 'Zone lookups for bounces, by zone, outcome (listed, not_listed, error, skipped) and where the answer came from (dns, file, cache).',
      labelNames: ['zone', 'outcome', 'source'],
      registers,
    })
    this.recipients = new Counter({
      name: `${METRIC_PREFIX}recipients_total`,
      help: 'Recipients of checked bounces, by decision (accepted, refused, deferred, exempt); a recipient only scored counts as accepted.',
      labelNames: ['decision'],
      registers,
    })
    this.tags = new Counter({
      name: `${METRIC_PREFIX}batv_total`,
      help: 'Signed-bounce (BATV) checks, by result (signed, valid, invalid, missing).',
      labelNames: ['result'],
      registers,
    })
    this.bounces = new Counter({
      name: `${METRIC_PREFIX}outbound_bounces_total`,
      help: "Haraka's own DSNs judged by the outbound guard, by decision (suppressed, would_suppress, sent, not_judged, error).",
      labelNames: ['decision'],
      registers,
    })
    this.ledgerRecords = new Counter({
      name: `${METRIC_PREFIX}ledger_records_total`,
      help: 'Relayed messages whose Message-ID the sent-mail ledger was asked to record, by result (recorded, unavailable, no_message_id).',
      labelNames: ['result'],
      registers,
    })
    this.ledgerChecks = new Counter({
      name: `${METRIC_PREFIX}ledger_checks_total`,
      help: "Machines' replies checked against the sent-mail ledger, by kind (dsn, mdn, auto_reply, challenge) and result (ours, not_ours, unknown).",
      labelNames: ['kind', 'result'],
      registers,
    })
    this.ledgerWouldRefuseCounter = new Counter({
      name: `${METRIC_PREFIX}ledger_would_refuse_total`,
      help: 'Replies that [ledger] mode = check would refuse, counted in mode record, by recipient domain and young (true: no reference found, but the ledger is younger than its window).',
      labelNames: ['domain', 'young'],
      registers,
    })
    this.dataRefusals = new Counter({
      name: `${METRIC_PREFIX}data_refusals_total`,
      help: 'Messages refused at the end of DATA while the ledger decides, by action (reject, defer) and cause (listing, batv, ledger).',
      labelNames: ['action', 'cause'],
      registers,
    })
    new Gauge({
      name: `${METRIC_PREFIX}ledger_up`,
      help: "Whether the sent-mail ledger's Redis answers (1) or not (0), by the ledger's mode (record, check); absent while the ledger is off.",
      labelNames: ['mode'],
      registers,
      // Across cluster workers: up only where every worker reaches Redis.
      aggregator: 'min',
      collect() {
        this.reset()
        const ledger = state().ledger
        if (ledger) this.set({ mode: ledger.mode }, ledger.up ? 1 : 0)
      },
    })
    // Every value of these fixed sets is shown from 0, so a rate() over them has a start.
    for (const result of ['recorded', 'unavailable', 'no_message_id']) this.ledgerRecords.inc({ result }, 0)
    for (const kind of ['dsn', 'mdn', 'auto_reply', 'challenge'])
      for (const result of ['ours', 'not_ours', 'unknown']) this.ledgerChecks.inc({ kind, result }, 0)
    for (const action of ['reject', 'defer'])
      for (const cause of ['listing', 'batv', 'ledger']) this.dataRefusals.inc({ action, cause }, 0)
    for (const decision of RECIPIENTS) this.recipients.inc({ decision }, 0)
    for (const result of TAGS) this.tags.inc({ result }, 0)
    for (const decision of Object.values(BOUNCE_LABEL)) this.bounces.inc({ decision }, 0)
    this.lookupSeconds = new Histogram({
      name: `${METRIC_PREFIX}lookup_seconds`,
      help: 'Time a bounce waited for a zone answered by DNS or from a file, in seconds (cached answers not counted).',
      labelNames: ['zone'],
      buckets: [...LOOKUP_SECONDS_BUCKETS],
      registers,
    })
    // One gauge per zone and value; a zone whose value is undefined shows no sample.
    const zoneGauge = (
      name: string,
      help: string,
      aggregator: 'min' | 'max',
      value: (z: ZoneState) => number | undefined,
    ): void => {
      new Gauge({
        name: `${METRIC_PREFIX}${name}`,
        help,
        labelNames: ['zone'],
        registers,
        aggregator,
        collect() {
          this.reset()
          for (const z of state().zones) {
            const v = value(z)
            if (v !== undefined) this.set({ zone: z.zone }, v)
          }
        },
      })
    }
    // Across cluster workers: a zone counts as usable only where every worker uses it.
    zoneGauge(
      'zone_usable',
      'Whether a zone is in use (1) or suspended or not yet checked (0).',
      'min',
      (z) => (z.usable ? 1 : 0),
    )
    // Every worker loads the same file: the largest count, not their sum.
    zoneGauge(
      'zone_entries',
      'Entries loaded from the zone file of a zone answered from a file.',
      'max',
      (z) => z.entries,
    )
    // A worker whose reload failed holds older data than the others: the oldest is what to watch.
    zoneGauge(
      'zone_file_loaded_timestamp_seconds',
      'When the data in use of a zone answered from a file was loaded, in seconds since the epoch.',
      'min',
      (z) => z.loadedAtSeconds,
    )
    zoneGauge(
      'zone_file_data_timestamp_seconds',
      'The $TIMESTAMP of the zone file in use (when its data was made), in seconds since the epoch; only for files that have one.',
      'min',
      (z) => z.fileTimestampSeconds,
    )
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
  /** What became of one relayed message's record in the ledger. */
  ledgerRecord(result: RecordResult): void {
    this.ledgerRecords.inc({ result: result.replaceAll(/[- ]/g, '_') })
  }

  /** One machine's reply checked against the ledger. */
  ledgerCheck(kind: ReplyKind, result: LedgerResult): void {
    this.ledgerChecks.inc({ kind: kind.replace('-', '_'), result: result.replace('-', '_') })
  }

  /**
   * A reply that check mode would refuse, seen in record mode; the domain is a
   * recipient's, accepted here. `young`: the ledger does not yet hold its whole
   * window, so check mode would refuse it only once it does.
   */
  ledgerWouldRefuse(domain: string, young: boolean): void {
    this.ledgerWouldRefuseCounter.inc({ domain, young: young ? 'true' : 'false' })
  }

  /** A message refused at the end of DATA. */
  dataRefusal(action: 'reject' | 'defer', cause: 'listing' | 'batv' | 'ledger'): void {
    this.dataRefusals.inc({ action, cause })
  }

  lookup(zone: string, status: ZoneOutcome['status'], source: AnswerSource, seconds?: number): void {
    this.lookups.inc({ zone, outcome: OUTCOME_LABEL[status], source })
    if (seconds !== undefined && source !== 'cache') this.lookupSeconds.observe({ zone }, seconds)
  }

  recipient(decision: CountedRecipient): void {
    this.recipients.inc({ decision })
  }

  batv(result: CountedTag): void {
    this.tags.inc({ result })
  }

  outboundBounce(decision: CountedBounce): void {
    this.bounces.inc({ decision: BOUNCE_LABEL[decision] })
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
