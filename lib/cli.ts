// The operator's command: check IPs, test the zones, explain a decision. It reads
// backscatter.ini the way the plugin does (haraka-config: the package's config/
// as defaults, the deployment's folder overriding key by key) and looks up
// through the same BackscatterChecker.
import dns from 'node:dns'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { Address } from '@haraka/email-address'
import DSN from 'haraka-dsn'
import { normalize_ip } from 'haraka-net-utils'

import { BackscatterChecker } from './checker'
import { clientToCheck } from './client'
import { assessTestPoints, testPointsFor, type HealthState, type TestPointAnswers } from './health'
import type { LookupResult } from './resolver'
import { isBounceSender, isNullSender, localPart } from './sender'
import { parseSettings, type Settings, type ZoneSettings } from './settings'
import {
  decideRecipient,
  decideVerdict,
  formatReply,
  headerValue,
  listingScore,
  type RecipientDecision,
  type Verdict,
  type ZoneOutcome,
} from './verdict'

const PROG = 'haraka-backscatter'
const INI = 'backscatter.ini'

/** The package folder: its config/ holds the defaults. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..')

/** Exit statuses, as documented in --help. */
export const EXIT = { OK: 0, PROBLEM: 1, USAGE: 2 } as const

/** Where the command writes; tests and the bin script pass their own. */
export interface Io {
  out(text: string): void
  err(text: string): void
}

const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
}

/** Bad arguments or configuration: a message and exit status 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command = '',
  ) {
    super(message)
  }
}

// ---------------------------------------------------------------- help texts

const CONFIG_HELP = `  --config DIR  Haraka config directory holding ${INI} (a Haraka install
                directory with config/${INI} also works). Its settings
                override the package defaults key by key, as in Haraka.
                Default: ./config when it holds ${INI}, else the defaults.`

const EXIT_HELP = `Exit status:
  0  done: every zone usable and every lookup answered
  1  a zone is unusable (fails its RFC 5782 test points) or a lookup failed
  2  bad usage: unknown command or option, a bad argument, unreadable --config`

const HELP: Record<string, string> = {
  main: `Usage: ${PROG} <command> [options]

Look addresses up on ips.backscatterer.org (and any other configured zone) with
the configuration and lookup code of the Haraka plugin haraka-plugin-backscatter.

Commands:
  check IP...          listed or not, A answers, TXT, score and verdict per IP
  health               RFC 5782 test points of every zone, with timings
  explain --ip IP --from ADDR --rcpt ADDR...
                       the whole decision for one transaction, step by step
  help [COMMAND]       this text, or the help of a command

Options:
${CONFIG_HELP}
  -h, --help    show help ('${PROG} COMMAND --help' for a command)

${EXIT_HELP}
`,
  check: `Usage: ${PROG} check [--config DIR] [--json] IP...

For each IP and zone: listed or not, the A answers, the TXT reason and the score
it adds, then the verdict a bounce (MAIL FROM:<>) from that IP would get. The
zones' RFC 5782 test-point check runs first, as in the plugin; a zone that fails
it is shown with its answers but does not count.

Options:
${CONFIG_HELP}
  --json        one JSON object per IP and zone per line: ip, zone, health
                (passed, failed or off), status (listed, not-listed, error or
                skipped), listed, answers, txt, score, counted, detail, verdict
  -h, --help    show this help

${EXIT_HELP}
`,
  health: `Usage: ${PROG} health [--config DIR] [--json]

Query every zone's RFC 5782 test points through the configured resolvers:
127.0.0.2 must be listed and 127.0.0.1 must not (::ffff:7f00:2 and
::ffff:7f00:1 too when the zone has ipv6 on). Shows each answer and its time,
and whether the zone is usable. The plugin suspends a zone that fails.

Options:
${CONFIG_HELP}
  --json        one JSON object per zone per line
  -h, --help    show this help

${EXIT_HELP}
`,
  explain: `Usage: ${PROG} explain --ip IP --from ADDR --rcpt ADDR... [--relaying]

Walk through the plugin's decision for one transaction: the sender test, the
client skips, each zone's lookup, the score against the threshold, the action
for every recipient and the reply text.

Options:
  --ip IP       the connecting client's address
  --from ADDR   the envelope sender (MAIL FROM); '<>' or '' for the null sender
  --rcpt ADDR   an envelope recipient (RCPT TO); repeat for more
  --relaying    the client is authenticated or allowed to relay
${CONFIG_HELP}
  --json        the decision as one JSON object
  -h, --help    show this help

${EXIT_HELP}
`,
}

// ------------------------------------------------------------ configuration

interface HarakaConfig {
  root_path: string
  overrides_path?: string
  get(name: string): unknown
  module_config(defaultsPath: string, overridesPath?: string): HarakaConfig
}

export interface LoadedConfig {
  readonly settings: Settings
  readonly problems: readonly string[]
  /** Where the settings came from, for people. */
  readonly source: string
}

function fsErrorText(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ENOENT') return 'no such directory'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'ENOTDIR') return 'not a directory'
  return err instanceof Error ? err.message : String(err)
}

/** The folder whose backscatter.ini overrides the defaults, or undefined for none. */
function configDir(option: string | undefined): string | undefined {
  if (option === undefined) {
    const local = path.resolve('config')
    return fs.existsSync(path.join(local, INI)) ? local : undefined
  }
  if (option === '') throw new UsageError('--config needs a directory')
  const dir = path.resolve(option)
  try {
    if (!fs.statSync(dir).isDirectory()) throw new UsageError(`--config ${option}: not a directory`)
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK)
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw new UsageError(`--config ${option}: cannot read it: ${fsErrorText(err)}`)
  }
  // `haraka -c DIR` takes the install directory; accept that too.
  const nested = path.join(dir, 'config')
  if (!fs.existsSync(path.join(dir, INI)) && fs.existsSync(path.join(nested, INI))) return nested
  return dir
}

/** Read backscatter.ini as the plugin does; problems become warnings on stderr. */
export function loadConfig(option: string | undefined, io: Io): LoadedConfig {
  const dir = configDir(option)
  const defaults = path.join(PACKAGE_ROOT, 'config', INI)
  let source = `${defaults} (package defaults)`
  if (dir !== undefined) {
    const ini = path.join(dir, INI)
    if (fs.existsSync(ini)) {
      try {
        fs.accessSync(ini, fs.constants.R_OK)
      } catch (err) {
        throw new UsageError(`--config ${option ?? dir}: cannot read ${ini}: ${fsErrorText(err)}`)
      }
      source = `${ini} over the package defaults`
    } else {
      io.err(`${PROG}: warning: ${dir} holds no ${INI}; using the package defaults\n`)
    }
  }

  const harakaConfig = createRequire(__filename)('haraka-config') as HarakaConfig
  const cfg = harakaConfig.module_config(PACKAGE_ROOT)
  cfg.root_path = path.join(PACKAGE_ROOT, 'config')
  if (dir !== undefined) cfg.overrides_path = dir
  const { settings, problems, errors } = parseSettings(cfg.get(INI))
  for (const error of errors) io.err(`${PROG}: error: ${INI} ${error}\n`)
  for (const problem of problems) io.err(`${PROG}: warning: ${INI} ${problem}\n`)
  return { settings, problems, source }
}

function resolverText(settings: Settings): string {
  const servers = settings.dns.servers.length
    ? `${settings.dns.servers.join(', ')} ([dns] servers)`
    : `${dns.getServers().join(', ') || 'none found'} (system resolvers)`
  return `${servers}; timeout ${settings.dns.timeoutMs} ms x ${settings.dns.tries} tries`
}

// ------------------------------------------------------------------ output

/** Rows as aligned columns; the last column is not padded. */
export function table(rows: readonly (readonly string[])[], indent = ''): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows
    .map(
      (row) =>
        indent + row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  '),
    )
    .map((line) => `${line.trimEnd()}\n`)
    .join('')
}

const quote = (text: string): string => JSON.stringify(text)

function lookupText(r: LookupResult): string {
  if (r.status === 'listed') return `listed ${r.codes.join(',')}${r.reason ? ` TXT ${quote(r.reason)}` : ''}`
  if (r.status === 'not-listed') return 'not listed'
  return `error: ${r.reason}`
}

// ------------------------------------------------------------------ lookups

function zoneQueries(zone: ZoneSettings, ip: string): boolean {
  const family = net.isIP(ip)
  return (family === 4 && zone.ipv4) || (family === 6 && zone.ipv6)
}

type HealthLabel = 'passed' | 'failed' | 'unchecked' | 'off'

interface ZoneHealthInfo {
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
  /** The plugin uses this answer (the zone passed its health check and answered). */
  readonly counted: boolean
  /** Error or skip reason, or why the answer does not count. */
  readonly detail: string
}

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
      return {
        ...base,
        status: 'not-listed',
        listed: false,
        answers: [],
        txt: '',
        score: 0,
        counted: true,
        detail: '',
      }
    case 'error':
      return { ...base, ...noAnswer, status: 'error', detail: outcome.reason }
    case 'skipped':
      if (health.label === 'failed' && direct) {
        return rowFromLookup(base, direct, `ignored: zone failed its health check (${health.reason})`)
      }
      return { ...base, ...noAnswer, status: 'skipped', detail: outcome.reason }
  }
}

const noAnswer = { listed: false, answers: [], txt: '', score: 0, counted: false } as const

interface IpReport {
  readonly ip: string
  readonly rows: readonly ZoneRow[]
  readonly verdict: Verdict
  /** Why the plugin would not look this client up at all, or '' when it would. */
  readonly skip: string
}

/**
 * Look every IP up in every zone as the plugin would: the zones' health check
 * first (with the lookups already under way, so a dead resolver costs one
 * wait), then `check()`, whose verdict is the plugin's.
 */
async function lookupAll(
  checker: BackscatterChecker,
  settings: Settings,
  ips: readonly string[],
  relaying = false,
): Promise<{ reports: IpReport[]; health: Map<string, ZoneHealthInfo> }> {
  const direct = new Map<string, Promise<LookupResult>>()
  for (const ip of ips) {
    for (const zone of settings.zones) {
      if (zoneQueries(zone, ip)) direct.set(`${zone.name}\n${ip}`, checker.lookup(zone.name, ip))
    }
  }
  await Promise.all([checker.checkHealth(), ...direct.values()])
  const health = new Map<string, ZoneHealthInfo>(
    checker.healthStates().map((h) => [h.zone, { label: healthLabel(h.state, settings), reason: h.reason }]),
  )
  const reports = await Promise.all(
    ips.map(async (ip) => {
      const outcomes = await checker.check(ip)
      const rows: ZoneRow[] = []
      for (const zone of settings.zones) {
        const outcome = outcomes.find((o) => o.zone === zone.name)
        if (!outcome) continue
        const info = health.get(zone.name) ?? { label: 'off', reason: '' }
        rows.push(zoneRow(zone, ip, outcome, await direct.get(`${zone.name}\n${ip}`), info))
      }
      const client = clientToCheck({ ip, relaying }, settings)
      return {
        ip,
        rows,
        verdict: decideVerdict(ip, outcomes, settings),
        skip: 'skip' in client ? client.skip : '',
      }
    }),
  )
  return { reports, health }
}

function healthLines(settings: Settings, health: Map<string, ZoneHealthInfo>, indent = 'health: '): string {
  if (settings.dns.healthIntervalSeconds === 0) {
    return `${indent}checks are off ([dns] health_interval = 0): zones are used unchecked\n`
  }
  return table(
    settings.zones.map((z) => {
      const h = health.get(z.name)
      if (h?.label === 'failed') {
        return [z.name, `FAILED its RFC 5782 test-point check (${h.reason}); its answers are ignored`]
      }
      if (h?.label === 'passed') return [z.name, 'passed its RFC 5782 test-point check; in use']
      return [z.name, 'health check did not finish']
    }),
    indent,
  )
}

const ROW_HEADINGS = ['ZONE', 'HEALTH', 'RESULT', 'ANSWERS', 'SCORE', 'DETAIL']

/** A ZoneRow as the cells under ROW_HEADINGS. */
function rowCells(r: ZoneRow): string[] {
  const detail = [r.txt ? `TXT ${quote(r.txt)}` : '', r.detail].filter((s) => s !== '').join('; ')
  const result = r.status === 'not-listed' ? 'not listed' : r.status
  const answers = r.answers.length ? r.answers.join(',') : '-'
  return [r.zone, r.health, result, answers, String(r.score), detail || '-']
}

function hasProblem(reports: readonly IpReport[], health: Map<string, ZoneHealthInfo>): boolean {
  return reports.some((r) => r.rows.some((row) => row.status === 'error' || row.health === 'failed'))
    ? true
    : [...health.values()].some((h) => h.label === 'failed')
}

/** The reply Haraka sends for a refused recipient: `550 5.7.1 text`. */
function replyLine(action: 'reject' | 'defer', text: string): string {
  const code = action === 'reject' ? 550 : 450
  return `${code} ${DSN.create(code, text, 7, 1).reply}`
}

interface BounceVerdict {
  readonly action: 'accept' | 'reject' | 'defer'
  readonly why: string
  readonly score: number
  readonly threshold: number
  readonly reply: string
}

const WHY: Record<Extract<RecipientDecision, { action: 'accept' }>['why'], string> = {
  'not-listed': 'not listed',
  'below-threshold': 'score below the threshold',
  exempt: 'exempt recipient ([main] exempt_recipients)',
  'score-only': 'action is score: the score is recorded, nothing is refused',
}

/** What a bounce from the report's IP to an ordinary (not exempt) recipient would get. */
function bounceVerdict(report: IpReport, settings: Settings): BounceVerdict {
  const common = { score: report.verdict.score, threshold: settings.threshold }
  if (report.skip) return { ...common, action: 'accept', why: `never looked up: ${report.skip}`, reply: '' }
  const d = decideRecipient(report.verdict, '', settings)
  if (d.action === 'accept' && report.rows.every((r) => r.status === 'skipped')) {
    const why = `no zone queried (${[...new Set(report.rows.map((r) => r.detail))].join('; ')})`
    return { ...common, action: 'accept', why, reply: '' }
  }
  if (d.action === 'accept') return { ...common, action: 'accept', why: WHY[d.why], reply: '' }
  const exempt = [...settings.exemptRecipients].join(', ')
  const why = `score reached the threshold${exempt ? `; ${exempt} still accepted` : ''}`
  return {
    ...common,
    action: d.action,
    why,
    reply: replyLine(d.action, formatReply(report.verdict, settings)),
  }
}

// ---------------------------------------------------------------- commands

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>

function str(values: Values, key: string): string | undefined {
  const v = values[key]
  return typeof v === 'string' ? v : undefined
}

/** An IP as the plugin sees it (`::ffff:a.b.c.d` unmapped), or a usage error. */
function ipArgument(text: string, command: string): string {
  const ip = net.isIP(text) ? normalize_ip(text) : null
  if (!ip) throw new UsageError(`${quote(text)} is not an IP address`, command)
  return ip
}

async function withChecker<T>(settings: Settings, run: (c: BackscatterChecker) => Promise<T>): Promise<T> {
  // The command reports health itself; the checker's own log lines would repeat it.
  const checker = new BackscatterChecker(settings, { info: () => undefined, warn: () => undefined })
  try {
    return await run(checker)
  } finally {
    checker.close()
  }
}

async function runCheck(values: Values, positionals: string[], io: Io): Promise<number> {
  if (positionals.length === 0) throw new UsageError('give at least one IP address', 'check')
  const ips = [...new Set(positionals.map((p) => ipArgument(p, 'check')))]
  const { settings } = loadConfig(str(values, 'config'), io)
  const { reports, health } = await withChecker(settings, (c) => lookupAll(c, settings, ips))

  if (values.json) {
    for (const report of reports) {
      const verdict = bounceVerdict(report, settings)
      for (const row of report.rows) io.out(`${JSON.stringify({ ...row, verdict })}\n`)
    }
    return hasProblem(reports, health) ? EXIT.PROBLEM : EXIT.OK
  }

  let text = healthLines(settings, health)
  const rows = [['IP', ...ROW_HEADINGS]]
  for (const report of reports) {
    for (const r of report.rows) rows.push([r.ip, ...rowCells(r)])
  }
  text += `\n${table(rows)}`
  const action = settings.action
  const verdicts = [
    ['IP', 'SCORE', `VERDICT FOR A BOUNCE (threshold ${settings.threshold}, action ${action})`],
  ]
  for (const report of reports) {
    const v = bounceVerdict(report, settings)
    verdicts.push([
      report.ip,
      String(v.score),
      v.reply ? `${v.action} (${v.why}): ${v.reply}` : `${v.action}: ${v.why}`,
    ])
  }
  io.out(`${text}\n${table(verdicts)}`)
  return hasProblem(reports, health) ? EXIT.PROBLEM : EXIT.OK
}

interface PointReport extends TestPointAnswers {
  readonly ms: number
  readonly ok: boolean
}

interface ZoneReport {
  readonly zone: string
  readonly usable: boolean
  readonly reason: string
  readonly points: readonly PointReport[]
}

async function probeZone(checker: BackscatterChecker, zone: ZoneSettings): Promise<ZoneReport> {
  const points = await Promise.all(
    testPointsFor(zone).map(async (p): Promise<PointReport> => {
      const started = performance.now()
      const result = await checker.lookup(zone.name, p.point)
      const ms = Math.round(performance.now() - started)
      return { ...p, result, ms, ok: assessTestPoints([{ ...p, result }]).usable }
    }),
  )
  if (points.length === 0)
    return { zone: zone.name, usable: true, reason: 'ipv4 and ipv6 off: never queried', points }
  const a = assessTestPoints(points)
  return { zone: zone.name, usable: a.usable, reason: a.usable ? '' : a.reason, points }
}

async function runHealth(values: Values, positionals: string[], io: Io): Promise<number> {
  if (positionals.length) throw new UsageError(`unexpected argument ${quote(positionals[0] ?? '')}`, 'health')
  const { settings, source } = loadConfig(str(values, 'config'), io)
  const zones = await withChecker(settings, (c) => Promise.all(settings.zones.map((z) => probeZone(c, z))))
  const failed = zones.some((z) => !z.usable)

  if (values.json) {
    for (const z of zones) {
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
      io.out(`${JSON.stringify({ zone: z.zone, usable: z.usable, reason: z.reason, points })}\n`)
    }
    return failed ? EXIT.PROBLEM : EXIT.OK
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
    z.usable ? `usable${z.reason ? ` (${z.reason})` : ''}` : `UNUSABLE: ${z.reason}`,
  ])
  io.out(
    `config:    ${source}\nresolvers: ${resolverText(settings)}\n\n${table(rows)}\n${table(verdicts)}` +
      (failed
        ? `\nThe plugin suspends an unusable zone and ignores its answers until it passes again.\n`
        : ''),
  )
  return failed ? EXIT.PROBLEM : EXIT.OK
}

/** An envelope address from the command line: `<>`, `''`, `user@host`, `<user@host>`, `postmaster`. */
function addressArgument(text: string, option: string): Address {
  const trimmed = text.trim()
  const bracketed = trimmed.startsWith('<') ? trimmed : `<${trimmed}>`
  try {
    return new Address(bracketed)
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    throw new UsageError(`--${option} ${quote(text)} is not an envelope address: ${why}`, 'explain')
  }
}

function addressText(a: Address): string {
  if (isNullSender(a)) return '<>'
  return a.host ? `<${a.user ?? ''}@${a.host}>` : `<${a.user ?? ''}>`
}

function senderWhy(from: Address, settings: Settings): { bounce: boolean; why: string } {
  const bounce = isBounceSender(from, settings.senders)
  if (isNullSender(from)) {
    return bounce
      ? { bounce, why: 'the null sender <>: a bounce ([senders] null = true)' }
      : { bounce, why: 'the null sender <>, but [senders] null = false: not treated as a bounce' }
  }
  const part = localPart(from)
  if (bounce) {
    const origin = part === 'postmaster' ? 'postmaster always counts' : 'in [senders] local_parts'
    return { bounce, why: `local part ${quote(part)} claims a bounce (${origin})` }
  }
  return { bounce, why: `local part ${quote(part)} is not a bounce-type sender: never looked up (safe mode)` }
}

function clientPasses(relaying: boolean, settings: Settings): string {
  const parts: string[] = []
  if (settings.skip.private) parts.push('not private')
  if (relaying) parts.push('relaying, but [skip] relaying = false')
  else if (settings.skip.relaying) parts.push('not relaying')
  if (settings.skip.ips.length) parts.push('not in [skip] ips')
  return parts.length ? parts.join(', ') : 'no skip applies'
}

async function runExplain(values: Values, positionals: string[], io: Io): Promise<number> {
  if (positionals.length)
    throw new UsageError(`unexpected argument ${quote(positionals[0] ?? '')}`, 'explain')
  const ipText = str(values, 'ip')
  const fromText = str(values, 'from')
  const rcptTexts = (Array.isArray(values.rcpt) ? values.rcpt : []).filter((r) => typeof r === 'string')
  if (ipText === undefined) throw new UsageError('--ip IP is required', 'explain')
  if (fromText === undefined)
    throw new UsageError("--from ADDR is required ('<>' for the null sender)", 'explain')
  if (rcptTexts.length === 0) throw new UsageError('at least one --rcpt ADDR is required', 'explain')
  const ip = ipArgument(ipText, 'explain')
  const from = addressArgument(fromText, 'from')
  const rcpts = rcptTexts.map((r) => addressArgument(r, 'rcpt'))
  const relaying = values.relaying === true
  const { settings, source } = loadConfig(str(values, 'config'), io)

  const sender = senderWhy(from, settings)
  const client = clientToCheck({ ip, relaying }, settings)
  const skip = 'skip' in client ? client.skip : ''
  const checkIp = sender.bounce && 'ip' in client ? client.ip : undefined
  const looked = checkIp !== undefined
  const result =
    checkIp === undefined
      ? undefined
      : await withChecker(settings, (c) => lookupAll(c, settings, [checkIp], relaying))
  const report = result?.reports[0]
  const verdict = report?.verdict

  const recipients = rcpts.map((rcpt) => {
    const addr = addressText(rcpt)
    if (!verdict) return { rcpt: addr, action: 'accept', why: 'transaction not checked', reply: '' }
    const d = decideRecipient(verdict, localPart(rcpt), settings)
    if (d.action === 'accept') return { rcpt: addr, action: 'accept', why: WHY[d.why], reply: '' }
    return {
      rcpt: addr,
      action: d.action,
      why: 'score reached the threshold',
      reply: replyLine(d.action, formatReply(verdict, settings)),
    }
  })
  const reply = recipients.find((r) => r.reply)?.reply ?? ''
  const problem = result ? hasProblem(result.reports, result.health) : false

  if (values.json) {
    const out = {
      ip,
      from: addressText(from),
      relaying,
      sender,
      client: { checked: looked, skip: sender.bounce ? skip : 'not a bounce-type sender' },
      zones: report?.rows ?? [],
      score: verdict?.score ?? 0,
      threshold: settings.threshold,
      actionable: verdict?.actionable ?? false,
      action: settings.action,
      recipients,
      reply,
      header: verdict && settings.header ? `${settings.header}: ${headerValue(verdict)}` : '',
    }
    io.out(`${JSON.stringify(out)}\n`)
    return problem ? EXIT.PROBLEM : EXIT.OK
  }

  const lines: string[] = [`config: ${source}`, '']
  lines.push(`1. Sender   MAIL FROM:${addressText(from)}: ${sender.why}`)
  if (!sender.bounce) {
    lines.push('2. Client   not looked up: the sender is not a bounce')
  } else if (skip) {
    lines.push(`2. Client   ${ip}${relaying ? ', relaying' : ''}: skipped (${skip}); never looked up`)
  } else {
    lines.push(
      `2. Client   ${ip}${relaying ? ', relaying' : ''}: ${clientPasses(relaying, settings)}: looked up`,
    )
  }
  if (report && result && verdict) {
    lines.push("3. Lookups  (HEALTH: the zone's RFC 5782 test-point check; a failed zone does not count)")
    lines.push(table([ROW_HEADINGS, ...report.rows.map(rowCells)], '     ').trimEnd())
    const reached = verdict.actionable
      ? `reached: action ${settings.action}`
      : verdict.listed.length
        ? 'below it: every recipient accepted'
        : 'no listing: every recipient accepted'
    lines.push(`4. Score    ${verdict.score} (threshold ${settings.threshold}): ${reached}`)
  } else {
    lines.push('3. Lookups  none')
    lines.push('4. Score    none: every recipient accepted')
  }
  lines.push('5. Recipients')
  lines.push(
    table(
      recipients.map((r) => [r.rcpt, r.action, r.reply || r.why]),
      '     ',
    ).trimEnd(),
  )
  lines.push(`6. Reply    ${reply || 'none: no recipient is refused'}`)
  if (verdict && settings.header)
    lines.push(`   Header   on accepted mail: ${settings.header}: ${headerValue(verdict)}`)
  io.out(`${lines.join('\n')}\n`)
  return problem ? EXIT.PROBLEM : EXIT.OK
}

// -------------------------------------------------------------------- main

const COMMON_OPTIONS = {
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

const COMMANDS = {
  check: { options: COMMON_OPTIONS, run: runCheck },
  health: { options: COMMON_OPTIONS, run: runHealth },
  explain: {
    options: {
      ...COMMON_OPTIONS,
      ip: { type: 'string' },
      from: { type: 'string' },
      rcpt: { type: 'string', multiple: true },
      relaying: { type: 'boolean' },
    },
    run: runExplain,
  },
} as const

type CommandName = keyof typeof COMMANDS

const isCommand = (name: string | undefined): name is CommandName =>
  name !== undefined && Object.hasOwn(COMMANDS, name)

/** The index of the command word: the first argument that is not an option or --config's value. */
function commandIndex(args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ''
    if (arg === '--config') i++
    else if (arg === '--') return i + 1 < args.length ? i + 1 : -1
    else if (!arg.startsWith('-')) return i
  }
  return -1
}

/**
 * Run the command with `args` (the arguments after the program name) and
 * return the exit status. Never throws.
 */
export async function main(args: readonly string[], io: Io = processIo): Promise<number> {
  const at = commandIndex(args)
  const name = at >= 0 ? args[at] : undefined
  const rest = at >= 0 ? [...args.slice(0, at), ...args.slice(at + 1)] : [...args]
  try {
    if (name === 'help') {
      const topic = rest.find((a) => !a.startsWith('-'))
      if (topic !== undefined && !isCommand(topic)) throw new UsageError(`unknown command ${quote(topic)}`)
      io.out(HELP[topic ?? 'main'] ?? '')
      return EXIT.OK
    }
    if (!isCommand(name)) {
      if (name === undefined && (rest.includes('--help') || rest.includes('-h'))) {
        io.out(HELP.main ?? '')
        return EXIT.OK
      }
      throw new UsageError(name === undefined ? 'no command given' : `unknown command ${quote(name)}`)
    }
    const command = COMMANDS[name]
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err), name)
    }
    if (parsed.values.help) {
      io.out(HELP[name] ?? '')
      return EXIT.OK
    }
    return await command.run(parsed.values as Values, parsed.positionals, io)
  } catch (err) {
    if (err instanceof UsageError) {
      const where = err.command || (isCommand(name) ? name : '')
      io.err(`${PROG}${where ? ` ${where}` : ''}: ${err.message}\n`)
      io.err(`Try '${PROG}${where ? ` ${where}` : ''} --help'.\n`)
      return EXIT.USAGE
    }
    io.err(`${PROG}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return EXIT.PROBLEM
  }
}
