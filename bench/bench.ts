// `npm run bench`: what the plugin costs a real Haraka. Speed is measured only
// on the whole system, as the serving process's CPU time per transaction and
// as throughput, for this plugin against Haraka with no plugin and with a
// no-op plugin on the same hooks, all in one run:
//
// 1. Servers (bench/servers.ts): one Haraka 3.3 per variant, all running at
//    once on loopback ports, each a copy of a deployment made with npm pack and
//    npm install; they resolve through rbldnsd serving a test zone on
//    127.0.0.1:53.
//    The ledger server records into a private redis-server on loopback.
// 2. Mixes (bench/mixes.ts): ordinary mail; bounces from a few repeating
//    addresses (answered from the plugin's cache); bounces from a new address
//    each time (a DNS query each, or a zone-file lookup); mail relayed out (the
//    ledger records it); delivery reports returning a message (the ledger
//    reads them and looks the message up). Each mix runs on the servers where
//    it shows something (MIX_SERVERS).
// 3. Rounds: per mix, a warm-up slice per server, then rounds in which every
//    server gets one slice of load (bench/loadgen.ts), in a random order, so
//    that a shared machine's drift falls on all servers alike and the servers
//    can be compared round by round.
// 4. Report (bench/report.ts): Markdown on stdout (and in BENCH_OUT).
//
//   npm run bench                                  about 11 minutes on 2 cores, 13 with a baseline
//   BENCH_QUICK=1 npm run bench                    3 short rounds, to try things out
//   BENCH_BASELINE=../other-checkout npm run bench  adds the plugin built there (or a .tgz): before and after
//   BENCH_ROUNDS=20 BENCH_SLICE_MS=1500 BENCH_SESSIONS=30
//   BENCH_MIXES=ordinary,cached,uncached,relay (default; also: replies)
//   BENCH_SERVERS=none,noop,backscatter,zonefile,ledger (default; baseline with BENCH_BASELINE)
//   BENCH_OUT=report.md BENCH_JSON=result.json
//
// Needs root (rbldnsd on port 53, unshare -m), Debian's rbldnsd and, for the
// ledger server, redis-server. Every process it starts is stopped at the end,
// on a failure and on Ctrl-C.
import fs from 'node:fs'
import os from 'node:os'

import type { Haraka } from '../test/support/haraka'
import { cleanupAll, cpuSeconds, envInt, fmt, loadAverage, machine, prng, sleep, spread } from './common'
import { LoadClients, type TxnSpec } from './loadgen'
import { MIX_NAMES, MIX_SERVERS, transactions, type MixName } from './mixes'
import { analyse, render, type BenchResult, type MixResult, type Slice } from './report'
import { servingProcess, setUpBed, type ServerName } from './servers'

const QUICK = process.env.BENCH_QUICK === '1'
const baseline = process.env.BENCH_BASELINE || undefined

const options = {
  rounds: envInt('BENCH_ROUNDS', QUICK ? 3 : 20),
  sliceMs: envInt('BENCH_SLICE_MS', QUICK ? 800 : 1500),
  sessions: envInt('BENCH_SESSIONS', 30),
  mixes: listFromEnv<MixName>('BENCH_MIXES', MIX_NAMES, ['ordinary', 'cached', 'uncached', 'relay']),
  servers: listFromEnv<ServerName>(
    'BENCH_SERVERS',
    ['none', 'noop', 'backscatter', 'zonefile', 'ledger', 'baseline'],
    baseline ? undefined : ['none', 'noop', 'backscatter', 'zonefile', 'ledger'],
  ),
}

/** A comma-separated list from the environment, each item one of `known`; else `fallback` (default: all). */
function listFromEnv<T extends string>(
  name: string,
  known: readonly T[],
  fallback: readonly T[] = known,
): T[] {
  const asked = process.env[name]?.split(',').map((x) => x.trim())
  if (!asked) return [...fallback]
  const unknown = asked.filter((x) => !(known as readonly string[]).includes(x))
  if (unknown.length) throw new Error(`${name}: unknown ${unknown.join(', ')}; known: ${known.join(', ')}`)
  return asked as T[]
}

/**
 * One slice: `ms` of load on one server, and the CPU its serving process spent
 * meanwhile (and the ledger's redis-server, given its pid).
 */
async function runSlice(
  server: ServerName,
  pids: { haraka: number; redis?: number | undefined },
  clients: LoadClients,
  next: () => TxnSpec,
  mix: MixName,
  round: number,
  ms: number,
): Promise<Slice> {
  const redis0 = pids.redis ? cpuSeconds(pids.redis) : 0
  const cpu0 = cpuSeconds(pids.haraka)
  const { records, started, ended, errors } = await clients.run(ms, next)
  // The server closes the last connections after their QUIT: count that too.
  await sleep(50)
  const cpu1 = cpuSeconds(pids.haraka)
  const redis1 = pids.redis ? cpuSeconds(pids.redis) : 0
  return {
    server,
    mix,
    round,
    txns: records.length,
    seconds: (ended - started) / 1000,
    cpuSeconds: cpu1 - cpu0,
    ...(pids.redis ? { redisCpuSeconds: redis1 - redis0 } : {}),
    errors,
    mailRcptMs: records.filter((r) => !Number.isNaN(r.rcptMs)).map((r) => r.mailMs + r.rcptMs),
  }
}

function shuffle<T>(xs: readonly T[], random: () => number): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
  return a
}

async function main(): Promise<void> {
  const log = (s: string): void => console.error(s)
  const startedAt = Date.now()
  const loadAtStart = loadAverage()
  // Only the servers some mix runs on.
  const servers = options.servers.filter((s) => options.mixes.some((m) => MIX_SERVERS[m].includes(s)))
  const bed = await setUpBed(log, servers, baseline)
  const haraka = {} as Record<ServerName, Haraka>
  const processes: BenchResult['processes'] = {}
  for (const s of servers) {
    const h = (haraka[s] = await bed.start(s))
    const p = (processes[s] = await servingProcess(h))
    log(`${s}: port ${h.port}, serving process ${p.pid}${p.isBinHaraka ? ' (bin/haraka itself)' : ''}`)
  }

  const random = prng(42)
  const loads: number[] = []
  const mixes: MixResult[] = []
  const everySlice: Slice[] = []
  let seed = 0
  for (const mix of options.mixes) {
    const mixServers = servers.filter((s) => MIX_SERVERS[mix].includes(s))
    const next = {} as Record<ServerName, () => TxnSpec>
    const clients = {} as Record<ServerName, LoadClients>
    for (const s of mixServers) {
      next[s] = transactions(mix, (seed += 10_000_000))
      clients[s] = new LoadClients(haraka[s].port, options.sessions)
    }
    const slice = (s: ServerName, round: number, ms: number): Promise<Slice> =>
      runSlice(
        s,
        { haraka: processes[s]!.pid, redis: s === 'ledger' ? bed.redisPid : undefined },
        clients[s],
        next[s],
        mix,
        round,
        ms,
      )

    // Not counted: the JIT warms up, and for the cached mixes the cache fills.
    for (const s of mixServers) await slice(s, 0, Math.min(options.sliceMs, 1000))
    const slices: Slice[] = []
    for (let round = 1; round <= options.rounds; round++) {
      for (const s of shuffle(mixServers, random)) {
        await sleep(100)
        slices.push(await slice(s, round, options.sliceMs))
      }
      loads.push(os.loadavg()[0] ?? NaN)
      const mine = slices.slice(-mixServers.length)
      log(
        `${mix} round ${round}/${options.rounds}: ` +
          mine
            .map(
              (x) =>
                `${x.server} ${fmt((x.cpuSeconds * 1e6) / x.txns)} µs/tx ${fmt(x.txns / x.seconds)} tx/s`,
            )
            .join(', '),
      )
    }
    mixes.push(analyse(mix, slices, mixServers))
    everySlice.push(...slices)
  }
  await bed.close()

  const result: BenchResult = {
    started: new Date(startedAt).toISOString(),
    machine: machine(),
    options: { ...options, servers },
    loadAtStart,
    loadAtEnd: loadAverage(),
    loadDuring: spread(loads),
    zone: bed.zone,
    ...(bed.baseline ? { baseline: bed.baseline } : {}),
    processes,
    mixes,
    seconds: (Date.now() - startedAt) / 1000,
  }
  const report = render(result)
  console.log(`\n${report}`)
  if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${report}\n`)
  // With every slice, to compare runs round by round later.
  if (process.env.BENCH_JSON)
    fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({ ...result, slices: everySlice }, null, 2))
}

main()
  .catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => cleanupAll())
