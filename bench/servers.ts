// The Haraka deployments and the zone the whole-system benchmarks run against:
// rbldnsd on 127.0.0.1:53 and one deployment per server, each Haraka in a private
// mount namespace whose /etc/resolv.conf names 127.0.0.1.
import fs from 'node:fs'
import path from 'node:path'

import {
  cloneDeployment,
  createDeployment,
  makeWorkDir,
  packPlugin,
  removeWorkDir,
  startHaraka,
  type Deployment,
  type Haraka,
  type HarakaOptions,
} from '../test/support/haraka'
import { DEFAULT_TXT, ip4setZoneFile, startZone, type ZoneServer } from '../test/support/rbldnsd'
import { listedRanges, onCleanup } from './common'

export type ServerName = 'none' | 'backscatter' | 'dns-list' | 'zonefile'

/** config/plugins of each server: they differ only in the DNSBL plugin. */
export function pluginsFor(server: ServerName): string[] {
  const dnsbl = server === 'none' ? [] : server === 'zonefile' ? ['backscatter'] : [server]
  return ['xclient', ...dnsbl, 'rcpt_to.in_host_list', 'queue/discard']
}

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

/** This plugin with its defaults; `servers` empty: the system resolver, as dns-list. */
export const BACKSCATTER_INI = `[dns]
servers =
`

export interface Bed {
  zone: ZoneServer
  dir: string
  /** A deployment with the plugin installed from `npm pack`, to copy for each server. */
  base: Deployment
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

export async function setUpBed(log: (s: string) => void = () => undefined): Promise<Bed> {
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
    let copies = 0
    const z = zone
    return {
      zone: z,
      dir,
      base,
      resolvConf,
      zoneFile,
      deployments,
      start: async (server, opts = {}) => {
        const dep = cloneDeployment(base, path.join(dir, `server-${++copies}`))
        deployments.push(dep)
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
