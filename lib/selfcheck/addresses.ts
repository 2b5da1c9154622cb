// The addresses this host sends from, gathered where Haraka knows them: the
// settings, smtp.ini, smtp_forward.ini, the interfaces and the DNS name `me`.
// Only DNS is asked (for `me`, through the configured resolvers); nothing is
// ever sent to a watched address itself.
import { promises as dnsPromises } from 'node:dns'
import net from 'node:net'
import os from 'node:os'

import { settleWithin } from '../core/deadline'
import { hostCandidates, watchList, type HostAddresses, type WatchList } from '../core/self-check'
import type { Settings } from '../core/types'

/** Haraka's config folder as haraka-config reads it; what is absent reads as empty. */
export interface HarakaFiles {
  /** An ini file: sections by name, keys before any heading under `main`. */
  ini(name: string): Readonly<Record<string, unknown>>
  /** The first line of a flat file, trimmed; '' when there is none. */
  value(name: string): string
}

/** What the machine says; tests pass their own. */
export interface Machine {
  readonly interfaces: () => HostAddresses['interfaces']
  readonly hostname: () => string
}

const REAL_MACHINE: Machine = { interfaces: () => os.networkInterfaces(), hostname: () => os.hostname() }

function section(ini: Readonly<Record<string, unknown>>, name: string): Record<string, unknown> {
  const s = ini[name]
  return s && typeof s === 'object' && !Array.isArray(s) ? (s as Record<string, unknown>) : {}
}

const text = (v: unknown): string | undefined =>
  typeof v === 'string' || typeof v === 'number' ? String(v) : undefined

/** `bind` of every section of smtp_forward.ini: [main] and the per-domain routes. */
function forwardBinds(ini: Readonly<Record<string, unknown>>): { section: string; bind: string }[] {
  return Object.keys(ini).flatMap((name) => {
    const bind = text(section(ini, name).bind)
    return bind ? [{ section: name, bind }] : []
  })
}

/**
 * The addresses of `name` through the configured resolvers (the system's when
 * none), within the lookup budget; none for a single-label name, which is no
 * public DNS name (a container's host name), or when DNS fails.
 */
export async function addressesOf(name: string, settings: Settings): Promise<string[]> {
  if (net.isIP(name)) return [name]
  if (!name.includes('.') || name.endsWith('.local')) return []
  const { servers, timeoutMs, tries } = settings.dns
  const resolver = new dnsPromises.Resolver({ timeout: timeoutMs, tries })
  if (servers.length) resolver.setServers([...servers])
  const quiet = (p: Promise<string[]>): Promise<string[]> => p.catch(() => [])
  const all = Promise.all([quiet(resolver.resolve4(name)), quiet(resolver.resolve6(name))])
  const found = await settleWithin(all, timeoutMs * tries + 100, undefined)
  resolver.cancel()
  return found ? found.flat() : []
}

/**
 * The watched and skipped addresses: `[self_check] ips` when set (even when
 * none of them is public: the operator named them), else every address
 * Haraka's configuration and the machine give.
 */
export async function watchedAddresses(
  settings: Settings,
  files: HarakaFiles,
  machine: Machine = REAL_MACHINE,
): Promise<WatchList> {
  if (settings.selfCheck.ipsSet) {
    return watchList(settings.selfCheck.ips.map((ip) => ({ ip, source: '[self_check] ips' })))
  }
  const smtp = section(files.ini('smtp.ini'), 'main')
  const me = files.value('me') || machine.hostname()
  return watchList(
    hostCandidates({
      publicIp: text(smtp.public_ip),
      listen: text(smtp.listen),
      listenHost: text(smtp.listen_host),
      forwardBinds: forwardBinds(files.ini('smtp_forward.ini')),
      interfaces: machine.interfaces(),
      me: { name: me, addresses: await addressesOf(me, settings) },
    }),
  )
}
