// Part 1, in process: the plugin's hooks on a real Haraka Plugin instance
// (haraka-test-fixtures), the decision core, and the zone-file mirror, timed
// with tinybench. Sub-microsecond calls are timed in batches (one tinybench
// sample = BATCH calls) so the timer's own cost does not swamp them.
//
//   node --expose-gc --import tsx bench/inprocess.ts
//   BENCH_TIME_MS=1000 BENCH_ZONE_SIZES=10000,100000,1000000
import { Bench } from 'tinybench'

import {
  addr,
  constants,
  makeTestPlugin,
  testIni,
  type HarakaConnection,
  type TestPlugin,
} from '../test/support/harness'
import { dnsblZone, startDns, type ScriptedDns } from '../test/support/dns-server'
import { startZone } from '../test/support/rbldnsd'
import { Resolver } from 'node:dns/promises'
import { isBounceSender } from '../lib/core/sender'
import { parseSettings } from '../lib/settings/parse'
import { decideRecipient, decideVerdict, formatReply } from '../lib/core/verdict'
import {
  clientIp,
  envInt,
  fmt,
  fmtSpread,
  isListed,
  listedRanges,
  QUICK,
  spread,
  table,
  type Spread,
  runStandalone,
} from './common'
import { fmtNs, perCallRow, targetCells, type PerCallRow } from './per-call'
import { benchZoneFile, wideRangeLines, type ZoneBenchResult } from './zonefile'
import type { ZoneOutcome } from '../lib/core/types'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const fixtures = require('haraka-test-fixtures') as HarakaConnection

const ZONE = 'ips.backscatterer.org'
const LISTED_IP = '45.33.12.7'
const UNLISTED_IP = '45.33.12.8'

export type InProcessRow = PerCallRow

/** CPU time per operation with a DNS query, measured with process.cpuUsage over many concurrent operations. */
export interface MissRow {
  name: string
  /** Microseconds of CPU per operation, per repetition. */
  cpuUs: Spread
  ops: number
  concurrency: number
}

export interface InProcessResult {
  rows: InProcessRow[]
  misses: MissRow[]
  missServer: string
  zone: ZoneBenchResult
  timeMs: number
}

type Next = (code?: number, msg?: unknown) => void
const LEVELS = ['logdebug', 'loginfo', 'lognotice', 'logwarn', 'logerror', 'logcrit', 'logprotocol']

/** A fixtures connection from `ip` whose log methods do nothing (as at Haraka's default level, cheaply). */
export function quietConnection(ip: string, relaying = false): HarakaConnection {
  const conn = fixtures.makeConnection({ ip, withTxn: true, relaying })
  for (const level of LEVELS) conn[level] = () => undefined
  return conn
}

/** The plugin registered with `ini` as its backscatter.ini, its log methods doing nothing. */
export function quietTestPlugin(ini: string, files: Record<string, string> = {}): TestPlugin {
  const tp = makeTestPlugin(ini, files)
  for (const level of LEVELS) tp.plugin[level] = () => undefined
  return tp
}

function newTransaction(conn: HarakaConnection): unknown {
  const txn = fixtures.transaction.createTransaction(null, conn.cfg)
  txn.results = new fixtures.results(conn)
  return txn
}

export async function benchInProcess(
  opts: { timeMs?: number; zoneSizes?: number[]; missRepeats?: number; log?: (s: string) => void } = {},
): Promise<InProcessResult> {
  const timeMs = opts.timeMs ?? 1000
  const log = opts.log ?? (() => undefined)
  let dns: ScriptedDns | undefined
  let tp: TestPlugin | undefined
  try {
    dns = await startDns(
      dnsblZone(ZONE, { [LISTED_IP]: { txt: `Listed, backscatter seen from ${LISTED_IP}` } }),
    )
    tp = quietTestPlugin(testIni(dns.server))
    const plugin = tp.plugin

    const ordinary = addr('someone@sender.example')
    const nullSender = addr('<>')
    const rcpt = addr('user@example.net')
    const listedConn = quietConnection(LISTED_IP)
    const unlistedConn = quietConnection(UNLISTED_IP)

    /** MAIL then RCPT on a fresh transaction; resolves with RCPT's return code. */
    const mailRcpt = (conn: HarakaConnection, txn: unknown): Promise<number | undefined> => {
      conn.transaction = txn
      plugin.hook_mail(() => undefined, conn, [nullSender, []])
      return new Promise((resolve) => {
        const next: Next = (code) => resolve(code)
        plugin.hook_rcpt(next, conn, [rcpt, []])
      })
    }

    // Warm the cache (and pass the zone's health check), and check the paths are the ones meant.
    const listedCode = await mailRcpt(listedConn, newTransaction(listedConn))
    const unlistedCode = await mailRcpt(unlistedConn, newTransaction(unlistedConn))
    const queriesAfterWarmUp = dns.queries.length
    if (listedCode !== constants.DENY) {
      throw new Error(`the listed bounce was not refused (code ${String(listedCode)})`)
    }
    if (unlistedCode !== undefined) throw new Error(`the unlisted bounce was refused (code ${unlistedCode})`)
    log(`in process: scripted DNS ${dns.server}; cache warmed with ${queriesAfterWarmUp} queries`)

    const bench = new Bench({ name: 'in process', time: timeMs, warmupTime: Math.min(300, timeMs) })
    const SYNC_BATCH = 1000
    const ASYNC_BATCH = 200

    // hook_mail / hook_rcpt, ordinary sender: nothing is looked up.
    const ordConn = quietConnection(UNLISTED_IP)
    const noop: Next = () => undefined
    bench.add('hook_mail, ordinary sender', () => {
      for (let i = 0; i < SYNC_BATCH; i++) plugin.hook_mail(noop, ordConn, [ordinary, []])
    })
    bench.add('hook_rcpt, ordinary sender', () => {
      for (let i = 0; i < SYNC_BATCH; i++) plugin.hook_rcpt(noop, ordConn, [rcpt, []])
    })

    // MAIL+RCPT, cached bounce: each on a fresh transaction made before the sample.
    for (const [name, conn] of [
      ['MAIL+RCPT, cached bounce, listed (550 at RCPT)', listedConn],
      ['MAIL+RCPT, cached bounce, not listed', unlistedConn],
    ] as const) {
      let txns: unknown[] = []
      bench.add(
        name,
        async () => {
          for (let i = 0; i < ASYNC_BATCH; i++) await mailRcpt(conn, txns[i])
        },
        {
          beforeEach: () => {
            txns = Array.from({ length: ASYNC_BATCH }, () => newTransaction(conn))
          },
        },
      )
    }

    // hook_mail alone for a cached bounce: the synchronous part (the lookup's promise settles after).
    {
      let txns: unknown[] = []
      bench.add(
        'hook_mail alone, cached bounce (sync part)',
        () => {
          for (let i = 0; i < ASYNC_BATCH; i++) {
            listedConn.transaction = txns[i]
            plugin.hook_mail(noop, listedConn, [nullSender, []])
          }
        },
        {
          beforeEach: () => {
            txns = Array.from({ length: ASYNC_BATCH }, () => newTransaction(listedConn))
          },
          // Let the started checks settle outside the timed part.
          afterEach: () => new Promise<void>((r) => setImmediate(r)),
        },
      )
    }

    // The decision core (lib/core/sender.ts, lib/core/verdict.ts).
    const settings = parseSettings({}).settings
    const outcomes: ZoneOutcome[] = [{ zone: ZONE, status: 'listed', codes: ['127.0.0.2'], reason: 'Listed' }]
    const notListed: ZoneOutcome[] = [{ zone: ZONE, status: 'not-listed' }]
    const verdict = decideVerdict(LISTED_IP, outcomes, settings)
    let sink = 0
    bench.add('isBounceSender (<>)', () => {
      for (let i = 0; i < SYNC_BATCH; i++) if (isBounceSender(nullSender, settings.senders)) sink++
    })
    bench.add('isBounceSender (ordinary)', () => {
      for (let i = 0; i < SYNC_BATCH; i++) if (isBounceSender(ordinary, settings.senders)) sink++
    })
    bench.add('decideVerdict (listed)', () => {
      for (let i = 0; i < SYNC_BATCH; i++) sink += decideVerdict(LISTED_IP, outcomes, settings).score
    })
    bench.add('decideVerdict (not listed)', () => {
      for (let i = 0; i < SYNC_BATCH; i++) sink += decideVerdict(UNLISTED_IP, notListed, settings).score
    })
    bench.add('decideRecipient', () => {
      for (let i = 0; i < SYNC_BATCH; i++) sink += decideRecipient(verdict, 'user', settings).action.length
    })
    bench.add('formatReply', () => {
      for (let i = 0; i < SYNC_BATCH; i++) sink += formatReply(verdict, settings).length
    })

    log('in process: timing hooks and the decision core (tinybench)')
    await bench.run()
    if (sink < 0) throw new Error('unreachable')
    if (dns.queries.length !== queriesAfterWarmUp) {
      throw new Error(
        `the timed MAIL+RCPT sent ${dns.queries.length - queriesAfterWarmUp} DNS queries; the cache did not hold`,
      )
    }

    const targets: Record<string, number> = {
      'hook_mail, ordinary sender': 1000,
      'MAIL+RCPT, cached bounce, listed (550 at RCPT)': 10_000,
      'MAIL+RCPT, cached bounce, not listed': 10_000,
    }
    const rows = bench.tasks.map((t) =>
      perCallRow(
        t,
        t.name.startsWith('MAIL+RCPT') || t.name.startsWith('hook_mail alone') ? ASYNC_BATCH : SYNC_BATCH,
        targets[t.name],
      ),
    )

    const { misses, missServer } = await benchMisses(opts.missRepeats ?? 5, log)

    log('in process: zone file (load, heap, lookups/s)')
    const zone = await benchZoneFile(opts.zoneSizes)
    return { rows, misses, missServer, zone, timeMs }
  } finally {
    tp?.close()
    await dns?.close()
  }
}

/**
 * CPU per bounce whose client is not cached: the plugin's MAIL, RCPT and
 * data_post hooks with the DNS query they make (A, and TXT for a listing;
 * 10.2 % of the addresses are listed), against a bare resolve4 of the same
 * names (the DNS floor: dns-list's check is one such query and little else).
 * The zone is served by rbldnsd in its own process where installed, so its
 * CPU is not counted. Each repetition: `ops` operations, `concurrency` at once.
 */
async function benchMisses(
  repeats: number,
  log: (s: string) => void,
): Promise<{ misses: MissRow[]; missServer: string }> {
  const zone = await startZone({ listed: listedRanges(), queryLog: false })
  const tp = quietTestPlugin(`[dns]\nservers = ${zone.server}\n`)
  try {
    const plugin = tp.plugin
    const ResultStore = fixtures.results as { prototype: object }
    const nullSender = addr('<>')
    const rcpt = addr('user@example.net')
    const ops = 20_000
    const concurrency = 50
    let k = 300_000_000
    const resolver = new Resolver({ timeout: 1000, tries: 1 })
    resolver.setServers([zone.server])
    const name = (ip: string): string => `${ip.split('.').reverse().join('.')}.${ZONE}`

    // One connection per concurrent worker; per operation a new client address and a light
    // transaction with a real haraka-results store (the fixtures' Transaction reads config files
    // when made, which would dwarf the plugin).
    const conns = Array.from({ length: concurrency }, () => quietConnection(UNLISTED_IP))
    const txnFor = (conn: HarakaConnection): unknown => {
      const results = Object.create(ResultStore.prototype) as Record<string, unknown>
      results.conn = conn
      results.store = Object.create(null)
      const headers: string[] = []
      return {
        uuid: 'bench',
        results,
        add_header: (n: string, v: string) => headers.push(`${n}: ${v}`),
        remove_header: () => undefined,
      }
    }
    const pluginOp = async (w: number): Promise<void> => {
      const conn = conns[w]
      conn.remote.ip = clientIp(k++)
      conn.transaction = txnFor(conn)
      plugin.hook_mail(() => undefined, conn, [nullSender, []])
      await new Promise((r) => plugin.hook_rcpt(r, conn, [rcpt, []]))
      await new Promise((r) => plugin.hook_data_post(r, conn))
    }
    const rawOp = async (): Promise<void> => {
      const ip = clientIp(k++)
      try {
        await resolver.resolve4(name(ip), { ttl: true })
        if (isListed(ip)) await resolver.resolveTxt(name(ip))
      } catch {
        // NXDOMAIN: not listed
      }
    }
    const rawAOp = async (): Promise<void> => {
      try {
        await resolver.resolve4(name(clientIp(k++)), { ttl: true })
      } catch {
        // NXDOMAIN: not listed
      }
    }
    const cases: [string, (w: number) => Promise<void>][] = [
      ['backscatter MAIL+RCPT+data_post, cache miss', pluginOp],
      ['bare resolve4 (+ resolveTxt when listed), same names', rawOp],
      ['bare resolve4 only (what dns-list sends per bounce)', rawAOp],
    ]
    const samples = new Map<string, number[]>(cases.map(([n]) => [n, []]))
    const measure = async (fn: (w: number) => Promise<void>): Promise<number> => {
      let i = 0
      const c0 = process.cpuUsage()
      await Promise.all(
        Array.from({ length: concurrency }, async (_, w) => {
          while (i++ < ops) await fn(w)
        }),
      )
      const c = process.cpuUsage(c0)
      return (c.user + c.system) / ops
    }
    log(`in process: CPU per cache miss against ${zone.description}`)
    for (const [, fn] of cases) await measure(fn) // warm-up
    for (let r = 0; r < repeats; r++) {
      for (const [n, fn] of cases) samples.get(n)?.push(await measure(fn))
    }
    return {
      misses: cases.map(([n]) => ({ name: n, cpuUs: spread(samples.get(n) ?? []), ops, concurrency })),
      missServer:
        zone.kind === 'rbldnsd'
          ? zone.description
          : `${zone.description} (in this process: its CPU is counted)`,
    }
  } finally {
    tp.close()
    await zone.close()
  }
}

export function renderInProcess(r: InProcessResult): string {
  const out: string[] = []
  out.push(
    `In process (tinybench, ${r.timeMs} ms per task; a sample is a batch of calls, figures per call: ` +
      `mean, median and p99 of the samples, ± the relative margin of error of the mean)`,
    '',
  )
  out.push(
    table(
      ['what', 'mean', 'median', 'p99', '±', 'calls', 'target', 'met'],
      r.rows.map((x) => [
        x.name,
        fmtNs(x.meanNs),
        fmtNs(x.p50Ns),
        fmtNs(x.p99Ns),
        `${fmt(x.rme, 1)} %`,
        fmt(x.calls),
        ...targetCells(x),
      ]),
    ),
  )
  if (r.misses.length) {
    const m0 = r.misses[0]
    out.push(
      '',
      `CPU per bounce that needs a DNS query (${m0?.ops ?? 0} operations per repetition, ${m0?.concurrency ?? 0} at once, ` +
        `median (min–max) over ${m0?.cpuUs.n ?? 0} repetitions; distinct addresses, 10.2 % listed; zone: ${r.missServer})`,
      '',
    )
    out.push(
      table(
        ['what', 'CPU µs per bounce'],
        r.misses.map((x) => [x.name, fmtSpread(x.cpuUs, 1)]),
      ),
    )
  }
  out.push('', 'Zone file (lib/zonefile/ and lib/zonefile/source.ts via bench/zonefile.ts)', '')
  out.push(
    table(
      ['entries', 'file MB', 'load ms', 'heap MB', 'typed arrays MB', 'lookups/s', 'target (1M)', 'met'],
      r.zone.rows.map((z) => {
        const big = z.entries >= 1_000_000
        const met = z.loadMs < 2000 && z.heapMB + z.arrayBuffersMB < 100 && z.lookupsPerSec >= 2_000_000
        return [
          fmt(z.entries),
          fmt(z.fileMB, 1),
          fmt(z.loadMs),
          fmt(z.heapMB, 1) + ((z as { noGc?: boolean }).noGc ? ' (no gc)' : ''),
          fmt(z.arrayBuffersMB, 1),
          fmt(z.lookupsPerSec),
          big ? '< 2 s, < 100 MB, ≥ 2 M/s' : '',
          big ? (met ? 'yes' : 'NO') : '',
        ]
      }),
    ),
  )
  const re = r.zone.reload
  if (re.entries) {
    out.push(
      '',
      `Reload of ${fmt(re.entries)} entries by rename: ${fmt(re.ms)} ms to new data in use; ` +
        `event-loop delay max ${fmt(re.maxStallMs, 1)} ms, p99 ${fmt(re.p99StallMs, 1)} ms.`,
    )
  }
  out.push('', ...wideRangeLines(r.zone.wide))
  return out.join('\n')
}

export function inProcessOptionsFromEnv(): { timeMs: number; zoneSizes: number[]; missRepeats: number } {
  const sizes = (process.env.BENCH_ZONE_SIZES ?? (QUICK ? '10000,100000' : '10000,100000,1000000'))
    .split(',')
    .map(Number)
    .filter((n) => n > 0)
  return {
    timeMs: envInt('BENCH_TIME_MS', QUICK ? 300 : 1000),
    zoneSizes: sizes,
    missRepeats: envInt('BENCH_MISS_REPEATS', QUICK ? 2 : 5),
  }
}

if (require.main === module)
  runStandalone(() => benchInProcess({ ...inProcessOptionsFromEnv(), log: console.log }), renderInProcess)
