// BackscatterChecker against a scripted DNS server on 127.0.0.1: the cache,
// coalescing, and zone health (RFC 5782 §5), counted in real DNS packets.
// Zone files: checker-zonefile.test.ts; failures: checker-failures.test.ts.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { BackscatterChecker } from '../lib/dns/checker'
import { parseSettings } from '../lib/settings/parse'
import { makeChecker, ZONE } from './support/checker'
import {
  dnsblZone,
  IPV6_TEST_POINT,
  reverseIpv4,
  startDns,
  TYPE,
  type Handler,
  type ScriptedDns,
} from './support/dns-server'
import { onMockClock, until } from './support/mock-clock'

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

    it('cache_size bounds the cache: the least recently used answers go (the long run: test/soak)', async () => {
      handler = healthy
      const { checker } = makeChecker(dns.server, { cache_size: 100 })
      const cache = (checker as unknown as { cache: { size: number } }).cache
      const ips = Array.from({ length: 150 }, (_, n) => `46.0.${n >> 8}.${n & 255}`)
      for (const ip of ips) await checker.check(ip)
      assert.equal(cache.size, 100, 'bounded by cache_size')
      const name = (ip: string): string => `${reverseIpv4(ip)}.${ZONE}`
      const [oldest, newest] = [ips[0]!, ips[149]!]
      const before = [dns.count(name(oldest)), dns.count(name(newest))]
      await checker.check(newest)
      await checker.check(oldest)
      assert.deepEqual([dns.count(name(oldest)), dns.count(name(newest))], [before[0]! + 1, before[1]!])
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
})
