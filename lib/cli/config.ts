// backscatter.ini, read the way the plugin reads it: haraka-config with the
// package's config/ as defaults and the deployment's folder overriding key by key.
import dns from 'node:dns'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

import { configLinesReader, keysFileReader } from '../batv/keys-file'
import { describeError } from '../core/error'
import { parseSettings } from '../settings/parse'
import { PROG, UsageError, type Io } from './io'
import type { Settings } from '../core/types'

export const INI = 'backscatter.ini'

/** The package folder (dist/cli/ or lib/cli/ is two below it): its config/ holds the defaults. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..')

interface HarakaConfig {
  root_path: string
  overrides_path?: string
  get(name: string, type?: 'data'): unknown
  module_config(defaultsPath: string, overridesPath?: string): HarakaConfig
}

export interface LoadedConfig {
  readonly settings: Settings
  /** Every warning and error, as printed on stderr. */
  readonly findings: readonly Finding[]
  /** What the plugin logs as information (not printed). */
  readonly notes: readonly Finding[]
  /** Where the settings came from, for people. */
  readonly source: string
}

function fsErrorText(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ENOENT') return 'no such directory'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'ENOTDIR') return 'not a directory'
  return describeError(err)
}

/** The folder whose backscatter.ini overrides the defaults, or undefined for none. */
export function configDir(option: string | undefined): string | undefined {
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

/** A problem of the configuration as the command prints it: severity, file, line where known, text. */
export interface Finding {
  readonly severity: 'error' | 'warning' | 'note'
  /** The file's path, or the config folder's. */
  readonly path: string
  readonly line?: number
  readonly text: string
}

/** `haraka-backscatter: warning: /etc/haraka/config/backscatter.ini:12: [main] threshold: …` */
export function findingText(f: Finding): string {
  return `${PROG}: ${f.severity}: ${f.path}${f.line ? `:${f.line}` : ''}: ${f.text}\n`
}

const HEADING = /^\s*\[([^\]]*)\]\s*$/
const INI_KEY = /^\s*([^=\s]+)\s*=/

/**
 * The line of `[section] key` in an ini file's lines: the last one, as
 * haraka-config keeps the last value; of the section's heading without a key.
 * Section names compare without case, as zone sections do.
 */
export function iniLine(lines: readonly string[], section: string, key?: string): number | undefined {
  let current = 'main'
  let found: number | undefined
  lines.forEach((text, i) => {
    const heading = HEADING.exec(text)
    if (heading) {
      current = (heading[1] ?? '').trim().toLowerCase()
      if (key === undefined && current === section.toLowerCase()) found ??= i + 1
      return
    }
    if (key !== undefined && current === section.toLowerCase() && INI_KEY.exec(text)?.[1] === key)
      found = i + 1
  })
  return found
}

/** A problem line of parseSettings, `[section] key: text` or `[section]: text`, located in the ini. */
function iniFinding(
  severity: Finding['severity'],
  problem: string,
  path: string,
  lines: readonly string[],
): Finding {
  const m = /^\[([^\]]+)\](?: ([^:\s]+))?:/.exec(problem)
  return { severity, path, line: m ? iniLine(lines, m[1] ?? '', m[2]) : undefined, text: problem }
}

function readLinesOf(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split(/\r\n|\r|\n/)
  } catch {
    return []
  }
}

interface IniReader {
  logger: (msg: string) => void
}

/**
 * Run `read` with haraka-config's ini reader telling of a line it cannot read
 * by its number, never by its text: that line may hold a BATV secret.
 */
function withIniLinesUnshown<T>(findings: Finding[], iniPath: string, read: () => T): T {
  const ini = createRequire(__filename)('haraka-config/lib/readers/ini') as IniReader
  const original = ini.logger
  ini.logger = (msg) => {
    const m = /^Invalid line in config file '(.*)': ([^]*)$/.exec(msg)
    if (!m) {
      findings.push({ severity: 'warning', path: iniPath, text: `haraka-config: ${msg}` })
      return
    }
    const file = m[1] ?? iniPath
    const index = readLinesOf(file).indexOf(m[2] ?? '')
    findings.push({
      severity: 'warning',
      path: file,
      line: index < 0 ? undefined : index + 1,
      text: 'not a "key = value" line: haraka-config ignores it (not shown: it may hold a secret)',
    })
  }
  try {
    return read()
  } finally {
    ini.logger = original
  }
}

/**
 * Read backscatter.ini and config/backscatter.keys as the plugin does: the
 * same parseSettings, fed the same files. Every problem goes to stderr, with
 * its file and line where known, and is returned for configtest.
 */
export function loadConfig(option: string | undefined, io: Io): LoadedConfig {
  const findings: Finding[] = []
  const dir = configDir(option)
  const defaults = path.join(PACKAGE_ROOT, 'config', INI)
  let source = `${defaults} (package defaults)`
  let iniPath = defaults
  if (dir !== undefined) {
    const ini = path.join(dir, INI)
    if (fs.existsSync(ini)) {
      try {
        fs.accessSync(ini, fs.constants.R_OK)
      } catch (err) {
        throw new UsageError(`--config ${option ?? dir}: cannot read ${ini}: ${fsErrorText(err)}`)
      }
      source = `${ini} over the package defaults`
      iniPath = ini
    } else {
      findings.push({ severity: 'warning', path: dir, text: `holds no ${INI}; using the package defaults` })
    }
  }

  const harakaConfig = createRequire(__filename)('haraka-config') as HarakaConfig
  const cfg = harakaConfig.module_config(PACKAGE_ROOT)
  cfg.root_path = path.join(PACKAGE_ROOT, 'config')
  if (dir !== undefined) cfg.overrides_path = dir
  // The BATV secrets as written, as the plugin reads them: haraka-config's ini values would turn 0123 into 123.
  const getData = (name: string): unknown => cfg.get(name, 'data')
  const parsed = withIniLinesUnshown(findings, iniPath, () =>
    parseSettings(cfg.get(INI), {
      readLines: configLinesReader(getData),
      readKeysFile: keysFileReader([cfg.overrides_path, cfg.root_path], getData),
    }),
  )
  const iniLines = readLinesOf(iniPath)
  for (const error of parsed.errors) findings.push(iniFinding('error', error, iniPath, iniLines))
  for (const problem of parsed.problems) findings.push(iniFinding('warning', problem, iniPath, iniLines))
  for (const p of parsed.keyProblems) {
    // A file is found in the deployment's folder first, as haraka-config finds it.
    const folder = [dir, cfg.root_path].find((d) => d !== undefined && fs.existsSync(path.join(d, p.file)))
    const file = path.join(folder ?? dir ?? cfg.root_path, p.file)
    findings.push({ severity: p.severity, path: file, line: p.line, text: p.text })
  }
  // By file, then line: the order an operator fixes them in.
  const files = [...new Set(findings.map((f) => f.path))]
  findings.sort((a, b) => files.indexOf(a.path) - files.indexOf(b.path) || (a.line ?? 0) - (b.line ?? 0))
  for (const f of findings) io.err(findingText(f))
  const notes = parsed.notes.map((text): Finding => iniFinding('note', text, iniPath, iniLines))
  return { settings: parsed.settings, findings, notes, source }
}

/** The resolvers the lookups go to, and their budget, for people. */
export function resolverText(settings: Settings): string {
  const servers = settings.dns.servers.length
    ? `${settings.dns.servers.join(', ')} ([dns] servers)`
    : `${dns.getServers().join(', ') || 'none found'} (system resolvers)`
  return `${servers}; timeout ${settings.dns.timeoutMs} ms x ${settings.dns.tries} tries`
}
