// The sent-mail ledger as the command asks it: opened from [ledger] as the
// plugin opens it, every round trip within the same timeout_ms, and closed
// when the command is done, so that it ends at once.
import type { LedgerMode, LedgerSettings } from '../core/types'
import { ageDays, holdsWholeWindow } from '../ledger/answer'
import { DAY_MS } from '../ledger/entry'
import { Ledger, type LedgerSurvey } from '../ledger/ledger'

/**
 * The ledger's answer for each reference found, or undefined when no ledger
 * was asked or it could not answer. `message` prints it after each reference.
 */
export type ReferenceAnswers = (references: readonly string[]) => Promise<Record<string, string> | undefined>

/** The reasons of an unknown answer that say the ledger could not be asked. */
const FAULTS: ReadonlySet<string> = new Set(['unavailable', 'timeout', 'error'])

/** A day as YYYY-MM-DD. */
const dayText = (day: number): string => new Date(day * DAY_MS).toISOString().slice(0, 10)

// The ledger's own log lines tell the plugin's operator that mail goes on; the command says what failed itself.
function openLedger(settings: LedgerSettings): Ledger {
  const ledger = new Ledger(settings, { log: { info: () => undefined, error: () => undefined } })
  ledger.start()
  return ledger
}

/** Why the ledger could not answer: Redis unreachable, silent, or refusing the command. */
function faultText(ledger: Ledger, reason: string): string {
  const s = ledger.status()
  if (reason === 'error') return `Redis ${s.redis} answered with an error`
  if (s.state === 'down' && s.reason) return `Redis ${s.redis} unreachable (${s.reason})`
  return `Redis ${s.redis} did not answer within ${ledger.settings.timeoutMs} ms`
}

/** The young-ledger rule in words: why a reference it lacks is not yet "not ours". */
function youngText(ageDays: number | undefined, windowDays: number): string {
  const age = ageDays === undefined ? 'has recorded nothing yet' : `is ${ageDays} days old`
  return (
    `the ledger ${age}: until it has held every message sent for ${windowDays} days ([ledger] ` +
    'window_days), a reference it does not hold is unknown, never not-ours'
  )
}

export interface LedgerAsker {
  readonly answers: ReferenceAnswers
  /** Waits for lookups under way, then closes the connection. */
  close(): Promise<void>
}

/**
 * The ledger's answer for each reference on its own, by the ledger's check,
 * as the plugin judges a message that has only that reference: ours when it
 * was recorded in the window; not-ours only when the ledger holds the whole
 * window; else unknown. Redis is connected at the first lookup. Once it could
 * not answer, `onFault` is told why, once, and no more lookups are made; a
 * young ledger is told to `onNote`, once.
 */
export function ledgerAsker(
  settings: LedgerSettings,
  onFault: (text: string) => void,
  onNote: (text: string) => void,
): LedgerAsker {
  let ledger: Ledger | undefined
  let failed = false
  let noted = false
  const answers: ReferenceAnswers = async (references) => {
    if (failed) return undefined
    ledger ??= openLedger(settings)
    const checked = await Promise.all(references.map((id) => (ledger as Ledger).check([id])))
    const fault = checked.find((a) => a.result === 'unknown' && FAULTS.has(a.reason))
    if (fault) {
      if (!failed) onFault(faultText(ledger, fault.reason))
      failed = true
      return undefined
    }
    const young = checked.find((a) => a.reason === 'young')
    if (young && !noted) {
      noted = true
      onNote(youngText(young.ageDays, settings.windowDays))
    }
    return Object.fromEntries(references.map((id, i) => [id, checked[i]?.result ?? 'unknown']))
  }
  return { answers, close: () => ledger?.close() ?? Promise.resolve() }
}

/** The ledger as `health` shows it. */
export interface LedgerReport {
  /** warning: Redis cannot be asked within timeout_ms (the plugin goes on without it), or may evict the ledger's entries. */
  readonly level: 'ok' | 'warning'
  readonly mode: LedgerMode
  /** The Redis URL, without its password. */
  readonly redis: string
  readonly windowDays: number
  /** Why the ledger cannot be asked ('' when it can). */
  readonly fault: string
  /** What is wrong though it can be asked ('' when nothing): Redis may evict its entries. */
  readonly warning: string
  /** What it holds, when it could be asked. */
  readonly survey?: LedgerSurvey
  /** Younger than its window: it calls nothing not ours yet. */
  readonly young: boolean
}

/** Ask the ledger what it holds, within its bound, and close it. */
export async function ledgerReport(settings: LedgerSettings): Promise<LedgerReport> {
  const ledger = openLedger(settings)
  try {
    const outcome = await ledger.survey()
    const base = { mode: settings.mode, redis: ledger.status().redis, windowDays: settings.windowDays }
    if (!outcome.ok)
      return {
        ...base,
        level: 'warning',
        fault: faultText(ledger, outcome.reason),
        warning: '',
        young: false,
      }
    const { sinceDay, today, evicts } = outcome.survey
    const young = !holdsWholeWindow(sinceDay, today, settings.windowDays)
    const warning = evicts
      ? `Redis may evict its entries (maxmemory-policy ${evicts}), and a bounce of mail whose entry is gone ` +
        `would be called not ours: set maxmemory-policy noeviction, or give the ledger a Redis of its own`
      : ''
    return { ...base, level: warning ? 'warning' : 'ok', fault: '', warning, survey: outcome.survey, young }
  } finally {
    await ledger.close()
  }
}

const ageOf = (s: LedgerSurvey): number | undefined => ageDays(s.sinceDay, s.today)

/** The `ledger:` lines of `health`: mode, Redis, what it holds, and the young-ledger rule when it applies. */
export function ledgerLines(r: LedgerReport): string[] {
  const head = `${r.mode} mode, Redis ${r.redis}`
  if (!r.survey) return [`${r.mode} mode: ${r.fault}: sent mail is not recorded, bounces are not checked`]
  const s = r.survey
  const held = s.sinceDay === undefined ? 'nothing recorded yet' : `${s.entries} entries over ${s.days} days`
  const since =
    s.sinceDay === undefined ? '' : `, every message since ${dayText(s.sinceDay)} (${ageOf(s)} days)`
  const lines = [`${head}: ${held}${since}`]
  if (r.young) {
    const from =
      s.sinceDay === undefined
        ? `until it has held every message for ${r.windowDays} days`
        : `before ${dayText(s.sinceDay + r.windowDays)}`
    lines.push(`younger than its window of ${r.windowDays} days: no bounce is called not ours ${from}`)
  }
  if (r.warning) lines.push(r.warning)
  return lines
}

/** The `--json` line of the ledger. */
export function ledgerJson(r: LedgerReport): string {
  const s = r.survey
  return `${JSON.stringify({
    ledger: r.mode,
    status: r.level,
    redis: r.redis,
    reason: r.fault || r.warning,
    entries: s ? s.entries : null,
    days: s ? s.days : null,
    since: s?.sinceDay === undefined ? null : dayText(s.sinceDay),
    age_days: s ? (ageOf(s) ?? null) : null,
    window_days: r.windowDays,
    young: s ? r.young : null,
  })}\n`
}
