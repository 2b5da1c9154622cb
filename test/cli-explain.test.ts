// `haraka-backscatter explain`, run in process against a scripted DNS server.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import {
  LISTED,
  REASON,
  UNANSWERED,
  ZONE,
  cells,
  configDir,
  dnsIni,
  lineWith,
  nameOf,
  queryCounts,
  run,
  runOnMockClock,
  scriptedDns,
  twoTriesIni,
} from './cli/harness'

const dns = scriptedDns()

describe('explain walks through the plugin’s decision for one transaction', () => {
  it('walks through a listed bounce to an exempt and an ordinary recipient', async () => {
    const dir = configDir(dnsIni(dns.current))
    const args = ['explain', '--config', dir, '--ip', LISTED, '--from', '<>']
    const r = await run([...args, '--rcpt', 'postmaster@example.org', '--rcpt', 'user@example.org'])
    assert.equal(r.code, 0, r.stderr)
    const out = r.stdout
    assert.match(out, /^1\. Sender +MAIL FROM:<>: the null sender <>: a bounce/m)
    assert.match(out, /^2\. Client +45\.33\.12\.7: not private, not relaying: looked up$/m)
    assert.deepEqual(cells(lineWith(out, ZONE, 'listed')).slice(0, 5), [
      ZONE,
      'passed',
      'listed',
      '127.0.0.2',
      '5',
    ])
    assert.match(out, /^4\. Score +5 \(threshold 5\): reached: action reject$/m)
    assert.deepEqual(cells(lineWith(out, '<postmaster@example.org>')), [
      '<postmaster@example.org>',
      'accept',
      'exempt recipient ([main] exempt_recipients)',
    ])
    const user = cells(lineWith(out, '<user@example.org>'))
    assert.equal(user[1], 'reject')
    assert.match(
      user[2] ?? '',
      /^550 5\.7\.1 Backscatter refused: 45\.33\.12\.7 is listed on ips\.backscatterer\.org/,
    )
    assert.match(out, new RegExp(`^6\\. Reply +550 5\\.7\\.1 .*\\(${REASON}\\)`, 'm'))
    assert.match(
      out,
      /Header +on accepted mail: X-Haraka-Backscatter: score=5; listed=ips\.backscatterer\.org; ip=45\.33\.12\.7/,
    )
  })

  it('--json gives the decision as one object; defer replies 450 4.7.1', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\naction = defer\n'))
    const args = ['explain', '--json', '--config', dir, '--ip', LISTED, '--from', 'Postmaster@bounce.example']
    const r = await run([...args, '--rcpt', 'abuse@example.org', '--rcpt', 'user@example.org'])
    assert.equal(r.code, 0, r.stderr)
    const d = JSON.parse(r.stdout)
    assert.equal(d.sender.bounce, true)
    assert.equal(d.client.checked, true)
    assert.equal(d.score, 5)
    assert.equal(d.actionable, true)
    assert.deepEqual(
      d.recipients.map((x: { rcpt: string; action: string }) => [x.rcpt, x.action]),
      [
        ['<abuse@example.org>', 'accept'],
        ['<user@example.org>', 'defer'],
      ],
    )
    assert.match(d.reply, /^450 4\.7\.1 Backscatter refused: /)
  })

  it('looks nothing up for a sender that is not a bounce, or a relaying client', async () => {
    const dir = configDir(dnsIni(dns.current))
    const before = dns.current.queries.length
    const args = ['explain', '--config', dir, '--ip', LISTED, '--rcpt', 'u@example.org']
    const plain = await run([...args, '--from', 'alice@example.net'])
    assert.equal(plain.code, 0, plain.stderr)
    assert.match(
      plain.stdout,
      /local part "alice" is not a bounce-type sender: never looked up \(safe mode\)/,
    )
    assert.match(plain.stdout, /^6\. Reply +none: no recipient is refused$/m)
    const relay = await run([...args, '--from', '', '--relaying'])
    assert.equal(relay.code, 0, relay.stderr)
    assert.match(
      relay.stdout,
      /^2\. Client +45\.33\.12\.7, relaying: skipped, relaying client \(\[skip\] relaying\): never looked up$/m,
    )
    assert.deepEqual(cells(lineWith(relay.stdout, '<u@example.org>')), [
      '<u@example.org>',
      'accept',
      'not checked: relaying client ([skip] relaying)',
    ])
    assert.deepEqual(cells(lineWith(plain.stdout, '<u@example.org>')), [
      '<u@example.org>',
      'accept',
      'not checked: the sender is not a bounce',
    ])
    assert.equal(dns.current.queries.length, before, 'no DNS query was sent')
  })

  it('a failed lookup: every recipient accepted because the plugin fails open', async () => {
    const dir = configDir(dnsIni(dns.current))
    const args = ['explain', '--config', dir, '--ip', UNANSWERED, '--from', '<>', '--rcpt', 'u@example.org']
    const r = await runOnMockClock(args)
    assert.equal(r.code, 1)
    assert.match(
      r.stdout,
      /^4\. Score +0 \(threshold 5\): lookup failed \(timeout\), the plugin fails open: every recipient accepted$/m,
    )
    assert.deepEqual(cells(lineWith(r.stdout, '<u@example.org>')), [
      '<u@example.org>',
      'accept',
      'lookup failed (timeout), the plugin fails open',
    ])
    // The header the plugin would add says the zone was not checked, never that the bounce is clean.
    assert.match(
      r.stdout,
      /^ {3}Header +on accepted mail: X-Haraka-Backscatter: score=0; listed=unknown; unchecked=ips\.backscatterer\.org; ip=45\.33\.12\.9$/m,
    )
    const json = JSON.parse((await runOnMockClock([...args, '--json'])).stdout)
    assert.equal(json.recipients[0].why, 'lookup failed (timeout), the plugin fails open')
  })
})

describe('explain asks each question once', () => {
  for (const [ip, expected] of [
    [LISTED, { [`${nameOf(LISTED)} A`]: 1, [`${nameOf(LISTED)} TXT`]: 1 }],
    [UNANSWERED, { [`${nameOf(UNANSWERED)} A`]: 2 }], // tries = 2: one budget
  ] as const) {
    it(`${ip}: each test point once, the client’s queries once`, async () => {
      const dir = configDir(twoTriesIni(dns.current))
      const since = dns.current.queries.length
      await runOnMockClock([
        'explain',
        '--config',
        dir,
        '--ip',
        ip,
        '--from',
        '<>',
        '--rcpt',
        'u@example.org',
      ])
      assert.deepEqual(await queryCounts(dns.current, since), {
        [`2.0.0.127.${ZONE} A`]: 1,
        [`1.0.0.127.${ZONE} A`]: 1,
        ...expected,
      })
    })
  }
})
