import dns, { promises as dnsPromises, type RecordWithTtl } from 'node:dns'
import net from 'node:net'
import { ipv6_reverse } from 'haraka-net-utils'

import { classifyAnswer, reasonFromTxt } from '../core/answer'
import { settleWithin } from '../core/deadline'
import type { LookupResult } from '../core/types'

/** RFC 5782 §2.1 and §2.4: reversed octets, or reversed nibbles for IPv6. */
export function queryName(ip: string, zone: string): string {
  if (net.isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.${zone}`
  return `${ipv6_reverse(ip)}.${zone}`
}

export interface ResolverOptions {
  /** `ip` or `ip:port` or `[ipv6]:port`; empty = the system resolvers. */
  readonly servers: readonly string[]
  /** Wait for one try, in milliseconds. */
  readonly timeoutMs: number
  /** Tries per query. */
  readonly tries: number
  /**
   * The system's nameservers, used when `servers` is empty. Default:
   * dns.getServers(), node's reading of /etc/resolv.conf; tests pass their own.
   */
  readonly systemServers?: readonly string[]
}

// Answers that mean "this name does not exist / has no A record": not listed.
const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA'])
// Worth another try, at the same server or the next; anything else is final.
const RETRYABLE = new Set(['ETIMEOUT', 'ECONNREFUSED'])
// The server answered but could not help; worth a try at another server only (as c-ares does).
const SERVER_FAILURE = new Set(['ESERVFAIL', 'EREFUSED'])

const LATE = Symbol('late')

/** A try that got no answer in its time: the same code as c-ares' own timeout, handled alike. */
const TIMEOUT = 'ETIMEOUT'

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'EUNKNOWN'
}

/**
 * Short, fixed text for a DNS error code, not describeError: it describes the
 * code alone, never the error's message, which names the query and may echo the wire.
 */
export function describeDnsError(code: string): string {
  switch (code) {
    case 'ETIMEOUT':
      return 'timeout'
    case 'ESERVFAIL':
      return 'SERVFAIL'
    case 'EREFUSED':
      return 'REFUSED'
    case 'ECONNREFUSED':
      return 'connection refused'
    case 'ECANCELLED':
      return 'cancelled at shutdown'
    case 'EBADRESP':
    case 'EFORMERR':
      return 'malformed answer'
    default:
      return /^E[A-Z]{2,20}$/.test(code) ? code : 'DNS error'
  }
}

/**
 * Queries DNSBL zones through node:dns, one Resolver per configured server, so
 * that each try goes to a server of our choosing: a query starts at the server
 * that answered last and moves to the next one on each try, so a silent first
 * server costs one timeout, not every try. Every call settles within its budget
 * (default timeoutMs × tries), whatever the servers do, and never rejects.
 */
export class DnsblResolver {
  private readonly resolvers: dnsPromises.Resolver[]
  /** Index of the server that answered last: the next query starts there. */
  private preferred = 0
  readonly budgetMs: number

  constructor(private readonly options: ResolverOptions) {
    // One c-ares try per attempt; the retry loop below keeps every attempt at
    // timeoutMs (c-ares doubles the wait on its own retries).
    const make = (): dnsPromises.Resolver =>
      new dnsPromises.Resolver({ timeout: options.timeoutMs, tries: 1 })
    // The system's nameservers too get a Resolver each: in one c-ares channel, a
    // silent first one would take every try, each cut at timeoutMs before c-ares moves on.
    const servers = options.servers.length ? options.servers : (options.systemServers ?? dns.getServers())
    this.resolvers = servers.length
      ? servers.map((server) => {
          const resolver = make()
          resolver.setServers([server])
          return resolver
        })
      : [make()] // none found: c-ares' own default
    this.budgetMs = options.timeoutMs * options.tries
  }

  /**
   * Look `ip` up in `zone`; on a listing, fetch the TXT reason in the time left
   * (unless `withReason` is false: a health check needs only the A records).
   */
  lookup(ip: string, zone: string, budgetMs = this.budgetMs, withReason = true): Promise<LookupResult> {
    return this.resolve(queryName(ip, zone), budgetMs, this.options.tries, withReason)
  }

  /**
   * A health check's lookup: the A records only, and every server gets a try
   * even when `tries` is smaller, so a zone is judged by the servers that work.
   */
  probe(ip: string, zone: string): Promise<LookupResult> {
    const attempts = Math.max(this.options.tries, this.resolvers.length)
    return this.resolve(queryName(ip, zone), this.options.timeoutMs * attempts, attempts, false)
  }

  private async resolve(
    name: string,
    budgetMs: number,
    attempts: number,
    withReason: boolean,
  ): Promise<LookupResult> {
    const started = Date.now()
    const answered = await this.resolve4(name, budgetMs, attempts)
    if ('code' in answered) {
      if (NOT_FOUND.has(answered.code)) return { status: 'not-listed' }
      return { status: 'error', reason: describeDnsError(answered.code) }
    }
    const { records, resolver } = answered
    const answer = classifyAnswer(records.map((r) => r.address))
    if (answer.kind === 'not-listed') return { status: 'not-listed' }
    if (answer.kind === 'error') return { status: 'error', reason: answer.reason }

    const ttlSeconds = Math.min(...records.map((r) => r.ttl))
    const left = budgetMs - (Date.now() - started)
    let reason = ''
    if (withReason && left > 0) {
      try {
        const txt = await settleWithin(resolver.resolveTxt(name), left, LATE)
        if (txt !== LATE) reason = reasonFromTxt(txt)
      } catch {
        // The listing stands without its reason.
      }
    }
    return { status: 'listed', codes: answer.codes, reason, ttlSeconds }
  }

  /**
   * Up to `attempts` tries of at most timeoutMs each, all inside `budgetMs`,
   * each at the next server. c-ares' own timer is not exact (it adapts to
   * server metrics), so each try has its own deadline; an abandoned query
   * settles on its own later. Settles with the records and the server that
   * gave them, or the last try's error code (a value, not a second throw:
   * most answers to a DNSBL are "not found").
   */
  private async resolve4(
    name: string,
    budgetMs: number,
    attempts: number,
  ): Promise<{ records: RecordWithTtl[]; resolver: dnsPromises.Resolver } | { code: string }> {
    const end = Date.now() + budgetMs
    const first = this.preferred
    for (let attempt = 0; ; attempt++) {
      const left = end - Date.now()
      if (left <= 0) return { code: TIMEOUT }
      const index = (first + attempt) % this.resolvers.length
      const resolver = this.resolvers[index]!
      let code: string
      try {
        const records = await settleWithin(
          resolver.resolve4(name, { ttl: true }),
          Math.min(this.options.timeoutMs, left),
          LATE,
        )
        if (records !== LATE) {
          this.preferred = index
          return { records, resolver }
        }
        code = TIMEOUT
      } catch (err) {
        code = errorCode(err)
      }
      if (NOT_FOUND.has(code)) this.preferred = index
      const another = RETRYABLE.has(code) || (SERVER_FAILURE.has(code) && this.resolvers.length > 1)
      if (attempt + 1 >= attempts || !another) return { code }
    }
  }

  /** Abandon the queries in flight (they settle as errors). */
  cancel(): void {
    for (const resolver of this.resolvers) resolver.cancel()
  }
}
