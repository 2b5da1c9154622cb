// The [batv] settings made usable: the keys prepared from the secrets of
// [batv.keys], the sign key chosen, the rollout date read. The secrets are read
// from the files' text, line by line, because haraka-config turns `0123` into
// 123; no problem line ever quotes a secret or a line of that section.
import { prepareKeys, type BatvKey } from './batv'
import { DAY_MS, dayNumber } from './batv/tag'
import { dayStartMs, SECTIONS, type SectionValues } from './settings-schema'

/** Reads a file of Haraka's config folder as its lines (haraka-config's `data` type), or says why it cannot. */
export type ReadConfigLines = (name: string) => readonly string[] | { readonly error: string }

/** A ReadConfigLines over haraka-config's `get(name, 'data')`; never throws (a bad name is an error value). */
export function configLinesReader(getData: (name: string) => unknown): ReadConfigLines {
  return (name) => {
    try {
      const lines = getData(name)
      return Array.isArray(lines) ? lines.map(String) : { error: 'not readable as text' }
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) }
    }
  }
}

export interface BatvSettings {
  /** Lower-case domains whose senders are signed and whose bounces are checked; empty: BATV is off. */
  readonly domains: ReadonlySet<string>
  /** The keys that check tags, by number. Never the secrets' text. */
  readonly keys: ReadonlyMap<number, BatvKey>
  /** `[batv] sign_key`. */
  readonly signKeyId: number
  /** The key that signs; undefined: nothing is signed (sign is off, or there is no such key). */
  readonly signKey: BatvKey | undefined
  readonly lifetimeDays: number
  /** Sign the MAIL FROM of relaying clients. */
  readonly sign: boolean
  readonly scores: { readonly missing: number; readonly invalid: number; readonly valid: number }
  /** `[batv] missing_from` as written ('' for none). */
  readonly missingFrom: string
  /** 00:00 UTC of missing_from: from then on `missing` is scored; undefined: never. */
  readonly missingFromMs: number | undefined
  /** Lower-case local parts of senders checked for tags besides the null sender; empty: <> only. */
  readonly checkLocalParts: ReadonlySet<string>
  /** Lower-case addresses and @domains whose mail leaves unsigned. */
  readonly unsignedRecipients: ReadonlySet<string>
  /** `[batv] keys_file`: another file of the config folder holding [batv.keys]. */
  readonly keysFile: string
}

export const KEYS_SECTION = 'batv.keys'
export const MAIN_FILE = 'backscatter.ini'

// haraka-config's own patterns for section headings and comment lines.
const SECTION_HEADING = /^\s*\[([^\]]*)\]\s*$/
const COMMENT = /^\s*[;#]/
const KEY_LINE = /^\s*([^=\s]*)\s*=\s*(.*?)\s*$/

/**
 * The secrets of the `[batv.keys]` section in a file's lines: `N = secret`,
 * the secret being everything after the `=`, trimmed, exactly as written.
 */
export function secretsFromLines(
  lines: readonly string[],
  file: string,
): { secrets: Map<number, string>; problems: string[] } {
  const secrets = new Map<number, string>()
  const problems: string[] = []
  let inKeys = false
  lines.forEach((line, i) => {
    const heading = SECTION_HEADING.exec(line)
    if (heading) {
      inKeys = heading[1]?.trim() === KEYS_SECTION
      return
    }
    if (!inKeys || COMMENT.test(line) || line.trim() === '') return
    const where = `[${KEYS_SECTION}] ${file} line ${i + 1}`
    const m = KEY_LINE.exec(line)
    if (!m || !/^\d$/.test(m[1] ?? '')) {
      problems.push(`${where}: not "N = secret" with a key number 0-9; ignored`)
      return
    }
    const id = Number(m[1])
    if (secrets.has(id)) problems.push(`${where}: key ${id} is given again; this one is used`)
    secrets.set(id, m[2] ?? '')
  })
  return { secrets, problems }
}

type BatvValues = SectionValues<typeof SECTIONS.batv.keys>

export interface BatvReading {
  readonly batv: BatvSettings
  readonly problems: readonly string[]
  readonly errors: readonly string[]
  /** Information for the log: what the operator may want to set. */
  readonly notes: readonly string[]
}

/** The YYYY-MM-DD of the day `nowMs` falls on plus `days`, UTC. */
export function dayText(nowMs: number, days = 0): string {
  return new Date((dayNumber(nowMs) + days) * DAY_MS).toISOString().slice(0, 10)
}

/**
 * [batv] as the plugin uses it. The keys are read (through `readLines`) only
 * when `domains` is set. Without any usable key BATV is off, with an error:
 * checking with no key would refuse every real bounce of signed mail.
 */
export function readBatv(
  values: BatvValues,
  readLines: ReadConfigLines | undefined,
  nowMs: number,
): BatvReading {
  const problems: string[] = []
  const errors: string[] = []
  const notes: string[] = []
  const base = {
    signKeyId: values.sign_key,
    lifetimeDays: values.lifetime_days,
    sign: values.sign,
    scores: Object.freeze({ missing: values.missing, invalid: values.invalid, valid: values.valid }),
    missingFrom: values.missing_from,
    missingFromMs: values.missing_from === '' ? undefined : dayStartMs(values.missing_from),
    checkLocalParts: new Set(values.check_local_parts),
    unsignedRecipients: new Set(values.unsigned_recipients),
    keysFile: values.keys_file,
  }
  const off = (): BatvReading => {
    const batv = Object.freeze({ ...base, domains: new Set<string>(), keys: new Map(), signKey: undefined })
    return { batv, problems, errors, notes }
  }
  if (values.domains.length === 0) return off()

  const secrets = new Map<number, string>()
  const files = values.keys_file === '' ? [MAIN_FILE] : [MAIN_FILE, values.keys_file]
  for (const file of files) {
    const lines = readLines ? readLines(file) : { error: 'the file text was not read' }
    if ('error' in lines) {
      problems.push(`[batv] keys: cannot read ${file}: ${lines.error}`)
      continue
    }
    const read = secretsFromLines(lines, file)
    problems.push(...read.problems)
    for (const [id, secret] of read.secrets) {
      if (secrets.has(id))
        problems.push(`[${KEYS_SECTION}] key ${id} is in ${MAIN_FILE} and ${file}; ${file}'s is used`)
      secrets.set(id, secret)
    }
  }
  const { keys, problems: keyProblems } = prepareKeys(secrets)
  for (const p of keyProblems) problems.push(`[${KEYS_SECTION}] ${p}; left out`)
  const where = `[${KEYS_SECTION}] of ${files.join(' or ')}`
  if (keys.size === 0) {
    errors.push(`[batv] domains: no usable key in ${where}; signing and checking are off`)
    return off()
  }
  const signKey = values.sign ? keys.get(values.sign_key) : undefined
  if (values.sign && !signKey) {
    const ids = [...keys.keys()].join(', ')
    errors.push(
      `[batv] sign_key: no key ${values.sign_key} in ${where}; signing is off, tags are checked with key ${ids}`,
    )
  }
  if (values.missing_from === '') {
    notes.push(
      `[batv] missing_from is empty: untagged bounces to ${values.domains.join(', ')} are recorded as missing but not scored. ` +
        `Once the bounces of mail sent unsigned have come back, set missing_from to the day signing started plus lifetime_days ` +
        `(for signing from today: missing_from = ${dayText(nowMs, values.lifetime_days)})`,
    )
  }
  const batv = Object.freeze({ ...base, domains: new Set(values.domains), keys, signKey })
  return { batv, problems, errors, notes }
}
