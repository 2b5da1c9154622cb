// The metrics' cost in process (tinybench): what a transaction adds to the mail
// path (the recorder calls a checked bounce makes), the same counts kept with
// prom-client's own labelled metrics for comparison, and what one scrape costs
// the event loop. Target: at most 1 µs per transaction (issue 14, item 4).
//
//   node --import tsx bench/metrics.ts
//   BENCH_TIME_MS=1000
import { performance } from 'node:perf_hooks'

import { Counter, Histogram, Registry } from 'prom-client'
import { Bench, type Task } from 'tinybench'

import { BackscatterMetrics, LOOKUP_SECONDS_BUCKETS } from '../lib/metrics'
import { envInt, fmt, QUICK, runStandalone, table } from './common'

const ZONE = 'ips.backscatterer.org'
/** Transactions per tinybench sample: one call is far below the timer's resolution. */
const BATCH = 1000

export interface MetricsRow {
  name: string
  /** Nanoseconds per transaction (or per scrape): mean and p99 of the samples, and the relative margin of error. */
  meanNs: number
  p99Ns: number
  rme: number
  targetNs?: number
}

export interface MetricsBenchResult {
  rows: MetricsRow[]
  timeMs: number
}

function row(task: Task, perSample: number, targetNs?: number): MetricsRow {
  const r = task.result
  if (r.state !== 'completed') {
    throw new Error(`${task.name}: ${r.state}${'error' in r ? `: ${String(r.error)}` : ''}`)
  }
  const ns = (ms: number): number => (ms * 1e6) / perSample
  return {
    name: task.name,
    meanNs: ns(r.latency.mean),
    p99Ns: ns(r.latency.p99),
    rme: r.latency.rme,
    ...(targetNs === undefined ? {} : { targetNs }),
  }
}

export async function benchMetrics(opts: { timeMs?: number } = {}): Promise<MetricsBenchResult> {
  const timeMs = opts.timeMs ?? 1000
  const bench = new Bench({ name: 'metrics', time: timeMs, warmupTime: Math.min(300, timeMs) })
  const metrics = new BackscatterMetrics()
  metrics.observeState(() => ({ zones: [{ zone: ZONE, usable: true }], cacheEntries: 1000 }))

  // A bounce whose zone was asked by DNS: the lookup timed and counted, two recipients decided.
  bench.add('bounce, DNS lookup: time it, count it, 2 recipients', () => {
    for (let i = 0; i < BATCH; i++) {
      const started = performance.now()
      const seconds = (performance.now() - started) / 1000
      metrics.lookup(ZONE, i % 10 === 0 ? 'listed' : 'not-listed', 'dns', seconds)
      metrics.recipient(i % 10 === 0 ? 'refused' : 'accepted')
      metrics.recipient(i % 10 === 0 ? 'exempt' : 'accepted')
    }
  })
  bench.add('bounce, cached answer: count it, 2 recipients', () => {
    for (let i = 0; i < BATCH; i++) {
      metrics.lookup(ZONE, 'listed', 'cache')
      metrics.recipient('refused')
      metrics.recipient('exempt')
    }
  })

  // The same counts with prom-client's labelled metrics, bound once (labels() hashes on every call all the same).
  const registry = new Registry()
  const lookups = new Counter({
    name: 'x_lookups_total',
    help: 'x',
    labelNames: ['zone', 'outcome', 'source'],
    registers: [registry],
  })
  const recipients = new Counter({
    name: 'x_recipients_total',
    help: 'x',
    labelNames: ['decision'],
    registers: [registry],
  })
  const seconds = new Histogram({
    name: 'x_lookup_seconds',
    help: 'x',
    labelNames: ['zone'],
    buckets: [...LOOKUP_SECONDS_BUCKETS],
    registers: [registry],
  })
  const listedDns = lookups.labels(ZONE, 'listed', 'dns')
  const refused = recipients.labels('refused')
  const exempt = recipients.labels('exempt')
  const zoneSeconds = seconds.labels(ZONE)
  bench.add('for comparison: prom-client labelled metrics, DNS bounce', () => {
    for (let i = 0; i < BATCH; i++) {
      listedDns.inc()
      zoneSeconds.observe(0.002)
      refused.inc()
      exempt.inc()
    }
  })

  let bytes = 0
  bench.add('one scrape: render the exposition (1 zone)', async () => {
    bytes += (await metrics.exposition()).length
  })

  await bench.run()
  if (bytes === 0) throw new Error('the scrape rendered nothing')
  const rows = bench.tasks.map((t) =>
    t.name.startsWith('one scrape')
      ? row(t, 1)
      : row(t, BATCH, t.name.startsWith('bounce') ? 1000 : undefined),
  )
  return { rows, timeMs }
}

const ns = (n: number): string => (n >= 10_000 ? `${fmt(n / 1000, 1)} µs` : `${fmt(n, 0)} ns`)

export function renderMetrics(r: MetricsBenchResult): string {
  return [
    `Metrics in process (tinybench, ${r.timeMs} ms per task; per transaction, or per scrape: ` +
      'mean and p99 of the samples, ± the relative margin of error of the mean)',
    '',
    table(
      ['what', 'mean', 'p99', '±', 'target', 'met'],
      r.rows.map((x) => [
        x.name,
        ns(x.meanNs),
        ns(x.p99Ns),
        `${fmt(x.rme, 1)} %`,
        x.targetNs === undefined ? '' : `≤ ${ns(x.targetNs)}`,
        x.targetNs === undefined ? '' : x.meanNs <= x.targetNs ? 'yes' : 'NO',
      ]),
    ),
  ].join('\n')
}

export function metricsOptionsFromEnv(): { timeMs: number } {
  return { timeMs: envInt('BENCH_TIME_MS', QUICK ? 300 : 1000) }
}

if (require.main === module) runStandalone(() => benchMetrics(metricsOptionsFromEnv()), renderMetrics)
