import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import zlib from 'node:zlib'

import {
  DEFAULT_TTL_SECONDS,
  ipToString,
  MAX_PROBLEMS,
  parseIPv4,
  parseZone,
  parseZoneAsync,
  type ZoneData,
} from '../lib/zonefile'
import { ZoneFileSource } from '../lib/zonesource'

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

describe('ZoneFileSource', () => {
  const dirs: string[] = []
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  })
  function tmpdir(): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'zonefile-test-'))
    dirs.push(d)
    return d
  }
  function collect(): {
    info: string[]
    warn: string[]
    log: { info(m: string): void; warn(m: string): void }
  } {
    const info: string[] = []
    const warn: string[] = []
    return { info, warn, log: { info: (m) => info.push(m), warn: (m) => warn.push(m) } }
  }
  async function until(cond: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('timed out')
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  /** Replace the file the way rsync does: write a temporary file, then rename it over. */
  function replace(file: string, text: string | Buffer): void {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`)
    fs.writeFileSync(tmp, text)
    fs.renameSync(tmp, file)
  }

  test('loads a gzip file (by its magic bytes) and logs one line', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'ips.backscatterer.org') // no .gz suffix: detected by content
    fs.writeFileSync(file, zlib.gzipSync(':127.0.0.2:Listed $\n192.0.2.1\nbad line\n'))
    const c = collect()
    const src = new ZoneFileSource(file, 'ips.backscatterer.org', c.log, { pollMs: 0 })
    assert.equal(src.lookup('192.0.2.1'), undefined)
    assert.equal(await src.load(), true)
    src.close()
    assert.deepEqual(src.lookup('192.0.2.1'), {
      status: 'listed',
      codes: ['127.0.0.2'],
      reason: 'Listed 192.0.2.1',
      ttlSeconds: DEFAULT_TTL_SECONDS,
    })
    assert.equal(c.info.length, 1)
    assert.match(
      c.info[0] ?? '',
      /^zone ips\.backscatterer\.org: loaded .*ips\.backscatterer\.org \(0\.0 MB uncompressed from gzip\): 1 entries, 1 ranges, 1 malformed lines, TTL 2100 s, in \d+ ms$/,
    )
    assert.deepEqual(c.warn, [
      `zone ips.backscatterer.org: ${file}: 1 malformed lines ignored: line 3: invalid address: "bad line"`,
    ])
  })

  test('a missing file: load resolves false, lookups stay undefined, the file is picked up later', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'zone')
    const c = collect()
    const src = new ZoneFileSource(file, 'z.test', c.log, { pollMs: 50, debounceMs: 20 })
    assert.equal(await src.load(), false)
    assert.equal(src.lookup('192.0.2.1'), undefined)
    assert.match(
      c.warn[0] ?? '',
      /^zone z\.test: cannot load .*: ENOENT.*; no data loaded, the zone is not answered from the file$/,
    )
    replace(file, '192.0.2.1\n')
    await until(() => src.lookup('192.0.2.1')?.status === 'listed')
    src.close()
  })

  test('reloads when the file is replaced by rename; a failed reload keeps the old data', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    const c = collect()
    // No polling: only the directory watcher can notice the change.
    const src = new ZoneFileSource(file, 'z.test', c.log, { pollMs: 0, debounceMs: 20 })
    await src.load()
    assert.equal(src.lookup('192.0.2.2')?.status, 'not-listed')

    replace(file, '192.0.2.2\n')
    await until(() => src.lookup('192.0.2.2')?.status === 'listed')
    assert.equal(src.lookup('192.0.2.1')?.status, 'not-listed')
    assert.match(c.info[1] ?? '', /^zone z\.test: reloaded .*: 1 entries/)

    // A broken download: gzip magic, then garbage. The old data stays.
    replace(file, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]))
    await until(() => c.warn.length > 0)
    assert.match(
      c.warn[0] ?? '',
      /^zone z\.test: cannot load .*; keeping the data loaded at \S+ \(1 entries\)$/,
    )
    assert.equal(src.lookup('192.0.2.2')?.status, 'listed')

    // A file of nothing but garbage (an HTML error page) is refused too.
    replace(file, '<html>\n<body>Not found</body>\n</html>\n')
    await until(() => c.warn.length > 1)
    assert.match(c.warn[1] ?? '', /no valid entry, 3 malformed lines/)
    assert.equal(src.lookup('192.0.2.2')?.status, 'listed')

    // A future $TIMESTAMP is refused as rbldnsd refuses it.
    replace(file, '$TIMESTAMP 2037:01:01\n192.0.2.3\n')
    await until(() => c.warn.length > 2)
    assert.match(c.warn[2] ?? '', /in the future, aborting loading/)
    assert.equal(src.lookup('192.0.2.3')?.status, 'not-listed')
    src.close()
  })

  test('polling notices a change the watcher cannot see (same name, new inode)', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    const src = new ZoneFileSource(file, 'z.test', collect().log, { pollMs: 30, debounceMs: 10_000 })
    await src.load()
    replace(file, '192.0.2.9\n')
    // The debounce is 10 s, so only the 30 ms poll can pick this up in time.
    await until(() => src.lookup('192.0.2.9')?.status === 'listed', 3000)
    src.close()
  })

  test('close() stops watching and polling: later changes are ignored', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    const c = collect()
    const src = new ZoneFileSource(file, 'z.test', c.log, { pollMs: 20, debounceMs: 10 })
    await src.load()
    src.close()
    replace(file, '192.0.2.2\n')
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(src.lookup('192.0.2.2')?.status, 'not-listed')
    assert.equal(src.lookup('192.0.2.1')?.status, 'listed')
    assert.equal(c.info.length, 1)
  })

  test('neither the watcher nor the timer keeps the process alive', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    const script = `
      const { ZoneFileSource } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'zonesource.ts'))})
      const src = new ZoneFileSource(${JSON.stringify(file)}, 'z.test', { info() {}, warn() {} }, { pollMs: 1000 })
      src.load().then((ok) => console.log('loaded', ok))
    `
    const { spawnSync } = await import('node:child_process')
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    assert.equal(run.signal, null, 'the process had to be killed: something kept it alive')
    assert.equal(run.status, 0, run.stderr)
    assert.match(run.stdout, /loaded true/)
  })
})
