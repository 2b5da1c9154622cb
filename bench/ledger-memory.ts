// The sent-mail ledger's cost in Redis: the memory per recorded message
// (`INFO memory` used_memory before and after recording N messages through
// the ledger's key scheme: the keys, fields and expiries Ledger.record
// writes), and the time of records and checks through Ledger itself.
//
//   npm run bench:ledger [-- messages [days...]]   (default 1000000 over 1 and 30 days)
//
// Needs redis-server (Debian's redis-server package); starts a private one on
// a loopback port and stops it at the end.
import crypto from 'node:crypto'
import { performance } from 'node:perf_hooks'

import { createClient } from '@redis/client'

import {
  bucketKey,
  bucketTtlSeconds,
  DAY_MS,
  dayOf,
  ledgerEntry,
  SINCE_KEY,
  sinceMember,
} from '../lib/ledger/entry'
import { Ledger, RECORD_BATCH_MS } from '../lib/ledger/ledger'
import { findRedisServer, startRedis } from '../test/support/redis'
import { fmt, quantile, table } from './common'

const WINDOW_DAYS = 30
const BATCH = 2000
const ROUND_TRIPS = 2000
const key = crypto.createSecretKey(crypto.randomBytes(32))
const since = sinceMember(key)
const NOW = Date.parse('2026-12-06T12:00:00Z')

const newClient = (url: string) => createClient({ url })
type Client = ReturnType<typeof newClient>

async function usedMemory(client: Client): Promise<number> {
  const info = await client.info('memory')
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1])
}

/** Record `messages` spread evenly over `days` days, as Ledger.record does, pipelined in batches. */
async function recordMany(client: Client, messages: number, days: number): Promise<void> {
  const today = dayOf(NOW)
  const ttl = bucketTtlSeconds(WINDOW_DAYS)
  for (let start = 0; start < messages; start += BATCH) {
    const multi = client.multi()
    for (let i = start; i < Math.min(start + BATCH, messages); i++) {
      const day = today - (i % days)
      const entry = ledgerEntry(key, `<${i}.${crypto.randomUUID()}@mail.example.com>`)!
      const bucket = bucketKey(day, entry.bucket)
      multi
        .zAdd(SINCE_KEY, { score: day + 1, value: since }, { condition: 'NX' })
        .hSet(bucket, entry.field, '')
        .expire(bucket, ttl)
    }
    await multi.execAsPipeline()
  }
}

interface MemoryRow {
  messages: number
  days: number
  perDay: number
  bytes: number
  keys: number
  perBucket: number
  listpack: boolean
}

async function measureMemory(client: Client, messages: number, days: number): Promise<MemoryRow> {
  await client.flushAll()
  const before = await usedMemory(client)
  await recordMany(client, messages, days)
  const after = await usedMemory(client)
  const keys = (await client.dbSize()) - 1
  // Every bucket must stay a listpack: a bucket turned into a hash table costs several times more.
  let listpack = true
  for await (const batch of client.scanIterator({ MATCH: 'bs:l:*:*', COUNT: 1000 })) {
    for (const k of batch) if ((await client.objectEncoding(k)) !== 'listpack') listpack = false
    if (!listpack) break
  }
  return {
    messages,
    days,
    perDay: Math.round(messages / days),
    bytes: (after - before) / messages,
    keys,
    perBucket: messages / keys,
    listpack,
  }
}

/** Median and 99th percentile, in ms, of `n` calls one after another, `gapMs` apart (not timed). */
async function roundTrips(
  n: number,
  call: (i: number) => Promise<unknown>,
  gapMs = 0,
): Promise<[number, number]> {
  const ms: number[] = []
  for (let i = 0; i < n; i++) {
    if (gapMs) await new Promise((resolve) => setTimeout(resolve, gapMs))
    const start = performance.now()
    await call(i)
    ms.push(performance.now() - start)
  }
  return [quantile(ms, 0.5), quantile(ms, 0.99)]
}

async function main(): Promise<void> {
  const binary = findRedisServer()
  if (!binary) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)')
  const [messagesArg, ...daysArgs] = process.argv.slice(2)
  const messages = Number(messagesArg ?? 1_000_000)
  const spreads = daysArgs.length ? daysArgs.map(Number) : [1, WINDOW_DAYS]
  const redis = await startRedis(binary)
  const client = newClient(redis.url)
  client.on('error', () => undefined)
  try {
    await client.connect()
    const version = /^redis_version:(\S+)/m.exec(await client.info('server'))?.[1] ?? '?'
    const rows: MemoryRow[] = []
    for (const days of spreads) rows.push(await measureMemory(client, messages, days))
    console.log(`## Ledger memory (redis-server ${version}, ${fmt(messages)} messages)\n`)
    console.log(
      table(
        [
          'messages',
          'over days',
          'a day',
          'bytes a message',
          'bucket keys',
          'messages a bucket',
          'all listpack',
        ],
        rows.map((r) => [
          fmt(r.messages),
          String(r.days),
          fmt(r.perDay),
          fmt(r.bytes, 1),
          fmt(r.keys),
          fmt(r.perBucket, 1),
          r.listpack ? 'yes' : 'NO',
        ]),
      ),
    )

    await client.flushAll()
    const settings = {
      mode: 'check' as const,
      redisUrl: redis.url,
      windowDays: WINDOW_DAYS,
      timeoutMs: 1000,
      scores: { ours: -10, notOurs: 5 },
      key,
    }
    const ledger = new Ledger(settings, {
      log: { info: () => undefined, error: console.error },
      now: () => NOW,
    })
    ledger.start()
    while (ledger.status().state !== 'up') await new Promise((r) => setTimeout(r, 10))
    // A quiet relay: records further apart than RECORD_BATCH_MS each go at once.
    const gap = RECORD_BATCH_MS + 1
    const record = await roundTrips(ROUND_TRIPS / 4, (i) => ledger.record(`<rt${i}@mail.example.com>`), gap)
    const together = await roundTrips(
      ROUND_TRIPS / 4,
      (i) =>
        Promise.all(Array.from({ length: 30 }, (_, j) => ledger.record(`<rt${i}.${j}@mail.example.com>`))),
      gap,
    )
    const later = new Ledger(settings, {
      log: { info: () => undefined, error: console.error },
      now: () => NOW + DAY_MS * 31,
    })
    later.start()
    while (later.status().state !== 'up') await new Promise((r) => setTimeout(r, 10))
    const checkOne = await roundTrips(ROUND_TRIPS, (i) => later.check([`<rt${i}@mail.example.com>`]))
    const checkThree = await roundTrips(ROUND_TRIPS, (i) =>
      later.check([`<a${i}@x.example>`, `<b${i}@x.example>`, `<rt${i}@mail.example.com>`]),
    )
    await Promise.all([ledger.close(), later.close()])
    console.log(
      `\n## Calls through Ledger (${fmt(ROUND_TRIPS)} checks, ${fmt(ROUND_TRIPS / 4)} records or batches, one after another, loopback)\n`,
    )
    console.log(
      table(
        ['call', 'Redis commands', 'median ms', 'p99 ms'],
        [
          ['record, alone (goes at once)', '3', ...record.map((x) => fmt(x, 3))],
          [
            '30 records made at once (2 at once, 28 after 5 ms together)',
            '3, 3, ≤ 57',
            ...together.map((x) => fmt(x, 3)),
          ],
          [
            `check, 1 reference × ${WINDOW_DAYS + 1} days`,
            String(1 + WINDOW_DAYS + 1),
            ...checkOne.map((x) => fmt(x, 3)),
          ],
          [
            `check, 3 references × ${WINDOW_DAYS + 1} days`,
            String(1 + 3 * (WINDOW_DAYS + 1)),
            ...checkThree.map((x) => fmt(x, 3)),
          ],
        ],
      ),
    )
  } finally {
    client.destroy()
    await redis.close()
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
