// Shared by the command's tests: main() run in process with its output
// captured, temporary config folders, a scripted DNS server on 127.0.0.1 that
// lists one address, and helpers to read the tables the command prints.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, mock } from 'node:test'

import { main } from '../../lib/cli/main'
import { DnsblResolver } from '../../lib/dns/resolver'
import { dnsblZone, startDns, TYPE, type Handler, type ScriptedDns } from '../support/dns-server'
import { removeConfigFolder } from '../support/haraka-config'
import { advance } from '../support/mock-clock'

export const ZONE = 'ips.backscatterer.org'

// Public-looking addresses (the plugin skips private ones and the documentation ranges).
export const LISTED = '45.33.12.7'
export const CLEAN = '45.33.12.8'
/** An address whose queries the server never answers, while the test points work. */
export const UNANSWERED = '45.33.12.9'
export const REASON = 'Your IP 45.33.12.7 is listed: backscatter seen'

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Run the command in this process, as `haraka-backscatter ...args` would. */
export async function run(args: readonly string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) })
  return { code, stdout, stderr }
}

/**
 * run() on node:test's mock clock (setTimeout and Date, from now), moved a
 * tenth of a second per turn of the event loop until the command is done: a
 * wait for a server that never answers costs no real time. `ms`: the clock's move.
 */
export async function runOnMockClock(
  args: readonly string[],
  limitMs = 60_000,
): Promise<Run & { ms: number }> {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.now() })
  try {
    let done: { run: Run } | { error: unknown } | undefined
    run(args).then(
      (r) => (done = { run: r }),
      (error: unknown) => (done = { error }),
    )
    const ms = await advance(() => done !== undefined, 0, limitMs)
    assert.ok(done && ms !== undefined, `the command ended within ${limitMs} ms of the mock clock`)
    if ('error' in done) throw done.error
    return { ...done.run, ms }
  } finally {
    mock.timers.reset()
  }
}

const tmpDirs: string[] = []

/** A new temporary folder, removed after the file's tests. */
export function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-cli-'))
  tmpDirs.push(dir)
  return dir
}

/** A Haraka config folder whose backscatter.ini is `ini`, with `files` (e.g. backscatter.keys) readable by the owner only. */
export function configDir(ini: string, files: Record<string, string> = {}): string {
  const dir = tmpDir()
  fs.writeFileSync(path.join(dir, 'backscatter.ini'), ini)
  for (const [name, text] of Object.entries(files))
    fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 })
  return dir
}

/**
 * `[dns]` pointing at the scripted server, then `extra`. One try, so a dropped
 * query costs one timeout; a generous one, so a busy machine never misses an answer.
 */
export function dnsIni(dns: ScriptedDns, extra = ''): string {
  return `[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\ntries = 1\n${extra}`
}

/**
 * `[dns]` at the scripted server with two tries: a lookup that is never
 * answered costs one budget, that is two queries, and a second wait four.
 */
export function twoTriesIni(dns: ScriptedDns, extra = ''): string {
  return `[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\ntries = 2\n${extra}`
}

const MARKER_IP = '45.0.0.1'

/**
 * The queries the server received from the `since`-th on, counted by name and
 * type ("name A", "name TXT"), once all sent before this call have arrived: a
 * marker query of its own, answered, comes after them (and is not counted).
 */
export async function queryCounts(dns: ScriptedDns, since: number): Promise<Record<string, number>> {
  const marker = new DnsblResolver({ servers: [dns.server], timeoutMs: 2000, tries: 2 })
  assert.equal((await marker.lookup(MARKER_IP, ZONE)).status, 'not-listed')
  const counts: Record<string, number> = {}
  for (const q of dns.queries.slice(since)) {
    if (q.name === nameOf(MARKER_IP)) continue
    const key = `${q.name} ${q.type === TYPE.TXT ? 'TXT' : q.type === TYPE.A ? 'A' : q.type}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

/** The query name of `ip` in ZONE. */
export const nameOf = (ip: string): string => `${ip.split('.').reverse().join('.')}.${ZONE}`

/** The cells of a table line, split on runs of two or more spaces. */
export function cells(line: string): string[] {
  return line.trim().split(/ {2,}/)
}

export function lineWith(text: string, ...needles: string[]): string {
  const line = text.split('\n').find((l) => needles.every((n) => l.includes(n)))
  assert.ok(line, `no line with ${needles.join(', ')} in:\n${text}`)
  return line
}

/**
 * A config folder whose zone ZONE is answered from a zone file of `entries`
 * addresses 45.0.0.0, 45.0.0.1, ... (and the 127.0.0.2 test point), with a
 * 50 ms DNS budget: 300 000 entries take far longer than that to load.
 */
export function largeZoneFileConfig(entries: number): string {
  const dir = tmpDir()
  const file = path.join(dir, `${ZONE}.zone`)
  const lines = ['127.0.0.2 :127.0.0.2:RFC 5782 test point']
  for (let i = 0; i < entries; i++) lines.push(`45.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  fs.writeFileSync(file, `${lines.join('\n')}\n`)
  fs.writeFileSync(
    path.join(dir, 'backscatter.ini'),
    `[dns]\ntimeout_ms = 50\ntries = 1\n\n[${ZONE}]\nfile = ${file}\n`,
  )
  return dir
}

const listing: Handler = dnsblZone(ZONE, { [LISTED]: { txt: REASON } })
const unansweredName = nameOf(UNANSWERED)

/**
 * Start the scripted server before the file's tests and stop it after. It
 * answers ZONE (LISTED listed, UNANSWERED dropped), `parked.example` (lists
 * everything) and `silent.example` (never answers); any other zone lists nothing.
 */
export function scriptedDns(): { readonly current: ScriptedDns } {
  const holder: { current?: ScriptedDns } = {}
  before(async () => {
    holder.current = await startDns((q) => {
      if (q.name.endsWith('.parked.example')) return { a: ['127.0.0.2'] }
      if (q.name.endsWith('.silent.example') || q.name === unansweredName) return { drop: true }
      return listing(q)
    })
  })
  after(async () => {
    await holder.current?.close()
    for (const dir of tmpDirs.splice(0)) removeConfigFolder(dir)
  })
  return {
    get current(): ScriptedDns {
      assert.ok(holder.current, 'the DNS server starts before the tests')
      return holder.current
    },
  }
}
