// The watch of this host's own IPs in Haraka: run by one process only (the
// single process, or a cluster's master, from init_master), renewed on a
// config reload, stopped at shutdown.
import { SelfListedMetrics } from '../metrics/self-listed'
import { SelfWatch, type SelfWatchLog } from '../selfcheck/watch'
import { watchedAddresses, type HarakaFiles } from '../selfcheck/addresses'
import type { BackscatterChecker } from '../dns/checker'
import type { Settings } from '../core/types'

/** The watch of the process that runs it, and the gauge that shows it. */
export interface SelfWatching {
  watch: SelfWatch | undefined
  readonly metrics: SelfListedMetrics
}

interface ConfigGetter {
  get(name: string, type?: 'list'): unknown
}

/** Haraka's config folder through the plugin's haraka-config (the deployment's files over none of the package's). */
export function harakaFiles(config: ConfigGetter): HarakaFiles {
  return {
    ini: (name) => {
      const v = config.get(name)
      return v && typeof v === 'object' ? (v as Record<string, unknown>) : {}
    },
    value: (name) => {
      const v = config.get(name, 'list')
      return Array.isArray(v) && v.length ? String(v[0]).trim() : ''
    },
  }
}

/** Start watching (init_master), with the gauge the endpoint shows. */
export function startSelfWatching(
  settings: Settings,
  checker: BackscatterChecker,
  files: HarakaFiles,
  log: SelfWatchLog,
): SelfWatching {
  const watching: SelfWatching = { watch: undefined, metrics: new SelfListedMetrics() }
  renewSelfWatching(watching, settings, checker, files, log)
  return watching
}

/** After a reload: the new settings and checker, carrying on from what the old watch knew. */
export function renewSelfWatching(
  watching: SelfWatching,
  settings: Settings,
  checker: BackscatterChecker,
  files: HarakaFiles,
  log: SelfWatchLog,
): void {
  const previous = watching.watch
  previous?.stop()
  if (!settings.selfCheck.enabled) {
    if (previous) log.info('self check: off ([self_check] enabled = false)')
    watching.watch = undefined
    watching.metrics.observe(() => [])
    return
  }
  const watch = new SelfWatch({
    settings,
    check: (ip) => checker.check(ip, { observed: false }),
    addresses: () => watchedAddresses(settings, files),
    log,
    previous,
  })
  watching.watch = watch
  watching.metrics.observe(() => watch.listings())
  watch.start()
}
