// `haraka-backscatter check IP...`, run in process against a scripted DNS server.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import {
  CLEAN,
  LISTED,
  REASON,
  UNANSWERED,
  ZONE,
  cells,
  configDir,
  dnsIni,
  largeZoneFileConfig,
  lineWith,
  nameOf,
  queryCounts,
  run,
  runOnMockClock,
  scriptedDns,
  twoTriesIni,
} from './cli/harness'

const dns = scriptedDns()

describe('check shows what each zone says about each IP and the verdict a bounce gets', () => {
  it('shows a listed and a clean IP with answers, TXT, score and verdict', async () => {
    const dir = configDir(dnsIni(dns.current))
    const before = dns.current.count(ZONE)
    const r = await run(['check', '--config', dir, LISTED, CLEAN])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.ok(dns.current.count(ZONE) > before, 'queries reached the scripted server')
    assert.match(r.stdout, /^health: ips\.backscatterer\.org +passed its RFC 5782 test-point check/m)

    const listed = cells(lineWith(r.stdout, LISTED, ZONE))
    assert.deepEqual(listed.slice(0, 6), [LISTED, ZONE, 'passed', 'listed', '127.0.0.2', '5'])
    assert.equal(listed[6], `TXT "${REASON}"`)
    const clean = cells(lineWith(r.stdout, CLEAN, ZONE))
    assert.deepEqual(clean, [CLEAN, ZONE, 'passed', 'not listed', '-', '0', '-'])

    const verdictListed = lineWith(r.stdout, LISTED, 'reject')
    assert.match(
      verdictListed,
      new RegExp(`550 5\\.7\\.1 Backscatter refused: ${LISTED.replaceAll('.', '\\.')} is listed`),
    )
    assert.match(verdictListed, /postmaster, abuse still accepted/)
    assert.match(lineWith(r.stdout, CLEAN, 'accept'), /accept: not listed$/)
  })

  it('--json prints one object per IP and zone per line', async () => {
    const dir = configDir(dnsIni(dns.current))
    const r = await run(['check', '--json', '--config', dir, LISTED, CLEAN])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n')
    assert.equal(lines.length, 2)
    const [listed, clean] = lines.map((l) => JSON.parse(l))
    assert.equal(listed.ip, LISTED)
    assert.equal(listed.zone, ZONE)
    assert.equal(listed.listed, true)
    assert.deepEqual(listed.answers, ['127.0.0.2'])
    assert.equal(listed.txt, REASON)
    assert.equal(listed.score, 5)
    assert.equal(listed.health, 'passed')
    assert.equal(listed.verdict.action, 'reject')
    assert.match(listed.verdict.reply, /^550 5\.7\.1 Backscatter refused: /)

    assert.equal(clean.ip, CLEAN)
    assert.equal(clean.listed, false)
    assert.deepEqual(clean.answers, [])
    assert.equal(clean.txt, '')
    assert.equal(clean.score, 0)
    assert.equal(clean.status, 'not-listed')
    assert.equal(clean.verdict.action, 'accept')
    assert.equal(clean.verdict.why, 'not listed')
  })

  it('says when the plugin would never look a client up', async () => {
    const dir = configDir(dnsIni(dns.current))
    const r = await run(['check', '--config', dir, '10.1.2.3', '::ffff:45.33.12.7', '2a01:4f8::1'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      lineWith(r.stdout, '10.1.2.3', 'accept'),
      /never looked up: private address 10\.1\.2\.3 \(\[skip\] private\)$/,
    )
    // An IPv4-mapped address is the IPv4 address it maps.
    assert.match(r.stdout, /^45\.33\.12\.7 +ips\.backscatterer\.org +passed +listed/m)
    assert.deepEqual(cells(lineWith(r.stdout, '2a01:4f8::1', ZONE)).slice(3), [
      'skipped',
      '-',
      '0',
      'IPv6 not checked',
    ])
  })

  it('shows a zone that failed its health check without counting it, and exits 2 (CRITICAL)', async () => {
    const dir = configDir(dnsIni(dns.current, `[main]\nzones = ${ZONE}, parked.example\n`))
    const r = await run(['check', '--config', dir, CLEAN])
    assert.equal(r.code, 2)
    assert.match(
      r.stdout,
      /parked\.example +FAILED its RFC 5782 test-point check \(lists test point 127\.0\.0\.1/,
    )
    const parked = cells(lineWith(r.stdout, CLEAN, 'parked.example'))
    assert.deepEqual(parked.slice(2, 6), ['failed', 'listed', '127.0.0.2', '0'])
    assert.match(parked[6] ?? '', /ignored: zone failed its health check/)
    // The zone that passed did answer: the IP is not listed.
    assert.match(lineWith(r.stdout, CLEAN, 'accept'), /accept: not listed$/)
  })
})

describe('an address the plugin would never look up is shown, but nothing of it counts', () => {
  it('--json: counted false and score 0, though the zone lists it; the verdict says why', async () => {
    const dir = configDir(dnsIni(dns.current, `[skip]\nips = ${LISTED}\n`))
    const r = await run(['check', '--json', '--config', dir, LISTED, '10.1.2.3'])
    assert.equal(r.code, 0, r.stderr)
    const [listed, clean] = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.equal(listed.status, 'listed', 'what the zone answered')
    assert.equal(listed.counted, false)
    assert.equal(listed.score, 0)
    assert.equal(listed.detail, `not counted: never looked up (${LISTED} is in [skip] ips)`)
    assert.deepEqual(
      [listed.verdict.action, listed.verdict.score, listed.verdict.why],
      ['accept', 0, `never looked up: ${LISTED} is in [skip] ips`],
    )
    assert.equal(clean.status, 'not-listed')
    assert.equal(clean.counted, false)
    assert.equal(clean.detail, 'not counted: never looked up (private address 10.1.2.3 ([skip] private))')
  })

  it('the table: SCORE 0 on the line and in the verdict', async () => {
    const dir = configDir(dnsIni(dns.current, `[skip]\nips = ${LISTED}\n`))
    const r = await run(['check', '--config', dir, LISTED])
    assert.deepEqual(cells(lineWith(r.stdout, LISTED, ZONE)).slice(3, 6), ['listed', '127.0.0.2', '0'])
    assert.deepEqual(cells(lineWith(r.stdout, LISTED, 'accept')).slice(1), [
      '0',
      `accept: never looked up: ${LISTED} is in [skip] ips`,
    ])
  })
})

describe('check answers from a zone file once it has loaded, as the plugin does', () => {
  it('a file that loads slower than the DNS budget: listed and clean IPs are answered from it', async () => {
    const dir = largeZoneFileConfig(300_000)
    const r = await run(['check', '--config', dir, '45.1.2.3', '46.1.2.3'])
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`)
    assert.deepEqual(cells(lineWith(r.stdout, '45.1.2.3', ZONE)).slice(2, 6), [
      'passed',
      'listed',
      '127.0.0.2',
      '5',
    ])
    assert.deepEqual(cells(lineWith(r.stdout, '46.1.2.3', ZONE)).slice(2, 4), ['passed', 'not listed'])
    assert.match(lineWith(r.stdout, '45.1.2.3', 'reject'), /550 5\.7\.1 /)
  })
})

describe('a failed lookup is reported as failed, and the plugin fails open', () => {
  it('a lookup that times out in a healthy zone: "lookup failed (timeout)", not "not listed"', async () => {
    const dir = configDir(dnsIni(dns.current))
    const r = await runOnMockClock(['check', '--config', dir, UNANSWERED])
    assert.equal(r.code, 1, 'a failed lookup exits 1 (WARNING)')
    assert.deepEqual(cells(lineWith(r.stdout, UNANSWERED, ZONE)).slice(2, 4), ['passed', 'error'])
    assert.match(
      lineWith(r.stdout, UNANSWERED, 'accept'),
      /accept: lookup failed \(timeout\), the plugin fails open$/,
    )
    assert.doesNotMatch(r.stdout, /not listed/)
  })

  it('--json: the verdict says why the bounce is accepted', async () => {
    const dir = configDir(dnsIni(dns.current))
    const r = await runOnMockClock(['check', '--json', '--config', dir, UNANSWERED])
    assert.equal(r.code, 1)
    const row = JSON.parse(r.stdout)
    assert.equal(row.status, 'error')
    assert.equal(row.verdict.action, 'accept')
    assert.equal(row.verdict.why, 'lookup failed (timeout), the plugin fails open')
  })

  it('a dead resolver: the zone fails its check, and no IP is called "not listed"', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\nzones = silent.example\n'))
    const r = await runOnMockClock(['check', '--config', dir, CLEAN])
    assert.equal(r.code, 2, 'the zone is unusable: CRITICAL')
    assert.match(r.stdout, /silent\.example +FAILED its RFC 5782 test-point check/)
    assert.match(
      lineWith(r.stdout, CLEAN, 'accept'),
      /accept: lookup failed \(timeout\), the plugin fails open$/,
    )
    const json = await runOnMockClock(['check', '--json', '--config', dir, CLEAN])
    assert.equal(JSON.parse(json.stdout).verdict.why, 'lookup failed (timeout), the plugin fails open')
  })

  it('with two zones, names the zone that failed and the one that answered', async () => {
    const dir = configDir(dnsIni(dns.current, `[main]\nzones = ${ZONE}, silent.example\n`))
    const r = await runOnMockClock(['check', '--config', dir, CLEAN])
    assert.equal(r.code, 2)
    assert.match(
      lineWith(r.stdout, CLEAN, 'accept'),
      /accept: not listed on ips\.backscatterer\.org; lookup failed \(silent\.example: timeout\), the plugin fails open$/,
    )
  })
})

describe('check asks each question once', () => {
  it('each test point once, each IP’s A query once; an IP never answered costs one budget', async () => {
    const dir = configDir(twoTriesIni(dns.current))
    const since = dns.current.queries.length
    const r = await runOnMockClock(['check', '--config', dir, LISTED, CLEAN, UNANSWERED])
    assert.equal(r.code, 1, 'the lookup of the silent IP failed')
    assert.deepEqual(await queryCounts(dns.current, since), {
      [`2.0.0.127.${ZONE} A`]: 1,
      [`1.0.0.127.${ZONE} A`]: 1,
      [`${nameOf(LISTED)} A`]: 1,
      [`${nameOf(LISTED)} TXT`]: 1,
      [`${nameOf(CLEAN)} A`]: 1,
      [`${nameOf(UNANSWERED)} A`]: 2, // tries = 2: one budget
    })
  })
})
