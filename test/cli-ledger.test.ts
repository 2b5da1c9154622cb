// The sent-mail ledger in the command, against a real redis-server: `message
// --config` gives each reference the ledger's answer, `health` a ledger row;
// Redis stopped or frozen is one line, WARNING, and the command still ends.
// The examples of docs/command.md "The ledger" are run as printed.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, before, beforeEach, describe, it, mock } from 'node:test'

import { bucketKey, dayOf, SINCE_KEY } from '../lib/ledger/entry'
import { configDir, dnsIni, lineWith, run, scriptedDns, tmpDir, type Run } from './cli/harness'
import { freeTcpPort } from './support/haraka'
import { DAY_MS, inspector, ledgerSettings, NOON, SECRET, testLedger, TODAY, SINCE } from './support/ledger'
import { assertPrinted, consoleSteps, runShell, sectionBlocks } from './support/readme'
import { findRedisServer, startRedis, type RedisServer } from './support/redis'
import { REPO } from './support/repo'

const redisBinary = findRedisServer()
const FIXTURES = path.join(__dirname, 'fixtures', 'replies')
const BOUNCE = path.join(FIXTURES, 'sisimai/bsd/rfc3464-01.eml')
const AUTO_REPLY = path.join(FIXTURES, 'sisimai/bsd/rfc3834-03.eml')
const RECEIPT = path.join(FIXTURES, 'mimekit/disposition-notification.txt')
const NOT_A_REPLY = path.join(FIXTURES, 'sisimai/not/is-not-bounce-01.eml')
const BOUNCE_ID = '<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>'
const AUTO_REPLY_ID = '<25203A4E-F90F-4A14-BF51-3E7B9D39BE8E@libsisimai.org>'
const RECEIPT_ID = '<199509192301.23456@example.org>'
const TIMEOUT_MS = 300

const dns = scriptedDns()

/** A config folder whose [ledger] is on, at `url`, with the tests' ledger key. */
function ledgerConfig(url: string, extra = ''): string {
  const ini = dnsIni(
    dns.current,
    `[ledger]\nmode = check\nredis_url = ${url}\ntimeout_ms = ${TIMEOUT_MS}\n${extra}`,
  )
  return configDir(ini, { 'backscatter.keys': `ledger = ${SECRET}\n` })
}

const linesOf = (r: Run): string[] => r.stdout.trimEnd().split('\n')

describe('the ledger in the command', { skip: !redisBinary && 'redis-server is not installed' }, () => {
  let redis: RedisServer
  let look: Awaited<ReturnType<typeof inspector>>
  let dir: string
  /** A port nothing listens on. */
  let deadUrl: string

  /** Record `ids` as sent on the day of `ms`, as the plugin does. */
  async function record(ms: number, ...ids: string[]): Promise<void> {
    const t = testLedger(ledgerSettings(redis.url), {}, { ms })
    t.ledger.start()
    await t.reach('up')
    for (const id of ids) assert.equal(await t.ledger.record(id), 'recorded')
    await t.ledger.close()
  }

  /** The ledger holds every message from `day` on. */
  const holdsSince = (day: number) => look.zAdd(SINCE_KEY, { score: day, value: SINCE })

  before(async () => {
    redis = await startRedis(redisBinary as string)
    look = await inspector(redis.url)
    deadUrl = `redis://127.0.0.1:${await freeTcpPort()}`
  })
  after(async () => {
    look.destroy()
    await redis.close()
  })
  beforeEach(async () => {
    await look.flushAll()
    dir = ledgerConfig(redis.url)
  })
  afterEach(() => mock.timers.reset())

  describe('message --config', () => {
    it('a recorded Message-ID is ours; one never recorded, in a ledger older than its window, not-ours', async () => {
      const today = dayOf(Date.now())
      await record(Date.now(), BOUNCE_ID)
      await holdsSince(today - 40)
      const r = await run(['message', '--config', dir, BOUNCE, AUTO_REPLY, NOT_A_REPLY])
      assert.equal(r.stderr, '')
      assert.equal(r.code, 0)
      assert.deepEqual(linesOf(r), [
        `${BOUNCE}: dsn ${BOUNCE_ID} ours`,
        `${AUTO_REPLY}: auto-reply ${AUTO_REPLY_ID} not-ours`,
        `${NOT_A_REPLY}: none`,
      ])
      const json = await run(['message', '--json', '--config', dir, BOUNCE, RECEIPT])
      assert.equal(json.code, 0, json.stderr)
      assert.deepEqual(
        linesOf(json).map((l) => JSON.parse(l) as unknown),
        [
          { file: BOUNCE, kind: 'dsn', references: [BOUNCE_ID], ledger: { [BOUNCE_ID]: 'ours' } },
          { file: RECEIPT, kind: 'mdn', references: [RECEIPT_ID], ledger: { [RECEIPT_ID]: 'not-ours' } },
        ],
      )
    })

    it('a ledger younger than its window never says not-ours: unknown, with one note', async () => {
      await record(Date.now(), BOUNCE_ID)
      await holdsSince(dayOf(Date.now()) - 29)
      const r = await run(['message', '--config', dir, BOUNCE, AUTO_REPLY, RECEIPT])
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(linesOf(r), [
        `${BOUNCE}: dsn ${BOUNCE_ID} ours`,
        `${AUTO_REPLY}: auto-reply ${AUTO_REPLY_ID} unknown`,
        `${RECEIPT}: mdn ${RECEIPT_ID} unknown`,
      ])
      assert.equal(
        r.stderr,
        'haraka-backscatter message: note: the ledger is 29 days old: until it has held every message sent ' +
          'for 30 days ([ledger] window_days), a reference it does not hold is unknown, never not-ours\n',
      )
      // Nothing recorded at all: young too.
      await look.flushAll()
      const empty = await run(['message', '--config', dir, RECEIPT])
      assert.equal(empty.stdout, `${RECEIPT}: mdn ${RECEIPT_ID} unknown\n`)
      assert.match(empty.stderr, /note: the ledger has recorded nothing yet: /)
    })

    it('[ledger] off: a note, and no answers', async () => {
      const off = configDir(dnsIni(dns.current))
      const r = await run(['message', '--config', off, BOUNCE])
      assert.equal(r.code, 0)
      assert.equal(r.stdout, `${BOUNCE}: dsn ${BOUNCE_ID}\n`)
      assert.equal(
        r.stderr,
        'haraka-backscatter message: note: [ledger] mode is off: references are not looked up\n',
      )
    })

    it('Redis stopped: one line on stderr, kinds and references printed, WARNING, and the command ends', () => {
      const down = ledgerConfig(deadUrl)
      // The real command, as a child process: it ends only once its connection is closed.
      const r = runShell(
        `npx haraka-backscatter message --config ${down} ${BOUNCE} ${RECEIPT} ${NOT_A_REPLY}`,
        REPO,
      )
      assert.equal(r.status, 1, r.stderr)
      assert.equal(
        r.stderr,
        `haraka-backscatter message: ledger: Redis ${deadUrl} unreachable (connection refused (ECONNREFUSED)); ` +
          'kinds and references printed without its answers\n',
      )
      assert.equal(
        r.stdout,
        `${BOUNCE}: dsn ${BOUNCE_ID}\n${RECEIPT}: mdn ${RECEIPT_ID}\n${NOT_A_REPLY}: none\n`,
      )
    })

    it('Redis frozen: no answer within timeout_ms is one line, WARNING, and the command ends', () => {
      redis.pause()
      try {
        const r = runShell(`npx haraka-backscatter message --json --config ${dir} ${BOUNCE} ${RECEIPT}`, REPO)
        assert.equal(r.status, 1, r.stderr)
        assert.equal(
          r.stderr,
          `haraka-backscatter message: ledger: Redis ${redis.url} did not answer within ${TIMEOUT_MS} ms; ` +
            'kinds and references printed without its answers\n',
        )
        assert.deepEqual(
          r.stdout
            .trimEnd()
            .split('\n')
            .map((l) => JSON.parse(l) as unknown),
          [
            { file: BOUNCE, kind: 'dsn', references: [BOUNCE_ID] },
            { file: RECEIPT, kind: 'mdn', references: [RECEIPT_ID] },
          ],
        )
      } finally {
        redis.resume()
      }
    })
  })

  describe('health --config', () => {
    it('OK: mode, Redis without its password, entries, days, since when; JSON too', async () => {
      mock.timers.enable({ apis: ['Date'], now: NOON })
      await record(NOON, '<a@example.com>', '<b@example.com>')
      await record(NOON - DAY_MS, '<c@example.com>')
      await holdsSince(TODAY - 40)
      const r = await run(['health', '--config', dir])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.split('\n')[0], 'BACKSCATTER OK: ips.backscatterer.org usable')
      assert.equal(
        lineWith(r.stdout, 'ledger:'),
        `ledger:    check mode, Redis ${redis.url}: 3 entries over 2 days, every message since 2026-10-27 (40 days)`,
      )
      assert.doesNotMatch(r.stdout, /younger/)
      const json = await run(['health', '--json', '--config', dir])
      assert.equal(json.code, 0, json.stderr)
      assert.deepEqual(JSON.parse(linesOf(json).at(-1) ?? ''), {
        ledger: 'check',
        status: 'ok',
        redis: redis.url,
        reason: '',
        entries: 3,
        days: 2,
        since: '2026-10-27',
        age_days: 40,
        window_days: 30,
        young: false,
      })
    })

    it('WARNING when Redis may evict the ledger’s entries (a maxmemory and a policy other than noeviction)', async () => {
      mock.timers.enable({ apis: ['Date'], now: NOON })
      await record(NOON, '<a@example.com>')
      await holdsSince(TODAY - 40)
      await look.configSet({ maxmemory: '100mb', 'maxmemory-policy': 'volatile-lru' })
      try {
        const r = await run(['health', '--config', dir])
        assert.equal(r.code, 1, r.stdout + r.stderr)
        const warning =
          'Redis may evict its entries (maxmemory-policy volatile-lru), and a bounce of mail whose entry is gone ' +
          'would be called not ours: set maxmemory-policy noeviction, or give the ledger a Redis of its own'
        assert.equal(r.stdout.split('\n')[0], `BACKSCATTER WARNING: ledger: ${warning}`)
        assert.match(r.stdout, /ledger: {4}check mode, Redis .*: 1 entries over 1 days/)
        assert.ok(r.stdout.includes(`\n           ${warning}\n`), r.stdout)
        await look.configSet({ 'maxmemory-policy': 'noeviction' })
        assert.equal((await run(['health', '--config', dir])).code, 0, 'noeviction: nothing is lost')
      } finally {
        await look.configSet({ maxmemory: '0', 'maxmemory-policy': 'noeviction' })
      }
    })

    it('counts a ledger of many buckets, page by page', async () => {
      mock.timers.enable({ apis: ['Date'], now: NOON })
      const multi = look.multi()
      for (let i = 0; i < 2500; i++) multi.hSet(bucketKey(TODAY - (i % 3), i % 4096), `f${i}`, '')
      multi.hSet(bucketKey(TODAY, 7), 'another', '')
      await multi.exec()
      await holdsSince(TODAY - 31)
      const r = await run(['health', '--json', '--config', dir])
      assert.equal(r.code, 0, r.stderr)
      const row = JSON.parse(linesOf(r).at(-1) ?? '') as Record<string, unknown>
      assert.deepEqual([row.entries, row.days, row.young], [2501, 3, false])
    })

    it('a password in redis_url is never shown', async () => {
      const secretDir = ledgerConfig(`redis://user:hunter2@127.0.0.1:${redis.port}`)
      const r = await run(['health', '--config', secretDir])
      assert.doesNotMatch(r.stdout + r.stderr, /hunter2/)
      assert.match(lineWith(r.stdout, 'ledger:'), /Redis redis:\/\/user:\*\*\*@127\.0\.0\.1:\d+/)
    })

    it('young: a note of the day it starts calling bounces not ours; still OK', async () => {
      mock.timers.enable({ apis: ['Date'], now: NOON })
      await record(NOON, '<a@example.com>')
      await holdsSince(TODAY - 3)
      const r = await run(['health', '--config', dir])
      assert.equal(r.code, 0, r.stderr)
      const lines = r.stdout.split('\n')
      const at = lines.findIndex((l) => l.startsWith('ledger:'))
      assert.deepEqual(lines.slice(at, at + 2), [
        `ledger:    check mode, Redis ${redis.url}: 1 entries over 1 days, every message since 2026-12-03 (3 days)`,
        '           younger than its window of 30 days: no bounce is called not ours before 2027-01-02',
      ])
      await look.flushAll()
      const empty = await run(['health', '--json', '--config', dir])
      assert.equal(empty.code, 0, empty.stderr)
      const row = JSON.parse(linesOf(empty).at(-1) ?? '') as Record<string, unknown>
      assert.deepEqual([row.entries, row.since, row.young], [0, null, true])
    })

    it('Redis unreachable or frozen: WARNING, named in the first line, and the command ends', async () => {
      const down = await run(['health', '--config', ledgerConfig(deadUrl)])
      assert.equal(down.code, 1)
      assert.equal(
        down.stdout.split('\n')[0],
        `BACKSCATTER WARNING: ledger: Redis ${deadUrl} unreachable (connection refused (ECONNREFUSED))`,
      )
      redis.pause()
      try {
        const frozen = await run(['health', '--json', '--config', dir])
        assert.equal(frozen.code, 1)
        const row = JSON.parse(linesOf(frozen).at(-1) ?? '') as Record<string, unknown>
        assert.deepEqual(
          [row.status, row.reason, row.entries],
          ['warning', `Redis ${redis.url} did not answer within ${TIMEOUT_MS} ms`, null],
        )
      } finally {
        redis.resume()
      }
    })
  })

  describe('docs/command.md: The ledger', () => {
    const blocks = sectionBlocks('### The ledger', 'docs/command.md').filter((b) => b.lang === 'console')
    const SHOWN_DIR = '/etc/haraka/config'
    const SHOWN_URL = 'redis://127.0.0.1:6379'

    it('shows message with answers, message with Redis stopped, and three health rows', () => {
      assert.deepEqual(
        blocks.map((b) => consoleSteps(b).length),
        [2, 2, 3],
      )
    })

    it('message prints what the page shows', async () => {
      const [answered, stopped] = blocks
      assert.ok(answered && stopped)
      const cwd = tmpDir()
      for (const [name, file] of [
        ['bounce.eml', BOUNCE],
        ['vacation.eml', AUTO_REPLY],
        ['receipt.eml', RECEIPT],
      ] as const)
        fs.copyFileSync(file, path.join(cwd, name))
      await record(Date.now(), BOUNCE_ID)
      await holdsSince(dayOf(Date.now()) - 40)
      for (const step of consoleSteps(answered)) {
        const r = runShell(`npx ${step.command.replace(SHOWN_DIR, dir)}`, cwd)
        assert.equal(r.status, 0, r.stderr)
        assertPrinted(r.stdout, step.output, step.command)
      }
      const down = ledgerConfig(deadUrl)
      const [command, status] = consoleSteps(stopped)
      assert.ok(command && status?.command === 'echo $?')
      const r = runShell(`npx ${command.command.replace(SHOWN_DIR, down)}`, cwd)
      assertPrinted(
        r.stderr + r.stdout,
        command.output.map((l) => l.replace(SHOWN_URL, deadUrl)),
        command.command,
      )
      assert.deepEqual([String(r.status)], status.output)
    })

    it('health prints the ledger rows the page shows, on 2026-12-06', async () => {
      const [, , rows] = blocks
      assert.ok(rows)
      const [old, young, stopped] = consoleSteps(rows)
      assert.ok(old && young && stopped)
      mock.timers.enable({ apis: ['Date'], now: NOON })
      await record(NOON, '<a@example.com>')
      await record(NOON - DAY_MS, '<b@example.com>')
      const shown = (lines: readonly string[], url: string): string[] =>
        lines.map((l) => l.replace(SHOWN_URL, url))
      const args = (command: string, folder: string): string[] =>
        command
          .replace(/^haraka-backscatter /, '')
          .replace(SHOWN_DIR, folder)
          .split(' ')
      await holdsSince(TODAY - 40)
      const r1 = await run(args(old.command, dir))
      assertPrinted(r1.stdout, shown(old.output, redis.url), old.command)
      await holdsSince(TODAY - 3)
      const r2 = await run(args(young.command, dir))
      assertPrinted(r2.stdout, shown(young.output, redis.url), young.command)
      const r3 = await run(args(stopped.command, ledgerConfig(deadUrl)))
      assert.equal(r3.code, 1)
      assertPrinted(r3.stdout, shown(stopped.output, deadUrl), stopped.command)
    })
  })
})
