import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { LRUCache } from 'lru-cache'

import { zoneSkipReason } from './client'
import { settleWithin } from './deadline'
import {
  answeredAsRequired,
  assessTestPoints,
  testPointsFor,
  ZoneHealth,
  type Assessment,
  type HealthState,
  type TestPointAnswers,
} from './health'
import { DnsblResolver, type LookupResult } from './resolver'
import type { Log } from './log'
import type { DnsSettings, Settings, ZoneSettings } from './settings'
import type { ZoneOutcome } from './verdict'
import { ZoneFileSource } from './zonesource'

type CachedResult = Exclude<LookupResult, { status: 'error' }>

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

/** A zone file being answered from, and whom to tell when new data is in use. */
interface FileZone {
  readonly source: ZoneFileSource
  readonly path: string
  loaded?: Promise<boolean>
  onLoad: () => void
}

interface InFlight {
  readonly result: Promise<LookupResult>
  /** The zone's health generation when the query was sent. */
  readonly generation: number
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
  protected cache: LRUCache<string, CachedResult> | undefined
  private readonly inflight = new Map<string, InFlight>()
  private readonly health = new Map<string, ZoneHealth>()
  protected readonly files = new Map<string, FileZone>()
  /** File zones whose source a newer checker took over: not ours to close. */
  private readonly handedOver = new Set<FileZone>()
  private started = false
  private retired = false
  /** When each zone was last re-checked because a lookup failed (ms since the epoch). */
  private readonly recheckedAt = new Map<string, number>()

  constructor(
    readonly settings: Settings,
    private readonly log: Log,
    { previous, clock }: CheckerOptions = {},
  ) {
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
    this.cache = dnsKept ? previous.takeCache(kept) : undefined
    if (!this.cache && settings.dns.cacheSize > 0) {
      // An injected clock is read on every access: no lru-cache timer between it and the test.
      const timing = clock ? { perf: clock, ttlResolution: 0 } : {}
      this.cache = new LRUCache({ max: settings.dns.cacheSize, ...timing })
    }

    for (const zone of settings.zones) {
      if (!zone.file) continue
      const file = previous?.takeFile(zone) ?? this.openFile(zone)
      // A new file (the first, or one rsync replaced) is checked at once, not at the next interval.
      file.onLoad = () => void this.health.get(zone.name)?.check()
      this.files.set(zone.name, file)
    }
    const intervalMs = settings.dns.healthIntervalSeconds * 1000
    if (intervalMs > 0) {
      for (const zone of settings.zones) {
        const from = kept.has(zone.name) ? previous?.health.get(zone.name)?.snapshot() : undefined
        const probe = async (): Promise<Assessment> => (await this.probeZone(zone)).assessment
        this.health.set(zone.name, new ZoneHealth(zone.name, probe, this.reportHealth, intervalMs, from))
      }
    }
  }

  private openFile(zone: ZoneSettings): FileZone {
    const file: FileZone = {
      path: zone.file,
      onLoad: () => undefined,
      source: new ZoneFileSource(zone.file, zone.name, this.log, { onLoad: () => file.onLoad() }),
    }
    return file
  }

  /** Hand a zone file with its loaded data to the checker that replaces this one. */
  private takeFile(zone: ZoneSettings): FileZone | undefined {
    const file = this.files.get(zone.name)
    if (!file || file.path !== zone.file || this.handedOver.has(file)) return undefined
    this.handedOver.add(file)
    return file
  }

  /**
   * Hand the cache to the checker that replaces this one, keeping only the
   * answers of `kept` zones. This checker caches nothing from then on, so
   * lookups it still has in flight cannot add answers the new settings would
   * not give.
   */
  private takeCache(kept: ReadonlySet<string>): LRUCache<string, CachedResult> | undefined {
    const cache = this.cache
    this.cache = undefined
    const dropped = this.settings.zones.filter((z) => !kept.has(z.name))
    if (cache && dropped.length) {
      for (const key of [...cache.keys()]) {
        if (dropped.some((z) => key.startsWith(`${z.name}\n`))) cache.delete(key)
      }
    }
    return cache
  }

  /** Check every zone now (or when a check carried over a reload is due), then on schedule. */
  start(): void {
    if (this.started || this.retired) return
    this.started = true
    for (const zone of this.files.keys()) void this.loadFile(zone)
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
    for (const file of this.files.values()) if (!this.handedOver.has(file)) file.source.close()
  }

  /** retire(), and abandon the queries in flight: at shutdown, or when a command is done. */
  close(): void {
    this.retire()
    this.resolver.cancel()
    this.cache?.clear()
  }

  /** Start loading (and watching) a zone file once; resolves true when data is in use. */
  private loadFile(zone: string): Promise<boolean> {
    const file = this.files.get(zone)
    if (!file) return Promise.resolve(false)
    file.loaded ??= file.source.load()
    return file.loaded
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

  /** Whether start() has run. */
  get isStarted(): boolean {
    return this.started
  }

  /** What every zone says about `ip`. Never rejects; settles within the DNS budget. */
  check(ip: string): Promise<ZoneOutcome[]> {
    this.start()
    return Promise.all(this.settings.zones.map((zone) => this.checkZone(zone, ip)))
  }

  protected async checkZone(zone: ZoneSettings, ip: string): Promise<ZoneOutcome> {
    const family = net.isIP(ip)
    if (family === 0) return { zone: zone.name, status: 'error', reason: 'not an IP address' }
    const skip = zoneSkipReason(zone, ip)
    if (skip !== undefined) return { zone: zone.name, status: 'skipped', reason: skip }

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
    if (result.status === 'listed') {
      return { zone: zone.name, status: 'listed', codes: result.codes, reason: result.reason }
    }
    if (result.status === 'error') return { zone: zone.name, status: 'error', reason: result.reason }
    return { zone: zone.name, status: 'not-listed' }
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
    if (this.files.has(zone)) return this.lookupFile(zone, ip, budgetMs)
    const key = `${zone}\n${ip}`
    const cached = this.cache?.get(key)
    if (cached) return Promise.resolve(cached)
    return this.query(zone, ip, budgetMs, key)
  }

  /**
   * A DNS query, shared with any other caller asking the same while it is in
   * flight, unless the zone changed state since it was sent.
   */
  private query(zone: string, ip: string, budgetMs: number, key: string): Promise<LookupResult> {
    const generation = this.generation(zone)
    const joined = this.inflight.get(key)
    if (joined?.generation === generation) return joined.result
    const result = this.resolver.lookup(ip, zone, budgetMs).then((r) => {
      if (this.inflight.get(key)?.result === result) this.inflight.delete(key)
      if (this.generation(zone) === generation) this.remember(zone, key, r)
      return r
    })
    this.inflight.set(key, { result, generation })
    return result
  }

  private async lookupFile(zone: string, ip: string, budgetMs: number): Promise<LookupResult> {
    const source = this.files.get(zone)?.source
    const ready = source?.lookup(ip)
    if (ready) return ready
    // Not loaded yet: wait for the first load, within the lookup budget.
    await settleWithin(this.loadFile(zone), budgetMs, false)
    return source?.lookup(ip) ?? { status: 'error', reason: 'zone file not loaded' }
  }

  private remember(zone: string, key: string, result: LookupResult): void {
    // Only answers of a zone in use are kept: one obtained while it was suspended could outlive that.
    const state = this.health.get(zone)?.state ?? 'usable'
    if (!this.cache || result.status === 'error' || state !== 'usable') return
    const ttlSeconds =
      result.status === 'listed'
        ? Math.min(result.ttlSeconds, this.settings.dns.maxTtlSeconds)
        : this.settings.dns.negativeTtlSeconds
    // lru-cache reads a ttl of 0 as "never expires": 0 means "do not cache" here.
    if (ttlSeconds > 0) this.cache.set(key, result, { ttl: ttlSeconds * 1000 })
  }

  /** Like lookup(), but past the cache and trying every server: a health check judges what the zone answers now. */
  private freshLookup(zone: string, ip: string): Promise<LookupResult> {
    if (this.files.has(zone)) return this.lookupFile(zone, ip, this.resolver.budgetMs)
    return this.resolver.probe(ip, zone)
  }

  /**
   * Query a zone's RFC 5782 test points, each timed, and judge them: the check
   * the plugin's health checks run, and the command's `health`. A file zone is
   * judged on its data: this waits for its first load, however long it takes.
   */
  async probeZone(zone: ZoneSettings): Promise<ZoneProbe> {
    if (this.files.has(zone.name)) await this.loadFile(zone.name)
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

  /** Drop a zone's cached answers: those given while it was failing cannot be trusted. */
  private forget(zone: string): void {
    if (!this.cache) return
    const prefix = `${zone}\n`
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key)
  }

  private readonly reportHealth = (zone: string, state: HealthState, reason: string): void => {
    // A check that ends after a reload is the new checker's to repeat and report (it checks at once).
    if (this.retired) return
    if (state === 'suspended') {
      this.forget(zone)
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
