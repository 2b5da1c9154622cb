// The Haraka deployments and the zone the whole-system benchmarks run against:
// rbldnsd on 127.0.0.1:53 and one deployment per server, each Haraka in a private
// mount namespace whose /etc/resolv.conf names 127.0.0.1.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

import {
  cloneDeployment,
  createDeployment,
  makeWorkDir,
  packPlugin,
  REPO,
  removeWorkDir,
  startHaraka,
  type Deployment,
  type Haraka,
  type HarakaOptions,
} from '../test/support/haraka'
import { DEFAULT_TXT, ip4setZoneFile, startZone, type ZoneServer } from '../test/support/rbldnsd'
import { listedRanges, onCleanup } from './common'

const run = promisify(execFile)

export type ServerName = 'none' | 'noop' | 'backscatter' | 'dns-list' | 'zonefile' | 'baseline'

/** config/plugins of each server: they differ only in the DNSBL plugin. */
export function pluginsFor(server: ServerName): string[] {
  const dnsbl =
    server === 'none'
      ? []
      : server === 'zonefile'
        ? ['backscatter']
        : server === 'noop'
          ? [NOOP_PLUGIN_NAME]
          : server === 'baseline'
            ? ['backscatter']
            : [server]
  return ['xclient', ...dnsbl, 'rcpt_to.in_host_list', 'queue/discard']
}

export const NOOP_PLUGIN_NAME = 'bench_noop'

/**
 * The floor: a plugin on the same hooks as this one (mail, rcpt, data_post),
 * each only calling next(). What Haraka's hook machinery costs for three hooks,
 * so what remains above it is this plugin's own.
 */
export const NOOP_PLUGIN = `'use strict'
// The benchmark's floor: the hooks backscatter registers, doing nothing.
exports.hook_mail = function (next) {
    next()
}
exports.hook_rcpt = function (next) {
    next()
}
exports.hook_data_post = function (next) {
    next()
}
`

/**
 * dns-list with only its backscatterer check: `[ips.backscatterer.org]
 * enable=true`, which looks up bounce senders (`<>`, postmaster) at MAIL and
 * refuses a listed one there. Its connect-time lists stay off: with
 * periodic_checks ≥ 5 a zone is only used after it passes a check, and the one
 * zone named is not served by the local rbldnsd (REFUSED), so none ever is.
 * (An empty `zones` crashes dns-list 1.3 at the first connection.)
 */
export const DNS_LIST_INI = `[main]
periodic_checks=60
zones=connect-lists-off.invalid
search=all

[stats]
enable=false

[ips.backscatterer.org]
enable=true
`

/**
 * This plugin with its defaults but `action = score` (nothing refused, so every
 * transaction goes to DATA as on the no-op server); `servers` empty: the system
 * resolver, as dns-list.
 */
export const BACKSCATTER_INI = `[main]
action = score

[dns]
servers =
`

export interface Bed {
  zone: ZoneServer
  dir: string
  /** A deployment with the plugin installed from `npm pack`, to copy for each server. */
  base: Deployment
  /** What the baseline server runs (a commit or a tarball), when asked for. */
  baseline?: string
  resolvConf: string
  /** The zone's data as an rbldnsd ip4set file, for the plugin's local zone mirror. */
  zoneFile: string
  deployments: Deployment[]
  /** Start a Haraka on a fresh copy of the deployment; stopped by cleanup too. */
  start(server: ServerName, opts?: Partial<HarakaOptions> & { inNamespace?: boolean }): Promise<Haraka>
  close(): Promise<void>
}

/** Is 127.0.0.1:53 free for rbldnsd? (Another DNS server there would answer instead.) */
function port53Holder(): string | undefined {
  for (const file of ['/proc/net/udp', '/proc/net/tcp']) {
    if (!fs.existsSync(file)) continue
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1] ?? ''
      if (/^(0100007F|00000000):0035$/i.test(local)) return `${path.basename(file)} ${local}`
    }
  }
  return undefined
}

/**
 * The plugin's tarball as of `commit` (this repository): its tree exported into
 * `dir` by `git archive`, built and packed there with this checkout's
 * node_modules. For a baseline server beside the working tree's build.
 */
export async function packCommit(commit: string, dir: string): Promise<string> {
  const src = path.join(dir, 'src')
  fs.mkdirSync(src, { recursive: true })
  await run('sh', ['-c', 'git -C "$0" archive "$1" | tar -x -C "$2"', REPO, commit, src])
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(src, 'node_modules'))
  await run('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], {
    cwd: src,
    maxBuffer: 16 * 1024 * 1024,
  })
  const tgz = fs.readdirSync(dir).find((f) => f.endsWith('.tgz'))
  if (!tgz) throw new Error(`npm pack of ${commit} made no tarball`)
  return path.join(dir, tgz)
}

async function commitName(commit: string): Promise<string> {
  const { stdout } = await run('git', ['-C', REPO, 'log', '-1', '--format=%h %s', commit])
  return stdout.trim()
}

export async function setUpBed(
  log: (s: string) => void = () => undefined,
  baselineFrom?: string,
): Promise<Bed> {
  const holder = port53Holder()
  if (holder) throw new Error(`port 53 on 127.0.0.1 is taken (${holder}); the benchmark needs it for rbldnsd`)
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('the whole-system benchmark needs root (rbldnsd on port 53, unshare -m and mount --bind)')
  }
  const dir = makeWorkDir('bench')
  const haraka: Haraka[] = []
  let zone: ZoneServer | undefined
  const deployments: Deployment[] = []
  const close = async (): Promise<void> => {
    for (const h of haraka.splice(0)) await h.stop()
    await zone?.close()
    zone = undefined
    removeWorkDir(dir)
  }
  const unregister = onCleanup(close)
  try {
    zone = await startZone({ listed: listedRanges(), prefer: 'rbldnsd', port: 53, queryLog: false })
    log(`zone: ${zone.description}`)
    const resolvConf = path.join(dir, 'resolv.conf')
    fs.writeFileSync(resolvConf, 'nameserver 127.0.0.1\n')
    const zoneFile = path.join(dir, 'ips.backscatterer.org.ip4set')
    fs.writeFileSync(zoneFile, ip4setZoneFile(listedRanges(), DEFAULT_TXT))
    log('packing the plugin and creating a deployment (npm pack, haraka -i, npm install)')
    const tarball = await packPlugin(path.join(dir, 'pack'))
    const base = await createDeployment(tarball, path.join(dir, 'base'))
    let baselineBase: Deployment | undefined
    let baseline: string | undefined
    if (baselineFrom) {
      const isTarball = baselineFrom.endsWith('.tgz')
      baseline = isTarball ? baselineFrom : await commitName(baselineFrom)
      log(`baseline: ${baseline}`)
      const baseTarball = isTarball
        ? baselineFrom
        : await packCommit(baselineFrom, path.join(dir, 'pack-baseline'))
      baselineBase = await createDeployment(baseTarball, path.join(dir, 'baseline'))
    }
    let copies = 0
    const z = zone
    return {
      zone: z,
      dir,
      base,
      ...(baseline ? { baseline } : {}),
      resolvConf,
      zoneFile,
      deployments,
      start: async (server, opts = {}) => {
        if (server === 'baseline' && !baselineBase) throw new Error('no baseline build: set BENCH_BASELINE')
        const from = server === 'baseline' && baselineBase ? baselineBase : base
        const dep = cloneDeployment(from, path.join(dir, `server-${++copies}`))
        deployments.push(dep)
        if (server === 'noop')
          fs.writeFileSync(path.join(dep.dir, 'plugins', `${NOOP_PLUGIN_NAME}.js`), NOOP_PLUGIN)
        const { inNamespace = true, ...rest } = opts
        const h = await startHaraka(dep, {
          plugins: pluginsFor(server),
          backscatterIni:
            server === 'zonefile'
              ? `${BACKSCATTER_INI}\n[ips.backscatterer.org]\nfile = ${zoneFile}\n`
              : BACKSCATTER_INI,
          logLevel: 'crit',
          ...(inNamespace ? { resolvConf } : {}),
          ...rest,
          files: { 'dns-list.ini': DNS_LIST_INI, ...rest.files },
          env: { YES_REALLY_DO_DISCARD: '1', ...rest.env },
        })
        haraka.push(h)
        return h
      },
      close: async () => {
        unregister()
        await close()
      },
    }
  } catch (err) {
    unregister()
    await close()
    throw err
  }
}
