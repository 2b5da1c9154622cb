// Part 2's figures: per-server medians over the rounds, per-round ratios between
// servers, the plugin against the no-op floor, and the Markdown report.
import { fmt, fmtSpread, quantile, spread, table, type Spread } from './common'
import type { ServerName } from './servers'

export const SERVER_LABEL: Record<ServerName, string> = {
  none: '(a) no DNSBL plugin',
  backscatter: '(b) backscatter',
  'dns-list': '(c) dns-list',
  zonefile: '(d) backscatter, zone file',
  noop: '(e) no-op plugin, same hooks',
  baseline: '(f) backscatter, baseline build',
}

export type MixName = 'ordinary' | 'distinct' | 'repeat'
export const MIX_LABEL: Record<MixName, string> = {
  ordinary: 'ordinary senders, distinct IPs',
  distinct: 'bounces (<>), mostly distinct IPs',
  repeat: 'bounces (<>), 20 repeating IPs',
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
  /** When the slice ran, in µs of the monotonic clock (for BENCH_PROFILE's windows). */
  windowUs: [number, number]
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

/** The ratios reported (numerator over denominator), where both servers ran. */
export const RATIOS: readonly [ServerName, ServerName][] = [
  ['backscatter', 'noop'],
  ['zonefile', 'noop'],
  ['baseline', 'noop'],
  ['backscatter', 'baseline'],
  ['noop', 'none'],
  ['backscatter', 'dns-list'],
  ['zonefile', 'dns-list'],
]

/** The servers whose CPU above the floor (e) is reported, in µs per transaction. */
export const ABOVE_FLOOR: readonly ServerName[] = ['backscatter', 'baseline', 'zonefile']

/** Target for (b)/(e), CPU per transaction, by mix (issue 14). */
export const FLOOR_TARGET: Record<MixName, { ratio: number; text: string }> = {
  ordinary: { ratio: 1.02, text: 'at the floor (≤ 1.02)' },
  repeat: { ratio: 1.05, text: '≤ 1.05' },
  distinct: { ratio: 1.08, text: '≤ 1.08' },
}

const tag = (s: ServerName): string => SERVER_LABEL[s].match(/^\(\w\)/)?.[0] ?? s
export const ratioName = ([n, d]: readonly [ServerName, ServerName]): string => `${tag(n)}/${tag(d)}`

export interface ServerFigures {
  tps: Spread
  cpuMsPerTxn: Spread
  rcptP50: Spread
  rcptP99: Spread
  mailRcptP99: Spread
  refusedShare: Spread
  errors: number
}

export interface MixResult {
  mix: MixName
  rounds: number
  perServer: Partial<Record<ServerName, ServerFigures>>
  /** Per-round ratios, e.g. ratios['(b)/(e)'].tps. */
  ratios: Record<string, Record<Metric, Spread>>
  /** Interquartile range of each ratio's CPU per transaction, [p25, p75]. */
  cpuRatioIqr: Record<string, [number, number]>
  /** CPU µs per transaction above the floor (e), round by round, for ABOVE_FLOOR servers. */
  aboveFloorUs: Partial<Record<ServerName, Spread>>
  /** Round-to-round swing of each server's own throughput (max/min − 1). */
  swing: Partial<Record<ServerName, number>>
}

export interface SystemResult {
  options: { rounds: number; sliceMs: number; sessions: number; mixes: MixName[]; servers: ServerName[] }
  machine: Record<string, string>
  /** uptime's load average when the part started (machine.load: when it ended). */
  loadAtStart: string
  /** What the baseline server (f) runs, when there is one. */
  baseline?: string
  serverPids: Partial<Record<ServerName, { pid: number; comm: string; viaChild: boolean }>>
  zone: string
  mixes: MixResult[]
}

export function summarize(s: Slice): SliceSummary {
  return {
    tps: s.txns / s.seconds,
    cpuMsPerTxn: (s.cpuSeconds * 1000) / s.txns,
    rcptP50: quantile(s.rcptMs, 0.5),
    rcptP99: quantile(s.rcptMs, 0.99),
    mailRcptP99: quantile(s.mailRcptMs, 0.99),
    refusedShare: s.refused / s.txns,
  }
}

export function analyse(
  mix: MixName,
  slices: Slice[],
  rounds: number,
  servers: readonly ServerName[],
): MixResult {
  const of = (server: ServerName, round: number): SliceSummary | undefined => {
    const s = slices.find((x) => x.server === server && x.round === round)
    return s && s.txns > 0 ? summarize(s) : undefined
  }
  const perServer: MixResult['perServer'] = {}
  const swing: MixResult['swing'] = {}
  for (const server of servers) {
    const sums = slices.filter((s) => s.server === server && s.txns > 0).map(summarize)
    const figures: ServerFigures = {
      tps: spread(sums.map((s) => s.tps)),
      cpuMsPerTxn: spread(sums.map((s) => s.cpuMsPerTxn)),
      rcptP50: spread(sums.map((s) => s.rcptP50)),
      rcptP99: spread(sums.map((s) => s.rcptP99)),
      mailRcptP99: spread(sums.map((s) => s.mailRcptP99)),
      refusedShare: spread(sums.map((s) => s.refusedShare)),
      errors: slices.filter((s) => s.server === server).reduce((n, s) => n + s.errors, 0),
    }
    perServer[server] = figures
    swing[server] = figures.tps.max / figures.tps.min - 1
  }
  /** f(numerator, denominator) for every round where both servers ran. */
  const perRound = (
    num: ServerName,
    den: ServerName,
    f: (n: SliceSummary, d: SliceSummary) => number,
  ): number[] => {
    const xs: number[] = []
    for (let r = 1; r <= rounds; r++) {
      const n = of(num, r)
      const d = of(den, r)
      if (n && d) xs.push(f(n, d))
    }
    return xs
  }
  const ratio = (metric: Metric, num: ServerName, den: ServerName): Spread =>
    spread(perRound(num, den, (n, d) => n[metric] / d[metric]))
  const ratios: MixResult['ratios'] = {}
  const cpuRatioIqr: MixResult['cpuRatioIqr'] = {}
  for (const pair of ratiosAmong(servers)) {
    const [n, d] = pair
    ratios[ratioName(pair)] = {
      tps: ratio('tps', n, d),
      cpuMsPerTxn: ratio('cpuMsPerTxn', n, d),
      rcptP50: ratio('rcptP50', n, d),
      rcptP99: ratio('rcptP99', n, d),
      mailRcptP99: ratio('mailRcptP99', n, d),
    }
    const xs = perRound(n, d, (x, y) => x.cpuMsPerTxn / y.cpuMsPerTxn)
    cpuRatioIqr[ratioName(pair)] = [quantile(xs, 0.25), quantile(xs, 0.75)]
  }
  const aboveFloorUs: MixResult['aboveFloorUs'] = {}
  if (servers.includes('noop')) {
    for (const server of ABOVE_FLOOR.filter((s) => servers.includes(s))) {
      aboveFloorUs[server] = spread(
        perRound(server, 'noop', (n, d) => (n.cpuMsPerTxn - d.cpuMsPerTxn) * 1000),
      )
    }
  }
  return { mix, rounds, perServer, ratios, cpuRatioIqr, aboveFloorUs, swing }
}

function ratiosAmong(servers: readonly ServerName[]): (readonly [ServerName, ServerName])[] {
  return RATIOS.filter(([n, d]) => servers.includes(n) && servers.includes(d))
}

/**
 * The plugin against the floor, mix by mix: CPU per transaction and throughput
 * of (b), (d) and (f) over (e), per round, and the CPU they add in µs.
 */
export function renderFloor(r: SystemResult): string {
  const servers = r.options.servers
  if (!servers.includes('noop')) return ''
  const cpuCell = (m: MixResult, name: string): string => {
    const cpu = m.ratios[name]?.cpuMsPerTxn ?? spread([])
    const iqr = m.cpuRatioIqr[name] ?? [NaN, NaN]
    return `${fmt(cpu.median, 3)} (${fmt(iqr[0], 3)}–${fmt(iqr[1], 3)})`
  }
  const rows: string[][] = []
  for (const m of r.mixes) {
    for (const server of ABOVE_FLOOR.filter((s) => servers.includes(s))) {
      const name = ratioName([server, 'noop'])
      const target = server === 'backscatter' ? FLOOR_TARGET[m.mix] : undefined
      const median = m.ratios[name]?.cpuMsPerTxn.median ?? NaN
      rows.push([
        MIX_LABEL[m.mix],
        name,
        cpuCell(m, name),
        fmtSpread(m.aboveFloorUs[server] ?? spread([]), 1),
        fmtSpread(m.ratios[name]?.tps ?? spread([]), 3),
        target?.text ?? '',
        target ? (median <= target.ratio ? 'yes' : '**no**') : '',
      ])
    }
    if (servers.includes('none')) {
      const name = ratioName(['noop', 'none'])
      rows.push([
        MIX_LABEL[m.mix],
        name,
        cpuCell(m, name),
        '',
        fmtSpread(m.ratios[name]?.tps ?? spread([]), 3),
        '',
        '',
      ])
    }
  }
  return [
    `The plugin against the floor: per-round ratios over (e), a plugin on the same hooks that only calls next(); ` +
      `CPU is the server process's, per transaction: median (p25–p75) of the rounds; µs above the floor and ` +
      `throughput: median (min–max). (e)/(a) is what three no-op hooks cost, and shows the measurement's own spread.`,
    '',
    table(
      ['mix', 'ratio', 'CPU per transaction', 'CPU µs above (e)', 'throughput', 'target (CPU)', 'met'],
      rows,
    ),
  ].join('\n')
}

export function renderSystem(r: SystemResult): string {
  const servers = r.options.servers
  const out: string[] = []
  out.push(
    `Whole system: ${r.options.rounds} rounds per mix, slices of ${r.options.sliceMs} ms, ${r.options.sessions} concurrent SMTP clients (one connection per transaction); ` +
      `figures are median (min–max) over the rounds. Load average ${r.loadAtStart} at the start, ${r.machine.load} at the end.`,
  )
  out.push(`Zone: ${r.zone}`)
  if (r.baseline) out.push(`Baseline (f): ${r.baseline}`)
  out.push(
    `Server processes measured: ${servers
      .map((s) => {
        const p = r.serverPids[s]
        return p
          ? `${s}: pid ${p.pid} (${p.comm}, ${p.viaChild ? 'child of bin/haraka' : 'bin/haraka itself, no child found'})`
          : s
      })
      .join('; ')}`,
  )
  for (const m of r.mixes) {
    out.push('', `**${MIX_LABEL[m.mix]}** (${m.rounds} rounds)`, '')
    out.push(
      table(
        ['server', 'tx/s', 'CPU ms/tx', 'RCPT p50 ms', 'RCPT p99 ms', 'MAIL+RCPT p99 ms', 'refused', 'swing'],
        servers.map((s) => {
          const p = m.perServer[s]
          if (!p) return [SERVER_LABEL[s], '–', '–', '–', '–', '–', '–', '–']
          return [
            SERVER_LABEL[s],
            fmtSpread(p.tps, 0),
            fmtSpread(p.cpuMsPerTxn, 3),
            fmtSpread(p.rcptP50, 2),
            fmtSpread(p.rcptP99, 2),
            fmtSpread(p.mailRcptP99, 2),
            `${fmt(p.refusedShare.median * 100, 1)} %` + (p.errors ? `, ${p.errors} errors` : ''),
            `${fmt((m.swing[s] ?? NaN) * 100)} %`,
          ]
        }),
      ),
    )
    out.push('')
    const names = ratiosAmong(servers).map(ratioName)
    const metrics: [Metric, string][] = [
      ['tps', 'throughput'],
      ['cpuMsPerTxn', 'CPU per transaction'],
      ['rcptP99', 'RCPT p99 latency'],
      ['mailRcptP99', 'MAIL+RCPT p99 latency'],
    ]
    if (names.length) {
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
  }
  const floor = renderFloor(r)
  if (floor) out.push('', floor)
  return out.join('\n')
}
