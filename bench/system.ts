// Part 2, the whole system: SMTP throughput, RCPT latency and the Haraka server
// process's CPU time per transaction for servers on loopback that differ only in
// the DNSBL plugin: (a) none, (b) this plugin, (c) haraka-plugin-dns-list doing
// its backscatterer check, (d) this plugin on a zone file, and (e) the floor, a
// plugin on the same hooks that only calls next(). All run at once and resolve
// against one rbldnsd zone on 127.0.0.1:53; load goes to one at a time in short
// slices, in a random server order each round, so drift of the shared machine
// cancels out of the per-round ratios. (f), only when asked for, is this plugin
// built from another commit, for before/after figures from one run.
//
//   node --import tsx bench/system.ts
//   BENCH_ROUNDS=20 BENCH_SLICE_MS=1500 BENCH_SESSIONS=30 BENCH_MIXES=ordinary,distinct,repeat
//   BENCH_SERVERS=noop,backscatter (a subset) BENCH_BASELINE=<commit or .tgz> (adds (f))
//   BENCH_PROFILE=/tmp/prof (V8 CPU profile of each server, written when it stops; bench/profile.ts reads them)
import fs from 'node:fs'
import path from 'node:path'

import { LOCAL_DOMAIN, type Haraka } from '../test/support/haraka'
import {
  clientIp,
  cpuSeconds,
  envInt,
  fmt,
  isListed,
  machine,
  prng,
  QUICK,
  sleep,
  runStandalone,
} from './common'
import { LoadClients, type TxnRecord, type TxnSpec } from './loadgen'
import { monotonicUs, WINDOWS_FILE, type ProfileWindows } from './profile'
import { setUpBed, type ServerName } from './servers'
import {
  analyse,
  renderSystem,
  type MixName,
  type MixResult,
  type Slice,
  type SystemResult,
} from './system-report'

export { renderSystem } from './system-report'

/** Every server part 2 runs, in the reports' order; (f) only with BENCH_BASELINE. */
export const ALL_SERVERS: readonly ServerName[] = [
  'none',
  'noop',
  'backscatter',
  'dns-list',
  'zonefile',
  'baseline',
]

export interface SystemOptions {
  rounds: number
  sliceMs: number
  sessions: number
  mixes: MixName[]
  /** The servers to run (BENCH_SERVERS), default all but the baseline; with BENCH_BASELINE, the baseline too. */
  servers: ServerName[]
  /** BENCH_BASELINE: a git commit of this repository, or a plugin tarball, for server (f). */
  baseline?: string
  log: (s: string) => void
}

export function systemOptionsFromEnv(log: (s: string) => void = console.log): SystemOptions {
  const mixes = (process.env.BENCH_MIXES ?? 'ordinary,distinct,repeat')
    .split(',')
    .map((m) => m.trim())
    .filter((m): m is MixName => m === 'ordinary' || m === 'distinct' || m === 'repeat')
  const baseline = process.env.BENCH_BASELINE || undefined
  const asked = process.env.BENCH_SERVERS?.split(',').map((x) => x.trim())
  const servers = ALL_SERVERS.filter((s) =>
    asked ? asked.includes(s) : s !== 'baseline' || baseline !== undefined,
  )
  if (servers.includes('baseline') && !baseline) throw new Error('server baseline needs BENCH_BASELINE')
  return {
    rounds: envInt('BENCH_ROUNDS', QUICK ? 3 : 20),
    sliceMs: envInt('BENCH_SLICE_MS', QUICK ? 800 : 1500),
    sessions: envInt('BENCH_SESSIONS', 30),
    mixes,
    servers,
    ...(baseline ? { baseline } : {}),
    log,
  }
}

/** Generates the transactions of a mix; every server gets its own distinct addresses. */
export function mixSource(mix: MixName, seed: number): () => TxnSpec {
  const to = `user@${LOCAL_DOMAIN}`
  let i = seed
  if (mix === 'ordinary') return () => ({ ip: clientIp(i++), from: 'someone@sender.example', to })
  if (mix === 'distinct') return () => ({ ip: clientIp(i++), from: '', to })
  // 20 addresses, 2 of them listed, in turn.
  const listed: string[] = []
  const unlisted: string[] = []
  for (let k = 200_000_000; listed.length < 2 || unlisted.length < 18; k++) {
    const ip = clientIp(k)
    if (isListed(ip)) {
      if (listed.length < 2) listed.push(ip)
    } else if (unlisted.length < 18) unlisted.push(ip)
  }
  const pool = [...listed.slice(0, 1), ...unlisted.slice(0, 9), ...listed.slice(1), ...unlisted.slice(9)]
  return () => ({ ip: pool[i++ % pool.length] as string, from: '', to })
}

async function runSlice(
  haraka: Haraka,
  pool: LoadClients,
  server: ServerName,
  mix: MixName,
  round: number,
  ms: number,
  next: () => TxnSpec,
): Promise<Slice> {
  const pid = haraka.serverPid()
  const cpu0 = cpuSeconds(pid)
  const t0 = monotonicUs()
  const { records, started, ended, errors } = await pool.run(ms, next)
  const t1 = monotonicUs()
  const cpu1 = cpuSeconds(pid)
  const rcpt = records.filter((r) => !Number.isNaN(r.rcptMs))
  return {
    server,
    mix,
    round,
    txns: records.length,
    seconds: (ended - started) / 1000,
    cpuSeconds: cpu1 - cpu0,
    errors,
    rcptMs: rcpt.map((r) => r.rcptMs),
    mailRcptMs: rcpt.map((r) => r.mailMs + r.rcptMs),
    refused: records.filter((r: TxnRecord) => r.mailCode >= 500 || r.rcptCode >= 500).length,
    windowUs: [t0, t1],
  }
}

function shuffle<T>(xs: readonly T[], rnd: () => number): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
  return a
}

function processName(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return '?'
  }
}

export async function benchSystem(opts: SystemOptions): Promise<SystemResult> {
  const { log } = opts
  const loadAtStart = machine().load ?? '?'
  const servers = opts.servers
  const bed = await setUpBed(log, opts.baseline)
  try {
    const haraka = {} as Record<ServerName, Haraka>
    // BENCH_PROFILE=DIR: each server writes a V8 CPU profile there when it stops.
    const profileDir = process.env.BENCH_PROFILE
    if (profileDir) fs.mkdirSync(profileDir, { recursive: true })
    for (const s of servers) {
      haraka[s] = await bed.start(
        s,
        profileDir
          ? {
              nodeArgs: [
                '--cpu-prof',
                `--cpu-prof-dir=${profileDir}`,
                `--cpu-prof-name=${s}.cpuprofile`,
                `--cpu-prof-interval=${envInt('BENCH_PROFILE_INTERVAL_US', 250)}`,
              ],
            }
          : {},
      )
    }
    const serverPids: SystemResult['serverPids'] = {}
    const described: string[] = []
    for (const s of servers) {
      const pid = haraka[s].serverPid()
      const viaChild = pid !== haraka[s].pid
      serverPids[s] = { pid, comm: processName(pid), viaChild }
      described.push(
        `${s} port ${haraka[s].port} pid ${pid}${viaChild ? ' (child of bin/haraka)' : ' (bin/haraka itself)'}`,
      )
    }
    log(`servers: ${described.join('; ')}`)
    // dns-list checks its zone at start; give all the same quiet start.
    await sleep(1000)

    const rnd = prng(42)
    const mixes: MixResult[] = []
    // The counted slices' time windows, so bench/profile.ts reads only their samples.
    const windows: ProfileWindows = {}
    let seed = 0
    for (const mix of opts.mixes) {
      const source: Record<ServerName, () => TxnSpec> = {} as Record<ServerName, () => TxnSpec>
      const poolOf = {} as Record<ServerName, LoadClients>
      for (const s of servers) {
        // Distinct address ranges per server and mix: no server sees another's addresses.
        source[s] = mixSource(mix, (seed += 10_000_000))
        poolOf[s] = new LoadClients(haraka[s].port, opts.sessions)
      }
      // Warm-up slice per server (not counted): JIT, sessions, and for the repeating mix the cache.
      for (const s of servers)
        await runSlice(haraka[s], poolOf[s], s, mix, 0, Math.min(opts.sliceMs, 1000), source[s])

      const slices: Slice[] = []
      for (let round = 1; round <= opts.rounds; round++) {
        for (const s of shuffle(servers, rnd)) {
          await sleep(100)
          slices.push(await runSlice(haraka[s], poolOf[s], s, mix, round, opts.sliceMs, source[s]))
        }
        const r = slices.slice(-servers.length)
        log(
          `  ${mix} round ${round}/${opts.rounds}: ` +
            r
              .map(
                (x) =>
                  `${x.server} ${fmt(x.txns / x.seconds)} tx/s ${fmt((x.cpuSeconds * 1000) / x.txns, 3)} ms cpu/tx`,
              )
              .join(', '),
        )
      }
      if (profileDir) {
        for (const s of servers) {
          const mine = slices.filter((x) => x.server === s)
          const w = (windows[s] ??= {})
          w[mix] = { windows: mine.map((x) => x.windowUs), txns: mine.reduce((n, x) => n + x.txns, 0) }
          log(
            `  profile: ${s} ${mine.reduce((n, x) => n + x.txns, 0)} transactions in counted slices, ${fmt(
              mine.reduce((n, x) => n + x.cpuSeconds, 0),
              2,
            )} CPU s`,
          )
        }
      }
      mixes.push(analyse(mix, slices, opts.rounds, servers))
      if (profileDir) fs.writeFileSync(path.join(profileDir, WINDOWS_FILE), JSON.stringify(windows))
    }
    return {
      options: {
        rounds: opts.rounds,
        sliceMs: opts.sliceMs,
        sessions: opts.sessions,
        mixes: opts.mixes,
        servers,
      },
      ...(bed.baseline ? { baseline: bed.baseline } : {}),
      machine: machine(),
      loadAtStart,
      serverPids,
      zone: bed.zone.description,
      mixes,
    }
  } finally {
    await bed.close()
  }
}

if (require.main === module) runStandalone(() => benchSystem(systemOptionsFromEnv()), renderSystem)
