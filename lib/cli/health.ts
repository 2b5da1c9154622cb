// `haraka-backscatter health`: every zone's RFC 5782 test points, with timings,
// each zone file's entries and age, and the sent-mail ledger when it is on.
// Its exit status is a monitoring check's.
import type { PointProbe, ZoneProbe } from '../dns/checker'
import type { ZoneFileStatus } from '../zonefile/source'
import { noArguments, stringOption, type Values } from './args'
import { configDir, loadConfig, resolverText } from './config'
import { listedText } from '../core/self-check'
import { configFolderFiles, ownIpLines, ownIpReport, type OwnIpReport } from './own-ips'
import { EXIT, UsageError, type Io } from './io'
import { ledgerJson, ledgerLines, ledgerReport, type LedgerReport } from './ledger'
import { withChecker } from './lookups'
import { lookupText, quote, table } from './table'

/** Hours after which a zone file's data counts as stale, unless --max-age says otherwise. */
export const DEFAULT_MAX_AGE_HOURS = 6

/** How a zone stands, as a monitoring check says it. */
export type Level = 'ok' | 'warning' | 'critical'

const LEVEL_EXIT: Record<Level, number> = { ok: EXIT.OK, warning: EXIT.WARNING, critical: EXIT.CRITICAL }

/** A zone file as `health` reports it. */
export interface FileReport {
  readonly path: string
  /** Data is in use (the file loaded once). */
  readonly loaded: boolean
  readonly entries: number
  /** When the file in use was last modified, ISO 8601 ('' when nothing is loaded). */
  readonly modified: string
  /** Its `$TIMESTAMP`, ISO 8601 ('' when it has none). */
  readonly timestamp: string
  /**
   * Seconds since the data was made: since its `$TIMESTAMP`, else since the
   * file was modified (rsync keeps the mirror's time); undefined when nothing is loaded.
   */
  readonly ageSeconds: number | undefined
  /** Older than --max-age. */
  readonly stale: boolean
  /** Why the last load failed ('' when it did not). */
  readonly error: string
}

/** A zone's probe as the command reports it: how it stands, and why. */
export interface ZoneReport {
  readonly zone: string
  readonly level: Level
  /** The plugin uses its answers. */
  readonly usable: boolean
  /** Why the zone is unusable, or what is odd about a usable one ('' when nothing is). */
  readonly reason: string
  readonly points: readonly PointProbe[]
  readonly file?: FileReport
}

/** A time as ISO 8601 to the second, UTC; '' for none. */
const iso = (ms: number | undefined): string =>
  ms === undefined ? '' : new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')

export function fileReport(s: ZoneFileStatus, nowMs: number, maxAgeHours: number): FileReport {
  const loaded = s.loadedAtMs !== undefined
  const madeMs = s.timestampSeconds !== undefined ? s.timestampSeconds * 1000 : s.modifiedMs
  const ageSeconds =
    !loaded || madeMs === undefined ? undefined : Math.max(0, Math.round((nowMs - madeMs) / 1000))
  return {
    path: s.path,
    loaded,
    entries: s.entries,
    modified: loaded ? iso(s.modifiedMs) : '',
    timestamp: iso(s.timestampSeconds === undefined ? undefined : s.timestampSeconds * 1000),
    ageSeconds,
    stale: ageSeconds !== undefined && maxAgeHours > 0 && ageSeconds > maxAgeHours * 3600,
    error: s.error,
  }
}

/** An age for people: `40 s`, `35 min`, `7.2 h`, `3.1 days`. */
export function ageText(seconds: number): string {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`
  return `${(seconds / 86_400).toFixed(1)} days`
}

/**
 * How a zone stands. CRITICAL: unusable (the plugin suspends it), a zone file
 * that cannot be loaded included. WARNING: in use, but a test point failed, its
 * file is older than `maxAgeHours` or the last reload of its file failed.
 */
export function zoneReport(probe: ZoneProbe, file: FileReport | undefined, maxAgeHours: number): ZoneReport {
  const { zone, points, assessment: a } = probe
  const base = { zone, points, ...(file ? { file } : {}) }
  if (file && !file.loaded) {
    const reason = `cannot load ${file.path}: ${file.error || 'not loaded'}`
    return { ...base, level: 'critical', usable: false, reason }
  }
  if (points.length === 0)
    return { ...base, level: 'ok', usable: true, reason: 'ipv4 and ipv6 off: never queried' }
  if (!a.usable) return { ...base, level: 'critical', usable: false, reason: a.reason }
  const warnings: string[] = []
  if (a.warning) warnings.push(`${a.warning}: its data may be empty or stale`)
  if (file?.stale && file.ageSeconds !== undefined) {
    warnings.push(`zone file data ${ageText(file.ageSeconds)} old, over --max-age ${maxAgeHours} h`)
  }
  if (file?.error) warnings.push(`the last load of ${file.path} failed (${file.error}); older data in use`)
  return { ...base, level: warnings.length ? 'warning' : 'ok', usable: true, reason: warnings.join('; ') }
}

/** `--max-age HOURS`: a number of hours, 0 for never stale. */
function maxAgeOption(values: Values): number {
  const text = stringOption(values, 'max-age')
  if (text === undefined) return DEFAULT_MAX_AGE_HOURS
  if (!/^\d+(\.\d+)?$/.test(text)) {
    throw new UsageError(`--max-age ${quote(text)} is not a number of hours (0: never stale)`, 'health')
  }
  return Number(text)
}

function jsonLine(z: ZoneReport): string {
  const points = z.points.map((p) => ({
    point: p.point,
    expected: p.mustBeListed ? 'listed' : 'not-listed',
    status: p.result.status,
    answers: p.result.status === 'listed' ? p.result.codes : [],
    txt: p.result.status === 'listed' ? p.result.reason : '',
    error: p.result.status === 'error' ? p.result.reason : '',
    ms: p.ms,
    ok: p.ok,
  }))
  const f = z.file
  const file = f && {
    path: f.path,
    loaded: f.loaded,
    entries: f.entries,
    modified: f.modified || null,
    timestamp: f.timestamp || null,
    age_seconds: f.ageSeconds ?? null,
    stale: f.stale,
    error: f.error,
  }
  const { zone, level, usable, reason } = z
  return `${JSON.stringify({ zone, status: level, usable, reason, points, ...(file ? { file } : {}) })}\n`
}

/** The first line, as a monitoring check's: the status, and what is wrong, worst first. */
function summaryLine(
  zones: readonly ZoneReport[],
  level: Level,
  own: OwnIpReport,
  ledger: LedgerReport | undefined,
): string {
  if (level === 'ok') return `BACKSCATTER OK: ${zones.map((z) => z.zone).join(', ')} usable\n`
  const problems = [
    ...zones.filter((z) => z.level === 'critical'),
    ...zones.filter((z) => z.level === 'warning'),
  ]
  const text = [
    ...own.listed.map((l) => `our own IP ${l.ip} listed on ${l.zone}`),
    ...problems.map((z) => `${z.zone}${z.usable ? '' : ' unusable'}: ${z.reason}`),
    ...(ledger?.fault || ledger?.warning ? [`ledger: ${ledger.fault || ledger.warning}`] : []),
  ].join('; ')
  return `BACKSCATTER ${level.toUpperCase()}: ${text}\n`
}

/** A zone file in a few words: entries and age, or why it is not loaded. */
function fileLine(zone: string, f: FileReport): string {
  if (!f.loaded) return `${zone} from ${f.path}: cannot load: ${f.error || 'not loaded'}`
  const since = f.timestamp ? `$TIMESTAMP ${f.timestamp}` : `file modified ${f.modified}`
  const age = f.ageSeconds === undefined ? '' : `, data ${ageText(f.ageSeconds)} old (${since})`
  return `${zone} from ${f.path}: ${f.entries} entries${age}`
}

export async function runHealth(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  noArguments(positionals, 'health')
  const maxAgeHours = maxAgeOption(values)
  const option = stringOption(values, 'config')
  const { settings, source } = loadConfig(option, io)
  const harakaFiles = configFolderFiles(configDir(option))
  // The ledger is asked beside the zones, within its own timeout_ms.
  const ledgerAsked = settings.ledger.mode === 'off' ? undefined : ledgerReport(settings.ledger)
  // probeZone is the plugin's own health check: a zone file is waited for, however long it loads.
  const [zones, own] = await withChecker(settings, async (c) => {
    const probes = await Promise.all(settings.zones.map((z) => c.probeZone(z)))
    const nowMs = Date.now()
    const reports = probes.map((probe) => {
      const status = c.fileStatus(probe.zone)
      return zoneReport(probe, status && fileReport(status, nowMs, maxAgeHours), maxAgeHours)
    })
    return [reports, await ownIpReport(settings, c, harakaFiles)] as const
  })
  const ledger = await ledgerAsked
  // A listing of our own IP is critical: mail from it is refused where the zone is used.
  const level: Level =
    own.listed.length || zones.some((z) => z.level === 'critical')
      ? 'critical'
      : zones.some((z) => z.level === 'warning') || ledger?.level === 'warning'
        ? 'warning'
        : 'ok'
  const status = LEVEL_EXIT[level]

  if (values.json) {
    for (const z of zones) io.out(jsonLine(z))
    for (const l of own.lookups.flatMap((x) => x.outcomes.map((o) => ({ ip: x.ip, o })))) {
      const listed = l.o.status === 'listed'
      const reason = l.o.status === 'listed' ? l.o.reason : l.o.status === 'not-listed' ? '' : l.o.reason
      const line = {
        own_ip: l.ip,
        zone: l.o.zone,
        status: listed ? 'critical' : 'ok',
        listed,
        result: l.o.status,
        reason,
      }
      io.out(`${JSON.stringify(line)}\n`)
    }
    if (ledger) io.out(ledgerJson(ledger))
    return status
  }

  const rows = [['ZONE', 'TEST POINT', 'EXPECTED', 'TIME', 'OK', 'ANSWER']]
  for (const z of zones) {
    for (const p of z.points) {
      const expected = p.mustBeListed ? 'listed' : 'not listed'
      rows.push([z.zone, p.point, expected, `${p.ms} ms`, p.ok ? 'ok' : 'FAIL', lookupText(p.result)])
    }
  }
  const verdicts = zones.map((z) => [
    z.zone,
    z.usable ? `usable${z.reason ? `, but ${z.reason}` : ''}` : `UNUSABLE: ${z.reason}`,
  ])
  const notes: string[] = []
  if (zones.some((z) => z.level === 'critical')) {
    notes.push('The plugin suspends an unusable zone and ignores its answers until it passes again.')
  }
  for (const l of own.listed) {
    const zone = settings.zones.find((z) => z.name === l.zone)
    notes.push(`${listedText(l, zone?.lookupUrl ?? '')}.`)
  }
  if (zones.some((z) => z.file?.stale)) {
    notes.push('A stale zone file is still used: check that the job that mirrors it runs.')
  }
  if (ledger?.fault) {
    notes.push('While Redis cannot be reached, the plugin goes on as without the ledger: mail flows.')
  }
  // A file zone's TIME is its lookup in the loaded data; the load itself is not counted.
  const files = zones.filter((z) => z.file).map((z) => `${fileLine(z.zone, z.file as FileReport)}\n`)
  const filesText = files.length ? `files:     ${files.join('           ')}` : ''
  const ownText = `own IPs:   ${ownIpLines(own).join('\n           ')}\n`
  const ledgerText = ledger ? `ledger:    ${ledgerLines(ledger).join('\n           ')}\n` : ''
  io.out(
    `${summaryLine(zones, level, own, ledger)}config:    ${source}\nresolvers: ${resolverText(settings)}\n` +
      `${filesText}${ownText}${ledgerText}\n` +
      `${table(rows)}\n${table(verdicts)}${notes.length ? `\n${notes.join('\n')}\n` : ''}`,
  )
  return status
}
