// The ledger against a real redis-server on loopback: record then check, the
// window and the ledger's age (days from a clock the test moves), a reload.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, beforeEach, describe, it } from 'node:test'

import { bucketKey, ledgerEntry, SINCE_KEY } from '../lib/ledger/entry'
import { Ledger, MAX_REFERENCES } from '../lib/ledger/ledger'
import { until } from './support/mock-clock'
import { findRedisServer, startRedis, type RedisServer } from './support/redis'
import {
  DAY_MS,
  inspector,
  ledgerSettings,
  NOON,
  testLedger,
  TODAY,
  type TestLedger,
  SINCE,
} from './support/ledger'

const redisBinary = findRedisServer()

describe('the ledger in Redis', { skip: !redisBinary && 'redis-server is not installed' }, () => {
  let redis: RedisServer
  let look: Awaited<ReturnType<typeof inspector>>
  let t: TestLedger
  const started: TestLedger[] = []

  /** A started ledger, up, on a clock at `ms`. */
  async function upLedger(ms = NOON, values = {}): Promise<TestLedger> {
    const l = testLedger(ledgerSettings(redis.url, values), {}, { ms })
    started.push(l)
    l.ledger.start()
    await l.reach('up')
    return l
  }

  before(async () => {
    redis = await startRedis(redisBinary as string)
    look = await inspector(redis.url)
  })
  after(async () => {
    await Promise.all(started.map((l) => l.ledger.close()))
    look.destroy()
    await redis.close()
  })
  beforeEach(async () => {
    await look.flushAll()
    t = await upLedger()
  })

  it('record, then check: ours, with the reference found', async () => {
    assert.equal(await t.ledger.record('<20261206.1@Mail.Example.com>'), 'recorded')
    const answer = await t.ledger.check(['<other@example.com>', ' <20261206.1@mail.example.COM> '])
    assert.equal(answer.result, 'ours')
    assert.deepEqual(answer.found, ['20261206.1@mail.example.com'])
    assert.deepEqual(t.ledger.counts(), {
      recorded: 1,
      recordFailures: 0,
      checks: { ours: 1, 'not-ours': 0, unknown: 0 },
      outages: 0,
    })
  })

  it('stores a 6-byte field in a per-day bucket that expires after the window and a day', async () => {
    await t.ledger.record('<x@example.com>')
    const entry = ledgerEntry(t.ledger.settings.key!, '<x@example.com>')!
    const key = bucketKey(TODAY, entry.bucket)
    assert.deepEqual((await look.keys('bs:l:*')).sort(), [key, SINCE_KEY].sort())
    assert.equal(await look.hLen(key), 1)
    assert.equal(await look.ttl(key), 31 * 86400)
    assert.equal(await look.objectEncoding(key), 'listpack')
  })

  it('nothing recorded yet: unknown, young; on the day it starts, still young', async () => {
    assert.deepEqual(await t.ledger.check(['<never@example.com>']), {
      result: 'unknown',
      reason: 'young',
      found: [],
      noneFound: true,
    })
    await t.ledger.record('<sent@example.com>')
    assert.equal(await look.zScore(SINCE_KEY, SINCE), TODAY + 1)
    const answer = await t.ledger.check(['<never@example.com>'])
    assert.deepEqual(answer, { result: 'unknown', reason: 'young', found: [], noneFound: true, ageDays: 0 })
  })

  it('never recorded: not ours once the ledger holds the whole window, young one day before', async () => {
    await t.ledger.record('<sent@example.com>')
    t.clock.ms = NOON + 30 * DAY_MS
    assert.equal((await t.ledger.check(['<never@example.com>'])).reason, 'young')
    t.clock.ms = NOON + 31 * DAY_MS
    assert.deepEqual(await t.ledger.check(['<never@example.com>']), {
      result: 'not-ours',
      reason: 'not found',
      found: [],
      noneFound: true,
      ageDays: 30,
    })
    assert.deepEqual(t.ledger.counts().checks, { ours: 0, 'not-ours': 1, unknown: 1 })
  })

  it('the window: a message is found on its last day in it, and not the day after', async () => {
    await t.ledger.record('<old@example.com>')
    t.clock.ms = NOON + 30 * DAY_MS
    assert.equal((await t.ledger.check(['<old@example.com>'])).result, 'ours')
    t.clock.ms = NOON + 31 * DAY_MS
    assert.equal((await t.ledger.check(['<old@example.com>'])).result, 'not-ours')
  })

  it('a shorter window: found within it, and the bucket expires sooner', async () => {
    const short = await upLedger(NOON, { windowDays: 2 })
    await short.ledger.record('<x@example.com>')
    const entry = ledgerEntry(short.ledger.settings.key!, '<x@example.com>')!
    assert.equal(await look.ttl(bucketKey(TODAY, entry.bucket)), 3 * 86400)
    short.clock.ms = NOON + 2 * DAY_MS
    assert.equal((await short.ledger.check(['<x@example.com>'])).result, 'ours')
    short.clock.ms = NOON + 3 * DAY_MS
    assert.equal((await short.ledger.check(['<x@example.com>'])).result, 'not-ours')
  })

  it('messages recorded on several days are each found', async () => {
    for (let d = 0; d < 5; d++) {
      t.clock.ms = NOON + d * DAY_MS
      await t.ledger.record(`<day${d}@example.com>`)
    }
    for (let d = 0; d < 5; d++) assert.equal((await t.ledger.check([`<day${d}@example.com>`])).result, 'ours')
  })

  it('no usable reference: unknown, no references, with no call to Redis', async () => {
    assert.equal((await t.ledger.check([])).reason, 'no references')
    assert.equal((await t.ledger.check(['<>', '  '])).reason, 'no references')
    assert.equal(await t.ledger.record('<>'), 'no message-id')
  })

  it(`more than ${MAX_REFERENCES} references: the last ones are checked; none found is unknown`, async () => {
    await t.ledger.record('<sent@example.com>')
    t.clock.ms = NOON + 31 * DAY_MS
    const many = Array.from({ length: MAX_REFERENCES + 5 }, (_, i) => `<ref${i}@example.com>`)
    assert.equal((await t.ledger.check(many)).reason, 'too many references')
    t.clock.ms = NOON
    await t.ledger.record(many.at(-1)!)
    assert.equal((await t.ledger.check(many)).result, 'ours')
    assert.equal((await t.ledger.check(many.slice(0, 5))).reason, 'young')
  })

  it('a message that named more references than it gave: none found is unknown, never not-ours', async () => {
    await t.ledger.record('<sent@example.com>')
    await look.zAdd(SINCE_KEY, { score: TODAY - 40, value: SINCE })
    const refs = ['<a@example.org>', '<b@example.org>']
    assert.equal((await t.ledger.check(refs)).result, 'not-ours')
    const partial = await t.ledger.check(refs, { complete: false })
    assert.deepEqual([partial.result, partial.reason], ['unknown', 'too many references'])
    assert.equal((await t.ledger.check([...refs, '<sent@example.com>'], { complete: false })).result, 'ours')
  })

  it('survey: what it holds, and whether Redis may evict it; a Redis that refuses INFO is still surveyed', async () => {
    await t.ledger.record('<a@example.com>')
    const full = await t.ledger.survey()
    assert.ok(full.ok)
    assert.deepEqual([full.survey.entries, full.survey.days, full.survey.evicts], [1, 1, undefined])
    await look.configSet({ maxmemory: '100mb', 'maxmemory-policy': 'allkeys-lru' })
    try {
      const evicting = await t.ledger.survey()
      assert.ok(evicting.ok)
      assert.equal(evicting.survey.evicts, 'allkeys-lru')
    } finally {
      await look.configSet({ maxmemory: '0', 'maxmemory-policy': 'noeviction' })
    }
    // An ACL user that may not run INFO, as some shared or managed Redis give.
    await look.sendCommand(['ACL', 'SETUSER', 'ledger', 'on', '>a-password', '~*', '&*', '+@all', '-info'])
    const limited = await upLedger(NOON, {
      redisUrl: redis.url.replace('redis://', 'redis://ledger:a-password@'),
    })
    const surveyed = await limited.ledger.survey()
    assert.ok(surveyed.ok, JSON.stringify(surveyed))
    assert.deepEqual([surveyed.survey.entries, surveyed.survey.evicts], [1, undefined])
  })

  it('a new key starts a ledger of its own: young for a window, never "not ours" for mail the old key recorded', async () => {
    await t.ledger.record('<sent@example.com>')
    const otherKey = { key: crypto.createSecretKey(Buffer.from('another secret, also long enough', 'utf8')) }
    const other = await upLedger(NOON + 10 * DAY_MS, otherKey)
    const young = await other.ledger.check(['<sent@example.com>'])
    assert.deepEqual([young.result, young.reason], ['unknown', 'young'])
    // The old key's ledger, 10 days on, still finds it.
    t.clock.ms = NOON + 10 * DAY_MS
    assert.equal((await t.ledger.check(['<sent@example.com>'])).result, 'ours')
    // Once the new key has recorded for a whole window, what it never saw is not ours.
    await other.ledger.record('<first-under-the-new-key@example.com>')
    other.clock.ms = NOON + 41 * DAY_MS
    await other.ledger.record('<sent-under-the-new-key@example.com>')
    assert.equal((await other.ledger.check(['<sent@example.com>'])).result, 'not-ours')
    assert.equal((await other.ledger.check(['<sent-under-the-new-key@example.com>'])).result, 'ours')
  })

  it('a reload: the new ledger finds what the old one recorded, and carries on its counts', async () => {
    await t.ledger.record('<before-reload@example.com>')
    const next = testLedger(ledgerSettings(redis.url), { previous: t.ledger }, t.clock)
    started.push(next)
    await t.ledger.close()
    next.ledger.start()
    await next.reach('up')
    assert.equal((await next.ledger.check(['<before-reload@example.com>'])).result, 'ours')
    assert.equal(next.ledger.counts().recorded, 1)
    assert.equal((await t.ledger.check(['<before-reload@example.com>'])).reason, 'unavailable')
  })

  it('a record still waiting for its batch when the ledger closes (a reload) is sent, not lost', async () => {
    const recorded = t.ledger.record('<just-before-reload@example.com>')
    const next = testLedger(ledgerSettings(redis.url), { previous: t.ledger }, t.clock)
    started.push(next)
    await t.ledger.close()
    assert.equal(await recorded, 'recorded')
    next.ledger.start()
    await next.reach('up')
    assert.equal((await next.ledger.check(['<just-before-reload@example.com>'])).result, 'ours')
    assert.equal(next.ledger.counts().recordFailures, 0)
  })

  it('a batch that throws while it is sent answers every record unavailable, and nothing escapes', async () => {
    let broken = false
    const lines: string[] = []
    const ledger = new Ledger(ledgerSettings(redis.url), {
      log: { info: (m) => lines.push(m), error: (m) => lines.push(m) },
      now: () => {
        if (broken) throw new Error('the clock broke')
        return NOON
      },
    })
    broken = true
    const escaped: unknown[] = []
    const onRejection = (err: unknown): number => escaped.push(err)
    process.on('unhandledRejection', onRejection)
    try {
      const results = await Promise.all([ledger.record('<a@example.com>'), ledger.record('<b@example.com>')])
      assert.deepEqual(results, ['unavailable', 'unavailable'])
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(escaped, [])
      assert.ok(
        lines.some((l) => l.includes('the clock broke')),
        lines.join('\n'),
      )
      assert.equal(ledger.counts().recordFailures, 2, 'counted as lost: the ledger has a hole')
    } finally {
      process.off('unhandledRejection', onRejection)
      broken = false
      await ledger.close()
    }
  })

  it('a record made the moment it starts waits for the connection, within the bound, and is kept', async () => {
    const fresh = testLedger(ledgerSettings(redis.url))
    started.push(fresh)
    fresh.ledger.start()
    assert.equal(fresh.ledger.status().state, 'connecting')
    assert.equal(await fresh.ledger.record('<first@example.com>'), 'recorded')
    assert.equal((await fresh.ledger.check(['<first@example.com>'])).result, 'ours')
  })

  it('status: up, the age Redis gave, the window, the URL', async () => {
    await t.ledger.record('<sent@example.com>')
    t.clock.ms = NOON + 10 * DAY_MS
    await t.ledger.check(['<sent@example.com>'])
    const status = t.ledger.status()
    assert.equal(status.state, 'up')
    assert.equal(status.ageDays, 9)
    assert.equal(status.windowDays, 30)
    assert.equal(status.redis, redis.url)
    assert.deepEqual(t.errors(), [])
    assert.deepEqual(t.infos(), [`ledger: connected to Redis ${redis.url}`])
  })

  it('a new ledger learns the age from Redis when it connects', async () => {
    await look.zAdd(SINCE_KEY, { score: TODAY - 40, value: SINCE })
    const fresh = await upLedger()
    await until(() => fresh.ledger.status().ageDays !== undefined, 'the age read at connect')
    assert.equal(fresh.ledger.status().ageDays, 40)
  })
})
