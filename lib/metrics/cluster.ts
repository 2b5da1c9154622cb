// Where a scrape's numbers come from. Single-process Haraka answers from its own
// registry. With `nodes = N` the master handles no mail: it asks every worker
// over Node's cluster IPC (prom-client's messages carry a `type` key, Haraka's
// own carry `cmd` or `event`, so neither side takes the other's) and sums them.
import { AggregatorRegistry, type Registry } from 'prom-client'

import type { Exposition } from './server'

/** Expositions of registries without a metric in common, one after the other. */
async function joined(renders: readonly (() => Promise<string>)[]): Promise<string> {
  const texts = await Promise.all(renders.map((render) => render()))
  return texts.filter((t) => t !== '').join('\n')
}

/** This process's registries (single-process Haraka). */
export function processExposition(registry: Registry, ...more: Registry[]): Exposition {
  const all = [registry, ...more]
  return { contentType: registry.contentType, render: () => joined(all.map((r) => () => r.metrics())) }
}

/**
 * In the cluster master: every worker's metrics, combined by each metric's
 * aggregator, then the master's own (`own`: metrics no worker has).
 */
export function clusterExposition(...own: Registry[]): Exposition {
  const aggregator = new AggregatorRegistry()
  const renders = [() => aggregator.clusterMetrics(), ...own.map((r) => () => r.metrics())]
  return { contentType: aggregator.contentType, render: () => joined(renders) }
}

/** In a cluster worker: answer the master's requests with `registry` (prom-client's shared list of registries). */
export function answerClusterScrapes(registry: Registry): void {
  // Constructing one installs prom-client's listener for the master's requests (once per process).
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([registry])
}
