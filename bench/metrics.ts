// The metrics' cost in process (tinybench): what a transaction adds to the mail
// path (the recorder calls a checked bounce makes, and the metered checker
// against the plain one on the same cached answer), the same counts kept with
// prom-client's own labelled metrics for comparison, and what one scrape costs
// the event loop. Target: at most 1 µs per transaction (issue 14, item 4).
//
//   node --import tsx bench/metrics.ts
//   BENCH_TIME_MS=1000 BENCH_METRICS_ROUNDS=15 BENCH_METRICS_CHECKS=20000
import { performance } from 'node:perf_hooks'

import { Counter, Histogram, Registry } from 'prom-client'
import { Bench } from 'tinybench'

import { BackscatterChecker } from '../lib/dns/checker'
import { BackscatterMetrics, LOOKUP_SECONDS_BUCKETS } from '../lib/metrics/metrics'
import { MeteredChecker } from '../lib/metrics/checker'
import { parseSettings } from '../lib/settings/parse'
import { dnsblZone, startDns } from '../test/support/dns-server'
import { envInt, fmt, fmtSpread, QUICK, runStandalone, spread, table, type Spread } from './common'
import { fmtNs, perCallRow, targetCells, type PerCallRow } from './per-call'

const ZONE = 'ips.backscatterer.org'
/** Transactions per tinybench sample: one call is far below the timer's resolution. */
const BATCH = 1000
const LISTED_IP = '45.33.12.7'

/** Per transaction, or per scrape. */
export type MetricsRow = PerCallRow

/** CPU ns per check of a cached answer: median (min–max) over the rounds. */
export interface CheckerCost {
  plainNs: Spread
  meteredNs: Spread
  /** Metered less plain, round by round. */
  extraNs: Spread
  checks: number
}

export interface MetricsBenchResult {
  rows: MetricsRow[]
  checker: CheckerCost
  /** What metrics add to a checked bounce: the metered checker's extra and the recorder calls. */
  perTransactionNs: number
  timeMs: number
}

export async function benchMetrics(
  opts: { timeMs?: number; rounds?: number; checks?: number } = {},
): Promise<MetricsBenchResult> {
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
      ? perCallRow(t, 1)
      : perCallRow(t, BATCH, t.name.startsWith('bounce') ? 1000 : undefined),
  )
  const checker = await checkerCost(opts.rounds ?? 7, opts.checks ?? 50_000)
  const recipientNs = rows.find((r) => r.name.startsWith('bounce, cached'))?.meanNs ?? NaN
  return { rows, checker, perTransactionNs: checker.extraNs.median + recipientNs, timeMs }
}

/**
 * CPU per check of a cached answer, the plain checker against the metered one
 * (counting, timing and the source test), alternating round by round so both
 * see the same load; the extra is the median of the rounds' differences.
 */
async function checkerCost(rounds: number, checks: number): Promise<CheckerCost> {
  const dns = await startDns(dnsblZone(ZONE, { [LISTED_IP]: { txt: 'Listed' } }))
  const quiet = { info: () => undefined, warn: () => undefined }
  const { settings } = parseSettings({ dns: { servers: dns.server } })
  const plain = new BackscatterChecker(settings, quiet)
  const metered = new MeteredChecker(settings, quiet, new BackscatterMetrics())
  try {
    for (const checker of [plain, metered]) {
      const [outcome] = await checker.check(LISTED_IP)
      if (outcome?.status !== 'listed') throw new Error('the checker did not find the listing')
    }
    const warmUpQueries = dns.queries.length
    const cpuNs = async (checker: BackscatterChecker): Promise<number> => {
      const c0 = process.cpuUsage()
      for (let i = 0; i < checks; i++) await checker.check(LISTED_IP)
      const c = process.cpuUsage(c0)
      return ((c.user + c.system) * 1000) / checks
    }
    await cpuNs(plain)
    await cpuNs(metered)
    const plainNs: number[] = []
    const meteredNs: number[] = []
    for (let r = 0; r < rounds; r++) {
      plainNs.push(await cpuNs(plain))
      meteredNs.push(await cpuNs(metered))
    }
    if (dns.queries.length !== warmUpQueries)
      throw new Error('the timed checks sent queries: the cache did not hold')
    return {
      plainNs: spread(plainNs),
      meteredNs: spread(meteredNs),
      extraNs: spread(meteredNs.map((m, i) => m - (plainNs[i] as number))),
      checks,
    }
  } finally {
    plain.close()
    metered.close()
    await dns.close()
  }
}

export function renderMetrics(r: MetricsBenchResult): string {
  return [
    `Metrics in process (tinybench, ${r.timeMs} ms per task; per transaction, or per scrape: ` +
      'mean and p99 of the samples, ± the relative margin of error of the mean)',
    '',
    table(
      ['what', 'mean', 'p99', '±', 'target', 'met'],
      r.rows.map((x) => [x.name, fmtNs(x.meanNs), fmtNs(x.p99Ns), `${fmt(x.rme, 1)} %`, ...targetCells(x)]),
    ),
    '',
    `CPU per check of a cached answer (process.cpuUsage, ${r.checker.checks} checks a round, ` +
      `rounds alternating; median (min–max) over ${r.checker.extraNs.n} rounds)`,
    '',
    table(
      ['checker', 'CPU ns per check'],
      [
        ['plain (lib/dns/checker.ts)', fmtSpread(r.checker.plainNs, 0)],
        ['metered (lib/metrics/checker.ts)', fmtSpread(r.checker.meteredNs, 0)],
        ['metered less plain, round by round', fmtSpread(r.checker.extraNs, 0)],
      ],
    ),
    '',
    `Metrics per checked bounce: ${fmtNs(r.perTransactionNs)} (the metered checker's extra, median, plus ` +
      `the recorder calls of a cached bounce with 2 recipients); target ≤ 1,000 ns: ` +
      `${r.perTransactionNs <= 1000 ? 'met' : 'NOT met'}. Ordinary mail: nothing counted, no cost.`,
  ].join('\n')
}

export function metricsOptionsFromEnv(): { timeMs: number; rounds: number; checks: number } {
  return {
    timeMs: envInt('BENCH_TIME_MS', QUICK ? 300 : 1000),
    rounds: envInt('BENCH_METRICS_ROUNDS', QUICK ? 5 : 15),
    checks: envInt('BENCH_METRICS_CHECKS', QUICK ? 10_000 : 20_000),
  }
}

if (require.main === module) runStandalone(() => benchMetrics(metricsOptionsFromEnv()), renderMetrics)
