// backscatter.ini, read the way the plugin reads it: haraka-config with the
// package's config/ as defaults and the deployment's folder overriding key by key.
import dns from 'node:dns'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

import { parseSettings, type ReadConfigLines, type Settings } from '../settings'
import { PROG, UsageError, type Io } from './io'

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
  // The BATV secrets as written, as the plugin reads them: haraka-config's ini values would turn 0123 into 123.
  const readLines: ReadConfigLines = (name) => {
    try {
      const lines = cfg.get(name, 'data')
      return Array.isArray(lines) ? lines.map(String) : { error: 'not readable as text' }
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) }
    }
  }
  const { settings, problems, errors } = parseSettings(cfg.get(INI), { readLines })
  for (const error of errors) io.err(`${PROG}: error: ${INI} ${error}\n`)
  for (const problem of problems) io.err(`${PROG}: warning: ${INI} ${problem}\n`)
  return { settings, problems, source }
}

/** The resolvers the lookups go to, and their budget, for people. */
export function resolverText(settings: Settings): string {
  const servers = settings.dns.servers.length
    ? `${settings.dns.servers.join(', ')} ([dns] servers)`
    : `${dns.getServers().join(', ') || 'none found'} (system resolvers)`
  return `${servers}; timeout ${settings.dns.timeoutMs} ms x ${settings.dns.tries} tries`
}
