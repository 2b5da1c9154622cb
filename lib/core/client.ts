import net from 'node:net'
import { ip_in_list, is_private_ip, normalize_ip } from 'haraka-net-utils'
import type { Settings, ZoneSettings } from './types'

export interface Client {
  /** The connecting address as Haraka reports it (XCLIENT/PROXY already applied). */
  readonly ip: string | null | undefined
  /** Authenticated or relay-allowed. */
  readonly relaying: boolean
}

/** Why a client is not looked up: no address, or the [skip] setting that leaves it alone. */
export type SkipKind = 'no-ip' | 'relaying' | 'private' | 'ips'

export type ClientCheck =
  /** `skip`: why, naming the setting, e.g. `private address 127.0.0.1 ([skip] private)`. */
  { readonly skip: string; readonly kind: SkipKind } | { readonly ip: string }

/**
 * The address to look up, or why this client is not looked up at all.
 * `::ffff:a.b.c.d` is unmapped first, so it is treated as the IPv4 address it is.
 */
export function clientToCheck(client: Client, settings: Settings): ClientCheck {
  const ip = client.ip ? normalize_ip(client.ip) : null
  if (!ip) return { skip: 'no client IP address', kind: 'no-ip' }
  if (settings.skip.relaying && client.relaying) {
    return { skip: 'relaying client ([skip] relaying)', kind: 'relaying' }
  }
  if (settings.skip.private && is_private_ip(ip)) {
    return { skip: `private address ${ip} ([skip] private)`, kind: 'private' }
  }
  if (settings.skip.ips.length && ip_in_list(settings.skip.ips, ip)) {
    return { skip: `${ip} is in [skip] ips`, kind: 'ips' }
  }
  return { ip }
}

/** Why `zone` is not queried for `ip` (it does not check that address family), or undefined when it is. */
export function zoneSkipReason(zone: Pick<ZoneSettings, 'ipv4' | 'ipv6'>, ip: string): string | undefined {
  const family = net.isIP(ip)
  if (family === 6 && !zone.ipv6) return 'IPv6 not checked'
  if (family === 4 && !zone.ipv4) return 'IPv4 not checked'
  return undefined
}
