// `haraka-backscatter health`, run in process against a scripted DNS server
// and against zone files.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import {
  ZONE,
  cells,
  configDir,
  dnsIni,
  largeZoneFileConfig,
  lineWith,
  run,
  runOnMockClock,
  scriptedDns,
  tmpDir,
} from './cli/harness'

const dns = scriptedDns()

describe('health queries each zone’s RFC 5782 test points and says whether the zone is usable', () => {
  it('reports each test point with its answer and time, and exits 0 (OK) for a good zone', async () => {
    const dir = configDir(dnsIni(dns.current))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.split('\n')[0], 'BACKSCATTER OK: ips.backscatterer.org usable')
    assert.match(
      r.stdout,
      new RegExp(`^resolvers: ${dns.current.server.replaceAll('.', '\\.')} \\(\\[dns\\] servers\\)`, 'm'),
    )
    const listed = cells(lineWith(r.stdout, ZONE, '127.0.0.2  '))
    assert.deepEqual(listed.slice(0, 3), [ZONE, '127.0.0.2', 'listed'])
    assert.match(listed[3] ?? '', /^\d+ ms$/)
    // The plugin's health check asks for the A records only.
    assert.deepEqual(listed.slice(4), ['ok', 'listed 127.0.0.2'])
    const unlisted = cells(lineWith(r.stdout, ZONE, '127.0.0.1'))
    assert.deepEqual(
      [...unlisted.slice(0, 3), ...unlisted.slice(4)],
      [ZONE, '127.0.0.1', 'not listed', 'ok', 'not listed'],
    )
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
  })

  it('--json gives one object per zone with every test point', async () => {
    const dir = configDir(dnsIni(dns.current, `[${ZONE}]\nipv6 = true\n`))
    const r = await run(['health', '--json', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    const zone = JSON.parse(r.stdout.trim())
    assert.equal(zone.zone, ZONE)
    assert.equal(zone.status, 'ok')
    assert.equal(zone.usable, true)
    assert.equal(zone.file, undefined, 'a DNS zone has no file')
    assert.deepEqual(
      zone.points.map((p: { point: string; expected: string; ok: boolean }) => [p.point, p.expected, p.ok]),
      [
        ['127.0.0.2', 'listed', true],
        ['127.0.0.1', 'not-listed', true],
        ['::ffff:7f00:2', 'listed', true],
        ['::ffff:7f00:1', 'not-listed', true],
      ],
    )
    for (const p of zone.points) assert.equal(typeof p.ms, 'number')
  })

  it('exits 2 (CRITICAL) for a zone that lists 127.0.0.1', async () => {
    const dir = configDir(dnsIni(dns.current, `[main]\nzones = ${ZONE}, parked.example\n`))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 2)
    assert.equal(
      r.stdout.split('\n')[0],
      'BACKSCATTER CRITICAL: parked.example unusable: lists test point 127.0.0.1, so it would list everything',
    )
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
    assert.match(
      r.stdout,
      /^parked\.example +UNUSABLE: lists test point 127\.0\.0\.1, so it would list everything$/m,
    )
    assert.match(lineWith(r.stdout, 'parked.example', '127.0.0.1', ' ms '), / FAIL +listed 127\.0\.0\.2$/)
  })

  it('a zone that does not list 127.0.0.2 stays usable, and exits 1 (WARNING): monitoring sees it', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\nzones = empty.example\n'))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1, r.stderr)
    assert.equal(
      r.stdout.split('\n')[0],
      'BACKSCATTER WARNING: empty.example: does not list test point 127.0.0.2: its data may be empty or stale',
    )
    assert.match(lineWith(r.stdout, 'empty.example', '127.0.0.2', ' ms '), / FAIL +not listed$/)
    assert.match(
      r.stdout,
      /^empty\.example +usable, but does not list test point 127\.0\.0\.2: its data may be empty or stale$/m,
    )
    const json = JSON.parse((await run(['health', '--json', '--config', dir])).stdout)
    assert.deepEqual([json.status, json.usable], ['warning', true])
    // check judges the zone the same way.
    const checked = await run(['check', '--config', dir, '45.33.12.8'])
    assert.equal(checked.code, 1, checked.stderr)
    assert.match(
      checked.stdout,
      /^health: empty\.example +in use, but does not list test point 127\.0\.0\.2/m,
    )
  })

  it('exits 2 (CRITICAL) for a zone that never answers', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\nzones = silent.example\n'))
    const r = await runOnMockClock(['health', '--config', dir])
    assert.equal(r.code, 2)
    assert.match(r.stdout, /^silent\.example +UNUSABLE: test point 127\.0\.0\.2: timeout$/m)
    assert.match(lineWith(r.stdout, 'silent.example', '127.0.0.2', ' ms '), /FAIL +error: timeout$/)
  })
})

describe('health waits for a zone file to load, as the plugin does', () => {
  it('a valid file far larger than the DNS budget is usable, not "not loaded"', async () => {
    const dir = largeZoneFileConfig(300_000)
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`)
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
    assert.match(
      r.stdout,
      /^files: +ips\.backscatterer\.org from \/.*\/ips\.backscatterer\.org\.zone: 300001 entries, data \d+ s old \(file modified \S+\)$/m,
    )
    assert.match(
      lineWith(r.stdout, ZONE, '127.0.0.2  '),
      / ok +listed 127\.0\.0\.2 TXT "RFC 5782 test point"$/,
    )
    assert.match(lineWith(r.stdout, ZONE, '127.0.0.1'), / ok +not listed$/)
    assert.doesNotMatch(r.stdout, /not loaded/)
  })

  it('a missing file is unusable (CRITICAL), and says where and why: the path and the OS reason', async () => {
    const dir = tmpDir()
    const file = path.join(dir, 'absent.zone')
    fs.writeFileSync(
      path.join(dir, 'backscatter.ini'),
      `[dns]\ntimeout_ms = 50\ntries = 1\n\n[${ZONE}]\nfile = ${file}\n`,
    )
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 2)
    const why = `cannot load ${file}: no such file or directory (ENOENT)`
    assert.equal(r.stdout.split('\n')[0], `BACKSCATTER CRITICAL: ${ZONE} unusable: ${why}`)
    assert.ok(r.stdout.includes(`\n${ZONE}  UNUSABLE: ${why}\n`), r.stdout)
    assert.ok(
      r.stdout.includes(`files:     ${ZONE} from ${file}: cannot load: no such file or directory (ENOENT)\n`),
      r.stdout,
    )
    const json = JSON.parse((await run(['health', '--json', '--config', dir])).stdout)
    assert.equal(json.status, 'critical')
    assert.deepEqual(json.file, {
      path: file,
      loaded: false,
      entries: 0,
      modified: null,
      timestamp: null,
      age_seconds: null,
      stale: false,
      error: 'no such file or directory (ENOENT)',
    })
  })

  it('a directory in the file’s place: the reason says so', async () => {
    const dir = tmpDir()
    const file = path.join(dir, 'zone.d')
    fs.mkdirSync(file)
    fs.writeFileSync(
      path.join(dir, 'backscatter.ini'),
      `[dns]\ntimeout_ms = 50\n\n[${ZONE}]\nfile = ${file}\n`,
    )
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 2)
    assert.match(
      r.stdout,
      new RegExp(
        `^${ZONE.replaceAll('.', '\\.')} +UNUSABLE: cannot load \\S+: a directory, not a file$`,
        'm',
      ),
    )
  })
})

describe('health: how old a zone file’s data is, and --max-age', () => {
  /** A config whose zone is answered from a file made `hoursAgo` (its $TIMESTAMP, or its mtime when `stamp` is false). */
  function agedFile(hoursAgo: number, stamp: boolean): { dir: string; file: string; made: Date } {
    const dir = tmpDir()
    const file = path.join(dir, 'mirror.zone')
    const made = new Date(Math.floor((Date.now() - hoursAgo * 3_600_000) / 1000) * 1000)
    const ts = made.toISOString().slice(0, 19).replace(/[-T]/g, ':')
    fs.writeFileSync(file, `${stamp ? `$TIMESTAMP ${ts}\n` : ''}127.0.0.2\n45.0.0.1\n45.0.0.2\n`)
    // rsync keeps the mirror's modification time; the file's own says nothing when it has a $TIMESTAMP.
    const mtime = stamp ? new Date() : made
    fs.utimesSync(file, mtime, mtime)
    fs.writeFileSync(
      path.join(dir, 'backscatter.ini'),
      `[dns]\ntimeout_ms = 50\n\n[${ZONE}]\nfile = ${file}\n`,
    )
    return { dir, file, made }
  }

  it('a fresh file: OK, with its entries and age', async () => {
    const { dir, file } = agedFile(0.5, false)
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stdout)
    assert.match(
      r.stdout,
      new RegExp(
        `^files: +${ZONE.replaceAll('.', '\\.')} from ${file}: 3 entries, data 30 min old \\(file modified \\S+\\)$`,
        'm',
      ),
    )
  })

  it('data older than --max-age (default 6 hours): WARNING, the zone stays in use', async () => {
    const { dir } = agedFile(7, false)
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1, r.stdout)
    assert.equal(
      r.stdout.split('\n')[0],
      `BACKSCATTER WARNING: ${ZONE}: zone file data 7.0 h old, over --max-age 6 h`,
    )
    assert.match(
      r.stdout,
      /^ips\.backscatterer\.org +usable, but zone file data 7\.0 h old, over --max-age 6 h$/m,
    )
    assert.match(r.stdout, /^A stale zone file is still used: check that the job that mirrors it runs\.$/m)
    assert.equal((await run(['health', '--config', dir, '--max-age', '8'])).code, 0)
    assert.equal((await run(['health', '--config', dir, '--max-age', '0'])).code, 0, '0: never stale')
  })

  it('the $TIMESTAMP, where the file has one, tells the age rather than the modification time', async () => {
    const { dir, made } = agedFile(26, true)
    const r = await run(['health', '--config', dir, '--max-age', '24'])
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stdout, /: 3 entries, data 26\.0 h old \(\$TIMESTAMP \S+\)$/m)
    const json = JSON.parse((await run(['health', '--json', '--config', dir, '--max-age', '24'])).stdout)
    assert.equal(json.status, 'warning')
    assert.equal(json.file.timestamp, made.toISOString().replace('.000Z', 'Z'))
    assert.equal(json.file.stale, true)
    assert.equal(json.file.entries, 3)
    assert.ok(Math.abs(json.file.age_seconds - 26 * 3600) < 120, String(json.file.age_seconds))
  })

  it('--max-age takes a number of hours', async () => {
    const r = await run(['health', '--max-age', 'soon'])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /^haraka-backscatter health: --max-age "soon" is not a number of hours/)
  })
})
