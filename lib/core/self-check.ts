// This host's own IPs on the zones: which addresses are watched, whether a look
// changed what the zones say about them, and what the operator should do then.
// No I/O: lib/selfcheck gathers the addresses and asks the checker.
import net from 'node:net'
import { normalize_ip } from 'haraka-net-utils'

import type { ZoneOutcome } from './types'

// Blocks that never send mail on the internet (IANA special-purpose registries:
// not globally reachable), each with the words the log uses for it.
const RESERVED: readonly (readonly [string, number, string])[] = [
  ['0.0.0.0', 8, '"this network" (RFC 791)'],
  ['10.0.0.0', 8, 'private (RFC 1918)'],
  ['100.64.0.0', 10, 'shared carrier-grade NAT space (RFC 6598)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private (RFC 1918)'],
  ['192.0.0.0', 24, 'IETF protocol assignments (RFC 6890)'],
  ['192.0.2.0', 24, 'documentation (RFC 5737)'],
  ['192.168.0.0', 16, 'private (RFC 1918)'],
  ['198.18.0.0', 15, 'benchmarking (RFC 2544)'],
  ['198.51.100.0', 24, 'documentation (RFC 5737)'],
  ['203.0.113.0', 24, 'documentation (RFC 5737)'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (RFC 1112)'],
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['100::', 64, 'discard-only (RFC 6666)'],
  ['2001:db8::', 32, 'documentation (RFC 3849)'],
  ['fc00::', 7, 'unique local (RFC 4193)'],
  ['fe80::', 10, 'link-local'],
  ['ff00::', 8, 'multicast'],
]

const RESERVED_BLOCKS = RESERVED.map(([net4or6, prefix, why]) => {
  const list = new net.BlockList()
  const family = net.isIPv4(net4or6) ? 'ipv4' : 'ipv6'
  list.addSubnet(net4or6, prefix, family)
  return { list, family, why } as const
})

/** Why `ip` is never looked up (private, loopback, documentation …), or undefined for a public address. */
export function reservedReason(ip: string): string | undefined {
  const family = net.isIPv4(ip) ? 'ipv4' : net.isIPv6(ip) ? 'ipv6' : undefined
  if (!family) return 'not an IP address'
  return RESERVED_BLOCKS.find((b) => b.family === family && b.list.check(ip, family))?.why
}

/** An address that may be this host's, and where it was found, e.g. `smtp.ini public_ip`. */
export interface Candidate {
  readonly ip: string
  readonly source: string
}

export interface WatchedIp {
  readonly ip: string
  /** Where it was found, in the order found. */
  readonly sources: readonly string[]
}

export interface SkippedIp extends WatchedIp {
  /** Why it is never looked up. */
  readonly why: string
}

export interface WatchList {
  /** Public addresses, each looked up on every zone. */
  readonly watched: readonly WatchedIp[]
  /** Addresses found but never looked up. */
  readonly skipped: readonly SkippedIp[]
}

/**
 * The candidates, each address once (`::ffff:a.b.c.d` as the IPv4 address it
 * is, an IPv6 zone index dropped): public ones watched, the rest skipped with
 * the reason.
 */
export function watchList(candidates: readonly Candidate[]): WatchList {
  const found = new Map<string, string[]>()
  for (const c of candidates) {
    const text = c.ip.trim().replace(/%.*$/, '')
    const ip = (net.isIP(text) ? normalize_ip(text) : null) ?? text
    const sources = found.get(ip) ?? []
    if (!sources.includes(c.source)) sources.push(c.source)
    found.set(ip, sources)
  }
  const watched: WatchedIp[] = []
  const skipped: SkippedIp[] = []
  for (const [ip, sources] of found) {
    const why = reservedReason(ip)
    if (why === undefined) watched.push({ ip, sources })
    else skipped.push({ ip, sources, why })
  }
  return { watched, skipped }
}

/** What Haraka's configuration and the machine say about this host's addresses. */
export interface HostAddresses {
  /** smtp.ini `public_ip`. */
  readonly publicIp?: string
  /** smtp.ini `listen` (`[::0]:25,192.0.2.1:587`) and `listen_host`. */
  readonly listen?: string
  readonly listenHost?: string
  /** `bind` of smtp_forward.ini, by section (`main` or a domain's route). */
  readonly forwardBinds?: readonly { readonly section: string; readonly bind: string }[]
  /** The machine's interfaces, as os.networkInterfaces() gives them. */
  readonly interfaces?: Readonly<
    Record<string, readonly { address: string; internal: boolean }[] | undefined>
  >
  /** `me` (config/me, else the host name) and the addresses DNS gave for it. */
  readonly me?: { readonly name: string; readonly addresses: readonly string[] }
}

/** The host of a Haraka listen address: `[::0]:25` → `::0`, `192.0.2.1:25` → `192.0.2.1`; undefined for a path. */
export function listenHost(endpoint: string): string | undefined {
  const text = endpoint.trim()
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text)
  if (bracketed) return bracketed[1]
  if (net.isIP(text)) return text
  const v4 = /^([^:/]+):\d+$/.exec(text)
  return v4?.[1]
}

/** Every candidate address Haraka knows of, named by where it came from. */
export function hostCandidates(h: HostAddresses): Candidate[] {
  const out: Candidate[] = []
  const add = (ip: string | undefined, source: string): void => {
    if (ip && net.isIP(ip.replace(/%.*$/, ''))) out.push({ ip, source })
  }
  add(h.publicIp?.trim(), 'smtp.ini public_ip')
  for (const endpoint of (h.listen ?? '').split(/\s*,\s*/)) add(listenHost(endpoint), 'smtp.ini listen')
  add(h.listenHost && listenHost(h.listenHost), 'smtp.ini listen_host')
  for (const { section, bind } of h.forwardBinds ?? []) add(bind.trim(), `smtp_forward.ini [${section}] bind`)
  for (const [name, addresses] of Object.entries(h.interfaces ?? {})) {
    for (const a of addresses ?? []) if (!a.internal) add(a.address, `interface ${name}`)
  }
  for (const ip of h.me?.addresses ?? []) add(ip, `me (${h.me?.name ?? ''})`)
  return out
}

/** What the zones last said about one watched IP: listed or not (errors and skips leave it as it was). */
export interface SelfListing {
  readonly ip: string
  readonly zone: string
  readonly listed: boolean
  /** The zone's TXT reason, or its answer codes, for a listing; '' otherwise. */
  readonly reason: string
}

/** One IP's outcomes on every zone, from one look. */
export interface SelfLookup {
  readonly ip: string
  readonly outcomes: readonly ZoneOutcome[]
}

export interface ListingChange {
  readonly listing: SelfListing
  /** Newly listed, or listed before and no longer. */
  readonly change: 'listed' | 'delisted'
}

const key = (ip: string, zone: string): string => `${zone} ${ip}`

/**
 * The listings after a look, and what changed since `before`. A zone that
 * gave no answer (an error, a suspended zone) leaves what was known; an IP
 * or zone no longer watched is forgotten without a word.
 */
export function nextListings(
  before: ReadonlyMap<string, SelfListing>,
  lookups: readonly SelfLookup[],
): { listings: Map<string, SelfListing>; changes: ListingChange[] } {
  const listings = new Map<string, SelfListing>()
  const changes: ListingChange[] = []
  for (const { ip, outcomes } of lookups) {
    for (const o of outcomes) {
      const k = key(ip, o.zone)
      const was = before.get(k)
      if (o.status !== 'listed' && o.status !== 'not-listed') {
        if (was) listings.set(k, was)
        continue
      }
      const reason = o.status === 'listed' ? o.reason || o.codes.join(',') : ''
      const now: SelfListing = { ip, zone: o.zone, listed: o.status === 'listed', reason }
      listings.set(k, now)
      if (now.listed && !was?.listed) changes.push({ listing: now, change: 'listed' })
      if (!now.listed && was?.listed) changes.push({ listing: now, change: 'delisted' })
    }
  }
  return { listings, changes }
}

/** What to do about a listing of our own IP: the ERROR line, and the audit's finding. */
export function listedText(l: SelfListing, lookupUrl: string): string {
  const reason = l.reason ? ` (${l.reason})` : ''
  const url = lookupUrl ? `; details: ${lookupUrl.replaceAll('{ip}', l.ip)}` : ''
  return (
    `our own IP ${l.ip} is listed on ${l.zone}${reason}: it sent backscatter (a bounce or ` +
    `auto-reply to a forged sender) or sender callouts, and servers using ${l.zone} may refuse ` +
    `its mail. Find the source and fix it (haraka-backscatter audit names what in the setup ` +
    `invites it); the listing then ends four weeks after the last abuse seen, or at once with ` +
    `the list's express delisting${url}`
  )
}

export function delistedText(l: SelfListing): string {
  return `our own IP ${l.ip} is no longer listed on ${l.zone}`
}
