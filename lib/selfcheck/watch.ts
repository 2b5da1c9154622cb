// The watch of this host's own IPs: at start and every interval, every watched
// IP is looked up on every zone through the checker inbound lookups use (zone
// health, timeouts, the cache), and a change of listing is logged once.
import {
  delistedText,
  listedText,
  nextListings,
  type SelfListing,
  type SelfLookup,
  type WatchList,
} from '../core/self-check'
import type { Settings, ZoneOutcome } from '../core/types'

export interface SelfWatchLog {
  info(msg: string): void
  warn(msg: string): void
  error(msg: string): void
}

export interface SelfWatchOptions {
  readonly settings: Settings
  /** What every zone says about an IP: the checker's check(), which never rejects. */
  readonly check: (ip: string) => Promise<ZoneOutcome[]>
  /** The addresses to watch, gathered anew at each look (an interface may come and go). */
  readonly addresses: () => Promise<WatchList>
  readonly log: SelfWatchLog
  /** The watch this one replaces (a config reload): what it knew is not announced again. */
  readonly previous?: SelfWatch
}

/** How a watch list is said in the log, to say it only when it changes. */
function watchListText(list: WatchList, settings: Settings): string {
  const zones = settings.zones.map((z) => z.name).join(', ')
  const skipped = list.skipped.map((s) => `${s.ip} (${s.sources.join(', ')}): ${s.why}`).join('; ')
  const notLooked = skipped ? `; not looked up: ${skipped}` : ''
  if (!list.watched.length && settings.selfCheck.ipsSet) {
    return `self check: [self_check] ips names no public address, so nothing is watched${notLooked}; set it to the public addresses this host sends from, or leave it empty to watch the ones Haraka's configuration gives`
  }
  if (!list.watched.length) {
    return `self check: no public address of this host found to watch${notLooked}; set [self_check] ips to the addresses it sends from`
  }
  const watched = list.watched.map((w) => `${w.ip} (${w.sources.join(', ')})`).join(', ')
  const every = settings.selfCheck.intervalMinutes
  return `self check: watching ${watched} on ${zones} every ${every} min${notLooked}`
}

/** Looks up this host's own IPs on the zones now and every `[self_check] interval_minutes`. */
export class SelfWatch {
  private listingsByKey: Map<string, SelfListing>
  private lastListText: string
  private timer: NodeJS.Timeout | undefined
  private started = false
  private stopped = false
  /** The look in progress, if any. */
  private looking: Promise<void> | undefined

  constructor(private readonly options: SelfWatchOptions) {
    this.listingsByKey = new Map(options.previous?.listingsByKey ?? [])
    this.lastListText = options.previous?.lastListText ?? ''
  }

  /**
   * Look now (or join the look in progress), then every interval; the timer
   * never keeps the process alive.
   */
  start(): void {
    if (this.stopped || this.started) return
    this.started = true
    void this.lookThenWait()
  }

  /** No further look; one in progress ends unheard. */
  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** What the zones last said about each watched IP (the gauge reads it). */
  listings(): SelfListing[] {
    return [...this.listingsByKey.values()]
  }

  /** One look at every watched IP on every zone; settles when it is done (never rejects). */
  look(): Promise<void> {
    this.looking ??= this.lookOnce().finally(() => (this.looking = undefined))
    return this.looking
  }

  private async lookThenWait(): Promise<void> {
    await this.look()
    if (this.stopped) return
    const ms = this.options.settings.selfCheck.intervalMinutes * 60_000
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.lookThenWait()
    }, ms)
    this.timer.unref()
  }

  private async lookOnce(): Promise<void> {
    const { settings, check, addresses, log } = this.options
    try {
      const list = await addresses()
      const text = watchListText(list, settings)
      // Watching nothing is the one state in which a listing would go unseen.
      if (text !== this.lastListText && !this.stopped) (list.watched.length ? log.info : log.warn)(text)
      this.lastListText = text
      const lookups: SelfLookup[] = await Promise.all(
        list.watched.map(async ({ ip }) => ({ ip, outcomes: await check(ip) })),
      )
      if (this.stopped) return
      const { listings, changes } = nextListings(this.listingsByKey, lookups)
      this.listingsByKey = listings
      for (const { listing, change } of changes) {
        const zone = settings.zones.find((z) => z.name === listing.zone)
        if (change === 'listed') log.error(listedText(listing, zone?.lookupUrl ?? ''))
        else log.info(delistedText(listing))
      }
    } catch (err) {
      log.error(
        `self check: the look failed, tried again in ${settings.selfCheck.intervalMinutes} min: ${String(err)}`,
      )
    }
  }
}

/** One look at `list` on every zone, for the command: every IP's outcomes, and the listings they show. */
export async function lookUpOwnIps(
  list: WatchList,
  check: (ip: string) => Promise<ZoneOutcome[]>,
): Promise<{ lookups: SelfLookup[]; listings: SelfListing[] }> {
  const lookups = await Promise.all(list.watched.map(async ({ ip }) => ({ ip, outcomes: await check(ip) })))
  return { lookups, listings: [...nextListings(new Map(), lookups).listings.values()] }
}
