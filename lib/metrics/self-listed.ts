// The self-listing gauge. It lives in a registry of its own, in the one process
// that runs the watch (single-process Haraka, or a cluster's master): workers
// never show it, so the master's sum of theirs cannot clash with it.
import { Gauge, Registry } from 'prom-client'

import { METRIC_PREFIX } from './metrics'
import type { SelfListing } from '../core/self-check'

export class SelfListedMetrics {
  readonly registry = new Registry()
  private read: () => readonly SelfListing[] = () => []

  constructor() {
    const read = (): readonly SelfListing[] => this.read()
    // Label values are this host's own addresses and the configured zones: a few series at most.
    new Gauge({
      name: `${METRIC_PREFIX}self_listed`,
      help: "Whether one of this host's own IPs is listed on a zone (1) or not (0), as the last look found; no sample before a zone answered.",
      labelNames: ['zone', 'ip'],
      registers: [this.registry],
      collect() {
        this.reset()
        for (const l of read()) this.set({ zone: l.zone, ip: l.ip }, l.listed ? 1 : 0)
      },
    })
  }

  /** Where the gauge reads the listings when scraped. */
  observe(read: () => readonly SelfListing[]): void {
    this.read = read
  }
}
