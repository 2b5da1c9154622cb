// Our own IPs on the zones, as `health` and `audit` report them: the addresses
// the plugin's watch would look up, found in the same places, looked up through
// the same checker.
import { createRequire } from 'node:module'
import path from 'node:path'

import type { BackscatterChecker } from '../dns/checker'
import type { SelfListing, SelfLookup, WatchList } from '../core/self-check'
import type { Settings } from '../core/types'
import { watchedAddresses, type HarakaFiles } from '../selfcheck/addresses'
import { lookUpOwnIps } from '../selfcheck/watch'
import { PACKAGE_ROOT } from './config'

export interface OwnIpReport {
  /** `[self_check] enabled`; when false nothing was looked up. */
  readonly enabled: boolean
  /** `[self_check] ips` names the addresses (then no others are looked for). */
  readonly ipsSet: boolean
  readonly list: WatchList
  readonly lookups: readonly SelfLookup[]
  /** The listed ones. */
  readonly listed: readonly SelfListing[]
}

interface HarakaConfig {
  root_path: string
  overrides_path?: string
  get(name: string, type?: 'list'): unknown
  module_config(defaultsPath: string): HarakaConfig
}

/** Haraka's config folder `dir` read as the plugin reads it (none: nothing but the machine). */
export function configFolderFiles(dir: string | undefined): HarakaFiles {
  if (dir === undefined) return { ini: () => ({}), value: () => '' }
  const cfg = (createRequire(__filename)('haraka-config') as HarakaConfig).module_config(PACKAGE_ROOT)
  cfg.root_path = path.join(PACKAGE_ROOT, 'config')
  cfg.overrides_path = dir
  return {
    ini: (name) => {
      const v = cfg.get(name)
      return v && typeof v === 'object' ? (v as Record<string, unknown>) : {}
    },
    value: (name) => {
      const v = cfg.get(name, 'list')
      return Array.isArray(v) && v.length ? String(v[0]).trim() : ''
    },
  }
}

export async function ownIpReport(
  settings: Settings,
  checker: BackscatterChecker,
  files: HarakaFiles,
): Promise<OwnIpReport> {
  const none = { watched: [], skipped: [] }
  const { enabled, ipsSet } = settings.selfCheck
  if (!enabled) return { enabled, ipsSet, list: none, lookups: [], listed: [] }
  const list = await watchedAddresses(settings, files)
  const { lookups, listings } = await lookUpOwnIps(list, (ip) => checker.check(ip))
  return { enabled, ipsSet, list, lookups, listed: listings.filter((l) => l.listed) }
}

/** One line per watched IP: where it was found, and what each zone said. */
export function ownIpLines(r: OwnIpReport): string[] {
  if (!r.enabled) return ['off ([self_check] enabled = false)']
  if (!r.list.watched.length && r.ipsSet) {
    const skipped = r.list.skipped.map((s) => `${s.ip}: ${s.why}`).join(', ')
    return [`none: [self_check] ips names no public address (${skipped})`]
  }
  if (!r.list.watched.length)
    return ['none found: set [self_check] ips to the addresses this host sends from']
  return r.list.watched.map(({ ip, sources }) => {
    const outcomes = r.lookups.find((l) => l.ip === ip)?.outcomes ?? []
    const said = outcomes.map((o) => {
      if (o.status === 'listed') return `LISTED on ${o.zone}${o.reason ? ` (${o.reason})` : ''}`
      if (o.status === 'not-listed') return `not listed on ${o.zone}`
      return `${o.zone}: ${o.status}: ${o.reason}`
    })
    return `${ip} (${sources.join(', ')}): ${said.join('; ')}`
  })
}
