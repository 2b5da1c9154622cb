// The [batv] settings made usable: the keys prepared from the secrets of
// config/backscatter.keys (and, for one more release, of [batv.keys]), the sign
// key chosen, the rollout date read. The secrets are read from the files' text,
// because haraka-config turns `0123` into 123; no problem line ever quotes a
// secret or a line that may hold one.
import { BatvKey } from '../batv/sign'
import {
  KEYS_FILE,
  type ConfigProblem,
  type KeysFileSecrets,
  type ReadConfigLines,
  type WrittenSecret,
} from '../batv/keys-file'
import { DAY_MS, dayNumber } from '../batv/tag'
import { dayStartMs, SECTIONS, type SectionValues } from './schema'
import type { BatvSettings } from '../core/types'

export type { ConfigProblem, ReadConfigLines, ReadKeysFile } from '../batv/keys-file'

export const KEYS_SECTION = 'batv.keys'
export const MAIN_FILE = 'backscatter.ini'

// haraka-config's own patterns for section headings and comment lines.
const SECTION_HEADING = /^\s*\[([^\]]*)\]\s*$/
const COMMENT = /^\s*[;#]/
const KEY_LINE = /^\s*([^=\s]*)\s*=\s*(.*?)\s*$/

const KEYS_BELONG = `BATV keys belong in config/${KEYS_FILE} now, one N=secret a line`

/**
 * The secrets of the `[batv.keys]` section in an ini file's lines (the place
 * of keys before config/backscatter.keys): `N = secret`, the secret being
 * everything after the `=`, trimmed, exactly as written. `heading`: the line
 * of the section's first heading, 0 when there is none.
 */
export function secretsFromLines(
  lines: readonly string[],
  file: string,
): { secrets: Map<number, WrittenSecret>; problems: ConfigProblem[]; heading: number } {
  const secrets = new Map<number, WrittenSecret>()
  const problems: ConfigProblem[] = []
  let heading = 0
  let inKeys = false
  lines.forEach((text, i) => {
    const line = i + 1
    const section = SECTION_HEADING.exec(text)
    if (section) {
      inKeys = section[1]?.trim() === KEYS_SECTION
      if (inKeys && heading === 0) heading = line
      return
    }
    if (!inKeys || COMMENT.test(text) || text.trim() === '') return
    const m = KEY_LINE.exec(text)
    if (!m || !/^\d$/.test(m[1] ?? '')) {
      problems.push({
        severity: 'warning',
        file,
        line,
        text: `[${KEYS_SECTION}]: not "N = secret" with a key number 0-9; ignored (haraka-config may print the line in Haraka's log)`,
      })
      return
    }
    const id = Number(m[1])
    const secret = m[2] ?? ''
    if (secrets.has(id))
      problems.push({
        severity: 'warning',
        file,
        line,
        text: `[${KEYS_SECTION}] key ${id} is given again; this one is used`,
      })
    if (secret.endsWith('\\')) {
      problems.push({
        severity: 'warning',
        file,
        line,
        text: `[${KEYS_SECTION}] key ${id}: the secret ends with a backslash, which haraka-config joins with the next line; this plugin keeps it, as config/${KEYS_FILE} does`,
      })
    }
    secrets.set(id, { secret, file, line })
  })
  return { secrets, problems, heading }
}

type BatvValues = SectionValues<typeof SECTIONS.batv.keys>

export interface BatvReading {
  readonly batv: BatvSettings
  /** Problems of backscatter.ini's [batv] keys, `[batv] key: text`. */
  readonly problems: readonly string[]
  readonly errors: readonly string[]
  /** Problems of the keys, wherever they are written, with their file and line. */
  readonly keyProblems: readonly ConfigProblem[]
  /** Information for the log: what the operator may want to set. */
  readonly notes: readonly string[]
}

/** Where readBatv finds the secrets. */
export interface KeySources {
  /** Lines of backscatter.ini and of [batv] keys_file, for their [batv.keys] sections. */
  readonly readLines?: ReadConfigLines
  /** config/backscatter.keys, read once (keysFileOnce). */
  readonly keysFile?: () => KeysFileSecrets
}

/** The YYYY-MM-DD of the day `nowMs` falls on plus `days`, UTC. */
export function dayText(nowMs: number, days = 0): string {
  return new Date((dayNumber(nowMs) + days) * DAY_MS).toISOString().slice(0, 10)
}

const where = (s: WrittenSecret): string =>
  s.file === KEYS_FILE ? `line ${s.line}` : `[${KEYS_SECTION}] of ${s.file} (line ${s.line})`

/**
 * The secrets of the places keys were written before config/backscatter.keys:
 * [batv.keys] of backscatter.ini and of [batv] keys_file, the latter winning.
 * Every place that gives a key gets a warning saying where keys belong now.
 */
function legacySecrets(
  keysFile: string,
  readLines: ReadConfigLines | undefined,
  problems: string[],
  keyProblems: ConfigProblem[],
): Map<number, WrittenSecret> {
  const secrets = new Map<number, WrittenSecret>()
  if (!readLines) return secrets
  // keys_file naming the new file itself is no legacy place.
  const files = keysFile === '' || keysFile === KEYS_FILE ? [MAIN_FILE] : [MAIN_FILE, keysFile]
  for (const file of files) {
    const lines = readLines(file)
    if ('error' in lines) {
      const key = file === MAIN_FILE ? `[${KEYS_SECTION}]` : '[batv] keys_file'
      problems.push(`${key}: cannot read ${file}: ${lines.error}`)
      continue
    }
    const read = secretsFromLines(lines, file)
    keyProblems.push(...read.problems)
    if (read.secrets.size) {
      const ids = [...read.secrets.keys()].join(', ')
      const leak =
        file === MAIN_FILE
          ? `; haraka-config prints a mistyped line of ${file} in Haraka's log, secret included`
          : ` (named by [batv] keys_file)`
      keyProblems.push({
        severity: 'warning',
        file,
        line: read.heading,
        text: `[${KEYS_SECTION}]: key ${ids} read from here for one more release${leak}. ${KEYS_BELONG}`,
      })
    }
    for (const [id, secret] of read.secrets) {
      const before = secrets.get(id)
      if (before) {
        keyProblems.push({
          severity: 'warning',
          file,
          line: secret.line,
          text: `[${KEYS_SECTION}] key ${id} is also in ${where(before)}; this one is used`,
        })
      }
      secrets.set(id, secret)
    }
  }
  return secrets
}

/** The keys made from the secrets; a secret that cannot make one is left out, with a problem at its line. */
function keysOf(
  secrets: ReadonlyMap<number, WrittenSecret>,
  keyProblems: ConfigProblem[],
): Map<number, BatvKey> {
  const keys = new Map<number, BatvKey>()
  for (const [id, written] of [...secrets].sort(([a], [b]) => a - b)) {
    const key = BatvKey.create(id, written.secret)
    if (key instanceof BatvKey) keys.set(id, key)
    else
      keyProblems.push({
        severity: written.file === KEYS_FILE ? 'error' : 'warning',
        file: written.file,
        line: written.line,
        text: `${key.problem}; left out`,
      })
  }
  return keys
}

/**
 * [batv] as the plugin uses it. The keys are read only when `domains` is set:
 * from config/backscatter.keys, and for one more release from [batv.keys] of
 * backscatter.ini and of keys_file, the new file winning for a key number in
 * both. Without any usable key BATV is off, with an error: checking with no
 * key would refuse every real bounce of signed mail.
 */
export function readBatv(values: BatvValues, sources: KeySources, nowMs: number): BatvReading {
  const problems: string[] = []
  const errors: string[] = []
  const keyProblems: ConfigProblem[] = []
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
    return { batv, problems, errors, keyProblems, notes }
  }
  if (values.domains.length === 0) return off()

  const secrets = legacySecrets(values.keys_file, sources.readLines, problems, keyProblems)
  const keysFile = sources.keysFile?.()
  keyProblems.push(...(keysFile?.problems ?? []))
  for (const [id, secret] of keysFile?.secrets ?? []) {
    const legacy = secrets.get(id)
    if (legacy) {
      keyProblems.push({
        severity: 'warning',
        file: KEYS_FILE,
        line: secret.line,
        text: `key ${id} is also in ${where(legacy)}; this file's is used`,
      })
    }
    secrets.set(id, secret)
  }
  const keys = keysOf(secrets, keyProblems)
  if (keys.size === 0) {
    errors.push(`[batv] domains: no usable key in config/${KEYS_FILE}; signing and checking are off`)
    return off()
  }
  const signKey = values.sign ? keys.get(values.sign_key) : undefined
  if (values.sign && !signKey) {
    const ids = [...keys.keys()].join(', ')
    errors.push(
      `[batv] sign_key: no key ${values.sign_key} among the BATV keys; signing is off, tags are checked with key ${ids}`,
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
  return { batv, problems, errors, keyProblems, notes }
}
