import { keysFileOnce } from '../batv/keys-file'
import { readBatv, type ConfigProblem, type ReadConfigLines, type ReadKeysFile } from './batv'
import { readLedger } from './ledger'
import { listenAddress } from './listen'
import { withoutComment, type Setting } from './kinds'
import {
  SECTIONS,
  configDomain,
  ZONE_PRESETS,
  ZONE_SECTION,
  defaultsOf,
  zoneDefaults,
  zoneKey,
  type SectionSpec,
  type SectionValues,
} from './schema'
import { parseTemplate } from '../core/template'
import type { DnsSettings, RecipientAction, Settings, SpfResult, ZoneSettings } from '../core/types'

export { BACKSCATTERER, DEFAULT_MESSAGE, isIpOrCidr, parseServer } from './schema'
export type { ConfigProblem, ReadConfigLines, ReadKeysFile } from './batv'

/** The result of reading the ini: settings to use and one line per problem found. */
export interface ParsedSettings {
  readonly settings: Settings
  /** Problems to log as warnings: the default is used and nothing is refused that the operator allowed. */
  readonly problems: readonly string[]
  /** Problems to log as errors: a value that changes what is refused (e.g. `action`). */
  readonly errors: readonly string[]
  /** Problems of the keys (BATV, the ledger), in config/backscatter.keys or a place they were kept before, with file and line. */
  readonly keyProblems: readonly ConfigProblem[]
  /** Information to log once at load: no problem, but something the operator may want to set. */
  readonly notes: readonly string[]
}

/** Where parseSettings finds what haraka-config's values cannot give exactly. */
export interface SettingsSources {
  /** Reads a config file's lines as text: [batv.keys] of backscatter.ini and of [batv] keys_file. */
  readonly readLines?: ReadConfigLines
  /** Reads config/backscatter.keys, where the BATV secrets belong. */
  readonly readKeysFile?: ReadKeysFile
  /** The clock, for the rollout hint of [batv] missing_from. */
  readonly nowMs?: number
}

type RawSection = Readonly<Record<string, unknown>>
type Keys = Record<string, Setting<unknown>>

/** One line per problem, each naming its section and key. */
class Report {
  readonly problems: string[] = []
  readonly errors: string[] = []

  add(section: string, key: string, text: string, severity?: 'error'): void {
    ;(severity === 'error' ? this.errors : this.problems).push(`[${section}] ${key}: ${text}`)
  }
}

function sectionsOf(raw: unknown): Map<string, RawSection> {
  const sections = new Map<string, RawSection>()
  if (!raw || typeof raw !== 'object') return sections
  for (const [name, section] of Object.entries(raw)) {
    if (section && typeof section === 'object' && !Array.isArray(section)) sections.set(name, section)
    else sections.set(name, {})
  }
  return sections
}

/**
 * Read one section by its declaration: a value that cannot be used falls back
 * (to the default, or to `onInvalid`) with one line; an unknown key is reported.
 */
function readSection<K extends Keys>(
  report: Report,
  name: string,
  raw: RawSection,
  spec: SectionSpec<K>,
  defaults: SectionValues<K>,
): { values: SectionValues<K>; patterned: Map<string, unknown> } {
  const values = { ...defaults }
  for (const [key, setting] of Object.entries(spec.keys) as [keyof K & string, Setting<unknown>][]) {
    if (!Object.hasOwn(raw, key)) continue
    const reading = setting.kind.read(setting.freeText ? raw[key] : withoutComment(raw[key]))
    for (const note of reading.notes) report.add(name, key, note)
    if (reading.ok) {
      values[key] = reading.value as SectionValues<K>[typeof key]
      continue
    }
    const fallback = (setting.onInvalid ?? defaults[key]) as SectionValues<K>[typeof key]
    const shown = setting.kind.format(fallback)
    // An empty fallback is said in words: "using " and nothing would read as a cut-off line.
    const instead = shown === '' ? (setting.emptyMeans ?? 'left empty') : `using ${shown}`
    report.add(name, key, `${reading.why}; ${instead}`, setting.severity)
    values[key] = fallback
  }
  const patterned = new Map<string, unknown>()
  for (const key of Object.keys(raw)) {
    if (Object.hasOwn(spec.keys, key)) continue
    const pattern = spec.patternKeys
    if (!pattern?.matches(key)) {
      report.add(name, key, 'unknown setting; ignored')
      continue
    }
    const reading = pattern.kind.read(withoutComment(raw[key]))
    if (reading.ok) patterned.set(key, reading.value)
    else report.add(name, key, `${reading.why}; ${pattern.onInvalid}`, pattern.severity)
    if (!reading.ok && pattern.fallback !== undefined) patterned.set(key, pattern.fallback)
  }
  return { values, patterned }
}

/** Does a list value name anything at all (comments and separators aside)? */
function namesAnything(raw: unknown): boolean {
  const value = withoutComment(raw)
  return (Array.isArray(value) ? value : [value]).some(
    (v) => (typeof v === 'string' || typeof v === 'number') && String(v).replace(/[\s,;]+/g, '') !== '',
  )
}

/** Does a section hold only what the package ships for that zone (so nobody wrote it)? */
function isPackageSection(name: string, section: RawSection): boolean {
  if (!Object.hasOwn(ZONE_PRESETS, name)) return false
  const defaults: Record<string, unknown> = zoneDefaults(name)
  const keys: Keys = ZONE_SECTION.keys
  return Object.entries(section).every(([key, value]) => {
    const setting = keys[key]
    const reading = setting?.kind.read(withoutComment(value))
    return setting && reading?.ok && setting.kind.format(reading.value) === setting.kind.format(defaults[key])
  })
}

/** Zone sections by zone name in lower case; sections that differ only in case are merged in order. */
function zoneSectionsOf(sections: Map<string, RawSection>): Map<string, RawSection> {
  const zones = new Map<string, RawSection>()
  for (const [name, section] of sections) {
    if (Object.hasOwn(SECTIONS, name)) continue
    zones.set(zoneKey(name), { ...zones.get(zoneKey(name)), ...section })
  }
  return zones
}

function readZone(report: Report, name: string, raw: RawSection): ZoneSettings {
  const { values, patterned } = readSection(report, name, raw, ZONE_SECTION, zoneDefaults(name))
  if (!values.ipv4 && !values.ipv6)
    report.add(name, 'ipv4', 'both ipv4 and ipv6 are off; the zone is never queried')
  return Object.freeze({
    name,
    score: values.score,
    answerScores: patterned as Map<string, number>,
    ipv4: values.ipv4,
    ipv6: values.ipv6,
    lookupUrl: values.lookup_url,
    file: values.file,
    requireTestPoint: values.require_test_point,
  })
}

// Haraka's hook timeout is 30 s; the whole lookup (timeout × tries) stays well below it.
const MAX_LOOKUP_MS = 20_000

function readDns(report: Report, raw: RawSection): DnsSettings {
  const dns = readSection(report, 'dns', raw, SECTIONS.dns, defaultsOf(SECTIONS.dns.keys)).values
  if (dns.timeout_ms * dns.tries > MAX_LOOKUP_MS) {
    report.add('dns', 'tries', `timeout_ms × tries exceeds ${MAX_LOOKUP_MS} ms; using 1`)
    dns.tries = 1
  }
  return Object.freeze({
    servers: Object.freeze([...dns.servers]),
    timeoutMs: dns.timeout_ms,
    tries: dns.tries,
    cacheSize: dns.cache_size,
    maxTtlSeconds: dns.max_ttl,
    negativeTtlSeconds: dns.negative_ttl,
    healthIntervalSeconds: dns.health_interval,
  })
}

/**
 * Turn the raw ini object (as haraka-config returns it) into frozen settings.
 * Never throws: every problem becomes one line in `problems` (or `errors`) and
 * a safe value is used.
 */
export function parseSettings(raw: unknown, sources: SettingsSources = {}): ParsedSettings {
  const report = new Report()
  const sections = sectionsOf(raw)
  const section = (name: string): RawSection => sections.get(name) ?? {}
  const read = <K extends Keys>(name: string, spec: SectionSpec<K>): SectionValues<K> =>
    readSection(report, name, section(name), spec, defaultsOf(spec.keys)).values

  const main = read('main', SECTIONS.main)
  const senders = read('senders', SECTIONS.senders)
  const skip = read('skip', SECTIONS.skip)
  const dns = readDns(report, section('dns'))
  const metrics = read('metrics', SECTIONS.metrics)
  // BATV and the ledger both keep their secrets in config/backscatter.keys: read and reported once.
  const keysFile = keysFileOnce(sources.readKeysFile)
  const batv = readBatv(
    read('batv', SECTIONS.batv),
    { readLines: sources.readLines, keysFile },
    sources.nowMs ?? Date.now(),
  )
  const selfCheck = read('self_check', SECTIONS.self_check)
  report.problems.push(...batv.problems)
  report.errors.push(...batv.errors)
  const ledger = readLedger(read('ledger', SECTIONS.ledger), keysFile)
  report.errors.push(...ledger.errors)
  // A tag is checked only on a checked bounce: a local part the zones never look up is never checked.
  for (const part of batv.batv.checkLocalParts) {
    if (part !== 'postmaster' && !senders.local_parts.includes(part)) {
      report.add(
        'batv',
        'check_local_parts',
        `${part} is not a bounce-type sender, so its mail is never checked; add it to [senders] local_parts`,
      )
    }
  }
  const guard = read('outbound_guard', SECTIONS.outbound_guard)
  const domains = section('recipient_domains')
  const recipientActions = new Map<string, RecipientAction>()
  const actions = readSection(report, 'recipient_domains', domains, SECTIONS.recipient_domains, {}).patterned
  for (const [key, action] of actions) {
    recipientActions.set(configDomain(key) ?? key.toLowerCase(), action as RecipientAction)
  }

  const zoneSections = zoneSectionsOf(sections)
  const zones = main.zones.map((name) => readZone(report, name, zoneSections.get(name) ?? {}))
  for (const [name, sectionValues] of sections) {
    if (Object.hasOwn(SECTIONS, name) || main.zones.includes(zoneKey(name))) continue
    // The package's own section for a zone not in use is nobody's mistake.
    if (isPackageSection(name, sectionValues)) continue
    report.problems.push(`[${name}]: section is not a zone named in [main] zones; ignored`)
  }

  // RFC 5321 §4.5.1: postmaster must get its mail, so it is always exempt.
  const exempt = new Set(main.exempt_recipients)
  if (!exempt.has('postmaster')) {
    report.add('main', 'exempt_recipients', 'postmaster is always exempt (RFC 5321 section 4.5.1); added')
    exempt.add('postmaster')
  }
  const message = main.message === '' ? SECTIONS.main.keys.message.default : main.message

  const settings: Settings = Object.freeze({
    zones: Object.freeze(zones),
    threshold: main.threshold,
    action: main.action,
    message,
    messageTemplate: parseTemplate(message),
    exemptRecipients: exempt,
    recipientActions,
    header: main.header,
    senders: Object.freeze({
      null: senders.null,
      localParts: new Set(['postmaster', ...senders.local_parts]),
    }),
    skip: Object.freeze({
      private: skip.private,
      relaying: skip.relaying,
      ips: Object.freeze([...skip.ips]),
    }),
    dns,
    metrics: Object.freeze({ listen: listenAddress(metrics.listen) }),
    batv: batv.batv,
    ledger: ledger.ledger,
    outboundGuard: Object.freeze({
      mode: guard.mode,
      unverifiedSpf: new Set(guard.unverified_spf as readonly SpfResult[]),
    }),
    selfCheck: Object.freeze({
      enabled: selfCheck.enabled,
      ips: Object.freeze([...selfCheck.ips]),
      ipsSet: namesAnything(section('self_check').ips),
      intervalMinutes: selfCheck.interval_minutes,
    }),
  })
  return Object.freeze({
    settings,
    problems: Object.freeze(report.problems),
    errors: Object.freeze(report.errors),
    keyProblems: Object.freeze([...batv.keyProblems, ...ledger.keyProblems]),
    notes: Object.freeze([...batv.notes]),
  })
}
