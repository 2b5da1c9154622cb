// Every setting of config/backscatter.ini, declared once: section, key, kind (type
// and range), default and a line of documentation. The parser, the unknown-key
// check, the shipped ini and the tables of docs/settings.md all follow this table (the tests
// compare them). A new section is one more entry in SECTIONS: a fixed name such
// as [batv] or [batv.keys] (with `patternKeys` for keys chosen by the operator).
import net from 'node:net'

import { EXIM_LIFETIME_DAYS, MAX_LIFETIME_DAYS } from '../batv/sign'
import { routingDomain } from '../core/domain'
import { parseListen } from './listen'
import {
  boolean,
  integer,
  list,
  number,
  oneOf,
  setting,
  textOf,
  type Item,
  type Kind,
  type Setting,
} from './kinds'
import { reservedReason } from '../core/self-check'
import { PLACEHOLDERS } from '../core/template'
import { ACTIONS, GUARD_MODES, LEDGER_MODES, RECIPIENT_ACTIONS, SPF_RESULTS } from '../core/types'
import { redisUrlProblem } from './redis-url'

export const BACKSCATTERER = 'ips.backscatterer.org'

export const DEFAULT_MESSAGE =
  'Backscatter refused: {ip} is listed on {zone} ({reason}); bounces from it are not accepted, see {url}'

/** Keys not declared one by one but recognised by their form, e.g. answer codes. */
export interface PatternKeys<T> {
  /** How docs/settings.md and the ini show such a key, e.g. `127.0.0.N`. */
  readonly label: string
  readonly matches: (key: string) => boolean
  readonly kind: Kind<T>
  readonly doc: string
  /** What happens to a key whose value cannot be used, e.g. "ignored, …". */
  readonly onInvalid: string
  /** Used for a key whose value cannot be used, where ignoring it would refuse more (e.g. an action). */
  readonly fallback?: unknown
  /** An invalid value changes what is refused: report it at error level. */
  readonly severity?: 'error'
}

export interface SectionSpec<K extends Record<string, Setting<unknown>> = Record<string, Setting<unknown>>> {
  readonly doc: string
  readonly keys: K
  readonly patternKeys?: PatternKeys<unknown>
  /**
   * Read from the file's text, not from haraka-config's values (which turn
   * `0123` into 123): the section's values are kept exactly as written.
   */
  readonly rawText?: true
}

/** The values of a section, typed by its declaration. */
export type SectionValues<K> = { -readonly [P in keyof K]: K[P] extends Setting<infer T> ? T : never }

// RFC 1035 host name: labels of letters, digits and hyphens, at most 253 characters.
const ZONE_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/
// A local part as it can appear in a config list (no quoting, no @).
const LOCAL_PART = /^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$/
// A mail domain: a host name (RFC 1035 labels), lower case.
const DOMAIN_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/
// A date as YYYY-MM-DD.
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/
// A header field name: printable ASCII except the colon (RFC 5322 §3.6.8).
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/

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

/** A zone as named in [main] zones, and as its section is found: lower case, no final dot. */
export function zoneKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '')
}

/** Answer codes usable as per-answer score keys: 127.0.0.0/8 except the 127.255.255.x errors. */
function isListingCode(key: string): boolean {
  return net.isIPv4(key) && key.startsWith('127.') && !key.startsWith('127.255.255.')
}

function zoneName(raw: string): Item {
  const name = zoneKey(raw)
  return ZONE_NAME.test(name) ? { value: name } : { drop: `"${raw}" is not a DNS zone name; ignored` }
}

function localPart(raw: string): Item {
  const part = raw.toLowerCase()
  return LOCAL_PART.test(part) ? { value: part } : { drop: `"${raw}" is not a local part; ignored` }
}

/** Is `name` a mail domain such as example.com (lower case)? */
export function isDomainName(name: string): boolean {
  return DOMAIN_NAME.test(name)
}

/**
 * A mail domain of the config as Haraka routes on it (lower-case ASCII, see
 * domain.ts), so that a domain written in Unicode matches; undefined when it is none.
 */
export function configDomain(raw: string): string | undefined {
  const name = routingDomain(raw.replace(/[.\u3002\uff0e\uff61]$/, ''))
  return name !== undefined && isDomainName(name) ? name : undefined
}

function domain(raw: string): Item {
  const name = configDomain(raw)
  return name ? { value: name } : { drop: `"${raw}" is not a domain name; ignored` }
}

/** `local@domain` or `@domain`, lower case, the domain in ASCII; `local` alone too when `localParts` is set. */
function recipientPattern(raw: string, localParts: boolean): Item {
  const at = raw.lastIndexOf('@')
  if (at < 0) return localParts ? localPart(raw) : { drop: `"${raw}" is not an address or @domain; ignored` }
  const local = raw.slice(0, at).toLowerCase()
  const host = configDomain(raw.slice(at + 1))
  if ((local === '' || LOCAL_PART.test(local)) && host) return { value: `${local}@${host}` }
  const what = localParts ? 'a local part, an address or @domain' : 'an address or @domain'
  return { drop: `"${raw}" is not ${what}; ignored` }
}

/** Milliseconds at the start (00:00 UTC) of a YYYY-MM-DD day, or undefined when it is no real date. */
export function dayStartMs(text: string): number | undefined {
  const m = ISO_DATE.exec(text)
  if (!m) return undefined
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const ms = Date.UTC(year, month - 1, day)
  const back = new Date(ms)
  const real = back.getUTCFullYear() === year && back.getUTCMonth() === month - 1 && back.getUTCDate() === day
  return real ? ms : undefined
}

function skipIp(raw: string): Item {
  if (!isIpOrCidr(raw)) return { drop: `"${raw}" is not an IP address or CIDR; ignored` }
  // haraka-net-utils reads a /0 mask as /32; to check nobody, use action = score instead.
  if (/\/0+$/.test(raw))
    return {
      drop: `"${raw}" would skip every client; ignored (to refuse nothing, set [main] action = score)`,
    }
  return { value: raw }
}

function server(raw: string): Item {
  return parseServer(raw) ? { value: raw } : { drop: `"${raw}" is not ip, ip:port or [ipv6]:port; ignored` }
}

const SCORE = number(-1000, 1000)

const MAIN = {
  zones: setting(
    list(zoneName, { noteTwice: true, noneUsable: 'no usable zone' }),
    [BACKSCATTERER],
    'DNS zones to query, comma separated; each may have its own [zone] section.',
  ),
  threshold: setting(
    SCORE,
    5,
    'Score at which the action applies: the sum over the zones that list the client.',
  ),
  action: setting(
    oneOf(ACTIONS),
    'reject',
    'reject: 550 5.7.1 per recipient; defer: 450 4.7.1; score: never refuse, only score.',
    // A typo must not refuse mail the operator meant to accept: score refuses nothing.
    { onInvalid: 'score', severity: 'error' },
  ),
  message: setting(
    textOf(),
    DEFAULT_MESSAGE,
    `Reply text; placeholders ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}. Empty: the default.`,
    { freeText: true },
  ),
  exempt_recipients: setting(
    list((raw) => recipientPattern(raw, true)),
    ['postmaster', 'abuse'],
    'Recipients that always get their mail: local parts, addresses and @domains; postmaster is always among them (RFC 5321 §4.5.1).',
  ),
  header: setting(
    textOf((v) => (v === '' || HEADER_NAME.test(v) ? undefined : `"${v}" is not a header field name`)),
    'X-Haraka-Backscatter',
    'Header added to accepted messages that were checked. Empty: none.',
  ),
}

const SENDERS = {
  null: setting(boolean(), true, 'The null sender <> is a bounce.'),
  local_parts: setting(
    list(localPart),
    [],
    'Local parts besides postmaster (always included) that mark a bounce, e.g. mailer-daemon.',
  ),
}

const SKIP = {
  private: setting(boolean(), true, 'Never look up private, loopback and link-local clients.'),
  relaying: setting(boolean(), true, 'Never look up relaying clients (authenticated, or allowed to relay).'),
  ips: setting(list(skipIp), [], 'Addresses and CIDRs never looked up, comma separated.'),
}

const DNS = {
  servers: setting(list(server), [], 'Resolvers: ip, ip:port or [ipv6]:port. Empty: the system resolvers.'),
  timeout_ms: setting(integer(50, 10_000), 1000, 'Wait for one DNS try, in milliseconds.'),
  tries: setting(integer(1, 5), 2, 'Tries per query; a lookup never waits longer than timeout_ms × tries.'),
  // lru-cache allocates its index for `max` entries up front: 1 000 000 is about 40 MB.
  cache_size: setting(
    integer(0, 1_000_000),
    10_000,
    'Answers cached, per zone and IP; 0 turns the cache off.',
  ),
  max_ttl: setting(
    integer(0, 7 * 86400),
    3600,
    'Longest time a listing is cached, whatever its TTL, in seconds.',
  ),
  negative_ttl: setting(integer(0, 86400), 300, 'How long a not-listed answer is cached, in seconds.'),
  health_interval: setting(
    integer(0, 86400),
    300,
    'Seconds between RFC 5782 test-point checks of each zone; 0 turns them off.',
  ),
}

const METRICS = {
  listen: setting(
    textOf((v) => {
      const r = parseListen(v)
      return 'why' in r ? r.why : undefined
    }),
    '',
    'Where Prometheus scrapes /metrics: PORT (on 127.0.0.1) or IP:PORT; any address but loopback must be written out. Empty: off.',
    { emptyMeans: 'metrics stay off' },
  ),
}

const BATV = {
  domains: setting(
    list(domain),
    [],
    'Domains whose outgoing senders are signed and whose incoming bounces must carry a tag. Empty: BATV is off.',
  ),
  sign_key: setting(integer(0, 9), 1, 'The number of the key in config/backscatter.keys that signs.'),
  lifetime_days: setting(
    integer(1, MAX_LIFETIME_DAYS),
    EXIM_LIFETIME_DAYS,
    'Days a tag stays valid after the day it was signed; Exim always uses 7.',
  ),
  sign: setting(
    boolean(),
    true,
    'Sign the MAIL FROM of relaying clients whose sender domain is in domains. false: check only.',
  ),
  missing: setting(SCORE, 5, 'Score of a bounce to a signing domain without a tag.'),
  invalid: setting(
    SCORE,
    5,
    'Score of a bounce with a bad signature, an unknown key, an expired or malformed tag.',
  ),
  valid: setting(SCORE, -10, 'Score of a bounce with a valid tag: a bounce of our own mail.'),
  missing_from: setting(
    textOf((v) => (v === '' || dayStartMs(v) !== undefined ? undefined : `"${v}" is not a date YYYY-MM-DD`)),
    '',
    'Day (YYYY-MM-DD, UTC) from which missing is scored: the day signing started plus lifetime_days. Empty: recorded, never scored.',
    { emptyMeans: 'a missing tag is recorded, never scored' },
  ),
  check_local_parts: setting(
    list(localPart),
    [],
    'Local parts of senders whose mail is checked for tags as a bounce is, e.g. mailer-daemon. Empty: only the null sender <>, as Exim.',
  ),
  unsigned_recipients: setting(
    list((raw) => recipientPattern(raw, false)),
    [],
    'Addresses and @domains whose mail leaves unsigned, e.g. mailing lists that know members by the envelope sender.',
  ),
  keys_file: setting(
    textOf(),
    '',
    "Deprecated: a file in Haraka's config folder holding a [batv.keys] section, read for one more release. Keys belong in config/backscatter.keys.",
  ),
}

const LEDGER = {
  mode: setting(
    oneOf(LEDGER_MODES),
    'off',
    "off; record: record sent mail and check bounces, change no decision; check: the ledger's scores apply. Needs a ledger key in config/backscatter.keys.",
  ),
  redis_url: setting(
    textOf(redisUrlProblem),
    'redis://127.0.0.1:6379',
    'The Redis server every node and worker shares: redis://[user:password@]host[:port][/db] or rediss://.',
  ),
  window_days: setting(
    integer(1, 365),
    30,
    'Days a sent message is remembered; a ledger younger than this never calls a bounce not ours.',
  ),
  timeout_ms: setting(
    integer(10, 5000),
    300,
    'Longest wait for Redis per record or check, in milliseconds; then mail goes on unchecked.',
  ),
  ours_score: setting(number(-1000, 0), -10, 'Score of a bounce of mail we sent; it outweighs a listing.'),
  not_ours_score: setting(
    number(0, 1000),
    5,
    'Score of a bounce none of whose references we sent; at the threshold, check mode refuses it.',
  ),
}

function unverifiedSpf(raw: string): Item {
  const word = raw.toLowerCase()
  if (word === 'pass')
    return { drop: '"pass" is a verified sender: a DSN to it is never suppressed; ignored' }
  const words = SPF_RESULTS.filter((w) => w !== 'pass')
  return (words as readonly string[]).includes(word)
    ? { value: word }
    : { drop: `"${raw}" is not one of ${words.join(', ')}; ignored` }
}

const OUTBOUND_GUARD = {
  mode: setting(
    oneOf(GUARD_MODES),
    'suppress',
    'suppress: a DSN to a sender never verified, for mail accepted from outside, is not sent; log: it is sent and logged; off: DSNs are not judged.',
    // A typo must not discard DSNs the operator meant to send: log discards none.
    { onInvalid: 'log', severity: 'error' },
  ),
  unverified_spf: setting(
    list(unverifiedSpf),
    SPF_RESULTS.filter((w) => w !== 'pass'),
    "SPF results of the sender (haraka-plugin-spf's, lower case; absent: none recorded) that leave it unverified. pass never does.",
  ),
}

// A reserved address is kept, with a line: the watch then names it among those it never looks up.
function selfIp(raw: string): Item {
  if (!net.isIP(raw)) return { drop: `"${raw}" is not an IP address; ignored` }
  const why = reservedReason(raw)
  return why === undefined ? { value: raw } : { value: raw, note: `${raw} is ${why}: never looked up` }
}

const SELF_CHECK = {
  enabled: setting(boolean(), true, "Watch this host's own IPs on the zones; false turns the watch off."),
  ips: setting(
    list(selfIp),
    [],
    "The IPs this host sends from; only these are watched, reserved ones never looked up. Empty: smtp.ini public_ip and listen, smtp_forward.ini bind, the interfaces' and me's public addresses.",
  ),
  interval_minutes: setting(integer(1, 1440), 30, 'Minutes between two looks, the first at start.'),
}

const ZONE = {
  score: setting(SCORE, 5, 'Score when the zone lists the client.'),
  ipv4: setting(boolean(), true, 'Query the zone for IPv4 clients.'),
  ipv6: setting(boolean(), false, 'Query the zone for IPv6 clients (ips.backscatterer.org lists IPv4 only).'),
  lookup_url: setting(textOf(), '', 'Where a refused sender can look the listing up; {ip} is replaced.'),
  file: setting(textOf(), '', 'rbldnsd zone file to answer from instead of DNS. Empty: query DNS.'),
  require_test_point: setting(
    boolean(),
    false,
    'Suspend the zone when it does not list its RFC 5782 test point 127.0.0.2.',
  ),
}

/** Sections with a fixed name, in the order of the shipped ini. */
export const SECTIONS = {
  main: { doc: 'What is checked and what happens to a listed bounce.', keys: MAIN },
  senders: { doc: 'Which envelope senders count as bounces; only these are looked up.', keys: SENDERS },
  skip: { doc: 'Clients never looked up.', keys: SKIP },
  dns: { doc: 'How the zones are queried and answers cached.', keys: DNS },
  metrics: { doc: 'Prometheus metrics on /metrics; off unless listen is set.', keys: METRICS },
  batv: { doc: 'Signed bounces (BATV): sign our senders, accept only bounces of our own mail.', keys: BATV },
  'batv.keys': {
    doc: 'Deprecated: BATV secrets, read for one more release. Keys belong in config/backscatter.keys.',
    keys: {},
    patternKeys: {
      label: 'N',
      matches: (key: string) => /^\d$/.test(key),
      kind: textOf() as Kind<unknown>,
      doc: 'Key number 0-9 = secret, everything after the = (no comment after it).',
      onInvalid: 'ignored',
    },
    rawText: true,
  },
  self_check: {
    doc: "This host's own IPs, looked up on every zone at start and every interval_minutes.",
    keys: SELF_CHECK,
  },
  recipient_domains: {
    doc: 'The action for recipients in one domain, instead of [main] action.',
    keys: {},
    patternKeys: {
      label: 'DOMAIN',
      matches: (key: string) => configDomain(key) !== undefined,
      kind: oneOf(RECIPIENT_ACTIONS) as Kind<unknown>,
      doc: 'reject, defer, score, or off (never refused, as an exempt recipient).',
      onInvalid: 'using score',
      // A typo must not refuse mail the operator meant to accept.
      fallback: 'score',
      severity: 'error',
    },
  },
  ledger: {
    doc: 'The sent-mail ledger in Redis: bounces of mail we sent are ours, the rest are not.',
    keys: LEDGER,
  },
  outbound_guard: {
    doc: "Haraka's own DSNs: never send backscatter to a forged sender.",
    keys: OUTBOUND_GUARD,
  },
} as const satisfies Record<string, SectionSpec>

/** One section per zone named in [main] zones, named for the zone. */
export const ZONE_SECTION = {
  doc: 'One DNS list: its score and how it is queried.',
  keys: ZONE,
  patternKeys: {
    label: '127.0.0.N',
    matches: isListingCode,
    kind: SCORE as Kind<unknown>,
    doc: 'Score for one answer code, overriding score (the best matching code counts).',
    onInvalid: "ignored, the zone's score applies",
  },
} as const satisfies SectionSpec

/** Defaults that differ for one zone the package knows, by zone name. */
export const ZONE_PRESETS: Readonly<Record<string, Partial<SectionValues<typeof ZONE>>>> = {
  [BACKSCATTERER]: { lookup_url: 'https://www.backscatterer.org/?target=test&ip={ip}' },
}

/** The defaults of a section's keys. */
export function defaultsOf<K extends Record<string, Setting<unknown>>>(keys: K): SectionValues<K> {
  const values: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(keys)) values[key] = spec.default
  return values as SectionValues<K>
}

/** The defaults of one zone's section. */
export function zoneDefaults(name: string): SectionValues<typeof ZONE> {
  return { ...defaultsOf(ZONE), ...ZONE_PRESETS[name] }
}

/** One row of the table; zone keys are listed under the section `<zone>`. */
export interface SettingRow {
  readonly section: string
  readonly key: string
  readonly setting: Setting<unknown>
}

export const ZONE_SECTION_NAME = '<zone>'

export function settingRows(): readonly SettingRow[] {
  const sections: [string, SectionSpec][] = [...Object.entries(SECTIONS), [ZONE_SECTION_NAME, ZONE_SECTION]]
  return sections.flatMap(([section, spec]) =>
    Object.entries(spec.keys).map(([key, setting]) => ({ section, key, setting })),
  )
}
