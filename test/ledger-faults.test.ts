// The ledger when Redis fails: down at start, stopped mid-way, frozen
// (SIGSTOP). Every call answers within timeout_ms and nothing throws; one
// ERROR line per outage, one INFO when it is back; a lost record makes the
// ledger young again. Times are measured only against the bound under test.
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { after, afterEach, before, describe, it } from 'node:test'

import { bucketKey, ledgerEntry, SINCE_KEY } from '../lib/ledger/entry'
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
const TIMEOUT_MS = 200
// Scheduling on two shared cores: what a call may take beyond its bound.
const SLACK_MS = 300

/** The call's result and how long it took. */
async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  const value = await call()
  return { value, ms: performance.now() - start }
}

describe('the ledger when Redis fails', { skip: !redisBinary && 'redis-server is not installed' }, () => {
  let redis: RedisServer
  const started: TestLedger[] = []

  function ledger(): TestLedger {
    const l = testLedger(ledgerSettings(redis.url, { timeoutMs: TIMEOUT_MS }))
    started.push(l)
    return l
  }

  /** A ledger, up, whose Redis says it has held every message since `day`. */
  async function upSince(look: Awaited<ReturnType<typeof inspector>>, day: number): Promise<TestLedger> {
    await look.zAdd(SINCE_KEY, { score: day, value: SINCE })
    const t = ledger()
    t.ledger.start()
    await t.reach('up')
    return t
  }

  before(async () => {
    redis = await startRedis(redisBinary as string)
  })
  afterEach(async () => {
    await Promise.all(started.splice(0).map((l) => l.ledger.close()))
    try {
      await redis.restart()
    } catch {
      // Running already, perhaps frozen.
      redis.resume()
    }
  })
  after(() => redis.close())

  it('down at start: answers at once, one ERROR saying mail goes on; connects when Redis comes', async () => {
    await redis.stop()
    const t = ledger()
    t.ledger.start()
    await t.reach('down')
    for (let i = 0; i < 5; i++) {
      const record = await timed(() => t.ledger.record(`<m${i}@example.com>`))
      assert.equal(record.value, 'unavailable')
      assert.ok(record.ms < TIMEOUT_MS, `record answered in ${record.ms} ms`)
      const check = await timed(() => t.ledger.check([`<m${i}@example.com>`]))
      assert.deepEqual(check.value, { result: 'unknown', reason: 'unavailable', found: [], noneFound: false })
      assert.ok(check.ms < TIMEOUT_MS, `check answered in ${check.ms} ms`)
    }
    assert.equal(t.errors().length, 1)
    assert.match(
      t.errors()[0]!,
      new RegExp(
        `^ledger: Redis ${redis.url} unavailable \\(.+\\): sent mail is not recorded and bounces are not checked against the ledger until it is back; mail goes on$`,
      ),
    )
    assert.equal(t.ledger.status().state, 'down')
    assert.deepEqual(t.ledger.counts(), {
      recorded: 0,
      recordFailures: 5,
      checks: { ours: 0, 'not-ours': 0, unknown: 5 },
      outages: 1,
    })

    await redis.restart()
    await t.reach('up')
    assert.equal(await t.ledger.record('<after@example.com>'), 'recorded')
    assert.equal((await t.ledger.check(['<after@example.com>'])).result, 'ours')
    assert.equal(t.errors().length, 1)
    assert.match(
      t.infos().at(-1)!,
      /^ledger: Redis .* is back after \d+ s; recording and checking again; messages sent meanwhile were not recorded$/,
    )
  })

  it('stopped mid-way: bounded, one ERROR for the outage; back again: one INFO, and it works', async () => {
    const t = ledger()
    t.ledger.start()
    await t.reach('up')
    assert.equal(await t.ledger.record('<one@example.com>'), 'recorded')
    await redis.stop()
    for (let i = 0; i < 5; i++) {
      const check = await timed(() => t.ledger.check(['<one@example.com>']))
      assert.equal(check.value.result, 'unknown')
      assert.ok(check.ms < TIMEOUT_MS + SLACK_MS, `check answered in ${check.ms} ms`)
    }
    await t.reach('down')
    assert.equal(t.errors().length, 1)
    await redis.restart()
    await t.reach('up')
    assert.equal(await t.ledger.record('<two@example.com>'), 'recorded')
    assert.equal((await t.ledger.check(['<two@example.com>'])).result, 'ours')
    assert.equal(t.errors().length, 1)
    assert.equal(t.infos().filter((l) => l.includes('is back after')).length, 1)
    assert.equal(t.ledger.counts().outages, 1)
  })

  it('frozen (SIGSTOP): the first call times out at the bound, the next fail at once; back when it thaws', async () => {
    const t = ledger()
    t.ledger.start()
    await t.reach('up')
    redis.pause()
    const first = await timed(() => t.ledger.check(['<x@example.com>']))
    assert.deepEqual(first.value, { result: 'unknown', reason: 'timeout', found: [], noneFound: false })
    assert.ok(first.ms >= TIMEOUT_MS - 5 && first.ms < TIMEOUT_MS + SLACK_MS, `${first.ms} ms`)
    assert.equal(t.ledger.status().state, 'down')
    // One probe stays out; every other call answers at once rather than pile up behind it.
    for (let i = 0; i < 20; i++) {
      const record = await timed(() => t.ledger.record(`<r${i}@example.com>`))
      assert.equal(record.value, 'unavailable')
      assert.ok(record.ms < TIMEOUT_MS / 2, `${record.ms} ms`)
    }
    assert.equal(t.errors().length, 1)
    assert.match(t.errors()[0]!, /unavailable \(no answer within 200 ms\)/)
    redis.resume()
    await t.reach('up')
    assert.equal(await t.ledger.record('<thawed@example.com>'), 'recorded')
    assert.equal(t.errors().length, 1)
    assert.equal(t.ledger.counts().outages, 1)
  })

  it('a record lost in an outage: the ledger holds every message only from the next day, so it is young again', async () => {
    const look = await inspector(redis.url)
    try {
      const t = await upSince(look, TODAY - 100)
      t.clock.ms = NOON
      assert.equal((await t.ledger.check(['<never@example.com>'])).result, 'not-ours')
      redis.pause()
      assert.equal(await t.ledger.record('<lost@example.com>'), 'unavailable')
      redis.resume()
      await t.reach('up')
      assert.equal(await t.ledger.record('<kept@example.com>'), 'recorded')
      assert.equal(await look.zScore(SINCE_KEY, SINCE), TODAY + 1)
      // The record that timed out may still have reached Redis; a message never sent is what shows the age.
      assert.deepEqual(await t.ledger.check(['<never@example.com>']), {
        result: 'unknown',
        reason: 'young',
        found: [],
        noneFound: true,
        ageDays: 0,
      })
      t.clock.ms = NOON + 31 * DAY_MS
      assert.equal((await t.ledger.check(['<never@example.com>'])).result, 'not-ours')
    } finally {
      look.destroy()
    }
  })

  it('a lost record is remembered across a reload', async () => {
    const t = ledger()
    t.ledger.start()
    await t.reach('up')
    redis.pause()
    assert.equal(await t.ledger.record('<lost@example.com>'), 'unavailable')
    const next = testLedger(ledgerSettings(redis.url, { timeoutMs: TIMEOUT_MS }), { previous: t.ledger })
    started.push(next)
    const closing = timed(() => t.ledger.close())
    redis.resume()
    assert.ok((await closing).ms < 2 * TIMEOUT_MS + SLACK_MS)
    next.ledger.start()
    await next.reach('up')
    assert.equal(await next.ledger.record('<kept@example.com>'), 'recorded')
    const look = await inspector(redis.url)
    assert.equal(await look.zScore(SINCE_KEY, SINCE), TODAY + 1)
    look.destroy()
  })

  it('a record still out when a reload starts, and lost: the new ledger marks the hole', async () => {
    const look = await inspector(redis.url)
    try {
      const t = await upSince(look, TODAY - 100)
      redis.pause()
      const lost = t.ledger.record('<lost-while-reloading@example.com>')
      // The reload: the new ledger is made, then the old one closes, while the record is still out.
      const next = testLedger(ledgerSettings(redis.url, { timeoutMs: TIMEOUT_MS }), { previous: t.ledger })
      started.push(next)
      const closing = t.ledger.close()
      assert.equal(await lost, 'unavailable')
      await closing
      redis.resume()
      next.ledger.start()
      await next.reach('up')
      // Told to Redis when it is back, with no record needed to carry it.
      for (let i = 0; i < 200 && (await look.zScore(SINCE_KEY, SINCE)) !== TODAY + 1; i++)
        await new Promise((resolve) => setTimeout(resolve, 10))
      assert.equal(await look.zScore(SINCE_KEY, SINCE), TODAY + 1)
      assert.equal(next.ledger.counts().recordFailures, 1)
    } finally {
      look.destroy()
    }
  })

  it('Redis answering reads but refusing writes: a record lost so is never called not-ours', async () => {
    const look = await inspector(redis.url)
    try {
      const t = await upSince(look, TODAY - 40)
      // As a primary with too few replicas does (NOREPLICAS); a full Redis (OOM) or a failed save (MISCONF) the same.
      await look.configSet('min-replicas-to-write', '1')
      assert.equal(await t.ledger.record('<refused@example.com>'), 'unavailable')
      const answer = await t.ledger.check(['<refused@example.com>'])
      assert.deepEqual([answer.result, answer.reason], ['unknown', 'young'])
      assert.equal(t.ledger.status().ageDays, 0)
      await look.configSet('min-replicas-to-write', '0')
      assert.equal(await t.ledger.record('<kept@example.com>'), 'recorded')
      assert.equal(
        await look.zScore(SINCE_KEY, SINCE),
        TODAY + 1,
        'the hole told to Redis with the next record',
      )
    } finally {
      await look.configSet('min-replicas-to-write', '0')
      look.destroy()
    }
  })

  it('a command Redis refuses (a key of another type): that call fails open, one ERROR per kind, no outage', async () => {
    const t = ledger()
    t.ledger.start()
    await t.reach('up')
    const entry = ledgerEntry(t.ledger.settings.key!, '<clash@example.com>')!
    const look = await inspector(redis.url)
    await look.set(bucketKey(TODAY, entry.bucket), 'not a hash')
    look.destroy()
    assert.equal(await t.ledger.record('<clash@example.com>'), 'unavailable')
    assert.equal(await t.ledger.record('<clash@example.com>'), 'unavailable')
    assert.deepEqual((await t.ledger.check(['<clash@example.com>'])).reason, 'error')
    assert.deepEqual(t.errors(), [
      `ledger: Redis ${redis.url} refused a command (WRONGTYPE Operation against a key holding the wrong kind of value); that call fails open, mail goes on`,
    ])
    assert.equal(t.ledger.status().state, 'up')
    assert.equal(t.ledger.counts().outages, 0)
    assert.equal(await t.ledger.record('<fine@example.com>'), 'recorded')
  })

  it('close() while frozen and while never connected: bounded, nothing throws', async () => {
    const t = ledger()
    t.ledger.start()
    await t.reach('up')
    redis.pause()
    const pending = t.ledger.check(['<x@example.com>'])
    const closed = await timed(() => t.ledger.close())
    assert.ok(closed.ms < 2 * TIMEOUT_MS + SLACK_MS, `closed in ${closed.ms} ms`)
    assert.equal((await pending).result, 'unknown')
    assert.equal(t.ledger.status().state, 'closed')
    redis.resume()

    await redis.stop()
    const never = ledger()
    never.ledger.start()
    const closedNever = await timed(() => never.ledger.close())
    assert.ok(closedNever.ms < TIMEOUT_MS + SLACK_MS, `closed in ${closedNever.ms} ms`)
    assert.equal(await never.ledger.record('<x@example.com>'), 'unavailable')
  })
})
