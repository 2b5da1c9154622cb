import net from 'node:net'
import { performance } from 'node:perf_hooks'

import { AnswerCache, outcomeOf } from './answer-cache'
import { zoneSkipReason } from '../core/client'
import { settleWithin } from '../core/deadline'
import { FileZones } from '../zonefile/file-zones'
import {
  answeredAsRequired,
  assessTestPoints,
  testPointsFor,
  ZoneHealth,
  type Assessment,
  type HealthState,
  type TestPointAnswers,
} from './health'
import { DnsblResolver } from './resolver'
import type { Log } from '../core/log'
import type { ZoneFileStatus } from '../zonefile/source'
import type { DnsSettings, LookupResult, Settings, ZoneOutcome, ZoneSettings } from '../core/types'

/** Where a zone's answer to a check came from. */
export type AnswerSource = 'dns' | 'file' | 'cache'

/**
 * Told of each zone's answer to a check, once per zone: its status, where it
 * came from, and how long the check waited for it in seconds (none for a
 * cached answer or a skipped zone, which needed no lookup).
 */
export type AnswerObserver = (
  zone: string,
  status: ZoneOutcome['status'],
  source: AnswerSource,
  seconds: number | undefined,
) => void

const OUT_OF_TIME: LookupResult = Object.freeze({ status: 'error', reason: 'timeout' })

/** One RFC 5782 test point's answer, as a health check saw it. */
export interface PointProbe extends TestPointAnswers {
  /** How long the answer took, in ms (a file zone's load not counted). */
  readonly ms: number
  /** The point answered as RFC 5782 §5 asks. */
  readonly ok: boolean
}

/** A zone's test-point answers and what they make of it: what the plugin's health check decides on. */
export interface ZoneProbe {
  readonly zone: string
  readonly points: readonly PointProbe[]
  readonly assessment: Assessment
}

export interface CheckerOptions {
  /**
   * The checker of the settings before a reload. Zones it held with the same
   * DNS and file settings carry on with its health state, cached answers and
   * loaded zone files, so an edit elsewhere costs no new check.
   */
  readonly previous?: BackscatterChecker
  /** The cache's clock, in ms (default: performance.now); tests pass their own. */
  readonly clock?: { now(): number }
  /** Told of every zone's answer to every check (the plugin counts them). */
  readonly observe?: AnswerObserver
}

/** Same resolvers, timeouts, cache and health settings: answers and health judged under one stay valid under the other. */
function sameDns(a: DnsSettings, b: DnsSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * Whether a zone's health state and cached answers stay valid over a config
 * reload: the same data source, judged the same way, through the same DNS.
 */
export function keepsZoneState(
  before: { zone: ZoneSettings; dns: DnsSettings },
  after: { zone: ZoneSettings; dns: DnsSettings },
): boolean {
  const judged = (s: ZoneSettings): string =>
    JSON.stringify([s.name, s.file, s.ipv4, s.ipv6, s.requireTestPoint])
  return judged(before.zone) === judged(after.zone) && sameDns(before.dns, after.dns)
}

function suspendedDuringLookup(health: ZoneHealth): ZoneOutcome {
  const now = health.state === 'suspended' ? `: ${health.reason}` : ', then passed again'
  return { zone: health.zone, status: 'skipped', reason: `zone suspended during the lookup${now}` }
}

/**
 * Looks a client IP up in every configured zone, through DNS or a local zone
 * file: health-gated, cached, coalesced and bounded in time. Holds no Haraka
 * objects, so the plugin and the command-line tool share it.
 */
export class BackscatterChecker {
  readonly resolver: DnsblResolver
  private readonly cache: AnswerCache
  private readonly observe: AnswerObserver | undefined
  private readonly health = new Map<string, ZoneHealth>()
  private readonly files: FileZones
  private started = false
  private retired = false
  /** When each zone was last re-checked because a lookup failed (ms since the epoch). */
  private readonly recheckedAt = new Map<string, number>()

  constructor(
    readonly settings: Settings,
    private readonly log: Log,
    { previous, clock, observe }: CheckerOptions = {},
  ) {
    this.observe = observe
    const kept = new Set<string>()
    for (const zone of settings.zones) {
      const before = previous?.settings.zones.find((z) => z.name === zone.name)
      if (
        previous &&
        before &&
        keepsZoneState({ zone: before, dns: previous.settings.dns }, { zone, dns: settings.dns })
      ) {
        kept.add(zone.name)
      }
    }
    const dnsKept = previous !== undefined && sameDns(previous.settings.dns, settings.dns)
    this.resolver = dnsKept ? previous.resolver : new DnsblResolver(settings.dns)
    const dropped = previous?.settings.zones.filter((z) => !kept.has(z.name)).map((z) => z.name) ?? []
    const carried = dnsKept ? previous.cache.handOver(dropped) : undefined
    const epochs = {
      generation: (zone: string) => this.generation(zone),
      usable: (zone: string) => (this.health.get(zone)?.state ?? 'usable') === 'usable',
    }
    this.cache = new AnswerCache(this.resolver, settings.dns, epochs, { carried, clock })
    // A new file (the first, or one rsync replaced) is checked at once, not at the next interval.
    this.files = new FileZones(
      settings.zones,
      log,
      previous?.files,
      (zone) => void this.health.get(zone)?.check(),
    )
    const intervalMs = settings.dns.healthIntervalSeconds * 1000
    if (intervalMs > 0) {
      for (const zone of settings.zones) {
        const from = kept.has(zone.name) ? previous?.health.get(zone.name)?.snapshot() : undefined
        const probe = async (): Promise<Assessment> => (await this.probeZone(zone)).assessment
        this.health.set(zone.name, new ZoneHealth(zone.name, probe, this.reportHealth, intervalMs, from))
      }
    }
  }

  /** Check every zone now (or when a check carried over a reload is due), then on schedule. */
  start(): void {
    if (this.started || this.retired) return
    this.started = true
    this.files.loadAll()
    for (const health of this.health.values()) health.start()
  }

  /**
   * Stop the health checks and the zone-file watchers. Lookups in flight still
   * settle (within their budget), so a config reload does not cut off the
   * transactions that started under the old settings.
   */
  retire(): void {
    this.retired = true
    for (const health of this.health.values()) health.stop()
    this.files.close()
  }

  /** retire(), and abandon the queries in flight: at shutdown, or when a command is done. */
  close(): void {
    this.retire()
    this.resolver.cancel()
    this.cache.clear()
  }

  /** Run the test-point checks of every zone; settles when all have. */
  checkHealth(): Promise<void> {
    return Promise.all([...this.health.values()].map((h) => h.check())).then(() => undefined)
  }

  /** Each zone's health state and reason ('usable' for zones without checks). */
  healthStates(): { zone: string; state: HealthState; reason: string }[] {
    return this.settings.zones.map((z) => {
      const h = this.health.get(z.name)
      return { zone: z.name, state: h ? h.state : 'usable', reason: h ? h.reason : '' }
    })
  }

  /** Entries of a zone answered from a file, once its data is loaded. */
  fileEntries(zone: string): number | undefined {
    return this.files.entries(zone)
  }

  /** The state of a zone's file; undefined for a zone not answered from a file. */
  fileStatus(zone: string): ZoneFileStatus | undefined {
    return this.files.status(zone)
  }

  /** The DNS queries in flight, one per zone and IP (for a look from outside). */
  get inflight(): ReadonlyMap<string, unknown> {
    return this.cache.inflight
  }

  /** Answers in the cache. */
  get cacheSize(): number {
    return this.cache.size
  }

  /** Whether start() has run. */
  get isStarted(): boolean {
    return this.started
  }

  /**
   * What every zone says about `ip`. Never rejects; settles within the DNS
   * budget. `observed: false`: not told to the observer (a look at our own IPs is no bounce's).
   */
  check(ip: string, { observed = true }: { observed?: boolean } = {}): Promise<ZoneOutcome[]> {
    return Promise.resolve(this.checkNow(ip, observed) ?? this.checkWaiting(ip, observed))
  }

  /** check() after checkNow(ip) said undefined, without asking it again: each zone, waiting where it must. */
  checkWaiting(ip: string, observed = true): Promise<ZoneOutcome[]> {
    this.start()
    return Promise.all(this.settings.zones.map((zone) => this.checkZone(zone, ip, observed)))
  }

  /**
   * What every zone says about `ip` when each can say it without waiting (a
   * cached answer, a loaded zone file, a zone skipped or suspended), as check()
   * would; undefined when one needs a query or its first health check, and
   * only check() can tell. Then nothing was looked up or reported.
   */
  checkNow(ip: string, observed = true): ZoneOutcome[] | undefined {
    this.start()
    const zones = this.settings.zones
    const startedMs = this.observe && this.files.size ? performance.now() : undefined
    const outcomes: ZoneOutcome[] = []
    for (const zone of zones) {
      const outcome = this.answerNow(zone, ip)
      if (!outcome) return undefined
      outcomes.push(outcome)
    }
    if (this.observe && observed) {
      for (let i = 0; i < zones.length; i++) {
        const zone = zones[i] as ZoneSettings
        const outcome = outcomes[i] as ZoneOutcome
        this.report(zone.name, outcome, this.sourceOf(zone.name, outcome), startedMs)
      }
    }
    return outcomes
  }

  private async checkZone(zone: ZoneSettings, ip: string, observed: boolean): Promise<ZoneOutcome> {
    const startedMs = performance.now()
    const now = this.answerNow(zone, ip)
    const outcome = now ?? (await this.waitForAnswer(zone, ip))
    if (observed)
      this.report(
        zone.name,
        outcome,
        now ? this.sourceOf(zone.name, now) : this.files.has(zone.name) ? 'file' : 'dns',
        startedMs,
      )
    return outcome
  }

  /** The zone's answer if it can be given without waiting, else undefined. */
  private answerNow(zone: ZoneSettings, ip: string): ZoneOutcome | undefined {
    if (!net.isIP(ip)) return { zone: zone.name, status: 'error', reason: 'not an IP address' }
    const skip = zoneSkipReason(zone, ip)
    if (skip !== undefined) return { zone: zone.name, status: 'skipped', reason: skip }
    const health = this.health.get(zone.name)
    // No verdict before the zone's first check: only waitForAnswer() waits for it.
    if (health?.state === 'unchecked') return undefined
    if (health?.state === 'suspended') {
      return { zone: zone.name, status: 'skipped', reason: `zone suspended: ${health.reason}` }
    }
    if (this.files.has(zone.name)) {
      const result = this.files.lookupNow(zone.name, ip)
      // Not loaded yet, or an error (which re-checks the zone): waitForAnswer() handles both.
      return result && result.status !== 'error' ? outcomeOf(zone.name, result) : undefined
    }
    return this.cache.outcome(zone.name, ip)
  }

  /** Where an answer given without waiting came from: no lookup was made for a skip or an error. */
  private sourceOf(zone: string, outcome: ZoneOutcome): AnswerSource {
    if (this.files.has(zone)) return 'file'
    return outcome.status === 'listed' || outcome.status === 'not-listed' ? 'cache' : 'dns'
  }

  private report(
    zone: string,
    outcome: ZoneOutcome,
    source: AnswerSource,
    startedMs: number | undefined,
  ): void {
    if (!this.observe) return
    // A cached answer or a skip needed no lookup; an answer known at once with no file zone, hardly any.
    const untimed = source === 'cache' || outcome.status === 'skipped'
    const seconds = untimed ? undefined : startedMs === undefined ? 0 : (performance.now() - startedMs) / 1000
    this.observe(zone, outcome.status, source, seconds)
  }

  /** The zone's answer after its first health check, its query or its file's first load, within the budget. */
  private async waitForAnswer(zone: ZoneSettings, ip: string): Promise<ZoneOutcome> {
    const budgetMs = this.resolver.budgetMs
    let leftMs = budgetMs
    const health = this.health.get(zone.name)
    if (health?.state === 'unchecked') {
      // No verdict before the zone's first check; wait for it within the budget.
      const started = Date.now()
      await settleWithin(health.ready, budgetMs, undefined)
      leftMs -= Date.now() - started
    }
    if (health?.state === 'unchecked') {
      return { zone: zone.name, status: 'error', reason: 'zone health check still running' }
    }
    if (health?.state === 'suspended') {
      return { zone: zone.name, status: 'skipped', reason: `zone suspended: ${health.reason}` }
    }

    // The query itself always gets the full budget, as others may share it; this
    // caller waits only for what is left of its own.
    const generation = this.generation(zone.name)
    const lookup = this.lookup(zone.name, ip)
    const result = leftMs < budgetMs ? await settleWithin(lookup, leftMs, OUT_OF_TIME) : await lookup
    // The zone failed a check while this lookup was out: its answer may be part of the failure.
    if (health && health.generation !== generation) return suspendedDuringLookup(health)
    if (result.status === 'error') this.recheckSoon(zone.name)
    return outcomeOf(zone.name, result)
  }

  /** Counts the zone's changes of health state; 0 for a zone without checks. */
  private generation(zone: string): number {
    return this.health.get(zone)?.generation ?? 0
  }

  /**
   * A failed lookup may mean a dead resolver: check the zone now rather than at
   * the next interval, so it is suspended after one budget, not after minutes.
   * At most once per budget per zone, so errors cannot cause a query storm.
   */
  private recheckSoon(zone: string): void {
    const health = this.health.get(zone)
    if (health?.state !== 'usable' || this.retired) return
    const now = Date.now()
    if (now - (this.recheckedAt.get(zone) ?? 0) < this.resolver.budgetMs) return
    this.recheckedAt.set(zone, now)
    void health.check()
  }

  /**
   * The answer for `ip` in `zone`: from the zone file, or a cached DNS answer,
   * the query already in flight for the same IP and zone, or a new query.
   */
  lookup(zone: string, ip: string, budgetMs = this.resolver.budgetMs): Promise<LookupResult> {
    if (this.files.has(zone)) return this.files.lookup(zone, ip, budgetMs)
    return this.cache.lookup(zone, ip, budgetMs)
  }

  /** Like lookup(), but past the cache and trying every server: a health check judges what the zone answers now. */
  private freshLookup(zone: string, ip: string): Promise<LookupResult> {
    if (this.files.has(zone)) return this.files.lookup(zone, ip, this.resolver.budgetMs)
    return this.resolver.probe(ip, zone)
  }

  /**
   * Query a zone's RFC 5782 test points, each timed, and judge them: the check
   * the plugin's health checks run, and the command's `health`. A file zone is
   * judged on its data: this waits for its first load, however long it takes.
   */
  async probeZone(zone: ZoneSettings): Promise<ZoneProbe> {
    if (this.files.has(zone.name)) await this.files.load(zone.name)
    const points = await Promise.all(
      testPointsFor(zone).map(async (p): Promise<PointProbe> => {
        const started = performance.now()
        const result = await this.freshLookup(zone.name, p.point)
        const answer = { ...p, result }
        return { ...answer, ms: Math.round(performance.now() - started), ok: answeredAsRequired(answer) }
      }),
    )
    return {
      zone: zone.name,
      points,
      assessment: assessTestPoints(points, { requireTestPoint: zone.requireTestPoint }),
    }
  }

  private readonly reportHealth = (zone: string, state: HealthState, reason: string): void => {
    // A check that ends after a reload is the new checker's to repeat and report (it checks at once).
    if (this.retired) return
    if (state === 'suspended') {
      // Answers cached while it was failing cannot be trusted.
      this.cache.forget(zone)
      this.log.warn(`zone ${zone} suspended: ${reason}; its answers are ignored`)
    } else if (reason) {
      this.log.warn(
        `zone ${zone} ${reason} (RFC 5782 §5): its data may be empty or stale; still in use ` +
          `(require_test_point = true suspends it)`,
      )
    } else {
      this.log.info(`zone ${zone} passed its RFC 5782 test-point check; in use`)
    }
  }
}
