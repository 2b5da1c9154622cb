// `haraka-backscatter audit`: read a Haraka config folder and say what in it
// invites a listing on the backscatter list, why, and the fix. Its exit status
// is a monitoring check's: 2 for a critical finding, 1 for a warning only.
import fs from 'node:fs'
import path from 'node:path'

import { withoutComment } from '../settings/kinds'
import {
  auditConfig,
  ownIpFinding,
  recipientChecks,
  type AuditFinding,
  type AuditInput,
  type RelaySetup,
} from './audit-rules'
import { noArguments, stringOption, type Values } from './args'
import { configDir, INI, loadConfig } from './config'
import { EXIT, UsageError, type Io } from './io'
import { withChecker } from './lookups'
import { configFolderFiles, ownIpLines, ownIpReport } from './own-ips'
import type { HarakaFiles } from '../selfcheck/addresses'
import type { Settings } from '../core/types'

/** The folder holding config/plugins: DIR, or DIR/config for an install directory. */
function pluginsFolder(option: string | undefined): string {
  const dir = configDir(option ?? 'config') ?? path.resolve(option ?? 'config')
  if (fs.existsSync(path.join(dir, 'plugins'))) return dir
  if (fs.existsSync(path.join(dir, 'config', 'plugins'))) return path.join(dir, 'config')
  throw new UsageError(`${dir} holds no plugins file: not a Haraka config folder`, 'audit')
}

function pluginLines(dir: string): string[] {
  return fs
    .readFileSync(path.join(dir, 'plugins'), 'utf8')
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '')
}

const truthy = (v: unknown): boolean => ['true', 'yes', 'on', '1'].includes(String(v).trim().toLowerCase())
const sectionOf = (ini: Readonly<Record<string, unknown>>, name: string): Record<string, unknown> => {
  const s = ini[name]
  return s && typeof s === 'object' ? (s as Record<string, unknown>) : {}
}

/** A route's JSON in relay_dest_domains.ini, as the relay plugin parses it; {} when it is none. */
function routeOf(value: unknown): Record<string, unknown> {
  try {
    const route: unknown = JSON.parse(String(value))
    return route && typeof route === 'object' ? (route as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

/** relay.ini with haraka-plugin-relay's defaults, and the domains of relay_dest_domains.ini. */
function relaySetup(files: HarakaFiles): RelaySetup {
  const relay = sectionOf(files.ini('relay.ini'), 'relay')
  const flag = (v: unknown, byDefault: boolean): boolean => (v === undefined ? byDefault : truthy(v))
  const text = (v: unknown): string => (typeof v === 'string' ? v.trim() : '')
  const domains = Object.entries(sectionOf(files.ini('relay_dest_domains.ini'), 'domains')).map(
    ([domain, value]) => {
      const route = routeOf(value)
      return { domain, action: text(route.action).toLowerCase(), nexthop: text(route.nexthop) }
    },
  )
  return {
    destDomains: flag(relay.dest_domains, false),
    forceRouting: flag(relay.force_routing, true),
    all: flag(relay.all, false),
    domains,
  }
}

/** What the rules need, read from the folder as Haraka and its plugins read it. */
export function auditInput(plugins: readonly string[], files: HarakaFiles, settings: Settings): AuditInput {
  const routes = files.ini('recipient-routes.ini')
  const mode = sectionOf(files.ini(INI), 'outbound_guard').mode
  return {
    plugins,
    forwardChecksRecipient: truthy(sectionOf(files.ini('smtp_forward.ini'), 'main').check_recipient),
    routesAddresses:
      Object.keys(sectionOf(routes, 'routes')).some((k) => k.includes('@')) || Object.hasOwn(routes, 'redis'),
    guardMode: mode === undefined ? undefined : String(withoutComment(mode)).toLowerCase(),
    absentUnverified: settings.outboundGuard.unverifiedSpf.has('absent'),
    relay: relaySetup(files),
  }
}

function findingText(f: AuditFinding): string {
  return `[${f.level}] ${f.id}: ${f.what}\n  why: ${f.why}\n  fix: ${f.fix}\n`
}

export async function runAudit(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  noArguments(positionals, 'audit')
  const dir = pluginsFolder(stringOption(values, 'config'))
  const plugins = pluginLines(dir)
  const { settings } = loadConfig(dir, io)
  const files = configFolderFiles(dir)
  const input = auditInput(plugins, files, settings)
  const own = await withChecker(settings, (c) => ownIpReport(settings, c, files))
  const findings = [
    ...own.listed.map((l) => ownIpFinding(l, settings.zones.find((z) => z.name === l.zone)?.lookupUrl ?? '')),
    ...auditConfig(input),
  ]
  const critical = findings.some((f) => f.level === 'critical')
  const status = critical ? EXIT.CRITICAL : findings.length ? EXIT.WARNING : EXIT.OK

  if (values.json) {
    for (const f of findings) io.out(`${JSON.stringify(f)}\n`)
    return status
  }
  const { validators } = recipientChecks(input)
  const checked = [
    `recipients at RCPT: ${validators.length ? validators.join(', ') : 'no plugin checks them'}`,
    `outbound guard: ${plugins.some((p) => p.replace(/^haraka-plugin-/, '') === 'backscatter') ? (input.guardMode ?? 'suppress') : 'not loaded'}`,
    `own IPs: ${ownIpLines(own).join('; ')}`,
  ]
  const level = critical ? 'CRITICAL' : findings.length ? 'WARNING' : 'OK'
  const count = findings.length === 1 ? '1 finding' : `${findings.length || 'no'} findings`
  io.out(
    `AUDIT ${level}: ${count} in ${dir}\n${findings.map(findingText).join('')}` +
      `checked: ${checked.join('\n         ')}\n`,
  )
  return status
}
