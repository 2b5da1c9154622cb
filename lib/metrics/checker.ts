// The checker as the plugin runs it: each zone's outcome for a bounce counted,
// with where the answer came from and how long the bounce waited for it, as
// the checker reports them where it obtains each answer.
import { BackscatterChecker, type CheckerOptions } from '../dns/checker'
import type { Log } from '../core/log'
import type { BackscatterMetrics, MetricsState, ZoneState } from './metrics'
import type { Settings } from '../core/types'

export class MeteredChecker extends BackscatterChecker {
  constructor(settings: Settings, log: Log, metrics: BackscatterMetrics, options: CheckerOptions = {}) {
    super(settings, log, { ...options, observe: metrics.lookup.bind(metrics) })
  }

  /** What the gauges show: each zone's health and zone-file data, and the cache's size. */
  metricsState(): MetricsState {
    return {
      zones: this.healthStates().map(({ zone, state }): ZoneState => {
        const usable = state === 'usable'
        const file = this.fileStatus(zone)
        if (!file?.entries || file.loadedAtMs === undefined) return { zone, usable }
        return {
          zone,
          usable,
          entries: file.entries,
          loadedAtSeconds: file.loadedAtMs / 1000,
          ...(file.timestampSeconds !== undefined ? { fileTimestampSeconds: file.timestampSeconds } : {}),
        }
      }),
      cacheEntries: this.cacheSize,
    }
  }
}
