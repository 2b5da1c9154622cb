import net from 'node:net'
import { ip_in_list, is_private_ip, normalize_ip } from 'haraka-net-utils'
import type { Settings, ZoneSettings } from './types'

export interface Client {
  /** The connecting address as Haraka reports it (XCLIENT/PROXY already applied). */
  readonly ip: string | null | undefined
  /** Authenticated or relay-allowed. */
  readonly relaying: boolean
}

/**
 * What the SMTP session knew about the client: whether it is one of our own,
 * and its address. Kept in transaction.notes for the outbound guard (by bounce
 * time the connection, its notes and results are gone), and read at data_post
 * by the ledger.
 */
export interface Provenance {
  /** The client authenticated (AUTH). */
  readonly authenticated: boolean
  /**
   * client: the connection was allowed to relay before the transaction (relay
   * ACL, AUTH, a plugin's decision about the client); recipient: relaying was
   * switched on during the transaction only, as the relay plugin's dest_domains
   * does for inbound mail from anyone; no: not relayed.
   */
  readonly relaying: 'client' | 'recipient' | 'no'
  /** The client's address, for the log. */
  readonly ip: string
}

/** The provenance of a connection at data_post, from what Haraka shows of it. */
export function provenanceOf(client: {
  ip: unknown
  authUser: unknown
  /** connection.relaying: the transaction's value when one was set during it. */
  relaying: unknown
  /** The connection's own relaying, before any transaction changed it. */
  connectionRelaying: unknown
}): Provenance {
  const relaying =
    client.connectionRelaying === true ? 'client' : client.relaying === true ? 'recipient' : 'no'
  return {
    authenticated: typeof client.authUser === 'string' && client.authUser !== '',
    relaying,
    ip: typeof client.ip === 'string' ? client.ip : '',
  }
}

/**
 * Is this one of our own clients, whose mail is our users' mail? One that
 * authenticated or was allowed to relay. Relaying for the recipient only (the
 * relay plugin's dest_domains) is inbound mail from anyone, and an address
 * alone (a private network, a gateway's) says nothing.
 */
export const isOwnClient = (p: Provenance): boolean => p.authenticated || p.relaying === 'client'

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

/**
 * Does [skip] leave this client alone (private, relaying, ips)? Its mail is
 * never refused or scored: not by the zones, not by the ledger. A client with
 * no address is only not looked up: no setting says to leave it alone.
 */
export const leftAlone = (check: ClientCheck): boolean => 'skip' in check && check.kind !== 'no-ip'

/** Why `zone` is not queried for `ip` (it does not check that address family), or undefined when it is. */
export function zoneSkipReason(zone: Pick<ZoneSettings, 'ipv4' | 'ipv6'>, ip: string): string | undefined {
  const family = net.isIP(ip)
  if (family === 6 && !zone.ipv6) return 'IPv6 not checked'
  if (family === 4 && !zone.ipv4) return 'IPv4 not checked'
  return undefined
}
