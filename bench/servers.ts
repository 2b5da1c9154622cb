// The servers the benchmark loads, and the zone they look up: rbldnsd on
// 127.0.0.1:53, and one Haraka deployment per server, made as the README says
// (npm pack, haraka -i, npm install) and copied, each Haraka in a private mount
// namespace whose /etc/resolv.conf names 127.0.0.1; for the ledger, a private
// redis-server on loopback.
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'

import { createClient } from '@redis/client'

import {
  childPids,
  cloneDeployment,
  createDeployment,
  makeWorkDir,
  packPlugin,
  processHoldingConnection,
  removeWorkDir,
  startHaraka,
  type Deployment,
  type Haraka,
} from '../test/support/haraka'
import { DEFAULT_TXT, ip4setZoneFile, startZone, type ZoneServer } from '../test/support/rbldnsd'
import { findRedisServer, startRedis, type RedisServer } from '../test/support/redis'
import { dayOf, SINCE_KEY, sinceMember } from '../lib/ledger/entry'
import { listedRanges, onCleanup } from './common'

const run = promisify(execFile)

/**
 * The servers differ only in what sits between relay and the recipient check
 * in config/plugins:
 * - `none`: nothing;
 * - `noop`: a plugin on this plugin's hooks that only calls next() (the floor:
 *   what Haraka's hook machinery costs, so what is above it is the plugin's own);
 * - `backscatter`: this plugin, looking the zone up in DNS through the system resolver;
 * - `zonefile`: this plugin answering from a local copy of the zone (its zone-file mirror);
 * - `ledger`: this plugin as `backscatter`, with the sent-mail ledger on (`[ledger] mode = check`);
 * - `baseline`: this plugin as built from another checkout (BENCH_BASELINE), for before and after.
 */
export type ServerName = 'none' | 'noop' | 'backscatter' | 'zonefile' | 'ledger' | 'baseline'

export const NOOP_PLUGIN_NAME = 'bench_noop'

const NOOP_PLUGIN = `'use strict'
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
exports.hook_queue_ok = function (next) {
    next()
}
`

/**
 * The package defaults but `action = score`: nothing is refused, so every
 * transaction goes on to DATA as on the servers without the plugin, while the
 * plugin does the same work (looks up, scores, records, adds the header).
 */
const BACKSCATTER_INI = `[main]
action = score

[dns]
servers =
`

/** The ledger server's key (config/backscatter.keys); any 32 bytes do. */
const LEDGER_KEY = 'b3ec0ffeb3ec0ffeb3ec0ffeb3ec0ffeb3ec0ffeb3ec0ffeb3ec0ffeb3ec0ffe'
const SINCE = sinceMember(crypto.createSecretKey(Buffer.from(LEDGER_KEY, 'utf8')))

/**
 * Every server lets 127.0.0.1 relay (the relay mix connects from there and
 * sends no XCLIENT); XCLIENT resets that, so the other mixes are not relayed.
 * Relayed mail goes to queue/discard too (it discards at queue_outbound).
 */
const RELAY_FILES = {
  'relay.ini': '[relay]\nacl=true\nforce_routing=false\n',
  relay_acl_allow: '127.0.0.1/32\n',
}

export interface Bed {
  /** The zone rbldnsd serves, described for the report. */
  zone: string
  /** What the baseline server runs, when there is one. */
  baseline?: string
  /** The ledger's redis-server, when the ledger server runs: its pid, for its CPU time. */
  redisPid?: number
  /** Start a Haraka for `server` on a fresh copy of its deployment; stopped by close() and by cleanup. */
  start(server: ServerName): Promise<Haraka>
  close(): Promise<void>
}

/** Is 127.0.0.1:53 taken? (Another DNS server there would answer instead of rbldnsd.) */
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

/** The plugin's tarball from `from`: a tarball as it is, or a checkout packed by `npm pack` (which builds it). */
async function baselineTarball(from: string, dir: string): Promise<string> {
  if (from.endsWith('.tgz')) return from
  fs.mkdirSync(dir, { recursive: true })
  await run('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], {
    cwd: from,
    maxBuffer: 16 * 1024 * 1024,
  })
  const tgz = fs.readdirSync(dir).find((f) => f.endsWith('.tgz'))
  if (!tgz) throw new Error(`npm pack in ${from} made no tarball`)
  return path.join(dir, tgz)
}

async function describeCheckout(dir: string): Promise<string> {
  try {
    const { stdout } = await run('git', ['-C', dir, 'log', '-1', '--format=%h %s'])
    return `${dir} (${stdout.trim()})`
  } catch {
    return dir
  }
}

/** A ledger that has held every message for longer than its window, so that it can answer "not ours". */
async function startLedgerRedis(): Promise<RedisServer> {
  const binary = findRedisServer()
  if (!binary) throw new Error('the ledger server needs redis-server (Debian package redis-server)')
  const redis = await startRedis(binary)
  const client = createClient({ url: redis.url })
  await client.connect()
  await client.zAdd(SINCE_KEY, { score: dayOf(Date.now()) - 40, value: SINCE })
  await client.quit()
  return redis
}

/**
 * Set up the zone and the deployments; `baseline`: a built checkout of this
 * plugin, or a tarball; `servers`: those that will be started.
 */
export async function setUpBed(
  log: (s: string) => void,
  servers: readonly ServerName[],
  baseline?: string,
): Promise<Bed> {
  const holder = port53Holder()
  if (holder) throw new Error(`port 53 on 127.0.0.1 is taken (${holder}); the benchmark needs it for rbldnsd`)
  if (process.getuid?.() !== 0) {
    throw new Error('the benchmark needs root (rbldnsd on port 53, unshare -m and mount --bind)')
  }
  const dir = makeWorkDir('bench')
  const running: Haraka[] = []
  let zone: ZoneServer | undefined
  let redis: RedisServer | undefined
  const close = async (): Promise<void> => {
    for (const h of running.splice(0)) await h.stop()
    await zone?.close()
    zone = undefined
    await redis?.close()
    redis = undefined
    removeWorkDir(dir)
  }
  const unregister = onCleanup(close)
  try {
    zone = await startZone({ listed: listedRanges(), prefer: 'rbldnsd', port: 53, queryLog: false })
    log(`zone: ${zone.description}`)
    const resolvConf = path.join(dir, 'resolv.conf')
    fs.writeFileSync(resolvConf, 'nameserver 127.0.0.1\n')
    // The same data for the zone-file server, in rbldnsd's format as the mirror would fetch it.
    const zoneFile = path.join(dir, 'ips.backscatterer.org.ip4set')
    fs.writeFileSync(zoneFile, ip4setZoneFile(listedRanges(), DEFAULT_TXT))
    if (servers.includes('ledger')) {
      redis = await startLedgerRedis()
      log(`ledger: redis-server on ${redis.url}, pid ${redis.pid()}`)
    }

    log('packing the plugin and creating a deployment (npm pack, haraka -i, npm install)')
    const current = await createDeployment(await packPlugin(path.join(dir, 'pack')), path.join(dir, 'base'))
    let before: Deployment | undefined
    if (baseline) {
      log(`packing the baseline from ${baseline}`)
      const tarball = await baselineTarball(baseline, path.join(dir, 'pack-baseline'))
      before = await createDeployment(tarball, path.join(dir, 'baseline'))
    }

    let copies = 0
    const start = async (server: ServerName): Promise<Haraka> => {
      if (server === 'baseline' && !before) throw new Error('server baseline needs BENCH_BASELINE')
      const dep = cloneDeployment(
        server === 'baseline' && before ? before : current,
        path.join(dir, `server-${++copies}`),
      )
      if (server === 'noop')
        fs.writeFileSync(path.join(dep.dir, 'plugins', `${NOOP_PLUGIN_NAME}.js`), NOOP_PLUGIN)
      const plugin = server === 'none' ? [] : server === 'noop' ? [NOOP_PLUGIN_NAME] : ['backscatter']
      const ledger = server === 'ledger' && redis ? redis : undefined
      const h = await startHaraka(dep, {
        plugins: ['xclient', 'relay', ...plugin, 'rcpt_to.in_host_list', 'queue/discard'],
        backscatterIni:
          server === 'zonefile'
            ? `${BACKSCATTER_INI}\n[ips.backscatterer.org]\nfile = ${zoneFile}\n`
            : ledger
              ? `${BACKSCATTER_INI}\n[ledger]\nmode = check\nredis_url = ${ledger.url}\n`
              : BACKSCATTER_INI,
        files: ledger ? { ...RELAY_FILES, 'backscatter.keys': `ledger = ${LEDGER_KEY}\n` } : RELAY_FILES,
        // Log writes would otherwise be much of what a transaction costs.
        logLevel: 'crit',
        resolvConf,
        // queue/discard drops each accepted message after DATA.
        env: { YES_REALLY_DO_DISCARD: '1' },
      })
      running.push(h)
      return h
    }
    return {
      zone: zone.description,
      ...(baseline ? { baseline: await describeCheckout(baseline) } : {}),
      ...(redis?.pid() ? { redisPid: redis.pid() } : {}),
      start,
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

/** bin/haraka's process and every process below it. */
function processTree(pid: number): number[] {
  return [pid, ...childPids(pid).flatMap(processTree)]
}

/**
 * The process that serves SMTP, whose CPU the benchmark reads: the one that
 * holds the server side of a connection, found among bin/haraka's process and
 * its descendants (with `nodes=0`, Haraka 3.3.4 serves in bin/haraka's own).
 */
export async function servingProcess(h: Haraka): Promise<{ pid: number; isBinHaraka: boolean }> {
  const socket = net.connect({ port: h.port, host: '127.0.0.1' })
  try {
    // The greeting comes from the process that accepted the connection.
    await new Promise<void>((resolve, reject) => {
      socket.once('data', () => resolve())
      socket.once('error', reject)
    })
    const pid = processHoldingConnection(processTree(h.pid), h.port, socket.localPort ?? 0)
    if (pid === undefined) throw new Error(`no process under pid ${h.pid} holds the connection`)
    return { pid, isBinHaraka: pid === h.pid }
  } finally {
    socket.destroy()
  }
}
