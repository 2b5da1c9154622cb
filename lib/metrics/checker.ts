// The checker as the plugin runs it: each zone's outcome for a bounce counted,
// with where the answer came from and how long the bounce waited for it. The
// core checker knows nothing of metrics; this only watches its checkZone.
import { performance } from 'node:perf_hooks'

import { BackscatterChecker, type CheckerOptions } from '../checker'
import type { Log } from '../log'
import type { BackscatterMetrics, LookupSource, MetricsState } from '../metrics'
import type { Settings, ZoneSettings } from '../settings'
import type { ZoneOutcome } from '../verdict'

export class MeteredChecker extends BackscatterChecker {
  constructor(
    settings: Settings,
    log: Log,
    private readonly metrics: BackscatterMetrics,
    options: CheckerOptions = {},
  ) {
    super(settings, log, options)
  }

  protected override async checkZone(zone: ZoneSettings, ip: string): Promise<ZoneOutcome> {
    const source = this.sourceFor(zone.name, ip)
    // A cached answer took no lookup: not timed.
    const startedMs = source === 'cache' ? undefined : performance.now()
    const outcome = await super.checkZone(zone, ip)
    // A skipped zone was not asked.
    const seconds =
      startedMs === undefined || outcome.status === 'skipped'
        ? undefined
        : (performance.now() - startedMs) / 1000
    this.metrics.lookup(zone.name, outcome.status, source, seconds)
    return outcome
  }

  /**
   * Where lookup() will answer from, decided as it decides, just before it runs
   * (checkZone reaches it without waiting once the zone is checked). The cache
   * key is lookup()'s: zone, newline, IP.
   */
  private sourceFor(zone: string, ip: string): LookupSource {
    if (this.files.has(zone)) return 'file'
    return this.cache?.has(`${zone}\n${ip}`) ? 'cache' : 'dns'
  }

  /** What the gauges show: each zone's health and zone-file entries, and the cache's size. */
  metricsState(): MetricsState {
    return {
      zones: this.healthStates().map(({ zone, state }) => {
        const entries = this.files.get(zone)?.source.entries
        return { zone, usable: state === 'usable', ...(entries ? { entries } : {}) }
      }),
      cacheEntries: this.cache?.size ?? 0,
    }
  }
}
