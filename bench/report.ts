// The benchmark's figures: per server and mix, medians over the rounds; per
// round, each server against the no-op floor and the plugin against its
// baseline; and the Markdown report.
import { fmt, fmtIqr, fmtRange, quantile, spread, table, type Spread } from './common'
import type { ServerName } from './servers'

export type MixName = 'ordinary' | 'cached' | 'uncached'

export const MIX_LABEL: Record<MixName, string> = {
  ordinary: 'ordinary mail, a new client address each',
  cached: 'bounces (<>) from 20 client addresses in turn, 2 listed: cached',
  uncached: 'bounces (<>), a new client address each, 10 % listed: not cached',
}

export const SERVER_LABEL: Record<ServerName, string> = {
  none: 'no plugin',
  noop: 'no-op plugin',
  backscatter: 'backscatter',
  zonefile: 'backscatter, zone file',
  baseline: 'backscatter, baseline',
}

/** What one slice of load against one server measured. */
export interface Slice {
  server: ServerName
  mix: MixName
  round: number
  txns: number
  seconds: number
  /** CPU time of the serving process during the slice. */
  cpuSeconds: number
  errors: number
  /** From writing MAIL to the RCPT reply, per transaction. */
  mailRcptMs: number[]
}

export interface ServerFigures {
  /** CPU µs per transaction, over the rounds. */
  cpuUs: Spread
  /** Transactions per second, over the rounds. */
  tps: Spread
  mailRcptP99Ms: Spread
  errors: number
  /** Per round: CPU µs per transaction above the no-op server's. */
  aboveNoopUs: Spread
  /** Per round: throughput over the no-op server's. */
  tpsVsNoop: Spread
}

export interface MixResult {
  mix: MixName
  servers: Partial<Record<ServerName, ServerFigures>>
  /** Per round, backscatter over baseline: CPU per transaction and throughput. */
  versusBaseline?: { cpu: Spread; tps: Spread }
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
  const result: MixResult = { mix, servers: {} }
  for (const server of servers) {
    const mine = slices.filter((s) => s.server === server && s.txns > 0)
    result.servers[server] = {
      cpuUs: spread(mine.map(cpuUs)),
      tps: spread(mine.map(tps)),
      mailRcptP99Ms: spread(mine.map((s) => quantile(s.mailRcptMs, 0.99))),
      errors: slices.filter((s) => s.server === server).reduce((n, s) => n + s.errors, 0),
      aboveNoopUs: perRound(server, 'noop', (x, y) => cpuUs(x) - cpuUs(y)),
      tpsVsNoop: perRound(server, 'noop', (x, y) => tps(x) / tps(y)),
    }
  }
  if (servers.includes('baseline') && servers.includes('backscatter')) {
    result.versusBaseline = {
      cpu: perRound('backscatter', 'baseline', (x, y) => cpuUs(x) / cpuUs(y)),
      tps: perRound('backscatter', 'baseline', (x, y) => tps(x) / tps(y)),
    }
  }
  return result
}

export function render(r: BenchResult): string {
  const { rounds, sliceMs, sessions, servers } = r.options
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
      `Per server: median (min–max) of the rounds. Against the no-op plugin and the baseline: ` +
      `the same round's slices compared, median (p25–p75) of the rounds.`,
  ]
  for (const m of r.mixes) {
    out.push('', `**${MIX_LABEL[m.mix]}**`, '')
    out.push(
      table(
        ['server', 'CPU µs/tx', 'µs above no-op', 'tx/s', 'tx/s vs no-op', 'MAIL→RCPT p99 ms'],
        servers.map((s) => {
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
  const compared = r.mixes.filter((m) => m.versusBaseline)
  if (compared.length) {
    out.push(
      '',
      'Before and after: backscatter against the baseline, round by round.',
      '',
      table(
        [
          'mix',
          'CPU µs/tx baseline',
          'CPU µs/tx now',
          'CPU now/baseline',
          'tx/s baseline',
          'tx/s now',
          'tx/s now/baseline',
        ],
        compared.map((m) => {
          const now = m.servers.backscatter
          const then = m.servers.baseline
          return [
            m.mix,
            then ? fmt(then.cpuUs.median) : '–',
            now ? fmt(now.cpuUs.median) : '–',
            m.versusBaseline ? fmtIqr(m.versusBaseline.cpu, 3) : '–',
            then ? fmt(then.tps.median) : '–',
            now ? fmt(now.tps.median) : '–',
            m.versusBaseline ? fmtIqr(m.versusBaseline.tps, 3) : '–',
          ]
        }),
      ),
    )
  }
  return out.join('\n')
}
