// The benchmark's figures: per server and mix, medians over the rounds; per
// round, each server against the no-op floor, and pairs of servers side by
// side (the plugin against its baseline, the ledger against the plugin without
// it and against no plugin); and the Markdown report.
import { fmt, fmtIqr, fmtRange, quantile, spread, table, type Spread } from './common'
import { MIX_LABEL, type MixName } from './mixes'
import type { ServerName } from './servers'

export const SERVER_LABEL: Record<ServerName, string> = {
  none: 'no plugin',
  noop: 'no-op plugin',
  backscatter: 'backscatter',
  zonefile: 'backscatter, zone file',
  ledger: 'backscatter, ledger',
  baseline: 'backscatter, baseline',
}

/** The pairs compared round by round, first over second, in every mix that runs both. */
const PAIRS: readonly (readonly [ServerName, ServerName])[] = [
  ['backscatter', 'baseline'],
  ['ledger', 'backscatter'],
  ['ledger', 'none'],
]

/** What one slice of load against one server measured. */
export interface Slice {
  server: ServerName
  mix: MixName
  round: number
  txns: number
  seconds: number
  /** CPU time of the serving process during the slice. */
  cpuSeconds: number
  /** CPU time of the ledger's redis-server during the slice (ledger server only). */
  redisCpuSeconds?: number
  errors: number
  /** From writing MAIL to the RCPT reply, per transaction. */
  mailRcptMs: number[]
}

export interface ServerFigures {
  /** CPU µs per transaction, over the rounds. */
  cpuUs: Spread
  /** The ledger's redis-server: CPU µs per transaction, over the rounds. */
  redisCpuUs?: Spread
  /** Transactions per second, over the rounds. */
  tps: Spread
  mailRcptP99Ms: Spread
  errors: number
  /** Per round: CPU µs per transaction above the no-op server's. */
  aboveNoopUs: Spread
  /** Per round: throughput over the no-op server's. */
  tpsVsNoop: Spread
}

/** Two servers side by side: per round, the first over the second. */
export interface PairResult {
  a: ServerName
  b: ServerName
  /** CPU per transaction, a over b. */
  cpu: Spread
  /** Throughput, a over b. */
  tps: Spread
}

export interface MixResult {
  mix: MixName
  servers: Partial<Record<ServerName, ServerFigures>>
  pairs: PairResult[]
}

export interface BenchResult {
  started: string
  machine: string
  options: { rounds: number; sliceMs: number; sessions: number; servers: ServerName[]; mixes: MixName[] }
  /** uptime's load averages at the start and the end; the 1-minute one sampled every round. */
  loadAtStart: string
  loadAtEnd: string
  loadDuring: Spread
  zone: string
  baseline?: string
  processes: Partial<Record<ServerName, { pid: number; isBinHaraka: boolean }>>
  mixes: MixResult[]
  seconds: number
}

export function analyse(mix: MixName, slices: readonly Slice[], servers: readonly ServerName[]): MixResult {
  const cpuUs = (s: Slice): number => (s.cpuSeconds * 1e6) / s.txns
  const tps = (s: Slice): number => s.txns / s.seconds
  const slice = (server: ServerName, round: number): Slice | undefined =>
    slices.find((s) => s.server === server && s.round === round && s.txns > 0)
  /** f(a, b) for every round where both servers ran. */
  const perRound = (a: ServerName, b: ServerName, f: (x: Slice, y: Slice) => number): Spread => {
    const rounds = [...new Set(slices.map((s) => s.round))]
    return spread(
      rounds.flatMap((r) => {
        const x = slice(a, r)
        const y = slice(b, r)
        return x && y ? [f(x, y)] : []
      }),
    )
  }
  const result: MixResult = { mix, servers: {}, pairs: [] }
  for (const server of servers) {
    const mine = slices.filter((s) => s.server === server && s.txns > 0)
    const redis = mine.filter((s) => s.redisCpuSeconds !== undefined)
    result.servers[server] = {
      cpuUs: spread(mine.map(cpuUs)),
      ...(redis.length
        ? { redisCpuUs: spread(redis.map((s) => ((s.redisCpuSeconds ?? 0) * 1e6) / s.txns)) }
        : {}),
      tps: spread(mine.map(tps)),
      mailRcptP99Ms: spread(mine.map((s) => quantile(s.mailRcptMs, 0.99))),
      errors: slices.filter((s) => s.server === server).reduce((n, s) => n + s.errors, 0),
      aboveNoopUs: perRound(server, 'noop', (x, y) => cpuUs(x) - cpuUs(y)),
      tpsVsNoop: perRound(server, 'noop', (x, y) => tps(x) / tps(y)),
    }
  }
  for (const [a, b] of PAIRS) {
    if (!servers.includes(a) || !servers.includes(b)) continue
    result.pairs.push({
      a,
      b,
      cpu: perRound(a, b, (x, y) => cpuUs(x) / cpuUs(y)),
      tps: perRound(a, b, (x, y) => tps(x) / tps(y)),
    })
  }
  return result
}

export function render(r: BenchResult): string {
  const { rounds, sliceMs, sessions, servers } = r.options
  const runsOn = (m: MixResult): ServerName[] => servers.filter((s) => m.servers[s])
  const out: string[] = [
    `${r.started}: ${r.machine}. ${rounds} rounds per mix; in each round every server gets ` +
      `${sliceMs} ms of load from ${sessions} SMTP clients, the servers in a random order. ` +
      `Load average ${r.loadAtStart} at the start, ${r.loadAtEnd} at the end, ` +
      `1-minute ${fmtRange(r.loadDuring)} over the rounds; the run took ${fmt(r.seconds)} s.`,
    '',
    `Zone: ${r.zone}.` + (r.baseline ? ` Baseline: ${r.baseline}.` : ''),
    '',
    `CPU is that of the process serving SMTP (${servers
      .map((s) => {
        const p = r.processes[s]
        return p ? `${s}: pid ${p.pid}, ${p.isBinHaraka ? "bin/haraka's own" : 'a child of bin/haraka'}` : s
      })
      .join('; ')}), all its threads. ` +
      `Per server: median (min–max) of the rounds. Against the no-op plugin and side by side: ` +
      `the same round's slices compared, median (p25–p75) of the rounds.`,
  ]
  for (const m of r.mixes) {
    out.push('', `**${MIX_LABEL[m.mix]}**`, '')
    out.push(
      table(
        ['server', 'CPU µs/tx', 'µs above no-op', 'tx/s', 'tx/s vs no-op', 'MAIL→RCPT p99 ms'],
        runsOn(m).map((s) => {
          const f = m.servers[s]
          if (!f) return [SERVER_LABEL[s], '–', '–', '–', '–', '–']
          return [
            SERVER_LABEL[s] + (f.errors ? ` (${f.errors} errors)` : ''),
            fmtRange(f.cpuUs, 0),
            s === 'noop' ? '' : fmtIqr(f.aboveNoopUs, 0),
            fmtRange(f.tps, 0),
            s === 'noop' ? '' : fmtIqr(f.tpsVsNoop, 3),
            fmtRange(f.mailRcptP99Ms, 1),
          ]
        }),
      ),
    )
  }
  for (const m of r.mixes) {
    const redis = m.servers.ledger?.redisCpuUs
    if (redis) {
      out.push(
        '',
        `${m.mix}: the ledger's redis-server spent ${fmtRange(redis, 0)} µs of CPU per transaction ` +
          `of the ledger server, besides the serving process's.`,
      )
    }
  }
  const pairs = r.mixes.flatMap((m) => m.pairs.map((p) => ({ mix: m.mix, figures: m.servers, ...p })))
  if (pairs.length) {
    out.push(
      '',
      'Side by side: the first server over the second, round by round, median (p25–p75) of the rounds.',
      '',
      table(
        ['mix', 'servers', 'CPU µs/tx', 'CPU ratio', 'tx/s', 'tx/s ratio'],
        pairs.map((p) => [
          p.mix,
          `${p.a} / ${p.b}`,
          `${fmt(p.figures[p.a]?.cpuUs.median ?? NaN)} / ${fmt(p.figures[p.b]?.cpuUs.median ?? NaN)}`,
          fmtIqr(p.cpu, 3),
          `${fmt(p.figures[p.a]?.tps.median ?? NaN)} / ${fmt(p.figures[p.b]?.tps.median ?? NaN)}`,
          fmtIqr(p.tps, 3),
        ]),
      ),
    )
  }
  return out.join('\n')
}
