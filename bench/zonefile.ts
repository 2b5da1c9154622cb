// The zone-file mirror in process (lib/zonefile/): load time, memory,
// lookups per second, the longest event-loop stall while a large file reloads,
// and the memory a file of wide overlapping ranges takes to load. Kept apart
// from the whole-system run because a zone file is loaded once per download,
// not per transaction: CPU per transaction cannot show what a load costs.
//
//   npm run bench:zonefile [-- sizes...]   (default 10000 100000 1000000)
//
// Without --expose-gc the heap figures include garbage and are marked "(no gc)".
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

import { ipToString, parseZone } from '../lib/zonefile'
import { ZoneFileSource } from '../lib/zonefile/source'
import { prng } from '../test/support/prng'

export interface ZoneBenchRow {
  entries: number
  fileMB: number
  parseMs: number
  loadMs: number
  ranges: number
  heapMB: number
  arrayBuffersMB: number
  lookupsPerSec: number
  hitsPerSec: number
  missesPerSec: number
}

export interface WideRangeRow {
  what: string
  fileMB: number
  lines: number
  ranges: number
  loadMs: number
  /** Growth of the process's peak RSS while loading, in MB. */
  rssGrowthMB: number
  /** Highest JS heap + array buffers seen while loading, above what was in use before, in MB. */
  heapGrowthMB: number
}

export interface ZoneBenchResult {
  rows: ZoneBenchRow[]
  reload: { entries: number; ms: number; maxStallMs: number; p99StallMs: number; maxGapMs: number }
  wide: WideRangeRow[]
}

/** The memory bound the zone mirror promises for 1 MB of overlapping /8-wide ranges (docs/zone-mirror.md). */
export const WIDE_TARGET_MB = 100

/** A zone shaped like the list's: mostly single IPs, some CIDRs and ranges, a few exclusions. */
export function generateZone(entries: number, seed = 1): { text: string; listed: string[] } {
  const rnd = prng(seed)
  const parts: string[] = [
    '$SOA 3600 ns.example.test. hostmaster.example.test. 0 600 300 86400 300',
    '$NS 3600 ns.example.test.',
    '$TTL 2100',
    ':127.0.0.2:Backscatterer listing of $, see https://www.backscatterer.org/?target=test&ip=$',
    '127.0.0.2',
  ]
  const listed: string[] = []
  for (let i = 0; i < entries; i++) {
    const a = Math.floor(rnd() * 0xdf000000) + 0x01000000
    const k = rnd()
    if (k < 0.97) {
      const ip = ipToString(a)
      parts.push(ip)
      listed.push(ip)
    } else if (k < 0.985) {
      const bits = 24 + Math.floor(rnd() * 8)
      const base = (a & ((0xffffffff << (32 - bits)) >>> 0)) >>> 0
      parts.push(`${ipToString(base)}/${bits}`)
      listed.push(ipToString(base))
    } else if (k < 0.995) {
      parts.push(`${ipToString(a)}-${ipToString(Math.min(0xffffffff, a + Math.floor(rnd() * 500)))}`)
      listed.push(ipToString(a))
    } else parts.push(`!${ipToString(a)}`)
  }
  parts.push('')
  return { text: parts.join('\n'), listed }
}

/**
 * Ranges at random unaligned starts, overlapping one another, with some
 * exclusions and values, up to `bytes` of text: `width` addresses wide (give
 * or take half), or from 1.x.x.x to 254.x.x.x when `width` is 0 (the widest).
 */
export function generateWideRanges(bytes: number, width: number, seed = 1): string {
  const rnd = prng(seed)
  const parts: string[] = []
  let size = 0
  while (size < bytes) {
    const a = width ? Math.floor(rnd() * (2 ** 32 - width * 1.5)) : 0x01000000 + Math.floor(rnd() * 2 ** 24)
    const b = width ? a + Math.floor(width * (0.5 + rnd())) : 0xfe000000 + Math.floor(rnd() * 2 ** 24)
    const k = rnd()
    const line = `${k < 0.1 ? '!' : ''}${ipToString(a)}-${ipToString(b)}${k > 0.9 ? ' :3:wide $' : ''}`
    parts.push(line)
    size += line.length + 1
  }
  parts.push('')
  return parts.join('\n')
}

/** Load `file` with ZoneFileSource in a fresh process and measure what loading costs in memory. */
async function loadInChild(
  file: string,
  libDir: string,
): Promise<{ ok: boolean; ms: number; ranges: number; rssGrowthMB: number; heapGrowthMB: number }> {
  const script = `
    const { ZoneFileSource } = require(${JSON.stringify(path.resolve(libDir, 'zonefile', 'source.ts'))})
    const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers }
    global.gc?.()
    const rssBefore = process.memoryUsage().rss
    const usedBefore = used()
    let usedPeak = usedBefore
    const sampler = setInterval(() => { usedPeak = Math.max(usedPeak, used()) }, 2)
    const src = new ZoneFileSource(${JSON.stringify(file)}, 'bench.test', { info() {}, warn() {} }, { pollMs: 0 })
    const started = performance.now()
    src.load().then((ok) => {
      const ms = performance.now() - started
      usedPeak = Math.max(usedPeak, used())
      clearInterval(sampler)
      src.close()
      const rssPeak = process.resourceUsage().maxRSS * 1024
      console.log(JSON.stringify({
        ok, ms, ranges: src.data ? src.data.size : 0,
        rssGrowthMB: (rssPeak - rssBefore) / 1048576,
        heapGrowthMB: (usedPeak - usedBefore) / 1048576,
      }))
    })
  `
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`loading ${file} in a child process failed (${code}): ${err.slice(0, 500)}`)
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Awaited<ReturnType<typeof loadInChild>>
}

/**
 * What loading wide ranges costs: 1 MB of overlapping /8-wide ranges, and
 * 120 KB of ranges from 1/8 to 254/8 (1.0.0.1-254.255.255.254 and the like),
 * each loaded in a fresh process. `libDir` lets another tree be measured.
 */
export async function benchWideRanges(
  libDir = path.resolve(__dirname, '..', 'lib'),
): Promise<WideRangeRow[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonefile-wide-'))
  const cases = [
    { what: '1 MB of overlapping /8-wide ranges', bytes: 1024 * 1024, width: 2 ** 24 },
    { what: '120 KB of ranges as wide as 1.0.0.1-254.255.255.254', bytes: 120 * 1024, width: 0 },
  ]
  const rows: WideRangeRow[] = []
  try {
    for (const c of cases) {
      const text = generateWideRanges(c.bytes, c.width)
      const file = path.join(dir, 'wide.zone')
      fs.writeFileSync(file, text)
      const r = await loadInChild(file, libDir)
      if (!r.ok) throw new Error(`${c.what}: the file did not load`)
      rows.push({
        what: c.what,
        fileMB: text.length / 1048576,
        lines: text.split('\n').length - 1,
        ranges: r.ranges,
        loadMs: r.ms,
        rssGrowthMB: r.rssGrowthMB,
        heapGrowthMB: r.heapGrowthMB,
      })
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return rows
}

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc
  if (!g) return false
  g()
  g()
  return true
}

function timeLookups(lookup: (ip: string) => unknown, ips: readonly string[], minMs: number): number {
  let done = 0
  let sink = 0
  const started = performance.now()
  let elapsed = 0
  while (elapsed < minMs) {
    for (let i = 0; i < ips.length; i++) {
      const r = lookup(ips[i] as string) as { status: string }
      sink += r.status.length
    }
    done += ips.length
    elapsed = performance.now() - started
  }
  if (sink === 0) throw new Error('unreachable')
  return done / (elapsed / 1000)
}

export async function benchZoneFile(
  sizes: readonly number[] = [10_000, 100_000, 1_000_000],
): Promise<ZoneBenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonefile-bench-'))
  const rows: ZoneBenchRow[] = []
  const quiet = { info: () => undefined, warn: () => undefined }
  let reload: ZoneBenchResult['reload'] = { entries: 0, ms: 0, maxStallMs: 0, p99StallMs: 0, maxGapMs: 0 }
  const wide = await benchWideRanges()
  try {
    for (const n of sizes) {
      const { text, listed } = generateZone(n, n)
      const file = path.join(dir, `zone-${n}`)
      fs.writeFileSync(file, text)

      // Synchronous parse of the file's bytes (the pure cost).
      const t0 = performance.now()
      const parsed = parseZone(fs.readFileSync(file))
      const parseMs = performance.now() - t0

      // Heap held by the loaded data: the difference with and without it.
      const hadGc = gc()
      const before = process.memoryUsage()
      const t1 = performance.now()
      const source = new ZoneFileSource(file, 'bench.test', quiet, { pollMs: 0 })
      await source.load()
      const loadMs = performance.now() - t1
      source.close()
      gc()
      const afterLoad = process.memoryUsage()
      const data = source.data
      if (!data) throw new Error('zone did not load')

      // Half hits (listed entries), half random addresses (nearly all misses).
      const rnd = prng(7)
      const hits = Array.from({ length: 100_000 }, () => listed[Math.floor(rnd() * listed.length)] as string)
      const misses = Array.from({ length: 100_000 }, () => ipToString(Math.floor(rnd() * 2 ** 32)))
      const mixed = hits.flatMap((h, i) => [h, misses[i] as string])
      const lookup = (ip: string): unknown => data.lookup(ip)
      timeLookups(lookup, mixed, 200) // warm up
      rows.push({
        entries: parsed.entries,
        fileMB: fs.statSync(file).size / 1048576,
        parseMs,
        loadMs,
        ranges: data.size,
        heapMB: (afterLoad.heapUsed - before.heapUsed) / 1048576,
        arrayBuffersMB: (afterLoad.arrayBuffers - before.arrayBuffers) / 1048576,
        lookupsPerSec: timeLookups(lookup, mixed, 1000),
        hitsPerSec: timeLookups(lookup, hits, 500),
        missesPerSec: timeLookups(lookup, misses, 500),
      })
      if (!hadGc) (rows[rows.length - 1] as ZoneBenchRow & { noGc?: boolean }).noGc = true

      if (n === sizes[sizes.length - 1]) {
        // Reload the largest zone through the watcher while a probe measures the event loop.
        const watched = new ZoneFileSource(file, 'bench.test', quiet, { pollMs: 0, debounceMs: 50 })
        await watched.load()
        const next = generateZone(n, n + 1).text
        const tmp = path.join(dir, `.zone-${n}.tmp`)
        fs.writeFileSync(tmp, next)
        const histogram = monitorEventLoopDelay({ resolution: 1 })
        let last = performance.now()
        let maxGap = 0
        const probe = setInterval(() => {
          const now = performance.now()
          maxGap = Math.max(maxGap, now - last)
          last = now
        }, 1)
        await new Promise((r) => setTimeout(r, 100))
        histogram.enable()
        const previous = watched.data
        const started = performance.now()
        const reloaded = new Promise<void>((resolve) => {
          const check = setInterval(() => {
            if (watched.data !== previous) {
              clearInterval(check)
              resolve()
            }
          }, 1)
        })
        fs.renameSync(tmp, file) // as rsync does
        await reloaded
        const ms = performance.now() - started
        histogram.disable()
        clearInterval(probe)
        watched.close()
        reload = {
          entries: n,
          ms,
          maxStallMs: histogram.max / 1e6,
          p99StallMs: histogram.percentile(99) / 1e6,
          maxGapMs: maxGap,
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return { rows, reload, wide }
}

/** The wide-range rows as the report prints them. */
export function wideRangeLines(rows: readonly WideRangeRow[]): string[] {
  const fmt = (n: number, d = 0): string =>
    n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
  return rows.map(
    (w, i) =>
      `${w.what} (${fmt(w.lines)} lines, ${fmt(w.ranges)} ranges once merged): loaded in ${fmt(w.loadMs)} ms, ` +
      `peak RSS +${fmt(w.rssGrowthMB, 1)} MB, heap and buffers +${fmt(w.heapGrowthMB, 1)} MB` +
      (i === 0
        ? ` (target < ${WIDE_TARGET_MB} MB: ${w.rssGrowthMB < WIDE_TARGET_MB ? 'met' : 'NOT met'})`
        : ''),
  )
}

function printTable(result: ZoneBenchResult): void {
  const fmt = (n: number, d = 0): string =>
    n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
  const header = [
    'entries',
    'file MB',
    'parse ms',
    'load ms',
    'ranges',
    'heap MB',
    'typed MB',
    'lookups/s',
    'hits/s',
    'misses/s',
  ]
  const lines = result.rows.map((r) => [
    fmt(r.entries),
    fmt(r.fileMB, 1),
    fmt(r.parseMs),
    fmt(r.loadMs),
    fmt(r.ranges),
    fmt(r.heapMB, 1) + ((r as { noGc?: boolean }).noGc ? ' (no gc)' : ''),
    fmt(r.arrayBuffersMB, 1),
    fmt(r.lookupsPerSec),
    fmt(r.hitsPerSec),
    fmt(r.missesPerSec),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)))
  const row = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')
  console.log(row(header))
  for (const l of lines) console.log(row(l))
  const r = result.reload
  console.log(
    `\nreload of ${fmt(r.entries)} entries by rename: ${fmt(r.ms)} ms from rename to new data in use; ` +
      `event-loop delay max ${fmt(r.maxStallMs, 1)} ms, p99 ${fmt(r.p99StallMs, 1)} ms; ` +
      `longest gap between 1 ms timer ticks ${fmt(r.maxGapMs, 1)} ms`,
  )
  for (const line of wideRangeLines(result.wide)) console.log(line)
  console.log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'})`)
}

if (require.main === module) {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0)
  benchZoneFile(sizes.length ? sizes : undefined).then(printTable, (err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
