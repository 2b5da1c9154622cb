// BackscatterChecker against a scripted DNS server on 127.0.0.1: zone health,
// cache, coalescing and bounded waits, counted in real DNS packets.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import { after, before, describe, it, mock } from 'node:test'

import { BackscatterChecker, type ZoneProbe } from '../lib/dns/checker'
import { DnsblResolver } from '../lib/dns/resolver'
import { parseSettings } from '../lib/settings/parse'
import {
  dnsblZone,
  IPV6_TEST_POINT,
  reverseIpv4,
  startDns,
  TYPE,
  type Handler,
  type ScriptedDns,
} from './support/dns-server'
import { advance, onMockClock, turn, until } from './support/mock-clock'
import type { ZoneOutcome, ZoneSettings } from '../lib/core/types'

const ZONE = 'bl.test'

// A real collection between heap samples, with or without node --expose-gc.
v8.setFlagsFromString('--expose-gc')
const gc = global.gc ?? (vm.runInNewContext('gc') as () => void)
const collectGarbage = (): void => gc()

function makeChecker(
  server: string,
  dns: Record<string, unknown> = {},
  main: Record<string, unknown> = {},
  zone: Record<string, unknown> = {},
) {
  const lines: string[] = []
  const { settings, problems } = parseSettings({
    main: { zones: ZONE, ...main },
    // Generous: a retry under load would add a query to the counts the tests check.
    dns: { servers: server, timeout_ms: 2000, tries: 2, health_interval: 0, ...dns },
    [ZONE]: { ipv6: 'true', ...zone },
  })
  assert.deepEqual(problems, [])
  const clock = { ms: 1_000_000, now: () => clock.ms } // lru-cache reads a start time of 0 as none
  const checker = new BackscatterChecker(
    settings,
    { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) },
    { clock },
  )
  return { checker, lines, clock }
}

/** A promise and the function that settles it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => {}
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { opened, open }
}

describe('BackscatterChecker', () => {
  let dns: ScriptedDns
  const healthy = dnsblZone(ZONE, { '45.1.1.1': { txt: 'listed one', ttl: 2 }, '45.1.1.2': {} })
  let handler: Handler = healthy

  before(async () => {
    dns = await startDns((q) => handler(q))
  })
  after(() => dns.close())

  describe('cache', () => {
    it('a repeated IP costs one query per TTL', async () => {
      handler = healthy
      const { checker } = makeChecker(dns.server)
      const name = `${reverseIpv4('45.1.1.2')}.${ZONE}`
      const before = dns.count(name, TYPE.A)
      for (let i = 0; i < 5; i++) {
        const [o] = await checker.check('45.1.1.2')
        assert.equal(o!.status, 'listed')
      }
      assert.equal(dns.count(name, TYPE.A) - before, 1)
      checker.close()
    })

    it('negative answers are cached for negative_ttl', async () => {
      const { checker, clock } = makeChecker(dns.server, { negative_ttl: 1 })
      const name = `${reverseIpv4('45.9.9.9')}.${ZONE}`
      const before = dns.count(name)
      await checker.check('45.9.9.9')
      clock.ms += 999
      await checker.check('45.9.9.9')
      assert.equal(dns.count(name) - before, 1, 'cached')
      clock.ms += 2
      await checker.check('45.9.9.9')
      assert.equal(dns.count(name) - before, 2, 'expired after 1 s')
      checker.close()
    })

    it('negative_ttl = 0: a not-listed answer is not cached (lru-cache would read ttl 0 as forever)', async () => {
      const { checker, clock } = makeChecker(dns.server, { negative_ttl: 0 })
      const name = `${reverseIpv4('45.9.9.8')}.${ZONE}`
      const before = dns.count(name)
      await checker.check('45.9.9.8')
      await checker.check('45.9.9.8')
      assert.equal(dns.count(name) - before, 2, 'queried again at once')
      clock.ms += 86_400_000
      await checker.check('45.9.9.8')
      assert.equal(dns.count(name) - before, 3)
      checker.close()
    })

    it('a listing expires with its TTL, capped by max_ttl', async () => {
      const { checker, clock } = makeChecker(dns.server, { max_ttl: 1 })
      const name = `${reverseIpv4('45.1.1.1')}.${ZONE}`
      const before = dns.count(name, TYPE.A)
      await checker.check('45.1.1.1')
      clock.ms += 999
      await checker.check('45.1.1.1')
      assert.equal(dns.count(name, TYPE.A) - before, 1)
      clock.ms += 2
      await checker.check('45.1.1.1')
      assert.equal(dns.count(name, TYPE.A) - before, 2, 'max_ttl 1 s beats the 2 s TTL')
      checker.close()
    })

    it('max_ttl = 0: a listing is not cached', async () => {
      const { checker } = makeChecker(dns.server, { max_ttl: 0 })
      const name = `${reverseIpv4('45.1.1.1')}.${ZONE}`
      const before = dns.count(name, TYPE.A)
      await checker.check('45.1.1.1')
      await checker.check('45.1.1.1')
      assert.equal(dns.count(name, TYPE.A) - before, 2)
      checker.close()
    })

    it('cache_size = 0 turns caching off', async () => {
      const { checker } = makeChecker(dns.server, { cache_size: 0 })
      const name = `${reverseIpv4('45.1.1.2')}.${ZONE}`
      const before = dns.count(name, TYPE.A)
      await checker.check('45.1.1.2')
      await checker.check('45.1.1.2')
      assert.equal(dns.count(name, TYPE.A) - before, 2)
      checker.close()
    })

    it('errors are not cached', async () => {
      handler = (q) => (q.name.startsWith('7.7.7.45.') ? { rcode: 'SERVFAIL' } : healthy(q))
      const { checker } = makeChecker(dns.server)
      const before = dns.count(`7.7.7.45.${ZONE}`)
      assert.equal((await checker.check('45.7.7.7'))[0]!.status, 'error')
      assert.equal((await checker.check('45.7.7.7'))[0]!.status, 'error')
      assert.equal(dns.count(`7.7.7.45.${ZONE}`) - before, 2)
      checker.close()
      handler = healthy
    })
  })

  it('coalescing: 50 concurrent lookups of one IP make one query', async () => {
    handler = (q) => (q.name.startsWith('5.5.5.45.') ? { a: ['127.0.0.2'], delayMs: 50 } : healthy(q))
    const { checker } = makeChecker(dns.server, { cache_size: 0 })
    const name = `5.5.5.45.${ZONE}`
    const before = dns.count(name, TYPE.A)
    const all = await Promise.all(Array.from({ length: 50 }, () => checker.check('45.5.5.5')))
    assert.ok(all.every((o) => o[0]!.status === 'listed'))
    assert.equal(dns.count(name, TYPE.A) - before, 1)
    checker.close()
    handler = healthy
  })

  describe('zone health (RFC 5782 §5)', () => {
    it('a healthy zone is checked once at start and used', async () => {
      handler = healthy
      const { checker, lines } = makeChecker(dns.server, { health_interval: 300 })
      const before = dns.count(`2.0.0.127.${ZONE}`, TYPE.A)
      checker.start()
      const [o] = await checker.check('45.1.1.2')
      assert.equal(o!.status, 'listed')
      assert.equal(dns.count(`2.0.0.127.${ZONE}`, TYPE.A) - before, 1)
      assert.ok(dns.count(`1.0.0.127.${ZONE}`) >= 1)
      assert.ok(dns.count(`${IPV6_TEST_POINT}.${ZONE}`) >= 1, 'IPv6 test point queried for an ipv6 zone')
      assert.deepEqual(lines, [`info zone ${ZONE} passed its RFC 5782 test-point check; in use`])
      checker.close()
    })

    it('a wildcard zone (lists 127.0.0.1) is suspended, then returns when it passes', async () => {
      handler = (q) => (q.name.endsWith(ZONE) ? { a: ['127.0.0.2'] } : undefined)
      const { checker, lines } = makeChecker(dns.server, { health_interval: 300 })
      checker.start()
      const [o] = await checker.check('45.6.6.6')
      assert.deepEqual(o, {
        zone: ZONE,
        status: 'skipped',
        reason: 'zone suspended: lists test point 127.0.0.1, so it would list everything',
      })
      assert.equal(dns.count(`6.6.6.45.${ZONE}`), 0, 'no query for the client while suspended')
      await checker.checkHealth()
      assert.equal(lines.filter((l) => l.startsWith('warn')).length, 1, 'one warning per change of state')
      handler = healthy
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'usable')
      assert.equal((await checker.check('45.6.6.6'))[0]!.status, 'not-listed')
      assert.equal(lines.length, 2)
      assert.match(lines[1]!, /passed/)
      checker.close()
    })

    const notListing127002: Handler = (q) => (q.name.startsWith('2.0.0.127.') ? undefined : healthy(q))
    for (const [what, bad, zoneExtra] of [
      [
        'does not list 127.0.0.2 and has require_test_point',
        notListing127002,
        { require_test_point: 'true' },
      ],
      [
        'answers outside 127/8',
        (q: { name: string }) => (q.name.endsWith(ZONE) ? { a: ['62.0.58.94'] } : undefined),
        {},
      ],
      ['times out', () => ({ drop: true }), {}],
    ] as const) {
      it(`a zone that ${what} is suspended`, async () => {
        handler = bad as Handler
        // On the mock clock, with c-ares' own (real) timer beyond the test's length.
        const { checker } = makeChecker(
          dns.server,
          { health_interval: 300, timeout_ms: 10_000 },
          {},
          zoneExtra,
        )
        const budgetMs = 10_000 * 2
        const { result, ms } = await onMockClock(async () => {
          checker.start()
          return checker.check('45.1.1.2')
        }, budgetMs)
        assert.ok(ms <= budgetMs, `within the DNS budget: ${ms} ms`)
        const [o] = result
        assert.ok(o!.status === 'skipped' || o!.status === 'error', JSON.stringify(o))
        await until(() => checker.healthStates()[0]!.state !== 'unchecked', 'the first check')
        assert.equal(checker.healthStates()[0]!.state, 'suspended')
        assert.equal((await checker.check('45.1.1.2'))[0]!.status, 'skipped')
        checker.close()
        handler = healthy
      })
    }

    it('a zone that does not list 127.0.0.2 stays in use, with one warning per change of state', async () => {
      handler = notListing127002
      const { checker, lines } = makeChecker(dns.server, { health_interval: 300 })
      checker.start()
      assert.equal((await checker.check('45.1.1.2'))[0]!.status, 'listed', 'its listings are still used')
      await checker.checkHealth()
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'usable')
      const warning =
        `warn zone ${ZONE} does not list test point 127.0.0.2 (RFC 5782 §5): its data may be empty or stale; ` +
        'still in use (require_test_point = true suspends it)'
      assert.deepEqual(lines, [warning])
      handler = healthy
      await checker.checkHealth()
      handler = notListing127002
      await checker.checkHealth()
      assert.deepEqual(lines, [
        warning,
        `info zone ${ZONE} passed its RFC 5782 test-point check; in use`,
        warning,
      ])
      checker.close()
      handler = healthy
    })

    it('probeZone: each test point with its answer and time; the health check decides the same', async () => {
      const wildcard: Handler = (q) => (q.name.endsWith(ZONE) ? { a: ['127.0.0.2'] } : undefined)
      for (const [h, zoneExtra, expected] of [
        [healthy, {}, { usable: true }],
        [notListing127002, {}, { usable: true, warning: 'does not list test point 127.0.0.2' }],
        [
          notListing127002,
          { require_test_point: 'true' },
          { usable: false, reason: 'does not list test point 127.0.0.2' },
        ],
        [wildcard, {}, { usable: false, reason: 'lists test point 127.0.0.1, so it would list everything' }],
      ] as const) {
        handler = h
        const { checker } = makeChecker(dns.server, { health_interval: 300 }, {}, zoneExtra)
        const zone = checker.settings.zones[0]!
        const probe = await checker.probeZone(zone)
        assert.equal(probe.zone, ZONE)
        assert.deepEqual(probe.assessment, expected)
        assert.deepEqual(
          probe.points.map((p) => [p.point, p.mustBeListed]),
          [
            ['127.0.0.2', true],
            ['127.0.0.1', false],
            ['::ffff:7f00:2', true],
            ['::ffff:7f00:1', false],
          ],
        )
        for (const p of probe.points) {
          assert.ok(Number.isInteger(p.ms) && p.ms >= 0, `${p.point}: ${p.ms} ms`)
          assert.equal(p.ok, p.result.status === (p.mustBeListed ? 'listed' : 'not-listed'))
        }
        await checker.checkHealth()
        const state = checker.healthStates()[0]!
        assert.equal(state.state, expected.usable ? 'usable' : 'suspended')
        assert.equal(
          state.reason,
          'reason' in expected ? expected.reason : 'warning' in expected ? expected.warning : '',
        )
        checker.close()
      }
      handler = healthy
    })

    it('a lookup that arrives before the first check waits for it', async () => {
      handler = (q) => (q.name.startsWith('2.0.0.127.') ? { a: ['127.0.0.2'], delayMs: 100 } : healthy(q))
      const { checker } = makeChecker(dns.server, { health_interval: 300 })
      const start = dns.queries.length
      checker.start()
      const [o] = await checker.check('45.1.1.2')
      assert.equal(o!.status, 'listed')
      const queries = dns.queries.slice(start)
      const firstClientQuery = queries.findIndex((q) => q.name === `2.1.1.45.${ZONE}`)
      const lastHealthQuery = queries.findLastIndex((q) => q.name === `2.0.0.127.${ZONE}`)
      assert.ok(lastHealthQuery >= 0 && firstClientQuery >= 0)
      assert.ok(firstClientQuery > lastHealthQuery, 'the client was queried after the test point')
      checker.close()
      handler = healthy
    })

    it('the health timer does not keep the process alive', async () => {
      const { checker } = makeChecker(dns.server, { health_interval: 1 })
      checker.start()
      await checker.checkHealth()
      const health = (checker as unknown as { health: Map<string, { timer: NodeJS.Timeout }> }).health
      const timer = health.get(ZONE)!.timer
      assert.equal(timer.hasRef(), false)
      checker.close()
    })
  })

  it('IPv6 clients are skipped for IPv4-only zones and looked up for ipv6 zones', async () => {
    handler = healthy
    const v4only = new BackscatterChecker(
      parseSettings({ main: { zones: ZONE }, dns: { servers: dns.server, health_interval: 0 } }).settings,
      { info: () => {}, warn: () => {} },
    )
    assert.deepEqual(await v4only.check('2a00:1450::1'), [
      { zone: ZONE, status: 'skipped', reason: 'IPv6 not checked' },
    ])
    v4only.close()
    const { checker } = makeChecker(dns.server)
    assert.equal((await checker.check('2a00:1450::1'))[0]!.status, 'not-listed')
    assert.ok(dns.queries.some((q) => q.name.endsWith(`.0.5.4.1.0.0.a.2.${ZONE}`)))
    checker.close()
  })

  it('soak: 100 000 distinct IPs keep the cache bounded and the heap stable', async () => {
    handler = () => undefined // NXDOMAIN for all: the fastest real answer
    const { checker } = makeChecker(dns.server, { cache_size: 1000, timeout_ms: 10_000 })
    const cache = (checker as unknown as { cache: { size: number } }).cache
    const inflight = (checker as unknown as { inflight: Map<string, unknown> }).inflight
    const total = 100_000
    const concurrency = 200
    const heap: number[] = []
    let next = 0
    const worker = async () => {
      while (next < total) {
        const n = next++
        const ip = `46.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
        const [o] = await checker.check(ip)
        if (o!.status !== 'not-listed') throw new Error(`${ip}: ${JSON.stringify(o)}`)
        if (n % 20_000 === 0) {
          collectGarbage()
          heap.push(process.memoryUsage().heapUsed)
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    assert.equal(cache.size, 1000, 'cache bounded by cache_size')
    assert.equal(inflight.size, 0, 'nothing left in flight')
    const growth = heap[heap.length - 1]! - heap[1]!
    assert.ok(
      growth < 30 * 1024 * 1024,
      `heap grew ${Math.round(growth / 1024 / 1024)} MB: ${heap.map((h) => Math.round(h / 1e6))}`,
    )
    checker.close()
    handler = healthy
  })
})

describe('BackscatterChecker with a zone file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-zonefile-'))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  function fileChecker(text: string | undefined, dnsExtra: Record<string, unknown> = {}) {
    const file = path.join(dir, `zone-${Math.random().toString(36).slice(2)}`)
    if (text !== undefined) fs.writeFileSync(file, text)
    const { settings, problems } = parseSettings({
      main: { zones: ZONE },
      // No DNS server answers here: every answer must come from the file.
      dns: { servers: '127.0.0.1:9', timeout_ms: 200, tries: 1, health_interval: 300, ...dnsExtra },
      [ZONE]: { file },
    })
    assert.deepEqual(problems, [])
    const lines: string[] = []
    const checker = new BackscatterChecker(settings, {
      info: (m) => lines.push(`info ${m}`),
      warn: (m) => lines.push(`warn ${m}`),
    })
    return { checker, lines, file }
  }

  it('answers from the file, TXT with $ replaced, after its test points pass', async () => {
    const { checker, lines } = fileChecker(
      ':127.0.0.2:Backscatter from $, see the list\n127.0.0.2\n45.1.1.0/24\n!45.1.1.9\n',
    )
    checker.start()
    assert.deepEqual(await checker.check('45.1.1.7'), [
      {
        zone: ZONE,
        status: 'listed',
        codes: ['127.0.0.2'],
        reason: 'Backscatter from 45.1.1.7, see the list',
      },
    ])
    assert.deepEqual(await checker.check('45.1.1.9'), [{ zone: ZONE, status: 'not-listed' }])
    assert.deepEqual(await checker.check('45.2.2.2'), [{ zone: ZONE, status: 'not-listed' }])
    assert.ok(
      lines.some((l) => /passed its RFC 5782 test-point check/.test(l)),
      lines.join('\n'),
    )
    checker.close()
  })

  it('a file that lists 127.0.0.1 (everything) suspends the zone', async () => {
    const { checker } = fileChecker('0.0.0.0/1\n64.0.0.0/2\n127.0.0.0/8\n')
    checker.start()
    const [o] = await checker.check('45.1.1.7')
    assert.equal(o!.status, 'skipped')
    assert.match((o as { reason: string }).reason, /lists test point 127\.0\.0\.1/)
    checker.close()
  })

  it('a file slower to load than the DNS budget is checked when it is loaded, not suspended', async () => {
    const lines = Array.from(
      { length: 300_000 },
      (_, i) => `46.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    )
    const { checker, lines: log } = fileChecker(`127.0.0.2\n${lines.join('\n')}\n`, { timeout_ms: 50 })
    checker.start()
    const [early] = await checker.check('46.0.0.7')
    assert.equal(early!.status, 'error', 'too early: no verdict yet')
    await checker.checkHealth() // joins the first check, which waits for the load
    assert.equal(checker.healthStates()[0]!.state, 'usable', log.join('\n'))
    assert.equal((await checker.check('46.0.0.7'))[0]!.status, 'listed')
    assert.ok(!log.some((l) => l.includes('suspended')), log.join('\n'))
    checker.close()
  })

  it('a file that appears after start is loaded and used without waiting for the interval', async () => {
    const { checker, file } = fileChecker(undefined)
    checker.start()
    const [before] = await checker.check('45.1.1.7')
    assert.equal(before!.status, 'skipped')
    assert.match(
      (before as { reason: string }).reason,
      /zone file \S+ not loaded: no such file or directory \(ENOENT\)/,
    )
    fs.writeFileSync(`${file}.tmp`, '127.0.0.2\n45.1.1.0/24\n')
    fs.renameSync(`${file}.tmp`, file)
    await until(() => checker.healthStates()[0]!.state === 'usable', 'the file loaded and checked')
    assert.equal((await checker.check('45.1.1.7'))[0]!.status, 'listed')
    checker.close()
  })

  it('a missing file: an error result within the budget, and the mail goes on', async () => {
    const { checker } = fileChecker(undefined, { health_interval: 0 })
    const budgetMs = 200
    const { result, ms } = await onMockClock(async () => {
      checker.start()
      return checker.check('45.1.1.7')
    }, budgetMs)
    // Whether the failed load has been seen by then depends on the disk, not on the clock.
    assert.equal(result.length, 1)
    assert.deepEqual([result[0]!.zone, result[0]!.status], [ZONE, 'error'])
    assert.match((result[0] as { reason: string }).reason, /^zone file (\S+ )?not loaded/)
    assert.ok(ms <= budgetMs, `within the budget: ${ms} ms`)
    checker.close()
  })
})

describe('BackscatterChecker: a zone file that cannot be loaded', () => {
  it('once its load has failed, lookups name the file and the reason', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-zonefile-'))
    const file = path.join(dir, 'absent.zone')
    const { settings } = parseSettings({
      main: { zones: ZONE },
      dns: { servers: '127.0.0.1:9', timeout_ms: 200, tries: 1, health_interval: 0 },
      [ZONE]: { file },
    })
    const checker = new BackscatterChecker(settings, { info: () => undefined, warn: () => undefined })
    try {
      // probeZone waits for the file's load, however it ends.
      await checker.probeZone(settings.zones[0]!)
      assert.equal(checker.fileStatus(ZONE)?.error, 'no such file or directory (ENOENT)')
      assert.deepEqual(await checker.check('45.1.1.7'), [
        {
          zone: ZONE,
          status: 'error',
          reason: `zone file ${file} not loaded: no such file or directory (ENOENT)`,
        },
      ])
    } finally {
      checker.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('BackscatterChecker and a resolver that dies', () => {
  it('a failed lookup re-checks the zone at once: suspended after one budget, not at the next interval', async () => {
    let dead = false
    const healthy = dnsblZone(ZONE, { '45.1.1.2': {} })
    const dns = await startDns((q) => (dead ? { drop: true } : healthy(q)))
    try {
      const { checker, lines } = makeChecker(dns.server, { health_interval: 300, timeout_ms: 1000 })
      checker.start()
      assert.equal((await checker.check('45.1.1.2'))[0]!.status, 'listed')
      dead = true
      const [first] = await checker.check('45.3.3.3')
      assert.deepEqual(first, { zone: ZONE, status: 'error', reason: 'timeout' })
      // The re-check started by that failure times out in its turn and suspends the zone.
      await until(() => checker.healthStates()[0]!.state !== 'usable', 'the re-check', 5000)
      assert.equal(checker.healthStates()[0]!.state, 'suspended', 'well before the 300 s interval')
      const before = dns.queries.length
      const answer = checker.check('45.4.4.4')
      // Settled before the event loop turns once: no timer, no I/O.
      const settled = await Promise.race([answer, turn().then(() => 'waited')])
      assert.notEqual(settled, 'waited', 'a suspended zone costs nothing')
      assert.equal((await answer)[0]!.status, 'skipped')
      assert.equal(dns.queries.length, before, 'and sends nothing')
      assert.equal(lines.filter((l) => l.startsWith('warn')).length, 1)
      checker.close()
    } finally {
      await dns.close()
    }
  })
})

describe('BackscatterChecker edge cases', () => {
  it('answers cached while a zone was failing are dropped when it is suspended', async () => {
    let hijacked = false
    const healthy = dnsblZone(ZONE, {})
    const dns = await startDns((q) => (hijacked && q.name.endsWith(ZONE) ? { a: ['127.0.0.2'] } : healthy(q)))
    try {
      const { checker } = makeChecker(dns.server, { health_interval: 300 })
      checker.start()
      await checker.checkHealth()
      hijacked = true
      assert.equal((await checker.check('46.1.2.3'))[0]!.status, 'listed', 'a false listing, cached')
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'suspended')
      hijacked = false
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'usable')
      assert.deepEqual(await checker.check('46.1.2.3'), [{ zone: ZONE, status: 'not-listed' }])
      checker.close()
    } finally {
      await dns.close()
    }
  })

  it('a lookup that joins a query started late in another caller’s budget still gets its own', async () => {
    // On the mock clock (budget 10 s): the health check answers at 6 s, the client's answer is held.
    const testPoints = gate()
    const client = gate()
    const dns = await startDns((q) => {
      if (q.name.startsWith('2.0.0.127.') || q.name.startsWith(IPV6_TEST_POINT)) {
        return { a: ['127.0.0.2'], until: testPoints.opened }
      }
      if (q.name.startsWith('5.5.5.45.')) return { a: ['127.0.0.2'], until: client.opened }
      return undefined
    })
    try {
      const { checker } = makeChecker(dns.server, { health_interval: 300, timeout_ms: 10_000, tries: 1 })
      let second: Promise<ZoneOutcome[]> | undefined
      const { result: first, ms } = await onMockClock(
        async () => {
          checker.start()
          return checker.check('45.5.5.5') // waits 6 s for the health check: 4 s left, too little
        },
        10_000,
        async (settled) => {
          await advance(settled, 0, 6000)
          testPoints.open()
          await until(() => dns.count(`5.5.5.45.${ZONE}`, TYPE.A) === 1, 'the client query')
          assert.equal(checker.healthStates()[0]!.state, 'usable')
          second = checker.check('45.5.5.5') // joins the same query, with a budget of its own
          return advance(settled, 6000, 10_000)
        },
      )
      assert.equal(ms, 10_000)
      assert.deepEqual(first[0], { zone: ZONE, status: 'error', reason: 'timeout' })
      client.open()
      assert.equal((await second!)[0]!.status, 'listed')
      assert.equal(dns.count(`5.5.5.45.${ZONE}`, TYPE.A), 1, 'one query shared')
      checker.close()
    } finally {
      testPoints.open()
      client.open()
      await dns.close()
    }
  })

  it('close() sends nothing more, even when lookups in flight fail', async () => {
    const dns = await startDns((q) =>
      q.name.startsWith('6.6.6.45.') ? { drop: true } : dnsblZone(ZONE, {})(q),
    )
    try {
      const { checker, lines } = makeChecker(dns.server, { health_interval: 300 })
      checker.start()
      await checker.checkHealth()
      const pending = checker.check('45.6.6.6')
      await until(() => dns.count(`6.6.6.45.${ZONE}`) === 1, 'the client query')
      checker.close()
      const sent = dns.queries.length
      assert.equal((await pending)[0]!.status, 'error')
      // A marker query through another resolver: once it is answered, anything sent before it has arrived.
      const marker = new DnsblResolver({ servers: [dns.server], timeoutMs: 2000, tries: 1 })
      assert.equal((await marker.lookup('45.0.0.1', ZONE)).status, 'not-listed')
      assert.equal(dns.queries.length, sent + 1, 'no query after close() but the marker')
      assert.ok(!lines.some((l) => l.includes('suspended')), lines.join('\n'))
    } finally {
      await dns.close()
    }
  })
})

describe('BackscatterChecker with a silent first resolver', () => {
  for (const tries of [1, 2]) {
    it(`tries = ${tries}: the first health check passes through the second server, and lookups use it`, async () => {
      const silent = await startDns(() => ({ drop: true }))
      const working = await startDns(dnsblZone(ZONE, { '45.1.1.2': {} }))
      try {
        const { checker, lines } = makeChecker(`${silent.server}, ${working.server}`, {
          health_interval: 300,
          timeout_ms: 1000,
          tries,
        })
        checker.start()
        await checker.checkHealth() // joins the first check: at most 2 × timeout_ms per test point
        assert.deepEqual(
          checker.healthStates()[0],
          { zone: ZONE, state: 'usable', reason: '' },
          lines.join('\n'),
        )
        assert.equal((await checker.check('45.1.1.2'))[0]!.status, 'listed')
        assert.equal((await checker.check('45.1.1.3'))[0]!.status, 'not-listed')
        assert.equal(silent.count(`2.1.1.45.${ZONE}`) + silent.count(`3.1.1.45.${ZONE}`), 0)
        checker.close()
      } finally {
        await silent.close()
        await working.close()
      }
    })
  }
})

describe('BackscatterChecker: lookups in flight when a zone fails its check', () => {
  const CLIENT = '46.1.2.3'
  const NAME = `${reverseIpv4(CLIENT)}.${ZONE}`

  interface Scene {
    checker: BackscatterChecker
    dns: ScriptedDns
    /** The transaction whose lookup was out when the zone failed. */
    inFlight: Promise<ZoneOutcome[]>
    /** Let the held answer (a false listing) go. */
    release(): void
    /** End the hijack and check the zone again. */
    recover(): Promise<void>
  }

  /**
   * A zone in use; a client lookup whose answer, a false listing, the server
   * holds; meanwhile the zone is hijacked (lists everything) and fails its check.
   */
  async function suspendedWhileInFlight(test: (scene: Scene) => Promise<void>): Promise<void> {
    const held = gate()
    let hijacked = false
    const healthy = dnsblZone(ZONE, {})
    let clientQueries = 0
    const dns = await startDns((q) => {
      if (q.name === NAME && q.type === TYPE.A && ++clientQueries === 1) {
        return { a: ['127.0.0.2'], until: held.opened }
      }
      if (hijacked && q.name.endsWith(ZONE)) return { a: ['127.0.0.2'] }
      return healthy(q)
    })
    const { checker } = makeChecker(dns.server, { health_interval: 300, timeout_ms: 5000, tries: 1 })
    try {
      checker.start()
      await checker.checkHealth()
      const inFlight = checker.check(CLIENT)
      await until(() => dns.count(NAME, TYPE.A) === 1, 'the client query')
      hijacked = true
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'suspended')
      const recover = async (): Promise<void> => {
        hijacked = false
        await checker.checkHealth()
        assert.equal(checker.healthStates()[0]!.state, 'usable')
      }
      await test({ checker, dns, inFlight, release: held.open, recover })
    } finally {
      checker.close()
      held.open()
      await dns.close()
    }
  }

  it('an answer sent before a suspension is neither served nor cached after the zone recovers', async () => {
    await suspendedWhileInFlight(async ({ checker, dns, inFlight, release, recover }) => {
      await recover()
      // After the recovery, a new transaction does not join the query sent before the suspension.
      const after = checker.check(CLIENT)
      await until(() => dns.count(NAME, TYPE.A) === 2, 'a new client query')
      release()
      assert.deepEqual(await inFlight, [
        { zone: ZONE, status: 'skipped', reason: 'zone suspended during the lookup, then passed again' },
      ])
      assert.deepEqual(await after, [{ zone: ZONE, status: 'not-listed' }])
      assert.deepEqual(
        await checker.check(CLIENT),
        [{ zone: ZONE, status: 'not-listed' }],
        'nothing stale cached',
      )
    })
  })

  it('a transaction whose lookup was in flight when the zone failed gets no listing from it', async () => {
    await suspendedWhileInFlight(async ({ checker, dns, inFlight, release, recover }) => {
      release()
      assert.deepEqual(await inFlight, [
        {
          zone: ZONE,
          status: 'skipped',
          reason: 'zone suspended during the lookup: lists test point 127.0.0.1, so it would list everything',
        },
      ])
      await recover()
      const before = dns.count(NAME, TYPE.A)
      assert.deepEqual(await checker.check(CLIENT), [{ zone: ZONE, status: 'not-listed' }])
      assert.equal(dns.count(NAME, TYPE.A) - before, 1, 'the held answer was not cached')
    })
  })
})

describe('BackscatterChecker: lookups that fail one after another', () => {
  /** Counts the zone checks begun and ended. */
  class CountingChecker extends BackscatterChecker {
    begun = 0
    ended = 0
    override async probeZone(zone: ZoneSettings): Promise<ZoneProbe> {
      this.begun++
      try {
        return await super.probeZone(zone)
      } finally {
        this.ended++
      }
    }
  }

  it('re-check the zone once per budget, however many fail in it', async () => {
    const zone = dnsblZone(ZONE, {})
    const dns = await startDns((q) => (q.name.includes('.7.7.45.') ? { rcode: 'SERVFAIL' } : zone(q)))
    const { settings } = parseSettings({
      main: { zones: ZONE },
      dns: { servers: dns.server, timeout_ms: 2000, tries: 2, health_interval: 300 },
    })
    const checker = new CountingChecker(settings, { info: () => undefined, warn: () => undefined })
    // The clock the rate limit reads stands still unless the test moves it.
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 })
    try {
      checker.start()
      await checker.checkHealth()
      assert.equal(checker.begun, 1)
      for (let i = 1; i <= 5; i++) {
        assert.deepEqual(await checker.check(`45.7.7.${i}`), [
          { zone: ZONE, status: 'error', reason: 'SERVFAIL' },
        ])
        await until(() => checker.ended === checker.begun, 'the re-check, if any')
      }
      assert.equal(checker.begun, 2, 'five failures within one budget: one re-check')
      mock.timers.tick(checker.resolver.budgetMs)
      assert.equal((await checker.check('45.7.7.9'))[0]?.status, 'error')
      await until(() => checker.ended === checker.begun, 'the re-check')
      assert.equal(checker.begun, 3, 'a budget later, a failure re-checks again')
      assert.equal(checker.healthStates()[0]?.state, 'usable', 'the test points still pass')
    } finally {
      mock.timers.reset()
      checker.close()
      await dns.close()
    }
  })
})

describe('BackscatterChecker: answers obtained while a zone is not in use', () => {
  const CLIENT = '46.7.7.7'
  const NAME = `${reverseIpv4(CLIENT)}.${ZONE}`

  it('an answer that arrives before the zone’s first check has passed is not kept', async () => {
    const testPoints = gate()
    const zone = dnsblZone(ZONE, { [CLIENT]: {} })
    const dns = await startDns((q) => (q.name === NAME ? zone(q) : { ...zone(q), until: testPoints.opened }))
    const { checker } = makeChecker(dns.server, { health_interval: 300 })
    try {
      checker.start()
      assert.equal((await checker.lookup(ZONE, CLIENT)).status, 'listed')
      assert.equal(checker.healthStates()[0]!.state, 'unchecked')
      testPoints.open()
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'usable')
      const before = dns.count(NAME, TYPE.A)
      assert.equal((await checker.check(CLIENT))[0]!.status, 'listed')
      assert.equal(dns.count(NAME, TYPE.A) - before, 1, 'asked again once the zone is in use')
    } finally {
      checker.close()
      testPoints.open()
      await dns.close()
    }
  })

  it('an answer obtained while the zone is suspended is not served once it recovers', async () => {
    let hijacked = true
    const zone = dnsblZone(ZONE, {})
    const dns = await startDns((q) => (hijacked && q.name.endsWith(ZONE) ? { a: ['127.0.0.2'] } : zone(q)))
    const { checker } = makeChecker(dns.server, { health_interval: 300 })
    try {
      checker.start()
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'suspended')
      assert.equal((await checker.lookup(ZONE, CLIENT)).status, 'listed', 'the hijacked zone lists it')
      hijacked = false
      await checker.checkHealth()
      assert.equal(checker.healthStates()[0]!.state, 'usable')
      assert.deepEqual(await checker.check(CLIENT), [{ zone: ZONE, status: 'not-listed' }])
    } finally {
      checker.close()
      await dns.close()
    }
  })
})
