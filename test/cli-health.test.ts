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
  scriptedDns,
  tmpDir,
} from './cli/harness'

const dns = scriptedDns()

describe('health queries each zone’s RFC 5782 test points and says whether the zone is usable', () => {
  it('reports each test point with its answer and time, and exits 0 for a good zone', async () => {
    const dir = configDir(dnsIni(dns.current))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
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
    assert.equal(zone.usable, true)
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

  it('exits 1 for a zone that lists 127.0.0.1', async () => {
    const dir = configDir(dnsIni(dns.current, `[main]\nzones = ${ZONE}, parked.example\n`))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
    assert.match(
      r.stdout,
      /^parked\.example +UNUSABLE: lists test point 127\.0\.0\.1, so it would list everything$/m,
    )
    assert.match(lineWith(r.stdout, 'parked.example', '127.0.0.1'), / FAIL +listed 127\.0\.0\.2$/)
  })

  it('a zone that does not list 127.0.0.2 stays usable, with a warning, and exits 0', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\nzones = empty.example\n'))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.match(lineWith(r.stdout, 'empty.example', '127.0.0.2'), / FAIL +not listed$/)
    assert.match(
      r.stdout,
      /^empty\.example +usable, but does not list test point 127\.0\.0\.2: its data may be empty or stale$/m,
    )
    const checked = await run(['check', '--config', dir, '45.33.12.8'])
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(
      checked.stdout,
      /^health: empty\.example +in use, but does not list test point 127\.0\.0\.2/m,
    )
  })

  it('exits 1 for a zone that never answers', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\nzones = silent.example\n'))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^silent\.example +UNUSABLE: test point 127\.0\.0\.2: timeout$/m)
    assert.match(lineWith(r.stdout, 'silent.example', '127.0.0.2'), /FAIL +error: timeout$/)
  })
})

describe('health waits for a zone file to load, as the plugin does', () => {
  it('a valid file far larger than the DNS budget is usable, not "not loaded"', async () => {
    const dir = largeZoneFileConfig(300_000)
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`)
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
    assert.match(r.stdout, /^files: +ips\.backscatterer\.org from \/.*\/ips\.backscatterer\.org\.zone$/m)
    assert.match(
      lineWith(r.stdout, ZONE, '127.0.0.2  '),
      / ok +listed 127\.0\.0\.2 TXT "RFC 5782 test point"$/,
    )
    assert.match(lineWith(r.stdout, ZONE, '127.0.0.1'), / ok +not listed$/)
    assert.doesNotMatch(r.stdout, /not loaded/)
  })

  it('a missing file is unusable, and says so', async () => {
    const dir = tmpDir()
    const file = path.join(dir, 'absent.zone')
    fs.writeFileSync(
      path.join(dir, 'backscatter.ini'),
      `[dns]\ntimeout_ms = 50\ntries = 1\n\n[${ZONE}]\nfile = ${file}\n`,
    )
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(
      r.stdout,
      /^ips\.backscatterer\.org +UNUSABLE: test point 127\.0\.0\.2: zone file not loaded$/m,
    )
  })
})
