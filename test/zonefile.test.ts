import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import {
  DEFAULT_TTL_SECONDS,
  ipToString,
  MAX_PROBLEMS,
  parseIPv4,
  parseZone,
  parseZoneAsync,
  type ZoneData,
} from '../lib/zonefile'

function zone(...lines: string[]): ZoneData {
  const r = parseZone(lines.join('\n') + '\n')
  assert.deepEqual(r.problems, [], 'no malformed lines expected')
  return r.data
}

function listedIps(data: ZoneData, ips: string[]): string[] {
  return ips.filter((ip) => data.lookup(ip).status === 'listed')
}

describe('parseIPv4 / ipToString', () => {
  test('canonical dotted quads only', () => {
    assert.equal(parseIPv4('1.2.3.4'), 0x01020304)
    assert.equal(parseIPv4('255.255.255.255'), 0xffffffff)
    assert.equal(ipToString(0xffffffff), '255.255.255.255')
    for (const bad of ['1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1..2.3', ' 1.2.3.4', '::1', '']) {
      assert.equal(parseIPv4(bad), -1, bad)
    }
  })
})

describe('ip4set syntax', () => {
  test('single IP, with the default answer 127.0.0.2 and no TXT', () => {
    const d = zone('192.0.2.1')
    assert.deepEqual(d.lookup('192.0.2.1'), {
      status: 'listed',
      codes: ['127.0.0.2'],
      reason: '',
      ttlSeconds: DEFAULT_TTL_SECONDS,
    })
    assert.deepEqual(d.lookup('192.0.2.2'), { status: 'not-listed' })
    assert.deepEqual(d.lookup('192.0.2.0'), { status: 'not-listed' })
  })

  test('CIDR and abbreviated prefixes (a.b.c = /24, a.b = /16, a/8)', () => {
    const d = zone('10.1.0.0/22', '10.2.3', '10.3', '11/8')
    assert.deepEqual(listedIps(d, ['10.0.255.255', '10.1.0.0', '10.1.3.255', '10.1.4.0']), [
      '10.1.0.0',
      '10.1.3.255',
    ])
    assert.deepEqual(listedIps(d, ['10.2.2.255', '10.2.3.0', '10.2.3.255', '10.2.4.0']), [
      '10.2.3.0',
      '10.2.3.255',
    ])
    assert.deepEqual(listedIps(d, ['10.2.255.255', '10.3.0.0', '10.3.255.255', '10.4.0.0']), [
      '10.3.0.0',
      '10.3.255.255',
    ])
    assert.deepEqual(listedIps(d, ['10.255.255.255', '11.0.0.0', '11.255.255.255', '12.0.0.0']), [
      '11.0.0.0',
      '11.255.255.255',
    ])
  })

  test('ranges: full, last octet only, and prefix ranges completed with 255', () => {
    const d = zone('10.0.0.5-10.0.1.7', '10.9.9.250-252', '10.16-31', '10.40.0-10.40.3')
    assert.deepEqual(listedIps(d, ['10.0.0.4', '10.0.0.5', '10.0.1.7', '10.0.1.8']), ['10.0.0.5', '10.0.1.7'])
    assert.deepEqual(listedIps(d, ['10.9.9.249', '10.9.9.250', '10.9.9.252', '10.9.9.253']), [
      '10.9.9.250',
      '10.9.9.252',
    ])
    // 10.16-31: the single octet replaces the last one given: 10.16.0.0-10.31.255.255
    assert.deepEqual(listedIps(d, ['10.15.255.255', '10.16.0.0', '10.31.255.255', '10.32.0.0']), [
      '10.16.0.0',
      '10.31.255.255',
    ])
    assert.deepEqual(listedIps(d, ['10.39.255.255', '10.40.0.0', '10.40.3.255', '10.40.4.0']), [
      '10.40.0.0',
      '10.40.3.255',
    ])
  })

  test('exclusions: win at the same granularity, lose to a more specific listing', () => {
    const d = zone('10.0.0.0/16', '!10.0.5.0/24', '10.0.5.7', '!10.0.0.1', '!10.0.0.1 :3:value ignored')
    assert.equal(d.lookup('10.0.0.0').status, 'listed')
    assert.equal(d.lookup('10.0.0.1').status, 'not-listed')
    assert.equal(d.lookup('10.0.5.6').status, 'not-listed')
    assert.equal(d.lookup('10.0.5.7').status, 'listed') // a /32 entry beats the /24 exclusion
    assert.equal(d.lookup('10.0.6.0').status, 'listed')
    // An exclusion and a listing of the same address: excluded, whatever the order.
    const e = zone('192.0.2.9', '!192.0.2.9', '!192.0.2.10', '192.0.2.10')
    assert.equal(e.lookup('192.0.2.9').status, 'not-listed')
    assert.equal(e.lookup('192.0.2.10').status, 'not-listed')
  })

  test('per-entry values: A and TXT, A only, TXT only, A with no TXT, and number shorthands', () => {
    const d = zone(
      ':127.0.0.2:Default for $',
      '192.0.2.1 :127.0.0.3:Custom $ text',
      '192.0.2.2 :4',
      '192.0.2.3 Only text',
      '192.0.2.4 :5:',
      '192.0.2.5:127.6:glued',
      '192.0.2.6 # comment: default value',
      '192.0.2.7\t;comment',
    )
    const answer = (ip: string): unknown => {
      const r = d.lookup(ip)
      return r.status === 'listed' ? [r.codes, r.reason] : r.status
    }
    assert.deepEqual(answer('192.0.2.1'), [['127.0.0.3'], 'Custom 192.0.2.1 text'])
    assert.deepEqual(answer('192.0.2.2'), [['127.0.0.4'], 'Default for 192.0.2.2'])
    assert.deepEqual(answer('192.0.2.3'), [['127.0.0.2'], 'Only text'])
    assert.deepEqual(answer('192.0.2.4'), [['127.0.0.5'], ''])
    assert.deepEqual(answer('192.0.2.5'), [['127.0.0.6'], 'glued'])
    assert.deepEqual(answer('192.0.2.6'), [['127.0.0.2'], 'Default for 192.0.2.6'])
    assert.deepEqual(answer('192.0.2.7'), [['127.0.0.2'], 'Default for 192.0.2.7'])
  })

  test('the default line applies to the entries after it', () => {
    const d = zone('192.0.2.1', ':3:Second default $', '192.0.2.2', '192.0.2.3 :127.0.0.4')
    assert.deepEqual(d.answers('192.0.2.1'), { a: ['127.0.0.2'], txt: [], ttlSeconds: DEFAULT_TTL_SECONDS })
    assert.deepEqual(d.answers('192.0.2.2')?.txt, ['Second default 192.0.2.2'])
    assert.deepEqual(d.answers('192.0.2.2')?.a, ['127.0.0.3'])
    // A only: the TXT of the default in force
    assert.deepEqual(d.answers('192.0.2.3'), {
      a: ['127.0.0.4'],
      txt: ['Second default 192.0.2.3'],
      ttlSeconds: DEFAULT_TTL_SECONDS,
    })
  })

  test('$ substitution: $ is the IP, $$ a dollar, $n variables (set anywhere), $= base template', () => {
    const d = zone('$1 https://example.test/', ':2:$ see $1?ip=$ ($$5) $7', '192.0.2.1', '192.0.2.2 :3:end$')
    assert.deepEqual(d.answers('192.0.2.1')?.txt, [
      '192.0.2.1 see https://example.test/?ip=192.0.2.1 ($5) $7',
    ])
    assert.deepEqual(d.answers('192.0.2.2')?.txt, ['end192.0.2.2'])
    const b = zone('$= Listed: $= ($)', '192.0.2.1 r123', '192.0.2.2', '192.0.2.3 =Own text for $')
    assert.deepEqual(b.answers('192.0.2.1')?.txt, ['Listed: r123 (192.0.2.1)'])
    assert.deepEqual(b.answers('192.0.2.2')?.txt, ['Listed: 192.0.2.2 (192.0.2.2)'])
    assert.deepEqual(b.answers('192.0.2.3')?.txt, ['Own text for 192.0.2.3'])
  })

  test('several values for one address are all answered; duplicates once', () => {
    const d = zone('192.0.2.1 :2:first', '192.0.2.1 :3:second', '192.0.2.1 :2:first', '192.0.2.0/24 :4:net')
    assert.deepEqual(d.answers('192.0.2.1'), {
      a: ['127.0.0.2', '127.0.0.3'],
      txt: ['first', 'second'],
      ttlSeconds: DEFAULT_TTL_SECONDS,
    })
    assert.deepEqual(d.lookup('192.0.2.1'), {
      status: 'listed',
      codes: ['127.0.0.2', '127.0.0.3'],
      reason: 'first second',
      ttlSeconds: DEFAULT_TTL_SECONDS,
    })
    assert.deepEqual(d.answers('192.0.2.2')?.a, ['127.0.0.4'])
  })

  test('TXT is cleaned like the DNS path: control characters, folding, length', () => {
    const d = zone(
      '192.0.2.1 :2:bad\x01\x1b[31mtext\x7f  with   spaces\tand\ttabs ',
      `192.0.2.2 :2:${'y'.repeat(300)}`,
    )
    const r = d.lookup('192.0.2.1')
    assert.equal(r.status === 'listed' && r.reason, 'bad [31mtext with spaces and tabs')
    const long = d.lookup('192.0.2.2')
    assert.equal(long.status === 'listed' && long.reason, `${'y'.repeat(197)}...`)
    // rbldnsd keeps 255 bytes of a template and 254 of an expanded TXT.
    assert.equal(d.answers('192.0.2.2')?.txt[0]?.length, 254)
  })

  test('answers outside 127/8 or 127.255.255.x are errors, as on the DNS path', () => {
    const d = zone(
      '192.0.2.1 :127.255.255.254:over limit',
      '192.0.2.2 :10.0.0.1:parked',
      '192.0.2.3 :127.1.2.3',
    )
    assert.deepEqual(d.lookup('192.0.2.1'), {
      status: 'error',
      reason: 'answer 127.255.255.254 is an error code',
    })
    assert.deepEqual(d.lookup('192.0.2.2'), {
      status: 'error',
      reason: 'answer 10.0.0.1 is outside 127.0.0.0/8',
    })
    assert.equal(d.lookup('192.0.2.3').status, 'listed')
  })

  test('IPv6 is never listed; a non-address is an error', () => {
    const d = zone('0/8', '1.2.3.4')
    assert.deepEqual(d.lookup('2001:db8::1'), { status: 'not-listed' })
    assert.deepEqual(d.lookup('::ffff:1.2.3.4'), { status: 'not-listed' })
    assert.deepEqual(d.lookup('example.com'), { status: 'error', reason: 'not an IP address' })
  })

  test('$TTL, $SOA, $NS and the #$ / :$ forms are understood', () => {
    const d = zone(
      '$SOA 1h ns.example.test. hostmaster.example.test. 0 10m 5m 1w 5m',
      '#$NS 3600 ns1.example.test. -ns2.example.test.',
      '$ttl 15m',
      '# plain comment',
      '; another',
      '',
      '   192.0.2.1   ',
    )
    assert.equal(d.ttlSeconds, 900)
    const r = d.lookup('192.0.2.1')
    assert.equal(r.status === 'listed' && r.ttlSeconds, 900)
    assert.equal(zone('$TTL 0', '1.2.3.4').ttlSeconds, DEFAULT_TTL_SECONDS)
  })

  test('$MAXRANGE4 drops larger entries', () => {
    const r = parseZone('$MAXRANGE4 /24\n10.0.0.0/24\n10.1.0.0/23\n')
    assert.equal(r.entries, 1)
    assert.equal(r.malformed, 1)
    assert.match(r.problems[0] ?? '', /^line 3: too large range \(512\) ignored \(256 max\)/)
    assert.equal(r.data.lookup('10.1.0.0').status, 'not-listed')
  })

  test('$TIMESTAMP: a future stamp refuses the file, an expiry turns answers into errors', () => {
    const now = Date.UTC(2024, 5, 1)
    const future = parseZone('$TIMESTAMP 2024:07:01\n1.2.3.4\n', { now })
    assert.match(future.fatal ?? '', /in the future/)
    const expired = parseZone('$TIMESTAMP 2024:01:01 +1d\n1.2.3.4\n', { now })
    assert.equal(expired.fatal, undefined)
    assert.deepEqual(expired.data.lookup('1.2.3.4'), {
      status: 'error',
      reason: 'zone data expired ($TIMESTAMP)',
    })
    const fresh = parseZone(`$TIMESTAMP 2024:01:01 2037:01:01\n1.2.3.4\n`, { now })
    assert.equal(fresh.data.lookup('1.2.3.4').status, 'listed')
  })

  test('$TIMESTAMP: the time the data was made is kept (the latest of several); 0 without one', () => {
    const now = Date.UTC(2024, 5, 1)
    const stamped = parseZone('$TIMESTAMP 2024:05:31:12:30\n1.2.3.4\n', { now })
    assert.equal(stamped.data.timestamp, Date.UTC(2024, 4, 31, 12, 30) / 1000)
    const two = parseZone('$TIMESTAMP 2024-05-30 +2d\n$TIMESTAMP 2024-05-31\n$TIMESTAMP 0\n1.2.3.4\n', {
      now,
    })
    assert.equal(two.data.timestamp, Date.UTC(2024, 4, 31) / 1000)
    assert.equal(two.data.expiresAt, Date.UTC(2024, 5, 1) / 1000)
    assert.equal(parseZone('1.2.3.4\n', { now }).data.timestamp, 0)
  })

  test('malformed lines are counted and reported with line numbers, never fatal', () => {
    const lines = [
      '# header',
      '10.1.2.3/24', // 2: host bits set
      '10.1.2.256', // 3
      '10', // 4: a bare number
      '1.2.3.4 :0:zero A', // 5
      '1.2.3.5 :127.0.0.3 junk', // 6
      '10.9.9.9-10.9.9.1', // 7: reversed
      '$BOGUS directive', // 8
      '192.0.2.1',
      '1.2.3.4\r', // 10: rbldnsd treats CR as part of the line
      ...Array.from({ length: 12 }, () => 'garbage'),
    ]
    const r = parseZone(lines.join('\n'))
    assert.equal(r.entries, 1)
    assert.equal(r.malformed, 20)
    assert.equal(r.problems.length, MAX_PROBLEMS)
    assert.deepEqual(r.problems.slice(0, 9), [
      'line 2: invalid range (non-zero host part): "10.1.2.3/24"',
      'line 3: invalid address: "10.1.2.256"',
      'line 4: invalid address: "10"',
      'line 5: invalid A RR: "1.2.3.4 :0:zero A"',
      'line 6: unrecognized value for an entry: "1.2.3.5 :127.0.0.3 junk"',
      'line 7: invalid address: "10.9.9.9-10.9.9.1"',
      'line 8: invalid or unrecognized special entry: "$BOGUS directive"',
      'line 10: invalid address: "1.2.3.4"',
      'line 11: invalid address: "garbage"',
    ])
    assert.equal(r.data.lookup('192.0.2.1').status, 'listed')
  })

  test('bytes, a NUL, and input without a final newline', () => {
    const r = parseZone(Buffer.from('192.0.2.1 :2:before\0after\n192.0.2.2'))
    assert.deepEqual(r.data.answers('192.0.2.1')?.txt, ['before'])
    assert.equal(r.data.lookup('192.0.2.2').status, 'listed')
  })

  test('ip4tset: single addresses only, the first default line for all, values ignored', () => {
    const r = parseZone('1.2.3.4 :9:ignored\n:3:tset $\n:4:second ignored\n1.2.3.5\n1.2.3.0/24\n!1.2.3.4\n', {
      format: 'ip4tset',
    })
    assert.equal(r.entries, 2)
    assert.equal(r.malformed, 2)
    assert.deepEqual(r.data.answers('1.2.3.4')?.txt, ['tset 1.2.3.4'])
    assert.deepEqual(r.data.answers('1.2.3.5')?.a, ['127.0.0.3'])
    assert.equal(r.data.lookup('1.2.3.6').status, 'not-listed')
  })

  test('parseZoneAsync gives the same data as parseZone', async () => {
    const lines = [':2:Listed $']
    for (let i = 0; i < 20_000; i++) lines.push(ipToString(0x0a000000 + i * 7))
    lines.push('!10.0.0.7', '10.0.1.0/24 :3:net')
    const text = lines.join('\n')
    const sync = parseZone(text)
    const async = await parseZoneAsync(text, { sliceMs: 1 })
    assert.equal(async.entries, sync.entries)
    assert.equal(async.data.size, sync.data.size)
    for (const ip of ['10.0.0.0', '10.0.0.7', '10.0.0.14', '10.0.1.5', '10.2.0.0']) {
      assert.deepEqual(async.data.lookup(ip), sync.data.lookup(ip))
    }
  })
})

describe('wide ranges and the limits of a file', () => {
  test('a range as wide as 1.0.0.1-254.255.255.254 resolves by its blocks; finer entries decide inside it', () => {
    const d = zone('1.0.0.1-254.255.255.254 :2:wide', '10.0.0.0/8 :3:ten', '!10.1.0.0/16', '10.1.2.3 :4:one')
    const codes = (ip: string): unknown => {
      const r = d.lookup(ip)
      return r.status === 'listed' ? r.codes : r.status
    }
    assert.equal(codes('1.0.0.0'), 'not-listed')
    assert.deepEqual(codes('1.0.0.1'), ['127.0.0.2'])
    assert.deepEqual(codes('1.0.1.0'), ['127.0.0.2'])
    assert.deepEqual(codes('254.255.255.254'), ['127.0.0.2'])
    assert.equal(codes('254.255.255.255'), 'not-listed')
    // 10/8 is a whole /8 block of the wide range too: both values answer there.
    assert.deepEqual(codes('10.0.0.1'), ['127.0.0.2', '127.0.0.3'])
    assert.equal(codes('10.1.5.5'), 'not-listed', 'the /16 exclusion is more specific than both /8 blocks')
    assert.deepEqual(codes('10.1.2.3'), ['127.0.0.4'])
    assert.equal(d.size, 5)
  })

  test('more entries than the limit, or more values on one address, refuse the whole file', () => {
    const many = parseZone('192.0.2.1\n192.0.2.2\n192.0.2.3\n', { limits: { maxEntries: 2 } })
    assert.equal(many.fatal, 'more than 2 entries (the limit)')
    assert.equal(many.data.lookup('192.0.2.1').status, 'not-listed')
    assert.equal(parseZone('192.0.2.1\n192.0.2.2\n', { limits: { maxEntries: 2 } }).fatal, undefined)

    // Three runs of /32 blocks cover 192.0.2.5 (values count per granularity).
    const text = '192.0.2.1-192.0.2.9 :2:a\n192.0.2.0-192.0.2.127 :3:b\n192.0.2.5 :4:c\n'
    const crowded = parseZone(text, { limits: { maxValuesPerAddress: 2 } })
    assert.equal(crowded.fatal, 'more than 2 different values for 192.0.2.5 (the limit)')
    assert.equal(crowded.data.lookup('192.0.2.100').status, 'not-listed')
    const fits = parseZone(text, { limits: { maxValuesPerAddress: 3 } })
    assert.deepEqual(fits.data.answers('192.0.2.5')?.a, ['127.0.0.2', '127.0.0.3', '127.0.0.4'])
  })

  test('$n variables and the $= base are kept only as far as they can show in a TXT', () => {
    const long = 'v'.repeat(5000)
    const d = zone(`$1 ${long}`, `$= <$=> ${long}`, '192.0.2.1 =$1', '192.0.2.2 :2:$1 tail', '192.0.2.3 x')
    assert.equal(d.answers('192.0.2.1')?.txt[0], 'v'.repeat(254))
    // Inside the base template, the entry's own text is taken as it is.
    assert.equal(d.answers('192.0.2.2')?.txt[0], `<$1 tail> ${'v'.repeat(244)}`)
    assert.equal(d.answers('192.0.2.3')?.txt[0], `<x> ${'v'.repeat(250)}`)
  })
})
