// Differential test: the same generated zone file served by Debian's rbldnsd on
// 127.0.0.1 and read by ZoneFileSource must give the same answer for every
// sampled IP (inside, outside, and at every range boundary ±1): the same A
// records, TXT records and TTL, and the same LookupResult as the DNS path.
// Skipped, with a message, when rbldnsd is not installed.
import { spawn, type ChildProcess } from 'node:child_process'
import { Resolver } from 'node:dns/promises'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import zlib from 'node:zlib'

import { reasonFromTxt } from '../../lib/core/answer'
import { DnsblResolver } from '../../lib/dns/resolver'
import { ipToString, parseIPv4, type ZoneFormat } from '../../lib/zonefile'
import { ZoneFileSource } from '../../lib/zonefile/source'
import { prng } from '../support/prng'
import { findRbldnsd, freeUdpPort } from '../support/rbldnsd'
import type { LookupResult } from '../../lib/core/types'

const ZONE = 'ips.backscatterer.test'

interface Generated {
  text: string
  /** Every address range written (listings and exclusions), for boundary sampling. */
  ranges: [number, number][]
  /** Line numbers of the lines written to be malformed. */
  badLines: number[]
  /** Line numbers of entries whose TXT rbldnsd cuts to 255 bytes (a warning, the entry stays). */
  longLines: number[]
  /** More addresses to ask about, beyond those sampled around the ranges. */
  extra?: number[]
}

// Areas the entries crowd into, so that CIDRs, ranges, singles and exclusions overlap.
const AREAS = [0x0a000000, 0x0a100000, 0xac100000, 0xc0a00000, 0x2d000000, 0x59f00000, 0x5bc00000, 0xd1000000]

/** An ip4set zone with every syntax form rbldnsd accepts, overlaps, exclusions, values and bad lines. */
function generateIp4set(seed: number, count: number): Generated {
  const rnd = prng(seed)
  const int = (n: number): number => Math.floor(rnd() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
  const lines: string[] = []
  const ranges: [number, number][] = []
  const badLines: number[] = []
  const longLines: number[] = []
  const near = (): number => (pick(AREAS) + int(1 << (int(3) === 0 ? 16 : 20))) >>> 0
  const values = [
    '',
    '',
    '',
    ' :3:Custom listing of $ ($$5 fee) $1',
    ' :127.0.0.4',
    ' :5:',
    ' Only a text for $, A from the default',
    '\t:127.0.0.6:  text\twith\ttabs and  spaces  ',
    ' :10.0.0.1:outside 127/8',
    ' :127.255.255.254:error code',
    ' :2:$= base-less $9 unknown var',
    ' # a comment, default value',
    ' ; another comment',
    ' :7:ctl \x01\x7f chars and a long tail ' + 'x'.repeat(300),
  ]
  const mark = (a: number, b: number): void => {
    ranges.push([a >>> 0, b >>> 0])
  }
  lines.push('# generated ip4set zone for the differential test')
  lines.push('$SOA 1h ns.example.test. hostmaster.example.test. 0 10m 5m 1w 5m')
  lines.push('$NS 1h ns.example.test. -ns2.example.test.')
  lines.push('$TTL 20m')
  lines.push('$1 see https://example.test/lookup')
  lines.push('')
  lines.push(':127.0.0.2:Listed $ - $1?ip=$')
  lines.push('127.0.0.2')
  mark(0x7f000002, 0x7f000002)
  for (let i = 0; i < count; i++) {
    const kind = int(100)
    let entry: string
    if (kind < 40) {
      const a = near()
      entry = ipToString(a)
      mark(a, a)
    } else if (kind < 55) {
      const bits = int(10) === 0 ? 12 + int(4) : 16 + int(17)
      const m = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      const a = (near() & m) >>> 0
      entry = `${ipToString(a)}/${bits}`
      mark(a, (a | ~m) >>> 0)
    } else if (kind < 65) {
      const a = near()
      const b = Math.min(0xffffffff, a + int(int(2) ? 300 : 200000))
      entry = `${ipToString(a)}-${ipToString(b)}`
      mark(a, b)
    } else if (kind < 70) {
      // Abbreviated: a.b.c.d-e (last octet only), a.b.c (a /24), a.b (a /16), a.b.c-a.b.d
      const a = near()
      const form = int(4)
      if (form === 0) {
        const last = (a & 255) + int(256 - (a & 255))
        entry = `${ipToString(a)}-${last}`
        mark(a, ((a & 0xffffff00) | last) >>> 0)
      } else if (form === 1) {
        entry = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}`
        mark((a & 0xffffff00) >>> 0, (a | 255) >>> 0)
      } else if (form === 2) {
        entry = `${a >>> 24}.${(a >>> 16) & 255}`
        mark((a & 0xffff0000) >>> 0, (a | 0xffff) >>> 0)
      } else {
        const c = (a >>> 8) & 255
        const d = c + int(256 - c)
        entry = `${a >>> 24}.${(a >>> 16) & 255}.${c}-${a >>> 24}.${(a >>> 16) & 255}.${d}`
        mark((a & 0xffffff00) >>> 0, (((a & 0xffff0000) | (d << 8)) >>> 0) + 255)
      }
    } else if (kind < 88) {
      // Exclusion, usually inside something listed.
      const inside = ranges[ranges.length - 1 - int(Math.min(ranges.length, 20))] ?? [0, 0]
      const [lo, hi] = inside
      const a = lo + int(hi - lo + 1)
      if (int(3) === 0 && hi - lo > 512) {
        const base = (a & 0xffffff00) >>> 0
        entry = `!${ipToString(base)}/${24 + int(9)}`
        const bits = Number(entry.split('/')[1])
        mark(base, (base | ~((0xffffffff << (32 - bits)) >>> 0)) >>> 0)
        entry += int(2) ? ' :9:ignored value' : ''
      } else {
        entry = `!${ipToString(a)}`
        mark(a, a)
      }
      lines.push(entry)
      continue
    } else if (kind < 93) {
      // The same address again with another value: rbldnsd answers both.
      const [lo] = ranges[ranges.length - 1 - int(Math.min(ranges.length, 50))] ?? [0, 0]
      entry = ipToString(lo)
      mark(lo, lo)
    } else if (kind < 94) {
      lines.push(`:${pick(['2', '127.0.0.8', '127.0.9'])}:Default changed, $ is listed (${i})`)
      continue
    } else if (kind < 96) {
      const bad = pick([
        '10.1.2.3/24',
        '10.1.2.256',
        '10',
        'not.an.address',
        '10.1.2.3.4',
        '10.2.0.0/33',
        '10.0.0.1 :0:zero A',
        '10.0.0.2 :127.0.0.3 junk',
        '10.9.9.9-10.9.9.1',
        '1.2-1.2.3.4',
        '$UNKNOWN directive',
      ])
      lines.push(bad)
      badLines.push(lines.length)
      continue
    } else {
      lines.push(pick(['# comment', '; comment', '', '   ', '#$SOA 0 ignored. second. 0 1 1 1 1']))
      continue
    }
    const value = pick(values)
    lines.push(entry + value)
    if (value.length > 255) longLines.push(lines.length)
  }
  lines.push('$2 (second variable, set after its use)')
  lines.push('')
  return { text: lines.join('\n'), ranges, badLines, longLines }
}

/** An ip4tset zone: single addresses, one default line (after some entries), and lines it rejects. */
function generateIp4tset(seed: number, count: number): Generated {
  const rnd = prng(seed)
  const int = (n: number): number => Math.floor(rnd() * n)
  const lines = ['$TTL 300', '127.0.0.2']
  const ranges: [number, number][] = [[0x7f000002, 0x7f000002]]
  const badLines: number[] = []
  for (let i = 0; i < count; i++) {
    if (i === 10) lines.push(':127.0.0.3:Listed in tset: $')
    if (i === 20) lines.push(':4:a second default line is ignored')
    if (i % 97 === 50) {
      lines.push(['10.0.0.0/24', '!10.0.0.1', '10.0.0'][i % 3] as string)
      badLines.push(lines.length)
      continue
    }
    const a = ((AREAS[int(AREAS.length)] as number) + int(1 << 12)) >>> 0
    lines.push(ipToString(a) + (int(4) === 0 ? ' :5:per-entry values are ignored' : ''))
    ranges.push([a, a])
  }
  lines.push('')
  return { text: lines.join('\n'), ranges, badLines, longLines: [] }
}

/**
 * Wide ranges (a /8 and wider, unaligned), overlapping one another, with
 * exclusions and several values: rbldnsd keeps each as up to seven runs of
 * /32, /24, /16 and /8 blocks, and the most specific block decides.
 */
function generateWide(seed: number, count: number): Generated {
  const rnd = prng(seed)
  const int = (n: number): number => Math.floor(rnd() * n)
  const lines = ['$TTL 600', ':127.0.0.2:Wide listing of $', '127.0.0.2']
  const ranges: [number, number][] = [[0x7f000002, 0x7f000002]]
  const badLines: number[] = []
  const extra: number[] = []
  const values = ['', '', ' :3:three for $', ' :4', ' :5:five', ' Only text for $']
  for (let i = 0; i < count; i++) {
    if (i % 100 === 50) {
      lines.push(i % 200 === 50 ? '10.1.2.3/8' : '1.2.3.4-1.2.3')
      badLines.push(lines.length)
      continue
    }
    const kind = int(10)
    const a = int(2 ** 32)
    const width = kind < 6 ? 2 ** 24 + int(2 ** 24) : kind < 8 ? int(2 ** 28) : int(2 ** 18)
    const b = Math.min(0xffffffff, a + width)
    const range = `${ipToString(a)}-${ipToString(b)}`
    lines.push(int(5) === 0 ? `!${range}` : range + (values[int(values.length)] as string))
    ranges.push([a, b])
    // The edges of the /16 and /8 blocks the range is cut into.
    for (const edge of [a & 0xffff0000, (a | 0xffff) >>> 0, a & 0xff000000, (a | 0xffffff) >>> 0]) {
      for (const n of [edge - 1, edge, edge + 1]) if (n >= 0 && n <= 0xffffffff) extra.push(n >>> 0)
    }
    for (const edge of [b & 0xffff0000, (b | 0xffff) >>> 0, b & 0xff000000, (b | 0xffffff) >>> 0]) {
      for (const n of [edge - 1, edge, edge + 1]) if (n >= 0 && n <= 0xffffffff) extra.push(n >>> 0)
    }
  }
  lines.push('')
  return { text: lines.join('\n'), ranges, badLines, longLines: [], extra }
}

/** Addresses to ask about: every boundary ±1, some points inside, random ones nearby and anywhere. */
function sampleIps(gen: Generated, seed: number, extra: number): string[] {
  const rnd = prng(seed)
  const int = (n: number): number => Math.floor(rnd() * n)
  const set = new Set<number>()
  const add = (n: number): void => {
    if (n >= 0 && n <= 0xffffffff) set.add(n)
  }
  for (const [a, b] of gen.ranges) {
    for (const n of [a - 1, a, a + 1, b - 1, b, b + 1]) add(n)
    add(a + int(b - a + 1))
    // rbldnsd keeps ranges at octet granularity: check those block edges too.
    add(((a & 0xffffff00) >>> 0) - 1)
    add((a | 255) >>> 0)
    add(((b | 255) >>> 0) + 1)
  }
  for (let i = 0; i < extra; i++) {
    add((((AREAS[int(AREAS.length)] as number) + int(1 << 20)) >>> 0) & 0xffffffff)
    add(int(2 ** 32))
  }
  for (const n of gen.extra ?? []) add(n)
  return [...set].map(ipToString)
}

interface Served {
  server: string
  child: ChildProcess
  output(): string
}

/** Start rbldnsd on 127.0.0.1 serving `file` (in its own directory) as ZONE. */
async function serve(binary: string, file: string, format: ZoneFormat): Promise<Served> {
  const dir = path.dirname(file)
  let last = ''
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeUdpPort()
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : []
    // -n: stay in the foreground; -w: the data directory; -u: rbldnsd refuses to run as root.
    const child = spawn(
      binary,
      ['-n', '-b', `127.0.0.1/${port}`, '-w', dir, ...user, `${ZONE}:${format}:${path.basename(file)}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let output = ''
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    child.on('error', (err) => (output += String(err)))
    const server = `127.0.0.1:${port}`
    const resolver = new Resolver({ timeout: 300, tries: 1 })
    resolver.setServers([server])
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline && child.exitCode === null) {
      // Any answer, NXDOMAIN included, means the zone is loaded and served.
      const answered = await resolver.resolve4(`1.0.0.127.${ZONE}`).then(
        () => true,
        (err: { code?: string }) => err.code === 'ENOTFOUND' || err.code === 'ENODATA',
      )
      if (answered) return { server, child, output: () => output }
      await new Promise((r) => setTimeout(r, 50))
    }
    last = output
    child.kill()
  }
  throw new Error(`rbldnsd did not start: ${last}`)
}

interface Raw {
  a: string[]
  txt: string[]
  ttl: number | undefined
}

async function rawAnswer(resolver: Resolver, ip: string): Promise<Raw> {
  const name = `${ip.split('.').reverse().join('.')}.${ZONE}`
  const none = (err: unknown): never[] => {
    const code = (err as { code?: string }).code
    if (code === 'ENOTFOUND' || code === 'ENODATA') return []
    throw err
  }
  const [a, txt] = await Promise.all([
    resolver.resolve4(name, { ttl: true }).catch(none),
    resolver.resolveTxt(name).catch(none),
  ])
  return { a: a.map((r) => r.address), txt: txt.map((chunks) => chunks.join('')), ttl: a[0]?.ttl }
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: limit }, worker))
}

/**
 * rbldnsd answers over UDP without EDNS: records that do not fit in 512 bytes
 * are left out. Would the TXT answer for `ip` with `txt` fit?
 */
function txtFits(ip: string, txt: readonly string[]): boolean {
  const qname = `${ip.split('.').reverse().join('.')}.${ZONE}`.length + 2
  return 12 + qname + 4 + txt.reduce((n, t) => n + 12 + 1 + t.length, 0) <= 512
}

/** Compare listed results; with several TXT records their order (rbldnsd's memory order) is not compared. */
function sameResult(fromFile: LookupResult, fromDns: LookupResult, txtCount: number): boolean {
  if (fromFile.status !== 'listed' || fromDns.status !== 'listed' || txtCount < 2) {
    return JSON.stringify(fromFile) === JSON.stringify(fromDns)
  }
  return (
    JSON.stringify(fromFile.codes) === JSON.stringify(fromDns.codes) &&
    fromFile.ttlSeconds === fromDns.ttlSeconds
  )
}

const binary = findRbldnsd()

describe(
  'zone file answers equal rbldnsd answers',
  { skip: binary ? false : 'rbldnsd is not installed (apt-get install -y rbldnsd)' },
  () => {
    let dir = ''
    const children: ChildProcess[] = []

    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonefile-rbldnsd-'))
      fs.chmodSync(dir, 0o755) // rbldnsd reads the file after dropping to nobody
    })
    after(() => {
      for (const c of children) c.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    })

    async function compare(
      format: ZoneFormat,
      gen: Generated,
      fileName: string,
      content: Buffer,
      seed: number,
    ): Promise<{ checked: number; listed: number; multi: number; oversized: number }> {
      const file = path.join(dir, fileName)
      fs.writeFileSync(file, content, { mode: 0o644 })
      const served = await serve(binary as string, file, format)
      children.push(served.child)

      const warnings: string[] = []
      const source = new ZoneFileSource(
        file,
        ZONE,
        { info: () => undefined, warn: (m) => warnings.push(m) },
        {
          format,
          pollMs: 0,
        },
      )
      assert.equal(await source.load(), true)
      source.close()
      const data = source.data
      assert.ok(data)

      // rbldnsd warns "file NAME(LINE): ..." for the first 5 problems, then counts the rest;
      // the parser reports the lines rbldnsd skips (not the TXT it only truncates).
      const out = served.output()
      const warned = [...out.matchAll(/\((\d+)\): /g)].map((m) => Number(m[1]))
      const suppressed = Number(/(\d+) more warnings suppressed/.exec(out)?.[1] ?? 0)
      const expected = [...gen.badLines, ...gen.longLines].sort((x, y) => x - y)
      assert.deepEqual(warned, expected.slice(0, 5), out)
      assert.equal(warned.length + suppressed, expected.length, out)
      const reported = [...(warnings[0] ?? '').matchAll(/line (\d+): /g)].map((m) => Number(m[1]))
      assert.deepEqual(reported, gen.badLines.slice(0, 10), warnings[0])
      assert.match(warnings[0] ?? '', new RegExp(` ${gen.badLines.length} malformed lines ignored`))

      const resolver = new Resolver({ timeout: 2000, tries: 3 })
      resolver.setServers([served.server])
      const dnsPath = new DnsblResolver({ servers: [served.server], timeoutMs: 2000, tries: 3 })
      const ips = sampleIps(gen, seed, 1500)
      const mismatches: string[] = []
      let listed = 0
      let multi = 0
      let oversized = 0
      await eachLimited(ips, 16, async (ip) => {
        const [raw, viaDns] = await Promise.all([rawAnswer(resolver, ip), dnsPath.lookup(ip, ZONE)])
        const local = data.answers(ip)
        const fromFile = data.lookup(ip)
        const localTxt = local?.txt ?? []
        const fits = txtFits(ip, localTxt)
        if (!fits) {
          oversized++
          // rbldnsd left some TXT records out; the ones it sent must be among the file's.
          if (raw.txt.some((t) => !localTxt.includes(t)) || raw.txt.length >= localTxt.length) {
            mismatches.push(
              `${ip}: oversized answer, rbldnsd ${JSON.stringify(raw.txt)} file ${JSON.stringify(localTxt)}`,
            )
          }
          raw.txt = [...localTxt]
        }
        const sortedRaw = { a: [...raw.a].sort(), txt: [...raw.txt].sort(), ttl: raw.ttl }
        const sortedLocal = local
          ? { a: [...local.a].sort(), txt: [...local.txt].sort(), ttl: local.ttlSeconds }
          : { a: [], txt: [], ttl: undefined }
        if (JSON.stringify(sortedRaw) !== JSON.stringify(sortedLocal)) {
          mismatches.push(`${ip}: rbldnsd ${JSON.stringify(sortedRaw)} file ${JSON.stringify(sortedLocal)}`)
        } else if (fits && !sameResult(fromFile, viaDns, raw.txt.length)) {
          mismatches.push(`${ip}: DNS path ${JSON.stringify(viaDns)} file ${JSON.stringify(fromFile)}`)
        } else if (fits && raw.txt.length > 1 && fromFile.status === 'listed') {
          // Same records in another order: the same reason once both are in the same order.
          const order = (txt: readonly string[]): string => reasonFromTxt([...txt].sort().map((t) => [t]))
          if (order(raw.txt) !== order(local?.txt ?? [])) mismatches.push(`${ip}: reason differs`)
        }
        if (raw.a.length > 0) listed++
        if (raw.a.length > 1) multi++
      })
      assert.deepEqual(mismatches.slice(0, 20), [], `${mismatches.length} of ${ips.length} addresses differ`)
      return { checked: ips.length, listed, multi, oversized }
    }

    test('ip4set: singles, CIDRs, ranges, abbreviations, exclusions, values, bad lines', async (t) => {
      const gen = generateIp4set(20240611, 1500)
      const r = await compare('ip4set', gen, 'ip4set.zone', Buffer.from(gen.text, 'latin1'), 7)
      t.diagnostic(
        `${r.checked} addresses compared, ${r.listed} listed, ${r.multi} with several values, ` +
          `${r.oversized} with more TXT than fits in 512 bytes`,
      )
      assert.ok(r.oversized < r.multi / 4, 'most multi-value answers fit and are compared in full')
      assert.ok(r.checked > 3000, `only ${r.checked} addresses sampled`)
      assert.ok(r.listed > 1000 && r.checked - r.listed > 1000, 'sample covers both listed and unlisted')
      assert.ok(r.multi > 0, 'sample includes addresses with several values')
    })

    test('ip4set: wide overlapping ranges (a /8 and wider), exclusions and values', async (t) => {
      const gen = generateWide(4242, 300)
      const r = await compare('ip4set', gen, 'wide.zone', Buffer.from(gen.text, 'latin1'), 13)
      t.diagnostic(`${r.checked} addresses compared, ${r.listed} listed, ${r.multi} with several values`)
      assert.ok(r.listed > 1000 && r.checked - r.listed > 500, 'sample covers both listed and unlisted')
      assert.ok(r.multi > 100, 'sample includes addresses with several values')
    })

    test('ip4tset, gzip-compressed: the same file read by both', async (t) => {
      const gen = generateIp4tset(99, 800)
      const r = await compare('ip4tset', gen, 'ip4tset.zone.gz', zlib.gzipSync(gen.text), 11)
      t.diagnostic(`${r.checked} addresses compared, ${r.listed} listed`)
      assert.ok(r.listed > 500)
    })

    test('sampling helper covers boundaries', () => {
      const ips = sampleIps(
        { text: '', ranges: [[parseIPv4('10.0.0.5'), parseIPv4('10.0.0.9')]], badLines: [], longLines: [] },
        1,
        0,
      )
      for (const ip of ['10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.8', '10.0.0.9', '10.0.0.10']) {
        assert.ok(ips.includes(ip), ip)
      }
    })
  },
)
