// Where a scrape's numbers come from. Single-process Haraka answers from its own
// registry. With `nodes = N` the master handles no mail: it asks every worker
// over Node's cluster IPC (prom-client's messages carry a `type` key, Haraka's
// own carry `cmd` or `event`, so neither side takes the other's) and sums them.
import { AggregatorRegistry, type Registry } from 'prom-client'

import type { Exposition } from './server'

/** This process's registry (single-process Haraka). */
export function processExposition(registry: Registry): Exposition {
  return { contentType: registry.contentType, render: () => registry.metrics() }
}

/** In the cluster master: every worker's metrics, combined by each metric's aggregator. */
export function clusterExposition(): Exposition {
  const aggregator = new AggregatorRegistry()
  return { contentType: aggregator.contentType, render: () => aggregator.clusterMetrics() }
}

/** In a cluster worker: answer the master's requests with `registry` (prom-client's shared list of registries). */
export function answerClusterScrapes(registry: Registry): void {
  // Constructing one installs prom-client's listener for the master's requests (once per process).
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([registry])
}
