// Part 2, the whole system: SMTP throughput, RCPT latency and the Haraka server
// process's CPU time per transaction for three servers on loopback that differ
// only in the DNSBL plugin: (a) none, (b) this plugin, (c) haraka-plugin-dns-list
// doing its backscatterer check. All three run at once and resolve against one
// rbldnsd zone on 127.0.0.1:53; load goes to one at a time in short slices, in a
// random server order each round, so drift of the shared machine cancels out of
// the per-round ratios.
//
//   node --import tsx bench/system.ts
//   BENCH_ROUNDS=20 BENCH_SLICE_MS=1500 BENCH_SESSIONS=30 BENCH_MIXES=ordinary,distinct,repeat
//   BENCH_PROFILE=/tmp/prof (V8 CPU profile of each server, written when it stops)
import fs from 'node:fs'

import { LOCAL_DOMAIN, type Haraka } from '../test/support/haraka'
import {
  clientIp,
  cpuSeconds,
  envInt,
  fmt,
  fmtSpread,
  isListed,
  machine,
  prng,
  QUICK,
  quantile,
  sleep,
  spread,
  table,
  type Spread,
  runStandalone,
} from './common'
import { LoadClients, type TxnRecord, type TxnSpec } from './loadgen'
import { setUpBed, type ServerName } from './servers'

export const SERVERS: readonly ServerName[] = ['none', 'backscatter', 'dns-list', 'zonefile']
export const SERVER_LABEL: Record<ServerName, string> = {
  none: '(a) no DNSBL plugin',
  backscatter: '(b) backscatter',
  'dns-list': '(c) dns-list',
  zonefile: '(d) backscatter, zone file',
}

export type MixName = 'ordinary' | 'distinct' | 'repeat'
export const MIX_LABEL: Record<MixName, string> = {
  ordinary: 'ordinary senders, distinct IPs',
  distinct: 'bounces (<>), mostly distinct IPs',
  repeat: 'bounces (<>), 20 repeating IPs',
}

export interface SystemOptions {
  rounds: number
  sliceMs: number
  sessions: number
  mixes: MixName[]
  log: (s: string) => void
}

export function systemOptionsFromEnv(log: (s: string) => void = console.log): SystemOptions {
  const mixes = (process.env.BENCH_MIXES ?? 'ordinary,distinct,repeat')
    .split(',')
    .map((m) => m.trim())
    .filter((m): m is MixName => m === 'ordinary' || m === 'distinct' || m === 'repeat')
  return {
    rounds: envInt('BENCH_ROUNDS', QUICK ? 3 : 20),
    sliceMs: envInt('BENCH_SLICE_MS', QUICK ? 800 : 1500),
    sessions: envInt('BENCH_SESSIONS', 30),
    mixes,
    log,
  }
}

/** What one slice of load against one server measured. */
export interface Slice {
  server: ServerName
  mix: MixName
  round: number
  txns: number
  seconds: number
  cpuSeconds: number
  errors: number
  rcptMs: number[]
  mailRcptMs: number[]
  refused: number
}

export interface SliceSummary {
  tps: number
  cpuMsPerTxn: number
  rcptP50: number
  rcptP99: number
  mailRcptP99: number
  refusedShare: number
}

export type Metric = 'tps' | 'cpuMsPerTxn' | 'rcptP50' | 'rcptP99' | 'mailRcptP99'

/** The ratios reported, numerator over denominator. */
export const RATIOS: readonly [ServerName, ServerName][] = [
  ['backscatter', 'none'],
  ['backscatter', 'dns-list'],
  ['zonefile', 'none'],
  ['zonefile', 'dns-list'],
]

const tag = (s: ServerName): string => SERVER_LABEL[s].match(/^\(\w\)/)?.[0] ?? s
export const ratioName = ([n, d]: readonly [ServerName, ServerName]): string => `${tag(n)}/${tag(d)}`

export interface MixResult {
  mix: MixName
  rounds: number
  perServer: Record<
    ServerName,
    {
      tps: Spread
      cpuMsPerTxn: Spread
      rcptP50: Spread
      rcptP99: Spread
      mailRcptP99: Spread
      refusedShare: Spread
      errors: number
    }
  >
  /** Per-round ratios, e.g. ratios['(b)/(a)'].tps. */
  ratios: Record<string, Record<Metric, Spread>>
  /** Round-to-round swing of each server's own throughput (max/min − 1). */
  swing: Record<ServerName, number>
}

export interface SystemResult {
  options: Omit<SystemOptions, 'log'>
  machine: Record<string, string>
  serverPids: Record<ServerName, { pid: number; comm: string; viaChild: boolean }>
  zone: string
  mixes: MixResult[]
}

/** Generates the transactions of a mix; every server gets its own distinct addresses. */
function mixSource(mix: MixName, seed: number): () => TxnSpec {
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

function summarize(s: Slice): SliceSummary {
  return {
    tps: s.txns / s.seconds,
    cpuMsPerTxn: (s.cpuSeconds * 1000) / s.txns,
    rcptP50: quantile(s.rcptMs, 0.5),
    rcptP99: quantile(s.rcptMs, 0.99),
    mailRcptP99: quantile(s.mailRcptMs, 0.99),
    refusedShare: s.refused / s.txns,
  }
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
  const { records, started, ended, errors } = await pool.run(ms, next)
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
  const bed = await setUpBed(log)
  try {
    const haraka = {} as Record<ServerName, Haraka>
    // BENCH_PROFILE=DIR: each server writes a V8 CPU profile there when it stops.
    const profileDir = process.env.BENCH_PROFILE
    for (const s of SERVERS) {
      haraka[s] = await bed.start(
        s,
        profileDir
          ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${s}.cpuprofile`] }
          : {},
      )
    }
    const serverPids = {} as SystemResult['serverPids']
    for (const s of SERVERS) {
      const pid = haraka[s].serverPid()
      serverPids[s] = { pid, comm: processName(pid), viaChild: pid !== haraka[s].pid }
    }
    log(
      `servers: ${SERVERS.map((s) => `${s} port ${haraka[s].port} pid ${serverPids[s].pid}${serverPids[s].viaChild ? ' (child of bin/haraka)' : ' (bin/haraka itself)'}`).join('; ')}`,
    )
    // dns-list checks its zone at start; give all three the same quiet start.
    await sleep(1000)

    const rnd = prng(42)
    const mixes: MixResult[] = []
    let seed = 0
    for (const mix of opts.mixes) {
      const source: Record<ServerName, () => TxnSpec> = {} as Record<ServerName, () => TxnSpec>
      const poolOf = {} as Record<ServerName, LoadClients>
      for (const s of SERVERS) {
        // Distinct address ranges per server and mix: no server sees another's addresses.
        source[s] = mixSource(mix, (seed += 10_000_000))
        poolOf[s] = new LoadClients(haraka[s].port, opts.sessions)
      }
      // Warm-up slice per server (not counted): JIT, sessions, and for the repeating mix the cache.
      for (const s of SERVERS)
        await runSlice(haraka[s], poolOf[s], s, mix, 0, Math.min(opts.sliceMs, 1000), source[s])

      const slices: Slice[] = []
      for (let round = 1; round <= opts.rounds; round++) {
        for (const s of shuffle(SERVERS, rnd)) {
          await sleep(100)
          slices.push(await runSlice(haraka[s], poolOf[s], s, mix, round, opts.sliceMs, source[s]))
        }
        const r = slices.slice(-SERVERS.length)
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
        for (const s of SERVERS) {
          const mine = slices.filter((x) => x.server === s)
          log(
            `  profile: ${s} ${mine.reduce((n, x) => n + x.txns, 0)} transactions in counted slices, ${fmt(
              mine.reduce((n, x) => n + x.cpuSeconds, 0),
              2,
            )} CPU s`,
          )
        }
      }
      mixes.push(analyse(mix, slices, opts.rounds))
    }
    return {
      options: { rounds: opts.rounds, sliceMs: opts.sliceMs, sessions: opts.sessions, mixes: opts.mixes },
      machine: machine(),
      serverPids,
      zone: bed.zone.description,
      mixes,
    }
  } finally {
    await bed.close()
  }
}

function analyse(mix: MixName, slices: Slice[], rounds: number): MixResult {
  const of = (server: ServerName, round: number): SliceSummary | undefined => {
    const s = slices.find((x) => x.server === server && x.round === round)
    return s && s.txns > 0 ? summarize(s) : undefined
  }
  const perServer = {} as MixResult['perServer']
  const swing = {} as MixResult['swing']
  for (const server of SERVERS) {
    const sums = slices.filter((s) => s.server === server && s.txns > 0).map(summarize)
    perServer[server] = {
      tps: spread(sums.map((s) => s.tps)),
      cpuMsPerTxn: spread(sums.map((s) => s.cpuMsPerTxn)),
      rcptP50: spread(sums.map((s) => s.rcptP50)),
      rcptP99: spread(sums.map((s) => s.rcptP99)),
      mailRcptP99: spread(sums.map((s) => s.mailRcptP99)),
      refusedShare: spread(sums.map((s) => s.refusedShare)),
      errors: slices.filter((s) => s.server === server).reduce((n, s) => n + s.errors, 0),
    }
    swing[server] = perServer[server].tps.max / perServer[server].tps.min - 1
  }
  const ratio = (metric: Metric, num: ServerName, den: ServerName): Spread => {
    const xs: number[] = []
    for (let r = 1; r <= rounds; r++) {
      const n = of(num, r)
      const d = of(den, r)
      if (n && d) xs.push(n[metric] / d[metric])
    }
    return spread(xs)
  }
  const ratios: MixResult['ratios'] = {}
  for (const pair of RATIOS) {
    const [n, d] = pair
    ratios[ratioName(pair)] = {
      tps: ratio('tps', n, d),
      cpuMsPerTxn: ratio('cpuMsPerTxn', n, d),
      rcptP50: ratio('rcptP50', n, d),
      rcptP99: ratio('rcptP99', n, d),
      mailRcptP99: ratio('mailRcptP99', n, d),
    }
  }
  return {
    mix,
    rounds,
    perServer,
    ratios,
    swing,
  }
}

export function renderSystem(r: SystemResult): string {
  const out: string[] = []
  out.push(
    `Whole system: ${r.options.rounds} rounds per mix, slices of ${r.options.sliceMs} ms, ${r.options.sessions} concurrent SMTP clients (one connection per transaction); ` +
      `figures are median (min–max) over the rounds.`,
  )
  out.push(`Zone: ${r.zone}`)
  out.push(
    `Server processes measured: ${SERVERS.map((s) => `${s}: pid ${r.serverPids[s].pid} (${r.serverPids[s].comm}, ${r.serverPids[s].viaChild ? 'child of bin/haraka' : 'bin/haraka itself, no child found'})`).join('; ')}`,
  )
  for (const m of r.mixes) {
    out.push('', `**${MIX_LABEL[m.mix]}** (${m.rounds} rounds)`, '')
    out.push(
      table(
        ['server', 'tx/s', 'CPU ms/tx', 'RCPT p50 ms', 'RCPT p99 ms', 'MAIL+RCPT p99 ms', 'refused', 'swing'],
        SERVERS.map((s) => {
          const p = m.perServer[s]
          return [
            SERVER_LABEL[s],
            fmtSpread(p.tps, 0),
            fmtSpread(p.cpuMsPerTxn, 3),
            fmtSpread(p.rcptP50, 2),
            fmtSpread(p.rcptP99, 2),
            fmtSpread(p.mailRcptP99, 2),
            `${fmt(p.refusedShare.median * 100, 1)} %` + (p.errors ? `, ${p.errors} errors` : ''),
            `${fmt(m.swing[s] * 100)} %`,
          ]
        }),
      ),
    )
    out.push('')
    const names = RATIOS.map(ratioName)
    const metrics: [Metric, string][] = [
      ['tps', 'throughput'],
      ['cpuMsPerTxn', 'CPU per transaction'],
      ['rcptP99', 'RCPT p99 latency'],
      ['mailRcptP99', 'MAIL+RCPT p99 latency'],
    ]
    out.push(
      table(
        ['per-round ratio', ...names],
        metrics.map(([metric, label]) => [
          label,
          ...names.map((n) => fmtSpread(m.ratios[n]?.[metric] ?? spread([]), 3)),
        ]),
      ),
    )
  }
  return out.join('\n')
}

if (require.main === module) runStandalone(() => benchSystem(systemOptionsFromEnv()), renderSystem)
