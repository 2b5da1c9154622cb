// Each ledger call is one Redis round trip: a proxy between the Ledger and a
// real redis-server counts the turns (the client writes, an answer reaches it)
// and the commands each one carried. While a call is under test the proxy keeps
// Redis's answers back: the call must send all its commands without one, and
// nothing after it gets them. A record, and a check of any number of
// references over the whole window, must each take exactly one turn.
import assert from 'node:assert/strict'
import { after, afterEach, before, beforeEach, describe, it, mock } from 'node:test'

import { SINCE_KEY } from '../lib/ledger/entry'
import { MAX_RECORD_BATCH, MAX_REFERENCES, RECORD_BATCH_MS } from '../lib/ledger/ledger'
import { turn, until } from './support/mock-clock'
import { findRedisServer, startRedis, type RedisServer } from './support/redis'
import { startRedisProxy, type RedisProxy, type Turn } from './support/redis-proxy'
import { inspector, ledgerSettings, SINCE, testLedger, TODAY, type TestLedger } from './support/ledger'

const redisBinary = findRedisServer()
const WINDOW_DAYS = 30
/** Days a check looks at: the window and today. */
const DAYS = WINDOW_DAYS + 1
/** Long enough that a call never gives up while the proxy keeps its answer back. */
const TIMEOUT_MS = 5000

const names = (turn: Turn | undefined): string[] => turn?.commands.map((c) => c[0] ?? '') ?? []

describe(
  'ledger calls are one Redis round trip each',
  { skip: !redisBinary && 'redis-server is not installed' },
  () => {
    let redis: RedisServer
    let proxy: RedisProxy
    let look: Awaited<ReturnType<typeof inspector>>
    let t: TestLedger
    const started: TestLedger[] = []

    const sentSince = (from: number): number =>
      proxy.turns.slice(from).reduce((n, turn) => n + turn.commands.length, 0)

    /**
     * Run `call` with Redis's answers kept back until it has sent `commands`
     * commands (it never does if it needs an answer first), then let them through.
     * Returns its value and the turns it took.
     */
    async function turnsOf<T>(
      commands: number,
      call: () => Promise<T>,
    ): Promise<{ value: T; turns: Turn[] }> {
      const from = proxy.turns.length
      proxy.hold()
      const pending = call()
      try {
        await until(() => sentSince(from) >= commands, `${commands} commands sent with no answer yet`)
      } finally {
        proxy.release()
      }
      const value = await pending
      return { value, turns: proxy.turns.slice(from) }
    }

    before(async () => {
      redis = await startRedis(redisBinary as string)
      proxy = await startRedisProxy(redis.port)
      look = await inspector(redis.url)
    })
    after(async () => {
      await Promise.all(started.map((l) => l.ledger.close()))
      look.destroy()
      await proxy.close()
      await redis.close()
    })
    afterEach(() => mock.timers.reset())
    beforeEach(async () => {
      await look.flushAll()
      const from = proxy.turns.length
      t = testLedger(ledgerSettings(proxy.url, { windowDays: WINDOW_DAYS, timeoutMs: TIMEOUT_MS }))
      started.push(t)
      t.ledger.start()
      await t.reach('up')
      // On connecting, the ledger reads its age (ZSCORE): that turn is over before the calls under test.
      await until(
        () => proxy.turns.slice(from).some((turn) => names(turn).includes('ZSCORE')) && proxy.answered(),
        'the age read on connecting',
      )
    })

    it('a record: one turn, its three commands pipelined', async () => {
      const { value, turns } = await turnsOf(3, () => t.ledger.record('<sent-1@example.com>'))
      assert.equal(value, 'recorded')
      assert.equal(turns.length, 1)
      assert.deepEqual(names(turns[0]), ['ZADD', 'HSET', 'EXPIRE'])
    })

    it('a record lost: the start moves on as soon as Redis is back, in one command, before any record', async () => {
      const short = testLedger(ledgerSettings(proxy.url, { windowDays: WINDOW_DAYS, timeoutMs: 200 }))
      started.push(short)
      short.ledger.start()
      await short.reach('up')
      redis.pause()
      assert.equal(await short.ledger.record('<lost@example.com>'), 'unavailable')
      const from = proxy.turns.length
      redis.resume()
      await short.reach('up')
      // Another worker checking the lost message now must find the ledger young, not call it "not ours".
      const moved = (): Turn | undefined =>
        proxy.turns.slice(from).find((turn) => turn.commands.some((c) => c[0] === 'ZADD' && c.includes('GT')))
      await until(() => moved() !== undefined && proxy.answered(), 'the start moved on')
      assert.deepEqual(names(moved()), ['ZADD'])
      assert.equal(await look.zScore(SINCE_KEY, SINCE), TODAY + 1)
      const { value, turns } = await turnsOf(3, () => short.ledger.record('<after@example.com>'))
      assert.equal(value, 'recorded')
      assert.deepEqual(turns.map(names), [['ZADD', 'HSET', 'EXPIRE']])
    })

    it('a record goes at once, and so does the next; on a busy relay the rest share a turn', async () => {
      mock.timers.enable({ apis: ['setTimeout'] })
      const from = proxy.turns.length
      // No timer runs: these two can only be answered if they went at once.
      for (const id of ['<first@example.com>', '<second@example.com>']) {
        let result: string | undefined
        void t.ledger.record(id).then((r) => (result = r))
        await until(() => result !== undefined, `${id} answered with no timer run`)
        assert.equal(result, 'recorded')
      }
      // Two records within RECORD_BATCH_MS: the relay is busy, and the next ones wait for company.
      const ids = Array.from({ length: 20 }, (_, i) => `<together-${i}@example.com>`)
      const together = Promise.all(ids.map((id) => t.ledger.record(id)))
      await turn()
      assert.equal(sentSince(from), 6, 'the others wait for their batch')
      mock.timers.tick(RECORD_BATCH_MS)
      assert.deepEqual(await together, Array(20).fill('recorded'))
      mock.timers.reset()
      const turns = proxy.turns.slice(from)
      assert.deepEqual(turns.slice(0, 2).map(names), [
        ['ZADD', 'HSET', 'EXPIRE'],
        ['ZADD', 'HSET', 'EXPIRE'],
      ])
      assert.equal(turns.length, 3)
      const batch = turns[2]?.commands ?? []
      assert.equal(batch[0]?.[0], 'ZADD')
      const fields = batch.filter((c) => c[0] === 'HSET')
      const expired = batch.filter((c) => c[0] === 'EXPIRE').map((c) => c[1])
      assert.equal(fields.length, 20)
      assert.deepEqual(expired.sort(), [...new Set(fields.map((c) => c[1]))].sort(), 'one expiry per bucket')
      assert.equal(t.ledger.counts().recorded, 22)
      assert.equal((await t.ledger.check(['<together-7@example.com>'])).result, 'ours')
    })

    it(`a batch carries ${MAX_RECORD_BATCH} records at most, and a full one goes without waiting`, async () => {
      const ids = Array.from({ length: MAX_RECORD_BATCH + 3 }, (_, i) => `<full-${i}@example.com>`)
      const from = proxy.turns.length
      const sent = (): string[] => proxy.turns.slice(from).flatMap((turn) => names(turn))
      proxy.hold()
      const pending = ids.map((id) => t.ledger.record(id))
      try {
        await until(
          () => sent().filter((n) => n === 'HSET').length === ids.length && sent().at(-1) === 'EXPIRE',
          'every batch sent',
        )
      } finally {
        proxy.release()
      }
      assert.deepEqual(await Promise.all(pending), Array(ids.length).fill('recorded'))
      // Each batch begins with the ledger's start (ZADD NX): count the fields after each.
      const perBatch = sent().reduce<number[]>((batches, name) => {
        if (name === 'ZADD') batches.push(0)
        else if (name === 'HSET') batches[batches.length - 1]! += 1
        return batches
      }, [])
      // The first two go at once; then the relay is busy: a full batch at once, the last on its timer.
      assert.deepEqual(perBatch, [1, 1, MAX_RECORD_BATCH, 1])
    })

    it('while connecting, one bound for the whole call: the wait for the connection counts', async () => {
      const bound = 300
      proxy.hold()
      try {
        const l = testLedger(ledgerSettings(proxy.url, { windowDays: WINDOW_DAYS, timeoutMs: bound }))
        started.push(l)
        l.ledger.start()
        const start = performance.now()
        const pending = l.ledger.check(['<x@example.com>'])
        // The connection's handshake is answered two thirds into the bound; the check's answer never is.
        await new Promise((resolve) => setTimeout(resolve, (bound * 2) / 3))
        proxy.release()
        proxy.hold()
        const answer = await pending
        const ms = performance.now() - start
        assert.deepEqual([answer.result, answer.reason], ['unknown', 'timeout'])
        assert.ok(ms < bound + bound / 3, `answered after ${Math.round(ms)} ms, bound ${bound}`)
      } finally {
        proxy.release()
      }
    })

    for (const count of [1, 10, MAX_REFERENCES]) {
      const commands = 1 + count * DAYS
      it(`a check of ${count} reference${count > 1 ? 's' : ''} over ${DAYS} days: one turn of ${commands} commands`, async () => {
        const refs = Array.from({ length: count }, (_, i) => `<ref-${i}@example.com>`)
        await t.ledger.record(refs.at(-1)!)
        const { value, turns } = await turnsOf(commands, () => t.ledger.check(refs))
        assert.deepEqual(value.found, [`ref-${count - 1}@example.com`])
        assert.deepEqual(
          turns.map((turn) => turn.commands.length),
          [commands],
        )
        const sent = names(turns[0])
        assert.equal(sent[0], 'ZSCORE')
        assert.equal(sent.filter((n) => n === 'HEXISTS').length, count * DAYS)
      })
    }

    it(`more than ${MAX_REFERENCES} references: one turn, the last ${MAX_REFERENCES} looked up`, async () => {
      const refs = Array.from({ length: MAX_REFERENCES + 5 }, (_, i) => `<many-${i}@example.com>`)
      const { value, turns } = await turnsOf(1 + MAX_REFERENCES * DAYS, () => t.ledger.check(refs))
      assert.equal(value.result, 'unknown')
      assert.deepEqual(
        turns.map((turn) => turn.commands.length),
        [1 + MAX_REFERENCES * DAYS],
      )
    })

    it('a check with no usable reference, and a record with no Message-ID: no turn at all', async () => {
      const check = await turnsOf(0, () => t.ledger.check(['<>', '  ']))
      assert.equal(check.value.reason, 'no references')
      assert.equal(check.turns.length, 0)
      const record = await turnsOf(0, () => t.ledger.record('<>'))
      assert.equal(record.value, 'no message-id')
      assert.equal(record.turns.length, 0)
    })

    it('calls one after another: one turn each, never merged or split', async () => {
      const from = proxy.turns.length
      await t.ledger.record('<a@example.com>')
      await t.ledger.check(['<a@example.com>'])
      await t.ledger.record('<b@example.com>')
      await t.ledger.check(['<b@example.com>', '<a@example.com>'])
      assert.deepEqual(
        proxy.turns.slice(from).map((turn) => turn.commands.length),
        [3, 1 + DAYS, 3, 1 + 2 * DAYS],
      )
    })
  },
)
