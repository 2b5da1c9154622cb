// BackscatterChecker when things fail: a resolver that dies or stays silent,
// lookups in flight when a zone fails its check, failures one after another,
// and answers obtained while a zone is not in use. Scripted DNS on 127.0.0.1.
import assert from 'node:assert/strict'
import { describe, it, mock } from 'node:test'

import { BackscatterChecker, type ZoneProbe } from '../lib/dns/checker'
import { DnsblResolver } from '../lib/dns/resolver'
import { parseSettings } from '../lib/settings/parse'
import { gate, makeChecker, ZONE } from './support/checker'
import {
  dnsblZone,
  IPV6_TEST_POINT,
  reverseIpv4,
  startDns,
  TYPE,
  type ScriptedDns,
} from './support/dns-server'
import { advance, onMockClock, turn, until } from './support/mock-clock'
import type { ZoneOutcome, ZoneSettings } from '../lib/core/types'

describe('BackscatterChecker and a resolver that dies', () => {
  it('a failed lookup re-checks the zone at once: suspended after one budget, not at the next interval', async () => {
    let dead = false
    const healthy = dnsblZone(ZONE, { '45.1.1.2': {} })
    const dns = await startDns((q) => (dead ? { drop: true } : healthy(q)))
    // On the mock clock, with c-ares' own (real) timer beyond the test's length.
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    try {
      const { checker, lines } = makeChecker(dns.server, { health_interval: 300, timeout_ms: 10_000 })
      const budgetMs = checker.resolver.budgetMs
      checker.start()
      assert.equal((await checker.check('45.1.1.2'))[0]!.status, 'listed')
      dead = true
      let first: ZoneOutcome[] | undefined
      void checker.check('45.3.3.3').then((o) => (first = o))
      const failedAt = await advance(() => first !== undefined, 0, budgetMs)
      assert.deepEqual(first, [{ zone: ZONE, status: 'error', reason: 'timeout' }])
      // The re-check started by that failure times out in its turn and suspends the zone.
      const suspendedAt = await advance(
        () => checker.healthStates()[0]!.state !== 'usable',
        failedAt!,
        failedAt! + budgetMs,
      )
      assert.ok(suspendedAt !== undefined, 'within one budget of the failure, well before the 300 s interval')
      assert.equal(checker.healthStates()[0]!.state, 'suspended')
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
      mock.timers.reset()
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
        // On the mock clock, with c-ares' own (real) timer beyond the test's length.
        const { checker, lines } = makeChecker(`${silent.server}, ${working.server}`, {
          health_interval: 300,
          timeout_ms: 10_000,
          tries,
        })
        const { ms } = await onMockClock(async () => {
          checker.start()
          return checker.checkHealth() // joins the first check
        }, 30_000)
        assert.ok(ms <= 20_000, `at most 2 × timeout_ms per test point: ${ms} ms`)
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
