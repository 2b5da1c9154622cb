import net from 'node:net'
import { LRUCache } from 'lru-cache'

import { assessTestPoints, testPointsFor, ZoneHealth, type Assessment, type HealthState } from './health'
import { DnsblResolver, type LookupResult } from './resolver'
import type { Log } from './log'
import type { Settings, ZoneSettings } from './settings'
import type { ZoneOutcome } from './verdict'
import { ZoneFileSource } from './zonesource'


type CachedResult = Exclude<LookupResult, { status: 'error' }>

const OUT_OF_TIME: LookupResult = Object.freeze({ status: 'error', reason: 'timeout' })

/** What `promise` settles with, or `late` when `ms` pass first. */
async function settleWithin<T>(promise: Promise<T>, ms: number, late: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), late)))
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Looks a client IP up in every configured zone, through DNS or a local zone
 * file: health-gated, cached, coalesced and bounded in time. Holds no Haraka
 * objects, so the plugin and the command-line tool share it.
 */
export class BackscatterChecker {
  readonly resolver: DnsblResolver
  private readonly cache: LRUCache<string, CachedResult> | undefined
  private readonly inflight = new Map<string, Promise<LookupResult>>()
  private readonly health = new Map<string, ZoneHealth>()
  private readonly files = new Map<string, { source: ZoneFileSource; loaded?: Promise<boolean> }>()
  private timer: NodeJS.Timeout | undefined
  private started = false
  private retired = false
  /** When each zone was last re-checked because a lookup failed (ms since the epoch). */
  private readonly recheckedAt = new Map<string, number>()

  constructor(
    readonly settings: Settings,
    private readonly log: Log,
  ) {
    this.resolver = new DnsblResolver(settings.dns)
    if (settings.dns.cacheSize > 0) this.cache = new LRUCache({ max: settings.dns.cacheSize })
    for (const zone of settings.zones) {
      if (!zone.file) continue
      // A new file (the first, or one rsync replaced) is checked at once, not at the next interval.
      const onLoad = (): void => void this.health.get(zone.name)?.check()
      this.files.set(zone.name, { source: new ZoneFileSource(zone.file, zone.name, log, { onLoad }) })
    }
    if (settings.dns.healthIntervalSeconds > 0) {
      for (const zone of settings.zones) {
        this.health.set(zone.name, new ZoneHealth(zone.name, () => this.probe(zone), this.reportHealth))
      }
    }
  }

  /** Check every zone now, then every health_interval; the timer never keeps the process alive. */
  start(): void {
    if (this.started || this.retired) return
    this.started = true
    for (const zone of this.files.keys()) void this.loadFile(zone)
    if (this.health.size === 0) return
    this.checkHealth()
    this.timer = setInterval(() => this.checkHealth(), this.settings.dns.healthIntervalSeconds * 1000)
    this.timer.unref()
  }

  /**
   * Stop the health timer and the zone-file watchers. Lookups in flight still
   * settle (within their budget), so a config reload does not cut off the
   * transactions that started under the old settings.
   */
  retire(): void {
    this.retired = true
    clearInterval(this.timer)
    this.timer = undefined
    for (const { source } of this.files.values()) source.close()
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

  private async checkZone(zone: ZoneSettings, ip: string): Promise<ZoneOutcome> {
    const family = net.isIP(ip)
    if (family === 0) return { zone: zone.name, status: 'error', reason: 'not an IP address' }
    if (family === 6 && !zone.ipv6) return { zone: zone.name, status: 'skipped', reason: 'IPv6 not checked' }
    if (family === 4 && !zone.ipv4) return { zone: zone.name, status: 'skipped', reason: 'IPv4 not checked' }

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
    const lookup = this.lookup(zone.name, ip)
    const result = leftMs < budgetMs ? await settleWithin(lookup, leftMs, OUT_OF_TIME) : await lookup
    if (result.status === 'error') this.recheckSoon(zone.name)
    if (result.status === 'listed') {
      return { zone: zone.name, status: 'listed', codes: result.codes, reason: result.reason }
    }
    if (result.status === 'error') return { zone: zone.name, status: 'error', reason: result.reason }
    return { zone: zone.name, status: 'not-listed' }
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

  /** A DNS query, shared with any other caller asking the same while it is in flight. */
  private query(zone: string, ip: string, budgetMs: number, key: string): Promise<LookupResult> {
    let pending = this.inflight.get(key)
    if (!pending) {
      pending = this.resolver.lookup(ip, zone, budgetMs).then((result) => {
        this.inflight.delete(key)
        this.remember(key, result)
        return result
      })
      this.inflight.set(key, pending)
    }
    return pending
  }

  private async lookupFile(zone: string, ip: string, budgetMs: number): Promise<LookupResult> {
    const source = this.files.get(zone)?.source
    const ready = source?.lookup(ip)
    if (ready) return ready
    // Not loaded yet: wait for the first load, within the lookup budget.
    await settleWithin(this.loadFile(zone), budgetMs, false)
    return source?.lookup(ip) ?? { status: 'error', reason: 'zone file not loaded' }
  }

  private remember(key: string, result: LookupResult): void {
    if (!this.cache || result.status === 'error') return
    const ttlSeconds =
      result.status === 'listed'
        ? Math.min(result.ttlSeconds, this.settings.dns.maxTtlSeconds)
        : this.settings.dns.negativeTtlSeconds
    if (ttlSeconds > 0) this.cache.set(key, result, { ttl: ttlSeconds * 1000 })
  }

  /** Like lookup(), but past the cache: a health check must see what the zone answers now. */
  private freshLookup(zone: string, ip: string): Promise<LookupResult> {
    if (this.files.has(zone)) return this.lookupFile(zone, ip, this.resolver.budgetMs)
    return this.resolver.lookup(ip, zone, this.resolver.budgetMs, false)
  }

  private async probe(zone: ZoneSettings): Promise<Assessment> {
    // A file zone is judged on its data: wait for the first load, however long it takes.
    if (this.files.has(zone.name)) await this.loadFile(zone.name)
    const points = testPointsFor(zone)
    const answers = await Promise.all(
      points.map(async (p) => ({ ...p, result: await this.freshLookup(zone.name, p.point) })),
    )
    return assessTestPoints(answers)
  }

  /** Drop a zone's cached answers: those given while it was failing cannot be trusted. */
  private forget(zone: string): void {
    if (!this.cache) return
    const prefix = `${zone}\n`
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key)
  }

  private readonly reportHealth = (zone: string, state: HealthState, reason: string): void => {
    if (state === 'suspended') this.forget(zone)
    if (state === 'suspended') this.log.warn(`zone ${zone} suspended: ${reason}; its answers are ignored`)
    else this.log.info(`zone ${zone} passed its RFC 5782 test-point check; in use`)
  }
}
