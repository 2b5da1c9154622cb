// Every IP looked up in every zone as the plugin would, kept as rows that show
// what each zone said and what of it counts.
import { BackscatterChecker } from '../dns/checker'
import { clientToCheck, zoneSkipReason } from '../core/client'
import type { HealthState } from '../dns/health'
import { decideVerdict, listingScore } from '../core/verdict'
import { EXIT } from './io'
import { quote, table } from './table'
import type { LookupResult, Settings, Verdict, ZoneOutcome, ZoneSettings } from '../core/types'

export type HealthLabel = 'passed' | 'failed' | 'unchecked' | 'off'

export interface ZoneHealthInfo {
  readonly label: HealthLabel
  readonly reason: string
}

function healthLabel(state: HealthState, settings: Settings): HealthLabel {
  if (settings.dns.healthIntervalSeconds === 0) return 'off'
  if (state === 'usable') return 'passed'
  return state === 'suspended' ? 'failed' : 'unchecked'
}

/** One line of `check`: what one zone said about one IP, and what of it counts. */
export interface ZoneRow {
  readonly ip: string
  readonly zone: string
  readonly health: HealthLabel
  readonly status: 'listed' | 'not-listed' | 'error' | 'skipped'
  readonly listed: boolean
  readonly answers: readonly string[]
  readonly txt: string
  /** What this zone adds to the IP's score (0 when its answer does not count). */
  readonly score: number
  /** The plugin uses this answer: it looks the client up, and the zone passed its health check and answered. */
  readonly counted: boolean
  /** Error or skip reason, or why the answer does not count. */
  readonly detail: string
}

/** A zone that gave no answer for an IP: the plugin goes on without it (fails open). */
export interface FailedLookup {
  readonly zone: string
  readonly reason: string
}

export interface IpReport {
  readonly ip: string
  readonly rows: readonly ZoneRow[]
  readonly verdict: Verdict
  /** Why the plugin would not look this client up at all, or '' when it would. */
  readonly skip: string
  readonly failed: readonly FailedLookup[]
}

const noAnswer = { listed: false, answers: [], txt: '', score: 0, counted: false } as const

function rowFromLookup(
  base: Pick<ZoneRow, 'ip' | 'zone' | 'health'>,
  r: LookupResult,
  detail: string,
): ZoneRow {
  const common = { ...base, score: 0, counted: false }
  if (r.status === 'listed') {
    return { ...common, status: 'listed', listed: true, answers: [...r.codes], txt: r.reason, detail }
  }
  if (r.status === 'not-listed')
    return { ...common, status: 'not-listed', listed: false, answers: [], txt: '', detail }
  return { ...common, status: 'error', listed: false, answers: [], txt: '', detail: `${r.reason}; ${detail}` }
}

function zoneRow(
  zone: ZoneSettings,
  ip: string,
  outcome: ZoneOutcome,
  direct: LookupResult | undefined,
  health: ZoneHealthInfo,
): ZoneRow {
  const base = { ip, zone: zone.name, health: health.label }
  switch (outcome.status) {
    case 'listed':
      return {
        ...base,
        status: 'listed',
        listed: true,
        answers: [...outcome.codes],
        txt: outcome.reason,
        score: listingScore(zone, outcome.codes),
        counted: true,
        detail: '',
      }
    case 'not-listed':
      return { ...base, status: 'not-listed', ...noAnswer, counted: true, detail: '' }
    case 'error':
      return { ...base, status: 'error', ...noAnswer, detail: outcome.reason }
    case 'skipped':
      if (health.label === 'failed' && direct) {
        return rowFromLookup(base, direct, `ignored: zone failed its health check (${health.reason})`)
      }
      return { ...base, status: 'skipped', ...noAnswer, detail: outcome.reason }
  }
}

/** A row of a client the plugin never looks up: what the zone said stays, but none of it counts. */
function neverLookedUp(row: ZoneRow, skip: string): ZoneRow {
  if (!row.counted) return row
  return { ...row, counted: false, score: 0, detail: `not counted: never looked up (${skip})` }
}

/** The zones that gave no answer: a lookup error, or a suspended zone that did not answer either. */
function failedLookups(
  outcomes: readonly ZoneOutcome[],
  direct: (zone: string) => LookupResult | undefined,
  health: Map<string, ZoneHealthInfo>,
): FailedLookup[] {
  const failed: FailedLookup[] = []
  for (const o of outcomes) {
    const answer = direct(o.zone)
    if (o.status === 'error') failed.push({ zone: o.zone, reason: o.reason })
    else if (o.status === 'skipped' && health.get(o.zone)?.label === 'failed' && answer?.status === 'error')
      failed.push({ zone: o.zone, reason: answer.reason })
  }
  return failed
}

/**
 * The checker as the command runs it: each IP is looked up once per zone, and
 * check() reuses that lookup, sent while the zone's first check ran, so an IP
 * that is never answered costs one budget, not two.
 */
class CommandChecker extends BackscatterChecker {
  private readonly answers = new Map<string, Promise<LookupResult>>()

  override lookup(zone: string, ip: string, budgetMs?: number): Promise<LookupResult> {
    const key = `${zone}\n${ip}`
    let answer = this.answers.get(key)
    if (!answer) {
      answer = super.lookup(zone, ip, budgetMs)
      this.answers.set(key, answer)
    }
    return answer
  }
}

/** Run `use` with a checker for `settings`, closed afterwards. */
export async function withChecker<T>(
  settings: Settings,
  use: (c: BackscatterChecker) => Promise<T>,
): Promise<T> {
  // The command reports health itself; the checker's own log lines would repeat it.
  const checker = new CommandChecker(settings, { info: () => undefined, warn: () => undefined })
  try {
    return await use(checker)
  } finally {
    checker.close()
  }
}

/**
 * Look every IP up in every zone as the plugin would: the zones' health check,
 * with the lookups already under way (so a dead resolver costs one wait), then
 * `check()`, whose verdict is the plugin's, from those same lookups.
 */
export async function lookupAll(
  checker: BackscatterChecker,
  settings: Settings,
  ips: readonly string[],
  relaying = false,
): Promise<{ reports: IpReport[]; health: Map<string, ZoneHealthInfo> }> {
  const healthChecked = checker.checkHealth()
  const direct = new Map<string, Promise<LookupResult>>()
  for (const ip of ips) {
    for (const zone of settings.zones) {
      if (zoneSkipReason(zone, ip) !== undefined) continue
      // A zone file is looked up once its health check (which waits for the load) is done.
      const answer = zone.file
        ? healthChecked.then(() => checker.lookup(zone.name, ip))
        : checker.lookup(zone.name, ip)
      direct.set(`${zone.name}\n${ip}`, answer)
    }
  }
  await healthChecked
  // One check per zone is all the command makes: none on a schedule, none after a failed lookup.
  checker.retire()
  const outcomes = await Promise.all(ips.map((ip) => checker.check(ip)))
  const health = new Map<string, ZoneHealthInfo>(
    checker.healthStates().map((h) => [h.zone, { label: healthLabel(h.state, settings), reason: h.reason }]),
  )
  const answers = new Map<string, LookupResult>()
  for (const [key, answer] of direct) answers.set(key, await answer)
  const reports = ips.map((ip, i): IpReport => {
    const ipOutcomes = outcomes[i] ?? []
    const answerOf = (zone: string): LookupResult | undefined => answers.get(`${zone}\n${ip}`)
    const rows: ZoneRow[] = []
    for (const zone of settings.zones) {
      const outcome = ipOutcomes.find((o) => o.zone === zone.name)
      if (!outcome) continue
      const info = health.get(zone.name) ?? { label: 'off', reason: '' }
      rows.push(zoneRow(zone, ip, outcome, answerOf(zone.name), info))
    }
    const client = clientToCheck({ ip, relaying }, settings)
    const skip = 'skip' in client ? client.skip : ''
    return {
      ip,
      rows: skip ? rows.map((row) => neverLookedUp(row, skip)) : rows,
      verdict: decideVerdict(ip, ipOutcomes, settings),
      skip,
      failed: failedLookups(ipOutcomes, answerOf, health),
    }
  })
  return { reports, health }
}

/**
 * The exit status of `check` and `explain`, as `health` judges zones: CRITICAL
 * when a zone failed its health check; WARNING when a lookup failed (the plugin
 * fails open) or a zone in use failed a test point; else OK.
 */
export function lookupStatus(reports: readonly IpReport[], health: Map<string, ZoneHealthInfo>): number {
  const states = [...health.values()]
  if (states.some((h) => h.label === 'failed')) return EXIT.CRITICAL
  const failedLookup = reports.some((r) => r.rows.some((row) => row.status === 'error'))
  const warned = states.some((h) => h.label === 'passed' && h.reason !== '')
  return failedLookup || warned ? EXIT.WARNING : EXIT.OK
}

/** One line per zone: did it pass its health check. */
export function healthLines(
  settings: Settings,
  health: Map<string, ZoneHealthInfo>,
  indent = 'health: ',
): string {
  if (settings.dns.healthIntervalSeconds === 0) {
    return `${indent}checks are off ([dns] health_interval = 0): zones are used unchecked\n`
  }
  return table(
    settings.zones.map((z) => {
      const h = health.get(z.name)
      if (h?.label === 'failed') {
        return [z.name, `FAILED its RFC 5782 test-point check (${h.reason}); its answers are ignored`]
      }
      if (h?.label === 'passed' && h.reason) return [z.name, `in use, but ${h.reason} (RFC 5782 §5)`]
      if (h?.label === 'passed') return [z.name, 'passed its RFC 5782 test-point check; in use']
      return [z.name, 'health check did not finish']
    }),
    indent,
  )
}

export const ROW_HEADINGS = ['ZONE', 'HEALTH', 'RESULT', 'ANSWERS', 'SCORE', 'DETAIL']

/** A ZoneRow as the cells under ROW_HEADINGS. */
export function rowCells(r: ZoneRow): string[] {
  const detail = [r.txt ? `TXT ${quote(r.txt)}` : '', r.detail].filter((s) => s !== '').join('; ')
  const result = r.status === 'not-listed' ? 'not listed' : r.status
  const answers = r.answers.length ? r.answers.join(',') : '-'
  return [r.zone, r.health, result, answers, String(r.score), detail || '-']
}
