// A Prometheus histogram kept as plain numbers: observing is a bucket search and
// three additions. prom-client's own Histogram hashes its labels on every
// observation (about a microsecond), too much for the mail path; this one is read
// only when /metrics is scraped, in the shape prom-client's registry and cluster
// aggregator take from any metric's get().
import type { Metric, MetricObjectWithValues, MetricValueWithName } from 'prom-client'

/** One label set's observations: counts per bucket (not cumulative), their sum and number. */
export class BucketTally {
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last slot counts those above every bound. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += value
    this.count++
  }
}

type Values = MetricObjectWithValues<MetricValueWithName<string>>

/**
 * A histogram with one label, exported from tallies the caller keeps. `read`
 * gives each label value's tally when a scrape asks.
 */
export function talliedHistogram(options: {
  name: string
  help: string
  label: string
  bounds: readonly number[]
  read: () => Iterable<readonly [string, BucketTally]>
}): Metric {
  const { name, help, label, bounds, read } = options
  const get = (): Promise<Values> => {
    const values: MetricValueWithName<string>[] = []
    for (const [labelValue, tally] of read()) {
      let cumulative = 0
      bounds.forEach((bound, i) => {
        cumulative += tally.counts[i] as number
        values.push({
          labels: { [label]: labelValue, le: bound },
          value: cumulative,
          metricName: `${name}_bucket`,
        })
      })
      values.push({
        labels: { [label]: labelValue, le: '+Inf' },
        value: tally.count,
        metricName: `${name}_bucket`,
      })
      values.push({ labels: { [label]: labelValue }, value: tally.sum, metricName: `${name}_sum` })
      values.push({ labels: { [label]: labelValue }, value: tally.count, metricName: `${name}_count` })
    }
    // The type field is text in the exposition; prom-client's typings call it an enum.
    return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values } as unknown as Values)
  }
  // The registry needs name, get() and reset(); its typings only admit its own classes.
  return { name, help, get, reset: () => undefined } as unknown as Metric
}
