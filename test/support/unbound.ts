// A private unbound (Debian's caching resolver) on a loopback port, for
// end-to-end tests. The config under test (e.g. docs/resolver.md's stub zone)
// is appended to a harness part that keeps unbound in the test's temp folder and
// on 127.0.0.1. Every reply unbound sends is logged (log-replies), with whether
// it came from its cache.
import { spawn, type ChildProcess } from 'node:child_process'
import { Resolver } from 'node:dns/promises'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { freeUdpPort, stopChild } from './rbldnsd'
import { findProgram } from './programs'

/** unbound's path, or undefined when it is not installed (Debian package unbound). */
export function findUnbound(): string | undefined {
  return findProgram('unbound')
}

export interface UnboundReply {
  /** Query name in lower case, without the final dot. */
  readonly name: string
  readonly type: string
  /** NOERROR, NXDOMAIN, SERVFAIL … */
  readonly rcode: string
  /** True when unbound answered from its cache, without asking upstream. */
  readonly cached: boolean
}

export interface Unbound {
  /** `127.0.0.1:port`, for `[dns] servers`. */
  readonly server: string
  readonly configFile: string
  /** Every reply logged so far, in order. */
  replies(): UnboundReply[]
  /** Everything unbound logged so far. */
  log(): string
  /** Wait until `count` replies to `name` (any type when omitted) are logged; returns them. */
  waitForReplies(
    name: string,
    opts?: { type?: string; count?: number; timeoutMs?: number },
  ): Promise<UnboundReply[]>
  close(): Promise<void>
}

/**
 * What the test harness adds to the config under test. Why each line:
 * - a private port, folder and log; no daemon, no chroot, no user change;
 * - `module-config: "iterator"`: no DNSSEC validation, so no root trust anchor to fetch;
 * - `outgoing-interface: 127.0.0.1`: unbound sends from loopback only, so no query can
 *   leave the machine, whatever it is asked;
 * - `serve-expired: no` (Debian's default too): an expired answer is never served;
 * - `infra-cache-max-rtt: 1000`: a dead upstream is given up within seconds, after which
 *   unbound answers SERVFAIL at once (the default back-off takes minutes to get there);
 * - `log-replies`, `log-servfail`: the test reads what unbound answered, and from where.
 */
function harnessConfig(dir: string, port: number): string {
  return [
    'server:',
    `    interface: 127.0.0.1@${port}`,
    '    do-ip6: no',
    '    do-daemonize: no',
    '    chroot: ""',
    '    username: ""',
    `    directory: "${dir}"`,
    `    pidfile: "${path.join(dir, 'unbound.pid')}"`,
    '    use-syslog: no',
    '    logfile: ""',
    '    log-time-ascii: no',
    '    verbosity: 1',
    '    log-replies: yes',
    '    log-servfail: yes',
    '    module-config: "iterator"',
    '    outgoing-interface: 127.0.0.1',
    '    access-control: 127.0.0.0/8 allow',
    '    serve-expired: no',
    '    infra-cache-max-rtt: 1000',
    '',
  ].join('\n')
}

// "[1796128244] unbound[12965:0] info: 127.0.0.1 3.2.1.45.zone. A IN NOERROR 0.000000 1 64"
const REPLY_LINE = /\binfo: \S+ (\S+)\. (\S+) IN (\S+) [\d.]+ ([01]) \d+\s*$/

function parseReplies(log: string): UnboundReply[] {
  const replies: UnboundReply[] = []
  for (const line of log.split('\n')) {
    const m = REPLY_LINE.exec(line)
    if (m)
      replies.push({
        name: (m[1] ?? '').toLowerCase(),
        type: m[2] ?? '',
        rcode: m[3] ?? '',
        cached: m[4] === '1',
      })
  }
  return replies
}

/** Ask unbound for `localhost.` (a local zone it answers itself) until it does. */
async function waitForService(server: string, child: ChildProcess, ms: number): Promise<boolean> {
  const resolver = new Resolver({ timeout: 500, tries: 1 })
  resolver.setServers([server])
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false
    try {
      if ((await resolver.resolve4('localhost')).includes('127.0.0.1')) return true
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

/** Start unbound on 127.0.0.1 with the harness config followed by `config`. */
export async function startUnbound(binary: string, config: string): Promise<Unbound> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-unbound-'))
  const configFile = path.join(dir, 'unbound.conf')
  let lastOutput = ''
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeUdpPort()
    fs.writeFileSync(configFile, `${harnessConfig(dir, port)}\n${config}`)
    const child = spawn(binary, ['-d', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    child.on('error', (err) => (output += String(err)))
    const server = `127.0.0.1:${port}`
    if (await waitForService(server, child, 10_000)) {
      const replies = (): UnboundReply[] => parseReplies(output)
      return {
        server,
        configFile,
        replies,
        log: () => output,
        waitForReplies: async (name, o = {}) => {
          const count = o.count ?? 1
          const deadline = Date.now() + (o.timeoutMs ?? 5000)
          for (;;) {
            const found = replies().filter(
              (r) => r.name === name && (o.type === undefined || r.type === o.type),
            )
            if (found.length >= count) return found
            if (Date.now() > deadline)
              throw new Error(
                `unbound did not log ${count} replies to ${name} ${o.type ?? ''} in time:\n${output}`,
              )
            await new Promise((r) => setTimeout(r, 25))
          }
        },
        close: async () => {
          await stopChild(child)
          fs.rmSync(dir, { recursive: true, force: true })
        },
      }
    }
    await stopChild(child)
    lastOutput = output.trim()
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`unbound did not start:\n${lastOutput}`)
}
