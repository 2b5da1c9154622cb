import { promises as dnsPromises, type RecordWithTtl } from 'node:dns'
import net from 'node:net'
import { ipv6_reverse } from 'haraka-net-utils'

import { classifyAnswer, reasonFromTxt } from './answer'

/** What one lookup of one IP in one zone found. */
export type LookupResult =
  | {
      readonly status: 'listed'
      readonly codes: readonly string[]
      /** Clean TXT reason, '' when the zone gave none or the TXT query failed. */
      readonly reason: string
      /** Shortest TTL of the A records, in seconds. */
      readonly ttlSeconds: number
    }
  | { readonly status: 'not-listed' }
  | { readonly status: 'error'; readonly reason: string }

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
}

// Answers that mean "this name does not exist / has no A record": not listed.
const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA'])
// Worth another try; anything else (SERVFAIL, REFUSED, bad packets) is final.
const RETRYABLE = new Set(['ETIMEOUT', 'ECONNREFUSED'])

class DeadlineError extends Error {
  readonly code = 'ETIMEOUT'
}

/** Settle with `promise`, or reject when `ms` have passed, whichever comes first. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`no answer within ${ms} ms`)), Math.max(1, ms))
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'EUNKNOWN'
}

/** Short, fixed text for a DNS error code: never echo text that came from the wire. */
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
 * Queries DNSBL zones through its own node:dns Resolver. Every call settles
 * within timeoutMs × tries, whatever the server does, and never rejects.
 */
export class DnsblResolver {
  private readonly resolver: dnsPromises.Resolver
  readonly budgetMs: number

  constructor(private readonly options: ResolverOptions) {
    // One c-ares try per attempt; the retry loop below keeps every attempt at
    // timeoutMs (c-ares doubles the wait on its own retries).
    this.resolver = new dnsPromises.Resolver({ timeout: options.timeoutMs, tries: 1 })
    if (options.servers.length) this.resolver.setServers([...options.servers])
    this.budgetMs = options.timeoutMs * options.tries
  }

  /**
   * Look `ip` up in `zone`; on a listing, fetch the TXT reason in the time left
   * (unless `withReason` is false: a health check needs only the A records).
   */
  async lookup(ip: string, zone: string, budgetMs = this.budgetMs, withReason = true): Promise<LookupResult> {
    const started = Date.now()
    const name = queryName(ip, zone)
    let records: RecordWithTtl[]
    try {
      records = await this.resolve4(name, budgetMs)
    } catch (err) {
      const code = errorCode(err)
      if (NOT_FOUND.has(code)) return { status: 'not-listed' }
      return { status: 'error', reason: describeDnsError(code) }
    }
    const answer = classifyAnswer(records.map((r) => r.address))
    if (answer.kind === 'not-listed') return { status: 'not-listed' }
    if (answer.kind === 'error') return { status: 'error', reason: answer.reason }

    const ttlSeconds = Math.min(...records.map((r) => r.ttl))
    const left = budgetMs - (Date.now() - started)
    let reason = ''
    if (withReason && left > 0) {
      try {
        reason = reasonFromTxt(await withDeadline(this.resolver.resolveTxt(name), left))
      } catch {
        // The listing stands without its reason.
      }
    }
    return { status: 'listed', codes: answer.codes, reason, ttlSeconds }
  }

  /**
   * Up to `tries` attempts of at most timeoutMs each, all inside `budgetMs`.
   * c-ares' own timer is not exact (it adapts to server metrics), so each
   * attempt has its own deadline; an abandoned query settles on its own later.
   */
  private async resolve4(name: string, budgetMs: number): Promise<RecordWithTtl[]> {
    const end = Date.now() + budgetMs
    for (let attempt = 1; ; attempt++) {
      const left = end - Date.now()
      if (left <= 0) throw new DeadlineError(`no answer within ${budgetMs} ms`)
      try {
        return await withDeadline(
          this.resolver.resolve4(name, { ttl: true }),
          Math.min(this.options.timeoutMs, left),
        )
      } catch (err) {
        if (attempt >= this.options.tries || !RETRYABLE.has(errorCode(err))) throw err
      }
    }
  }

  /** Abandon the queries in flight (they settle as errors). */
  cancel(): void {
    this.resolver.cancel()
  }
}
