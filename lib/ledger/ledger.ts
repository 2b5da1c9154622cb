// The sent-mail ledger in Redis: record the Message-ID of mail we send, and
// tell whether a bounce refers to one of them. Every call is one round trip,
// bounded by timeout_ms, and never throws: Redis down at start, gone later or
// frozen only makes the answers 'unavailable' or 'unknown', and mail goes on.
import { createClient, ErrorReply, MultiErrorReply } from '@redis/client'

import { describeError } from '../core/error'
import type { LedgerSettings } from '../core/types'
import { ageDays, judge, unknown, type LedgerAnswer, type LedgerResult } from './answer'
import {
  bucketKey,
  bucketTtlSeconds,
  canonicalMessageId,
  dayOf,
  dayOfBucketKey,
  daysOfWindow,
  KEY_PREFIX,
  ledgerEntry,
  SINCE_KEY,
  sinceMember,
  type LedgerEntry,
} from './entry'
import { shownUrl } from '../settings/redis-url'

export type { LedgerAnswer, LedgerResult } from './answer'

/** References looked up per check at most (the last ones: the most recent in a References list). */
export const MAX_REFERENCES = 50

export interface LedgerLog {
  info(msg: string): void
  error(msg: string): void
}

export interface LedgerOptions {
  readonly log: LedgerLog
  /** The clock, in ms since the epoch: which day a record or a check falls on. */
  readonly now?: () => number
  /** While Redis is down, how often a PING probes it, in ms: it is back at most this long after it answers. */
  readonly probeIntervalMs?: number
  /** The ledger this one replaces (a reload): its counts and any record it lost carry on. */
  readonly previous?: Ledger
  /** Called on every change of state, e.g. for a gauge. */
  readonly onState?: (status: LedgerStatus) => void
}

/** connecting: not yet connected since start; down: an outage; closed: after close(). */
export type LedgerState = 'connecting' | 'up' | 'down' | 'closed'

/** A health row. */
export interface LedgerStatus {
  readonly state: LedgerState
  /** When the state began, ms since the epoch. */
  readonly sinceMs: number
  /** Why it is down. */
  readonly reason?: string
  /** Whole days the ledger has held every message sent, as Redis last said; undefined: unknown or nothing yet. */
  readonly ageDays: number | undefined
  readonly windowDays: number
  /** The Redis URL, without its password. */
  readonly redis: string
}

export interface LedgerCounts {
  recorded: number
  recordFailures: number
  checks: Record<LedgerResult, number>
  outages: number
}

/** What the ledger holds, for a health row. */
export interface LedgerSurvey {
  /** Message-IDs held, over every day still kept. */
  readonly entries: number
  /** Days that hold at least one. */
  readonly days: number
  /** The first whole day from which the ledger holds every message sent; undefined: nothing recorded yet. */
  readonly sinceDay: number | undefined
  /** The day the survey was made on. */
  readonly today: number
  /** Redis's maxmemory-policy when it may evict the ledger's keys (a maxmemory set, a policy other than noeviction). */
  readonly evicts: string | undefined
}

export type SurveyOutcome =
  | { readonly ok: true; readonly survey: LedgerSurvey }
  | { readonly ok: false; readonly reason: 'unavailable' | 'timeout' | 'error' }

export type RecordResult = 'recorded' | 'unavailable' | 'no message-id'

type Client = ReturnType<typeof createClient>
type Failure = { readonly ok: false; readonly reason: 'unavailable' | 'timeout' | 'error' }
type Outcome<T> = { readonly ok: true; readonly value: T } | Failure

const DEFAULT_PROBE_MS = 1000

/**
 * While records come faster than two in this many ms, a record waits this long
 * for others to share its round trip: with relayed mail at 1000 messages a
 * second, about 5 go together. Slower than that, each goes at once.
 */
export const RECORD_BATCH_MS = 5

/** Records sent together at most; a full batch goes at once. */
export const MAX_RECORD_BATCH = 256

interface WaitingRecord {
  readonly entry: LedgerEntry
  readonly resolve: (result: RecordResult) => void
}

/** What a ledger and the one that replaces it on a reload share. */
interface Shared {
  readonly counts: LedgerCounts
  /** The latest day a record failed on, until Redis is told so. */
  lostDay: number | undefined
}

/** Keys a SCAN page of survey() asks for: a page and the HLENs of the one before are one round trip. */
const SURVEY_PAGE = 1000

// Reconnect soon after a restart, then every 2 s at most.
const reconnectDelay = (retries: number): number => Math.min(100 * 2 ** retries, 2000)

export class Ledger {
  readonly settings: LedgerSettings
  readonly #log: LedgerLog
  readonly #now: () => number
  readonly #probeMs: number
  readonly #onState: ((status: LedgerStatus) => void) | undefined
  readonly #url: string
  #client: Client | undefined
  #state: LedgerState = 'connecting'
  #stateSinceMs: number
  #reason: string | undefined
  #sinceDay: number | undefined
  #probing = false
  #probeTimer: NodeJS.Timeout | undefined
  readonly #errorsLogged = new Set<string>()
  /** Calls waiting for the first connection to be made or to fail. */
  #waitingForConnection: (() => void)[] = []
  readonly #inFlight = new Set<Promise<unknown>>()
  /** Records waiting to go to Redis together, and the timer that sends them. */
  #waiting: WaitingRecord[] = []
  #batchTimer: NodeJS.Timeout | undefined
  /** When the two records before this one were made (performance.now()). */
  #recent: [number, number] = [-Infinity, -Infinity]
  readonly #shared: Shared
  /** This key's member of SINCE_KEY. */
  readonly #since: string | undefined

  constructor(settings: LedgerSettings, options: LedgerOptions) {
    this.settings = settings
    this.#log = options.log
    this.#now = options.now ?? Date.now
    this.#probeMs = options.probeIntervalMs ?? DEFAULT_PROBE_MS
    this.#onState = options.onState
    this.#url = shownUrl(settings.redisUrl)
    this.#stateSinceMs = this.#now()
    this.#since = settings.key && sinceMember(settings.key)
    const previous = options.previous
    // Shared, not copied: a record the old ledger loses while it closes still marks the hole.
    this.#shared = previous
      ? previous.#shared
      : {
          counts: {
            recorded: 0,
            recordFailures: 0,
            checks: { ours: 0, 'not-ours': 0, unknown: 0 },
            outages: 0,
          },
          lostDay: undefined,
        }
    if (previous && previous.#since === this.#since) this.#sinceDay = previous.#sinceDay
  }

  /**
   * Connect in the background and stay connected: never awaited, never
   * throws. node-redis retries on its own, for ever; until it is connected
   * every call answers 'unavailable' at once (no offline queue).
   */
  start(): void {
    if (this.#client || this.#state === 'closed') return
    let client: Client
    try {
      client = createClient({
        url: this.settings.redisUrl,
        disableOfflineQueue: true,
        socket: {
          connectTimeout: Math.max(this.settings.timeoutMs, 1000),
          reconnectStrategy: reconnectDelay,
        },
      })
    } catch (err) {
      this.#down(describeError(err))
      return
    }
    this.#client = client
    // Without a listener, node-redis's 'error' event would throw out of the process.
    client.on('error', (err: unknown) => this.#down(describeError(err)))
    client.on('reconnecting', () => this.#down('connection lost'))
    client.on('ready', () => {
      this.#up()
      void this.#refreshAge()
    })
    client.connect().catch((err: unknown) => {
      if (this.#state !== 'closed') this.#down(describeError(err))
    })
  }

  /**
   * Record a sent message's Message-ID in today's bucket, with the window's
   * expiry. A round trip, not a command, is what a record costs (about 60 µs of
   * CPU between Node and Redis), so on a busy relay (the two records before
   * this one made within RECORD_BATCH_MS) records wait that long and go to
   * Redis together, in one round trip; otherwise a record goes at once, and a
   * client sending one message after another never waits for company.
   * Resolves at most RECORD_BATCH_MS + timeout_ms later; never rejects.
   */
  record(messageId: string): Promise<RecordResult> {
    const key = this.settings.key
    const entry = key && ledgerEntry(key, messageId)
    if (!entry) return Promise.resolve(key ? 'no message-id' : 'unavailable')
    if (this.#state === 'closed') return Promise.resolve('unavailable')
    return new Promise((resolve) => {
      const now = performance.now()
      const busy = now - this.#recent[0] < RECORD_BATCH_MS
      this.#recent = [this.#recent[1], now]
      this.#waiting.push({ entry, resolve })
      if (!busy || this.#waiting.length >= MAX_RECORD_BATCH) void this.#sendWaiting()
      else this.#batchTimer ??= setTimeout(() => void this.#sendWaiting(), RECORD_BATCH_MS)
    })
  }

  /** Send the records waiting, MAX_RECORD_BATCH at a time, each batch one round trip. */
  #sendWaiting(): Promise<void[]> {
    clearTimeout(this.#batchTimer)
    this.#batchTimer = undefined
    const batches: Promise<void>[] = []
    while (this.#waiting.length > 0) batches.push(this.#flush(this.#waiting.splice(0, MAX_RECORD_BATCH)))
    return Promise.all(batches)
  }

  /** One batch, one round trip, bounded by timeout_ms. Never rejects; every record is answered. */
  async #flush(batch: readonly WaitingRecord[]): Promise<void> {
    let result: RecordResult = 'unavailable'
    try {
      result = await this.#send(batch)
    } catch (err) {
      // Not #failed(): what threw may be what it would use (the clock).
      this.#lost(batch.length, Date.now())
      this.#log.error(`ledger: ${batch.length} message(s) not recorded (${describeError(err)}); mail goes on`)
    } finally {
      for (const { resolve } of batch) resolve(result)
    }
  }

  async #send(batch: readonly WaitingRecord[]): Promise<RecordResult> {
    const today = dayOf(this.#now())
    const lost = this.#shared.lostDay
    const since = this.#since as string
    const outcome = await this.#call((client) => {
      const multi = client.multi().zAdd(SINCE_KEY, { score: today + 1, value: since }, { condition: 'NX' })
      // A record lost on day d: the ledger holds every message only from d + 1.
      if (lost !== undefined) multi.zAdd(SINCE_KEY, { score: lost + 1, value: since }, { comparison: 'GT' })
      const buckets = new Set<string>()
      for (const { entry } of batch) {
        const bucket = bucketKey(today, entry.bucket)
        multi.hSet(bucket, entry.field, '')
        buckets.add(bucket)
      }
      const ttl = bucketTtlSeconds(this.settings.windowDays)
      for (const bucket of buckets) multi.expire(bucket, ttl)
      return multi.execAsPipeline()
    })
    if (!outcome.ok) {
      this.#lost(batch.length, this.#now())
      return 'unavailable'
    }
    if (this.#shared.lostDay === lost) this.#shared.lostDay = undefined
    this.#shared.counts.recorded += batch.length
    return 'recorded'
  }

  /**
   * The first day the ledger holds every message, as this process knows it: a
   * hole it has not yet told Redis of (Redis refusing writes but answering
   * reads, for one) moves it on too.
   */
  #holdsFrom(sinceDay: number | undefined): number | undefined {
    const lost = this.#shared.lostDay
    return lost === undefined || sinceDay === undefined ? sinceDay : Math.max(sinceDay, lost + 1)
  }

  /** Records that did not reach Redis: the ledger has a hole from that day, told to Redis as soon as it answers. */
  #lost(records: number, ms: number): void {
    this.#shared.counts.recordFailures += records
    const day = dayOf(ms)
    this.#shared.lostDay = Math.max(this.#shared.lostDay ?? day, day)
  }

  /** Tell Redis of a hole now, not at the next record: another worker's check must not call its mail "not ours". */
  async #markLost(): Promise<void> {
    const lost = this.#shared.lostDay
    const since = this.#since
    if (lost === undefined || since === undefined) return
    const outcome = await this.#call((client) =>
      client.zAdd(SINCE_KEY, { score: lost + 1, value: since }, { comparison: 'GT' }),
    )
    if (outcome.ok && this.#shared.lostDay === lost) this.#shared.lostDay = undefined
  }

  /**
   * Whether a bounce refers to mail we sent: every reference on every day of
   * the window, and the ledger's age, in one round trip. `complete: false`:
   * the message named more references than these, so finding none of them is
   * "unknown", never "not ours".
   */
  async check(references: readonly string[], options: { complete?: boolean } = {}): Promise<LedgerAnswer> {
    const answer = await this.#check(references, options.complete ?? true)
    this.#shared.counts.checks[answer.result]++
    return answer
  }

  /** `listed`: false when the message named more references than it gave: none is then called "not ours". */
  async #check(references: readonly string[], listed: boolean): Promise<LedgerAnswer> {
    const key = this.settings.key
    if (!key) return unknown('unavailable')
    const ids = [...new Set(references.map(canonicalMessageId).filter((id) => id !== undefined))]
    if (ids.length === 0) return unknown('no references')
    const checked = ids.slice(-MAX_REFERENCES)
    const entries = checked.map((id) => ledgerEntry(key, id) as LedgerEntry)
    const today = dayOf(this.#now())
    const days = daysOfWindow(today, this.settings.windowDays)
    const outcome = await this.#call((client) => {
      const multi = client.multi().zScore(SINCE_KEY, this.#since as string)
      for (const entry of entries)
        for (const day of days) multi.hExists(bucketKey(day, entry.bucket), entry.field)
      return multi.execAsPipeline()
    })
    if (!outcome.ok) return unknown(outcome.reason)
    const [since, ...exists] = outcome.value as unknown[]
    this.#sinceDay = since === null || since === undefined ? undefined : Number(since)
    return judge({
      references: checked.map((id, i) => ({
        id,
        found: exists.slice(i * days.length, (i + 1) * days.length).some((e) => Number(e) === 1),
      })),
      complete: listed && checked.length === ids.length,
      sinceDay: this.#holdsFrom(this.#sinceDay),
      today,
      windowDays: this.settings.windowDays,
    })
  }

  /**
   * What the ledger holds: its start, and the Message-IDs of each day still
   * kept. The buckets are found with SCAN, a page at a time, and each page's
   * HLENs go with the next page's SCAN: the server is never blocked for long,
   * and every round trip is bounded by timeout_ms.
   */
  async survey(): Promise<SurveyOutcome> {
    const today = dayOf(this.#now())
    const seen = new Set<string>()
    const days = new Set<number>()
    let entries = 0
    let sinceDay: number | undefined
    let first = true
    let cursor: string | undefined = '0'
    let counting: string[] = []
    while (cursor !== undefined || counting.length > 0) {
      const [page, lengths, withSince] = [cursor, counting, first && this.#since !== undefined]
      const outcome = await this.#call((client) => {
        const multi = client.multi()
        if (withSince) multi.zScore(SINCE_KEY, this.#since as string)
        for (const key of lengths) multi.hLen(key)
        if (page !== undefined) multi.scan(page, { MATCH: `${KEY_PREFIX}*`, COUNT: SURVEY_PAGE })
        return multi.execAsPipeline()
      })
      if (!outcome.ok) return outcome
      const replies = [...(outcome.value as unknown[])]
      if (withSince) {
        const since = replies.shift()
        sinceDay = since === null || since === undefined ? undefined : Number(since)
      }
      for (const key of lengths) {
        const length = Number(replies.shift())
        const day = dayOfBucketKey(key)
        // A bucket may expire between its SCAN and its HLEN.
        if (length > 0 && day !== undefined) {
          entries += length
          days.add(day)
        }
      }
      first = false
      counting = []
      cursor = undefined
      if (page === undefined) continue
      const scanned = replies.shift() as { cursor: string; keys: string[] }
      if (scanned.cursor !== '0') cursor = scanned.cursor
      // SCAN may return a key twice; the survey's own key is no bucket.
      counting = scanned.keys.filter((key) => !seen.has(key) && dayOfBucketKey(key) !== undefined)
      for (const key of counting) seen.add(key)
    }
    this.#sinceDay = sinceDay
    // On its own: a Redis that refuses INFO (an ACL, a proxy) still has its ledger surveyed.
    const memory = await this.#call((client) => client.info('memory'))
    const evicts = memory.ok ? evictionPolicy(String(memory.value)) : undefined
    return { ok: true, survey: { entries, days: days.size, sinceDay, today, evicts } }
  }

  status(): LedgerStatus {
    const today = dayOf(this.#now())
    return {
      state: this.#state,
      sinceMs: this.#stateSinceMs,
      ...(this.#reason === undefined ? {} : { reason: this.#reason }),
      ageDays: ageDays(this.#holdsFrom(this.#sinceDay), today),
      windowDays: this.settings.windowDays,
      redis: this.#url,
    }
  }

  /** The counts so far (carried over from the ledger this one replaced). */
  counts(): LedgerCounts {
    return this.#shared.counts
  }

  /**
   * Stop: calls under way finish or reach their bound, then the connection
   * closes. What was recorded is in Redis, so a ledger that replaces this one
   * loses nothing.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    // Records waiting for their batch go now, before the connection closes.
    const flushed = this.#sendWaiting()
    this.#setState('closed', undefined)
    await flushed
    await Promise.allSettled([...this.#inFlight])
    const client = this.#client
    this.#client = undefined
    // A reply still owed now is one its call gave up on. node-redis's close() would wait for it,
    // and a destroy() after that close() throws and leaves the socket open to a frozen server.
    try {
      client?.destroy()
    } catch {
      // Closed already.
    }
  }

  /**
   * One round trip, bounded. While down, calls fail at once and only the
   * PING probe goes out, one at a time, so that nothing piles up behind a
   * frozen server and no mail waits for it.
   */
  async #call<T>(send: (client: Client) => Promise<T>, probe = false): Promise<Outcome<T>> {
    // One bound for the whole call: waiting for the connection uses up part of it.
    const started = performance.now()
    // Mail relayed in the first moments after start waits for the connection, within the bound,
    // rather than go unrecorded (which would make the ledger young again).
    if (this.#state === 'connecting' && this.#client && !this.#client.isReady) await this.#connection()
    const left = this.settings.timeoutMs - (performance.now() - started)
    if (left <= 0) return { ok: false, reason: 'timeout' }
    const client = this.#client
    if (!client || !client.isReady || this.#state === 'closed') return { ok: false, reason: 'unavailable' }
    if (this.#state === 'down' && (!probe || this.#probing)) return { ok: false, reason: 'unavailable' }
    let sent: Promise<T>
    try {
      sent = send(client)
    } catch (err) {
      return this.#failed(err)
    }
    if (probe) {
      // The probe ends when Redis answers, however late: one stays out at most.
      this.#probing = true
      const done = (): void => void (this.#probing = false)
      sent.then(done, done)
    }
    const bounded = this.#bounded(sent, left)
    this.#inFlight.add(bounded)
    try {
      const outcome = await bounded
      if (outcome.ok) this.#up()
      return outcome
    } finally {
      this.#inFlight.delete(bounded)
    }
  }

  /** Resolves when the first connection is made or fails, or after timeout_ms. */
  #connection(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.settings.timeoutMs)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#waitingForConnection.push(done)
    })
  }

  async #bounded<T>(sent: Promise<T>, ms: number): Promise<Outcome<T>> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, ms, 'late')))
    try {
      const value = await Promise.race([sent, late])
      if (value === 'late') {
        // Its answer, or its failure, when it comes, is of no use any more.
        sent.catch(() => undefined)
        this.#down(`no answer within ${this.settings.timeoutMs} ms`)
        return { ok: false, reason: 'timeout' }
      }
      return { ok: true, value }
    } catch (err) {
      return this.#failed(err)
    } finally {
      clearTimeout(timer)
    }
  }

  #failed(err: unknown): Failure {
    if (this.#state === 'closed') return { ok: false, reason: 'unavailable' }
    const text = describeError(err)
    // An error reply (a command Redis refuses) is no outage: said once per kind of error.
    if (err instanceof ErrorReply) {
      const detail = err instanceof MultiErrorReply ? errorReplies(err) : text
      if (!this.#errorsLogged.has(detail)) {
        this.#errorsLogged.add(detail)
        this.#log.error(
          `ledger: Redis ${this.#url} refused a command (${detail}); that call fails open, mail goes on`,
        )
      }
      return { ok: false, reason: 'error' }
    }
    this.#down(text)
    return { ok: false, reason: 'unavailable' }
  }

  async #refreshAge(): Promise<void> {
    const since = this.#since
    if (since === undefined) return
    const outcome = await this.#call((client) => client.zScore(SINCE_KEY, since))
    if (outcome.ok) this.#sinceDay = outcome.value === null ? undefined : Number(outcome.value)
  }

  #up(): void {
    if (this.#state === 'up' || this.#state === 'closed') return
    const was = this.#state
    const downMs = this.#now() - this.#stateSinceMs
    this.#setState('up', undefined)
    if (this.#shared.lostDay !== undefined) void this.#markLost()
    if (was === 'connecting') {
      this.#log.info(`ledger: connected to Redis ${this.#url}`)
      return
    }
    const lost = this.#shared.lostDay === undefined ? '' : '; messages sent meanwhile were not recorded'
    this.#log.info(
      `ledger: Redis ${this.#url} is back after ${Math.round(downMs / 1000)} s; recording and checking again${lost}`,
    )
  }

  #down(reason: string): void {
    if (this.#state === 'down' || this.#state === 'closed') return
    this.#setState('down', reason)
    this.#shared.counts.outages++
    this.#log.error(
      `ledger: Redis ${this.#url} unavailable (${reason}): sent mail is not recorded and bounces are not ` +
        `checked against the ledger until it is back; mail goes on`,
    )
  }

  #setState(state: LedgerState, reason: string | undefined): void {
    this.#state = state
    for (const done of this.#waitingForConnection.splice(0)) done()
    this.#reason = reason
    this.#stateSinceMs = this.#now()
    clearInterval(this.#probeTimer)
    this.#probeTimer = undefined
    // Connected but silent (frozen, overloaded): a PING now and then finds it back without mail to carry one.
    if (state === 'down') {
      this.#probeTimer = setInterval(() => void this.#call((client) => client.ping(), true), this.#probeMs)
      this.#probeTimer.unref()
    }
    this.#onState?.(this.status())
  }
}

/**
 * From `INFO memory`: the maxmemory-policy when Redis may evict keys with an
 * expiry, as every bucket of the ledger has (a maxmemory set and a policy
 * other than noeviction); undefined when it never evicts.
 */
export function evictionPolicy(info: string): string | undefined {
  const maxmemory = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0)
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'noeviction'
  return maxmemory > 0 && policy !== 'noeviction' ? policy : undefined
}

/** The error replies inside a failed pipeline, e.g. `WRONGTYPE …`. */
function errorReplies(err: MultiErrorReply): string {
  return [...new Set([...err.errors()].map((e) => describeError(e)))].join('; ')
}
