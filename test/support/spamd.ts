// A private SpamAssassin spamd on a loopback port, for end-to-end tests: Debian's
// rules, a site config folder of the test's own (Debian's .pre files plus the
// rule files given), local tests only. Nothing leaves 127.0.0.1.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

import { freeTcpPort } from './haraka'
import { findProgram } from './programs'
import { stopChild } from './rbldnsd'

const run = promisify(execFile)

/** Where Debian keeps SpamAssassin's site config: the .pre files that load its plugins. */
const DEBIAN_SITE_CONFIG = '/etc/spamassassin'

export interface SpamAssassinPrograms {
  readonly spamd: string
  readonly spamassassin: string
}

/** spamd and spamassassin (for --lint), or why they cannot be used here. */
export function findSpamAssassin(): SpamAssassinPrograms | { missing: string } {
  const spamd = findProgram('spamd')
  const spamassassin = findProgram('spamassassin')
  if (!spamd) return { missing: 'spamd is not installed (Debian package spamd)' }
  if (!spamassassin) return { missing: 'spamassassin is not installed (Debian package spamassassin)' }
  const pre = fs.existsSync(DEBIAN_SITE_CONFIG)
    ? fs.readdirSync(DEBIAN_SITE_CONFIG).filter((f) => f.endsWith('.pre'))
    : []
  if (pre.length === 0) return { missing: `no SpamAssassin .pre files in ${DEBIAN_SITE_CONFIG}` }
  return { spamd, spamassassin }
}

export interface Spamd {
  /** `127.0.0.1:port`, for spamassassin.ini `spamd_socket`. */
  readonly socket: string
  /** The site config folder (--siteconfigpath). */
  readonly siteConfigDir: string
  /** Everything spamd logged so far (its log goes to stderr). */
  log(): string
  /** Wait until `re` matches a line of spamd's log; returns the line. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>
  close(): Promise<void>
}

/** The user spamd drops to when started as root (it will not scan as root). */
function spamdUser(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  const passwd = fs.existsSync('/etc/passwd') ? fs.readFileSync('/etc/passwd', 'utf8') : ''
  return /^debian-spamd:/m.test(passwd) ? 'debian-spamd' : 'nobody'
}

/** spamd's PING: true on "SPAMD/1.x 0 PONG". */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' })
    let reply = ''
    const done = (ok: boolean): void => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(2000, () => done(false))
    sock.on('error', () => done(false))
    sock.on('connect', () => sock.write('PING SPAMC/1.5\r\n\r\n'))
    sock.on('data', (d) => {
      reply += d.toString()
      if (reply.includes('\n')) done(/^SPAMD\/\d\.\d+ 0 PONG/.test(reply))
    })
    sock.on('end', () => done(/^SPAMD\/\d\.\d+ 0 PONG/.test(reply)))
  })
}

/**
 * Start spamd on 127.0.0.1 with a site config folder holding Debian's .pre files
 * and `files` (name → text, e.g. the shipped backscatter.cf and a local.cf).
 * The config is checked with `spamassassin --lint` first: a rule that does not
 * parse fails here, not silently in spamd.
 */
export async function startSpamd(
  programs: SpamAssassinPrograms,
  files: Record<string, string>,
  startTimeoutMs = 60_000,
): Promise<Spamd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-spamd-'))
  // spamd drops to an unprivileged user before it reads the config.
  fs.chmodSync(dir, 0o755)
  const siteConfigDir = path.join(dir, 'site')
  fs.mkdirSync(siteConfigDir, { mode: 0o755 })
  for (const f of fs.readdirSync(DEBIAN_SITE_CONFIG).filter((n) => n.endsWith('.pre')))
    fs.copyFileSync(path.join(DEBIAN_SITE_CONFIG, f), path.join(siteConfigDir, f))
  for (const [name, text] of Object.entries(files))
    fs.writeFileSync(path.join(siteConfigDir, name), text, { mode: 0o644 })
  // The scanning user's HOME: spamd makes a .spamassassin folder there even with -x.
  const home = path.join(dir, 'home')
  fs.mkdirSync(home)
  fs.chmodSync(home, 0o777)

  // -L: local tests only, so no rule asks DNS or the network; -x: no per-user config.
  const common = [`--siteconfigpath=${siteConfigDir}`, '-L', '-x']
  try {
    await run(programs.spamassassin, [...common, '--lint'], { env: { ...process.env, HOME: home } })
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    fs.rmSync(dir, { recursive: true, force: true })
    throw new Error(`spamassassin --lint failed for ${siteConfigDir}:\n${e.stderr ?? ''}${e.stdout ?? ''}`)
  }

  const user = spamdUser()
  let lastOutput = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeTcpPort()
    const args = [
      ...common,
      `--listen=127.0.0.1:${port}`,
      '--allowed-ips=127.0.0.1',
      '--max-children=1',
      '--min-children=1',
      '--syslog=stderr',
      `--helper-home-dir=${home}`,
      `--pidfile=${path.join(dir, 'spamd.pid')}`,
      ...(user ? ['-u', user] : []),
    ]
    // Its own process group, so close() also ends the child it forks to scan.
    const child: ChildProcess = spawn(programs.spamd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, HOME: home },
    })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    child.on('error', (err) => (output += String(err)))
    const exited = (): boolean => child.exitCode !== null || child.signalCode !== null
    const close = async (): Promise<void> => {
      await stopChild(child, 5000)
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch {
        // the group is empty
      }
    }

    const deadline = Date.now() + startTimeoutMs
    let up = false
    while (!exited() && Date.now() < deadline) {
      // spamd loads every rule before it listens: a few seconds.
      if (/server started on/.test(output) && (await ping(port))) {
        up = true
        break
      }
      await new Promise((r) => setTimeout(r, 100))
    }
    if (up) {
      return {
        socket: `127.0.0.1:${port}`,
        siteConfigDir,
        log: () => output,
        waitForLog: async (re, timeoutMs = 10_000) => {
          const until = Date.now() + timeoutMs
          for (;;) {
            const line = output.split('\n').find((l) => re.test(l))
            if (line !== undefined) return line
            if (Date.now() > until) throw new Error(`spamd did not log ${re} in time:\n${output}`)
            await new Promise((r) => setTimeout(r, 25))
          }
        },
        close: async () => {
          await close()
          fs.rmSync(dir, { recursive: true, force: true })
        },
      }
    }
    await close()
    lastOutput = output.trim()
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`spamd did not start:\n${lastOutput}`)
}
