import net from 'node:net'

import { parseTemplate, type Template } from './template'

/** What the plugin does with a bounce whose score reaches the threshold. */
export type Action = 'reject' | 'defer' | 'score'

export interface ZoneSettings {
  /** DNS zone queried, e.g. `ips.backscatterer.org`. */
  readonly name: string
  /** Score added when the zone lists the client and no per-answer score matches. */
  readonly score: number
  /** Per-answer scores, keyed by A record (`127.0.0.2`). Overrides `score`. */
  readonly answerScores: ReadonlyMap<string, number>
  /** Query the zone for IPv4 clients. Default true. */
  readonly ipv4: boolean
  /** Query the zone for IPv6 clients. Default false: ips.backscatterer.org lists IPv4 only. */
  readonly ipv6: boolean
  /** Where a refused sender can look the listing up; `{ip}` is replaced. Empty: none. */
  readonly lookupUrl: string
  /** rbldnsd zone file to answer from instead of DNS. Empty: use DNS. */
  readonly file: string
  /**
   * Suspend the zone when it does not list its RFC 5782 positive test point
   * (127.0.0.2). Default false: a warning only, as a missing entry cannot cause
   * a false refusal.
   */
  readonly requireTestPoint: boolean
}

export interface DnsSettings {
  /** Resolvers as `ip` or `ip:port`. Empty: the system resolvers. */
  readonly servers: readonly string[]
  /** Wait for one DNS try, in milliseconds. */
  readonly timeoutMs: number
  /** DNS tries per query; a lookup never waits longer than timeoutMs × tries. */
  readonly tries: number
  /** Cached answers (per zone and IP) at most; 0 turns the cache off. */
  readonly cacheSize: number
  /** Longest time a listing is cached, whatever its TTL, in seconds. */
  readonly maxTtlSeconds: number
  /** How long a not-listed answer is cached, in seconds. */
  readonly negativeTtlSeconds: number
  /** Seconds between RFC 5782 test-point checks of each zone; 0 turns them off. */
  readonly healthIntervalSeconds: number
}

export interface Settings {
  readonly zones: readonly ZoneSettings[]
  /** Score at which `action` applies. */
  readonly threshold: number
  readonly action: Action
  /** Reply text; placeholders {ip} {zone} {reason} {url} {score}. */
  readonly message: string
  /** `message`, split at its placeholders. */
  readonly messageTemplate: Template
  /** Lower-case local parts that are always accepted; postmaster always among them (RFC 5321 §4.5.1). */
  readonly exemptRecipients: ReadonlySet<string>
  /** Header added to accepted, checked messages. Empty: none. */
  readonly header: string
  readonly senders: {
    /** Treat the null sender `<>` as a bounce. */
    readonly null: boolean
    /** Lower-case local parts that mark a bounce-type sender (always includes postmaster). */
    readonly localParts: ReadonlySet<string>
  }
  readonly skip: {
    /** Skip private, loopback and link-local clients. */
    readonly private: boolean
    /** Skip relaying (authenticated or relay-allowed) clients. */
    readonly relaying: boolean
    /** Addresses and CIDRs never looked up. */
    readonly ips: readonly string[]
  }
  readonly dns: DnsSettings
}

export const BACKSCATTERER = 'ips.backscatterer.org'
const BACKSCATTERER_URL = 'https://www.backscatterer.org/?target=test&ip={ip}'

export const DEFAULT_MESSAGE =
  'Backscatter refused: {ip} is listed on {zone} ({reason}); bounces from it are not accepted, see {url}'

const MAX_TIMEOUT_MS = 10_000
const MAX_TRIES = 5

/** The result of reading the ini: settings to use and one line per problem found. */
export interface ParsedSettings {
  readonly settings: Settings
  /** Problems to log as warnings: the default is used and nothing is refused that the operator allowed. */
  readonly problems: readonly string[]
  /** Problems to log as errors: a value that changes what is refused (e.g. `action`). */
  readonly errors: readonly string[]
}

type RawSection = Record<string, unknown>

const KNOWN_KEYS: Record<string, readonly string[]> = {
  main: ['zones', 'threshold', 'action', 'message', 'exempt_recipients', 'header'],
  senders: ['null', 'local_parts'],
  skip: ['private', 'relaying', 'ips'],
  dns: ['servers', 'timeout_ms', 'tries', 'cache_size', 'max_ttl', 'negative_ttl', 'health_interval'],
}
const ZONE_KEYS = ['score', 'ipv4', 'ipv6', 'lookup_url', 'file', 'require_test_point']

/** Collects problems while reading values; every reader falls back to the default. */
class Reader {
  readonly problems: string[] = []
  readonly errors: string[] = []

  constructor(private readonly raw: Record<string, RawSection>) {}

  section(name: string): RawSection {
    const s = this.raw[name]
    return s && typeof s === 'object' ? s : {}
  }

  private has(sect: string, key: string): boolean {
    return Object.hasOwn(this.section(sect), key)
  }

  private value(sect: string, key: string): unknown {
    return this.section(sect)[key]
  }

  problem(sect: string, key: string, text: string): void {
    this.problems.push(`[${sect}] ${key}: ${text}`)
  }

  bool(sect: string, key: string, def: boolean): boolean {
    if (!this.has(sect, key)) return def
    const v = this.value(sect, key)
    if (typeof v === 'boolean') return v
    const s = String(v).trim().toLowerCase()
    if (['true', 'yes', 'on', '1'].includes(s)) return true
    if (['false', 'no', 'off', '0'].includes(s)) return false
    this.problem(sect, key, `"${String(v)}" is not true or false; using ${def}`)
    return def
  }

  number(sect: string, key: string, def: number, min: number, max: number, integer = false): number {
    if (!this.has(sect, key)) return def
    const v = this.value(sect, key)
    const n = typeof v === 'number' ? v : String(v).trim() === '' ? NaN : Number(v)
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      this.problem(sect, key, `"${String(v)}" is not a${integer ? ' whole' : ''} number; using ${def}`)
      return def
    }
    if (n < min || n > max) {
      this.problem(sect, key, `${n} is outside ${min}..${max}; using ${def}`)
      return def
    }
    return n
  }

  string(sect: string, key: string, def: string): string {
    if (!this.has(sect, key)) return def
    const v = this.value(sect, key)
    return Array.isArray(v) ? v.join(',') : String(v).trim()
  }

  /** A comma/space separated list, or an ini `key[]` array. */
  list(sect: string, key: string, def: readonly string[]): string[] {
    if (!this.has(sect, key)) return [...def]
    const v = this.value(sect, key)
    const parts = (Array.isArray(v) ? v : [v]).flatMap((item) => String(item).split(/[\s,;]+/))
    return parts.map((p) => p.trim()).filter((p) => p !== '')
  }

  unknownKeys(sect: string, known: readonly string[], isKnown: (key: string) => boolean = () => false): void {
    for (const key of Object.keys(this.section(sect))) {
      if (!known.includes(key) && !isKnown(key)) this.problem(sect, key, 'unknown setting; ignored')
    }
  }
}

// RFC 1035 host name: labels of letters, digits and hyphens, at most 253 characters.
const ZONE_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/
// A local part as it can appear in a config list (no quoting, no @).
const LOCAL_PART = /^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$/

/** Is `value` an IP address or a CIDR (`192.0.2.0/24`, `2001:db8::/32`)? */
export function isIpOrCidr(value: string): boolean {
  const [addr, bits, extra] = value.split('/')
  if (extra !== undefined || addr === undefined) return false
  const family = net.isIP(addr)
  if (family === 0) return false
  if (bits === undefined) return true
  if (!/^\d{1,3}$/.test(bits)) return false
  return Number(bits) <= (family === 4 ? 32 : 128)
}

function readZone(r: Reader, name: string): ZoneSettings {
  const isBackscatterer = name === BACKSCATTERER
  const answerScores = new Map<string, number>()
  for (const key of Object.keys(r.section(name))) {
    if (!isListingCode(key)) continue
    const score = r.number(name, key, NaN, -1000, 1000)
    if (!Number.isNaN(score)) answerScores.set(key, score)
  }
  r.unknownKeys(name, ZONE_KEYS, isListingCode)
  const ipv4 = r.bool(name, 'ipv4', true)
  const ipv6 = r.bool(name, 'ipv6', false)
  if (!ipv4 && !ipv6) r.problem(name, 'ipv4', 'both ipv4 and ipv6 are off; the zone is never queried')
  return Object.freeze({
    name,
    score: r.number(name, 'score', 5, -1000, 1000),
    answerScores,
    ipv4,
    ipv6,
    lookupUrl: r.string(name, 'lookup_url', isBackscatterer ? BACKSCATTERER_URL : ''),
    file: r.string(name, 'file', ''),
    requireTestPoint: r.bool(name, 'require_test_point', false),
  })
}

/** Answer codes usable as per-answer score keys: 127.0.0.0/8 except the 127.255.255.x errors. */
function isListingCode(key: string): boolean {
  return net.isIPv4(key) && key.startsWith('127.') && !key.startsWith('127.255.255.')
}

function readZones(r: Reader): ZoneSettings[] {
  const names: string[] = []
  for (const raw of r.list('main', 'zones', [BACKSCATTERER])) {
    const name = raw.toLowerCase().replace(/\.$/, '')
    if (!ZONE_NAME.test(name)) r.problem('main', 'zones', `"${raw}" is not a DNS zone name; ignored`)
    else if (names.includes(name)) r.problem('main', 'zones', `"${raw}" is named twice`)
    else names.push(name)
  }
  if (names.length === 0) {
    r.problem('main', 'zones', `no usable zone; using ${BACKSCATTERER}`)
    names.push(BACKSCATTERER)
  }
  return names.map((name) => readZone(r, name))
}

function readAction(r: Reader): Action {
  const action = r.string('main', 'action', 'reject').toLowerCase()
  if (action === 'reject' || action === 'defer' || action === 'score') return action
  r.problem('main', 'action', `"${action}" is not reject, defer or score; using reject`)
  return 'reject'
}

function readLocalParts(r: Reader, sect: string, key: string, def: readonly string[]): Set<string> {
  const parts = new Set<string>()
  for (const raw of r.list(sect, key, def)) {
    const part = raw.toLowerCase()
    if (LOCAL_PART.test(part)) parts.add(part)
    else r.problem(sect, key, `"${raw}" is not a local part; ignored`)
  }
  return parts
}

function readSkipIps(r: Reader): string[] {
  const ips: string[] = []
  for (const item of r.list('skip', 'ips', [])) {
    if (!isIpOrCidr(item)) r.problem('skip', 'ips', `"${item}" is not an IP address or CIDR; ignored`)
    else if (/\/0+$/.test(item)) {
      // haraka-net-utils reads a /0 mask as /32; to check nobody, use action = score instead.
      r.problem(
        'skip',
        'ips',
        `"${item}" would skip every client; ignored (to refuse nothing, set [main] action = score)`,
      )
    } else ips.push(item)
  }
  return ips
}

/** RFC 5321 §4.5.1: postmaster must get its mail, so it is always exempt. */
function readExemptRecipients(r: Reader): Set<string> {
  const exempt = readLocalParts(r, 'main', 'exempt_recipients', ['postmaster', 'abuse'])
  if (!exempt.has('postmaster')) {
    r.problem('main', 'exempt_recipients', 'postmaster is always exempt (RFC 5321 section 4.5.1); added')
    exempt.add('postmaster')
  }
  return exempt
}

function readServers(r: Reader): string[] {
  const servers: string[] = []
  for (const item of r.list('dns', 'servers', [])) {
    if (parseServer(item)) servers.push(item)
    else r.problem('dns', 'servers', `"${item}" is not ip, ip:port or [ipv6]:port; ignored`)
  }
  return servers
}

/** Parse `ip`, `ip:port`, `[ipv6]:port` or a bare IPv6 address. */
export function parseServer(item: string): { host: string; port: number } | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(item)
  const v4 = /^([\d.]+)(?::(\d{1,5}))?$/.exec(item)
  const m = bracketed ?? v4
  const host = m ? m[1] : item
  const port = m?.[2] === undefined ? 53 : Number(m[2])
  if (host === undefined || net.isIP(host) === 0) return undefined
  if (port < 1 || port > 65535) return undefined
  return { host, port }
}

function readDns(r: Reader): DnsSettings {
  return Object.freeze({
    servers: readServers(r),
    timeoutMs: r.number('dns', 'timeout_ms', 1000, 50, MAX_TIMEOUT_MS, true),
    tries: r.number('dns', 'tries', 2, 1, MAX_TRIES, true),
    // lru-cache allocates its index for `max` entries up front: 1 000 000 is about 40 MB.
    cacheSize: r.number('dns', 'cache_size', 10_000, 0, 1_000_000, true),
    maxTtlSeconds: r.number('dns', 'max_ttl', 3600, 0, 7 * 86400, true),
    negativeTtlSeconds: r.number('dns', 'negative_ttl', 300, 0, 86400, true),
    healthIntervalSeconds: r.number('dns', 'health_interval', 300, 0, 86400, true),
  })
}

// Haraka's hook timeout is 30 s; the whole lookup (timeout × tries) stays well below it.
const MAX_LOOKUP_MS = 20_000

/**
 * Turn the raw ini object (as haraka-config returns it) into frozen settings.
 * Never throws: every problem becomes a line in `problems` and the default is used.
 */
export function parseSettings(raw: unknown): ParsedSettings {
  const r = new Reader(raw && typeof raw === 'object' ? (raw as Record<string, RawSection>) : {})
  const zones = readZones(r)
  for (const sect of Object.keys(KNOWN_KEYS)) r.unknownKeys(sect, KNOWN_KEYS[sect] ?? [])
  const zoneNames = new Set(zones.map((z) => z.name))
  const rawSections = raw && typeof raw === 'object' ? Object.keys(raw) : []
  for (const sect of rawSections) {
    if (!(sect in KNOWN_KEYS) && !zoneNames.has(sect)) {
      r.problems.push(`[${sect}]: section is not a zone named in [main] zones; ignored`)
    }
  }

  let dns = readDns(r)
  if (dns.timeoutMs * dns.tries > MAX_LOOKUP_MS) {
    r.problem('dns', 'tries', `timeout_ms × tries exceeds ${MAX_LOOKUP_MS} ms; using 1`)
    dns = Object.freeze({ ...dns, tries: 1 })
  }

  const header = r.string('main', 'header', 'X-Haraka-Backscatter')
  const validHeader = header === '' || /^[\x21-\x39\x3b-\x7e]+$/.test(header)
  if (!validHeader)
    r.problem('main', 'header', `"${header}" is not a header field name; using X-Haraka-Backscatter`)

  const message = r.string('main', 'message', DEFAULT_MESSAGE)
  const settings: Settings = Object.freeze({
    zones: Object.freeze(zones),
    threshold: r.number('main', 'threshold', 5, -1000, 1000),
    action: readAction(r),
    message: message === '' ? DEFAULT_MESSAGE : message,
    messageTemplate: parseTemplate(message === '' ? DEFAULT_MESSAGE : message),
    exemptRecipients: readExemptRecipients(r),
    header: validHeader ? header : 'X-Haraka-Backscatter',
    senders: Object.freeze({
      null: r.bool('senders', 'null', true),
      localParts: new Set(['postmaster', ...readLocalParts(r, 'senders', 'local_parts', [])]),
    }),
    skip: Object.freeze({
      private: r.bool('skip', 'private', true),
      relaying: r.bool('skip', 'relaying', true),
      ips: Object.freeze(readSkipIps(r)),
    }),
    dns,
  })
  return Object.freeze({ settings, problems: Object.freeze(r.problems), errors: Object.freeze(r.errors) })
}
