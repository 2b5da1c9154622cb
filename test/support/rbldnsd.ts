// A DNSBL zone on 127.0.0.1 for end-to-end tests and the demo: served by Debian's
// rbldnsd (the server the list's mirrors run) from an ip4set zone file, or, where
// rbldnsd is not installed, by the scripted loopback DNS server the unit tests use.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import dgram from 'node:dgram'
import net from 'node:net'
import { Resolver } from 'node:dns/promises'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { dnsblZone, reverseIpv4, startDns, TYPE } from './dns-server'
import { findProgram } from './programs'

export interface ZoneServer {
  /** 'rbldnsd' or 'scripted' (the Node loopback server), for reports. */
  readonly kind: 'rbldnsd' | 'scripted'
  /** A line saying which server answers, e.g. "rbldnsd 1.0pre on 127.0.0.1:40000". */
  readonly description: string
  /** `127.0.0.1:port`, for `[dns] servers`. */
  readonly server: string
  readonly zone: string
  /** Every query received so far (name in lower case, type such as 'A' or 'TXT'), in order. */
  queries(): { name: string; type: string }[]
  /** How many queries of `type` (any type when omitted) asked about this IPv4 address in the zone. */
  queriedFor(ip: string, type?: string): number
  close(): Promise<void>
}

export interface ZoneOptions {
  zone?: string
  /** Listed IPv4 addresses; the RFC 5782 test point 127.0.0.2 is always listed. */
  listed: readonly string[]
  /** TXT for every listing; `$` is replaced by the IP (rbldnsd's convention). */
  txt?: string
  /**
   * Which server: 'rbldnsd' requires it, 'scripted' forces the fallback, 'auto'
   * (default) uses rbldnsd when installed. The E2E_DNS environment variable
   * overrides this.
   */
  prefer?: 'auto' | 'rbldnsd' | 'scripted'
  /** UDP port on 127.0.0.1 (default: a free one). rbldnsd only. */
  port?: number
  /** Keep rbldnsd's query log (default true; queries() is empty without it). */
  queryLog?: boolean
}

/** rbldnsd's path, or undefined when it is not installed (it lives in /usr/sbin). */
export const findRbldnsd = (): string | undefined => findProgram('rbldnsd')

export const ZONE = 'ips.backscatterer.org'
export const DEFAULT_TXT = 'Test listing of $, see https://www.backscatterer.org/?target=test&ip=$'

/** An ip4set zone file in rbldnsd's format, as the list's mirrors serve it. */
export function ip4setZoneFile(listed: readonly string[], txt: string): string {
  const lines = [
    '# ips.backscatterer.org test data, rbldnsd ip4set format',
    `:127.0.0.2:${txt}`,
    '# RFC 5782 test point: must be listed (127.0.0.1 must not be)',
    '127.0.0.2',
    ...listed,
    '',
  ]
  return lines.join('\n')
}

/** A port on 127.0.0.1 that was free a moment ago for UDP (and, but for a busy machine, TCP). */
export async function freeUdpPort(): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const sock = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject)
      sock.bind(0, '127.0.0.1', () => resolve())
    })
    const { port } = sock.address()
    await new Promise<void>((r) => sock.close(() => r()))
    // A DNS server listens on TCP too: on a busy machine the number may be taken there.
    if ((await tcpPortFree(port)) || attempt === 20) return port
  }
}

/** Whether a TCP listener could take 127.0.0.1:`port` just now. */
function tcpPortFree(port: number): Promise<boolean> {
  const srv = net.createServer()
  return new Promise((resolve) => {
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** Ask for the test point until the server answers it (or give up). */
async function waitForAnswer(
  server: string,
  zone: string,
  child: ChildProcess,
  ms: number,
): Promise<boolean> {
  const resolver = new Resolver({ timeout: 200, tries: 1 })
  resolver.setServers([server])
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false
    try {
      const a = await resolver.resolve4(`2.0.0.127.${zone}`)
      if (a.includes('127.0.0.2')) return true
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

/** The user rbldnsd drops to when started as root (it refuses to run as root). */
function rbldnsdUser(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  const passwd = fs.existsSync('/etc/passwd') ? fs.readFileSync('/etc/passwd', 'utf8') : ''
  return /^rbldns:/m.test(passwd) ? 'rbldns' : 'nobody'
}

async function startRbldnsd(
  binary: string,
  zone: string,
  listed: readonly string[],
  txt: string,
  opts: { port?: number; queryLog?: boolean } = {},
): Promise<ZoneServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-rbldnsd-'))
  // rbldnsd drops privileges before it reads the data and opens its log.
  fs.chmodSync(dir, 0o755)
  const zoneFile = path.join(dir, 'backscatterer.ip4set')
  fs.writeFileSync(zoneFile, ip4setZoneFile(listed, txt), { mode: 0o644 })
  const queryLog = path.join(dir, 'queries.log')
  fs.writeFileSync(queryLog, '', { mode: 0o666 })
  fs.chmodSync(queryLog, 0o666)
  const version =
    (spawnSync(binary, ['-h'], { encoding: 'utf8' }).stdout ?? '').match(/version (\S+)/)?.[1] ?? ''

  let lastError = ''
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? (await freeUdpPort())
    const user = rbldnsdUser()
    const args = [
      '-n', // stay in the foreground, so the test owns the process
      '-b',
      `127.0.0.1/${port}`,
      '-w',
      dir,
      // '+': unbuffered, every query is in the file at once
      ...(opts.queryLog === false ? [] : ['-l', `+${queryLog}`]),
      '-t',
      '60',
      ...(user ? ['-u', user] : []),
      `${zone}:ip4set:${path.basename(zoneFile)}`,
    ]
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    child.on('error', (err) => (output += String(err)))
    const server = `127.0.0.1:${port}`
    if (await waitForAnswer(server, zone, child, 5000)) {
      // Lines: "<time> <client ip> <name> <type> <class>: <rcode>/<answers>/<size>"
      const readLog = (): { name: string; type: string }[] =>
        fs
          .readFileSync(queryLog, 'utf8')
          .split('\n')
          .map((l) => l.split(' '))
          .filter((f) => f.length >= 5)
          .map((f) => ({ name: (f[2] ?? '').toLowerCase(), type: f[3] ?? '' }))
      return {
        kind: 'rbldnsd',
        description: `rbldnsd${version ? ` ${version}` : ''} on ${server} (ip4set ${zoneFile}, query log ${queryLog})`,
        server,
        zone,
        queries: readLog,
        queriedFor: (ip, type) => countFor(readLog(), zone, ip, type),
        close: async () => {
          await stopChild(child)
          fs.rmSync(dir, { recursive: true, force: true })
        },
      }
    }
    await stopChild(child)
    lastError = output.trim()
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`rbldnsd did not start: ${lastError}`)
}

/** SIGTERM, then SIGKILL if it is still there after a moment. */
export async function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

async function startScripted(zone: string, listed: readonly string[], txt: string): Promise<ZoneServer> {
  const entries: Record<string, { txt: string }> = {}
  for (const ip of listed) entries[ip] = { txt: txt.replaceAll('$', ip) }
  const dns = await startDns(dnsblZone(zone, entries))
  const s: ZoneServer = {
    kind: 'scripted',
    description: `scripted loopback DNS server (test/support/dns-server.ts) on ${dns.server}; rbldnsd not used`,
    server: dns.server,
    zone,
    queries: () => dns.queries.map((q) => ({ name: q.name, type: TYPE_NAMES[q.type] ?? String(q.type) })),
    queriedFor: (ip, type) => countFor(s.queries(), zone, ip, type),
    close: () => dns.close(),
  }
  return s
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]))

function countFor(
  queries: { name: string; type: string }[],
  zone: string,
  ip: string,
  type?: string,
): number {
  const name = `${reverseIpv4(ip)}.${zone}`
  return queries.filter((q) => q.name === name && (type === undefined || q.type === type)).length
}

/** Serve a DNSBL zone on 127.0.0.1 listing `listed` (and the test point 127.0.0.2). */
export async function startZone(opts: ZoneOptions): Promise<ZoneServer> {
  const zone = opts.zone ?? ZONE
  const txt = opts.txt ?? DEFAULT_TXT
  const env = process.env.E2E_DNS
  const prefer = env === 'rbldnsd' || env === 'scripted' || env === 'auto' ? env : (opts.prefer ?? 'auto')
  if (prefer !== 'scripted') {
    const binary = findRbldnsd()
    if (binary) return startRbldnsd(binary, zone, opts.listed, txt, opts)
    if (prefer === 'rbldnsd') throw new Error('rbldnsd is required (E2E_DNS=rbldnsd) but not installed')
  }
  return startScripted(zone, opts.listed, txt)
}
