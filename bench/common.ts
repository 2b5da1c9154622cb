// Shared pieces of the benchmark: cleanup of started processes, client
// addresses, CPU time from /proc, statistics and Markdown tables.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'

type Cleanup = () => Promise<void> | void

const cleanups = new Set<Cleanup>()
let handlersInstalled = false

/** Run `fn` at exit, on Ctrl-C or on a failure; returns a function that unregisters it. */
export function onCleanup(fn: Cleanup): () => void {
  installHandlers()
  cleanups.add(fn)
  return () => cleanups.delete(fn)
}

/** Run every registered cleanup (latest first); never throws. */
export async function cleanupAll(): Promise<void> {
  const fns = [...cleanups].reverse()
  cleanups.clear()
  for (const fn of fns) {
    try {
      await fn()
    } catch (err) {
      console.error(`cleanup failed: ${String(err)}`)
    }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the processes the benchmark started`)
      void cleanupAll().finally(() => process.exit(130))
    })
  }
  for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
    process.once(event, (err: unknown) => {
      console.error(err)
      void cleanupAll().finally(() => process.exit(1))
    })
  }
}

export { prng } from '../test/support/prng'

/**
 * First octets of the client addresses: public unicast space, far from the
 * private, loopback, link-local and documentation ranges. Addresses are only
 * ever presented through XCLIENT; no packet is sent to them.
 */
export const PUBLIC_FIRST_OCTETS = [23, 31, 37, 45, 62, 77, 81, 89, 91, 109, 151, 176, 185, 188, 193, 212]

/** Listed in the benchmark zone: second octet below this (26/256 = 10.2 % of the addresses). */
export const LISTED_SECOND_OCTET_BELOW = 26

/** The zone lines that list the addresses clientIp() marks as listed. */
export function listedRanges(): string[] {
  return PUBLIC_FIRST_OCTETS.map((a) => `${a}.0.0.0-${a}.${LISTED_SECOND_OCTET_BELOW - 1}.255.255`)
}

/**
 * The i-th client address of a sequence: distinct for every i below 2^28,
 * spread over the first octets above and scrambled in the other three.
 */
export function clientIp(i: number): string {
  const n = PUBLIC_FIRST_OCTETS.length
  const a = PUBLIC_FIRST_OCTETS[i % n] as number
  // An odd multiplier is a bijection modulo 2^24.
  const j = (Math.imul(Math.floor(i / n) + 1, 0x9e3779) & 0xffffff) >>> 0
  return `${a}.${(j >>> 16) & 255}.${(j >>> 8) & 255}.${j & 255}`
}

/** Is this benchmark address listed in the benchmark zone? */
export function isListed(ip: string): boolean {
  return Number(ip.split('.')[1]) < LISTED_SECOND_OCTET_BELOW
}

/** Linear-interpolated quantile, q in [0, 1]; NaN for no values. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo)
}

/** Median, quartiles and extremes of the finite values. */
export interface Spread {
  median: number
  p25: number
  p75: number
  min: number
  max: number
  n: number
}

export function spread(xs: readonly number[]): Spread {
  const finite = xs.filter((x) => Number.isFinite(x))
  return {
    median: quantile(finite, 0.5),
    p25: quantile(finite, 0.25),
    p75: quantile(finite, 0.75),
    min: finite.length ? Math.min(...finite) : NaN,
    max: finite.length ? Math.max(...finite) : NaN,
    n: finite.length,
  }
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times. */
const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/**
 * CPU seconds a process has used so far, all its threads (JavaScript, GC,
 * libuv's pool): their run time from /proc/<pid>/task/<tid>/schedstat, in
 * nanoseconds, or where that is missing utime + stime from /proc/<pid>/stat,
 * in clock ticks (10 ms, too coarse for one slice).
 */
export function cpuSeconds(pid: number): number {
  return schedstatSeconds(pid) ?? statSeconds(pid)
}

function schedstatSeconds(pid: number): number | undefined {
  let ns = 0
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      } catch {
        // The thread ended between the listing and the read.
      }
    }
  } catch {
    return undefined
  }
  return Number.isFinite(ns) && ns > 0 ? ns / 1e9 : undefined
}

function statSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here (0-based, from field 3).
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** A positive integer from the environment, or the default. */
export function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name])
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : fallback
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '–'
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

/** "1.02 (0.97–1.08)": median and min–max. */
export function fmtRange(s: Spread, digits = 2): string {
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`
}

/** "1.02 (1.00–1.05)": median and p25–p75. */
export function fmtIqr(s: Spread, digits = 2): string {
  return `${fmt(s.median, digits)} (${fmt(s.p25, digits)}–${fmt(s.p75, digits)})`
}

/** A Markdown table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n')
}

/** uptime's three load averages. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
}

/** The machine, for the report. */
export function machine(): string {
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : ''
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?'
  return `${os.availableParallelism()} CPUs (${model}), ${os.type()} ${os.release()}, Node ${process.version}`
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
