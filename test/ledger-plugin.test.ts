// The sent-mail ledger in the plugin (haraka-test-fixtures) against a real
// redis-server on loopback and the scripted DNS server: what [ledger]
// mode = record counts as "would refuse", per recipient domain, while the
// ledger is younger than its window and once it holds it; and that mode =
// check still refuses nothing while the ledger is young.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, it } from 'node:test'

import { dayOf, SINCE_KEY } from '../lib/ledger/entry'
import type { BackscatterMetrics } from '../lib/metrics/metrics'
import { valueOf, type Sample } from './support/exposition'
import {
  dataPost,
  mail,
  makeConnection,
  rcpt,
  results,
  type HarakaConnection,
  type TestPlugin,
} from './support/harness'
import { inspector, SECRET, SINCE } from './support/ledger'
import { P, scrape } from './support/metrics'
import { until } from './support/mock-clock'
import { CLEAN, pluginTests } from './support/plugin-tests'
import { findRedisServer, startRedis, type RedisServer } from './support/redis'

const fx = pluginTests()
const redisBinary = findRedisServer()
const NEVER_SENT = '<never-sent-0001@example.net>'
const WOULD = `${P}ledger_would_refuse_total`

/** An RFC 3464 delivery report from mx.example.net of the message `id`. */
function bounceOf(id: string, to: string): string[] {
  return [
    'From: Mail Delivery System <MAILER-DAEMON@mx.example.net>',
    `To: ${to}`,
    'Subject: Undelivered Mail Returned to Sender',
    'Message-ID: <dsn-1@mx.example.net>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered.',
    '',
    '--b1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.net',
    '',
    'Final-Recipient: rfc822; nobody@example.net',
    'Action: failed',
    'Status: 5.1.1',
    '',
    '--b1',
    'Content-Type: text/rfc822-headers',
    '',
    `From: ${to}`,
    'To: nobody@example.net',
    'Subject: hello',
    `Message-ID: ${id}`,
    '',
    '--b1--',
    '',
  ]
}

describe(
  'the ledger in the plugin: what record mode counts',
  { skip: !redisBinary && 'redis-server is not installed' },
  () => {
    let redis: RedisServer
    let look: Awaited<ReturnType<typeof inspector>>

    before(async () => {
      redis = await startRedis(redisBinary as string)
      look = await inspector(redis.url)
    })
    after(async () => {
      look?.destroy()
      await redis?.close()
    })
    beforeEach(async () => {
      await look.flushAll()
    })

    /** The plugin with the ledger in `mode`, connected to Redis. */
    async function start(mode: 'record' | 'check'): Promise<TestPlugin> {
      const tp = fx.start(
        `[dns]\nservers = ${fx.dns.server}\ntimeout_ms = 2000\n\n` +
          `[ledger]\nmode = ${mode}\nredis_url = ${redis.url}\ntimeout_ms = 2000\n`,
        { 'backscatter.keys': `ledger = ${SECRET}\n` },
      )
      tp.plugin.backscatter.ledger.start()
      await until(() => tp.plugin.backscatter.ledger.status().state === 'up', 'the ledger is up')
      return tp
    }

    /** The ledger has held every message since `daysAgo` whole days (as a record that long ago leaves it). */
    async function ledgerSince(daysAgo: number): Promise<void> {
      await look.zAdd(SINCE_KEY, { score: dayOf(Date.now()) - daysAgo, value: SINCE })
    }

    /** A bounce of the message `id` from a host no zone lists, to `to`, through the end of DATA. */
    async function bounce(tp: TestPlugin, id: string, to: string): Promise<HarakaConnection> {
      const conn = makeConnection(CLEAN)
      await mail(tp.plugin, conn, '<>')
      assert.equal((await rcpt(tp.plugin, conn, to)).rc, undefined, 'accepted at RCPT')
      for (const line of bounceOf(id, to)) conn.transaction.add_data(Buffer.from(`${line}\r\n`))
      await new Promise<void>((resolve) => conn.transaction.end_data(resolve))
      const r = await dataPost(tp.plugin, conn)
      assert.equal(r.rc, undefined, `accepted at the end of DATA: ${r.text}`)
      return conn
    }

    const samplesOf = async (tp: TestPlugin): Promise<Sample[]> =>
      (await scrape(tp.plugin.backscatter.metrics as BackscatterMetrics)).samples
    const wouldRefuse = (samples: Sample[]): string[] =>
      samples
        .filter((s) => s.name === WOULD)
        .map((s) => `${s.labels.domain} young=${s.labels.young} ${s.value}`)
        .sort()
    const infos = (conn: HarakaConnection): string[] =>
      (conn.logs as { level: string; text: string }[])
        .filter((l) => l.level === 'loginfo')
        .map((l) => l.text.trim())

    it('record, young ledger: a bounce of mail never recorded is counted per domain, young="true", and logged', async () => {
      await ledgerSince(3)
      const tp = await start('record')
      const conn = await bounce(tp, NEVER_SENT, 'alice@example.com')
      await bounce(tp, '<never-sent-0002@example.net>', 'bob@example.com')
      await bounce(tp, '<never-sent-0003@example.net>', 'carol@example.org')
      assert.equal(results(conn).ledger, 'unknown', 'a young ledger says unknown')
      assert.equal(results(conn).ledger_reason, 'young')
      assert.deepEqual(wouldRefuse(await samplesOf(tp)), [
        'example.com young=true 2',
        'example.org young=true 1',
      ])
      assert.ok(
        infos(conn).includes(
          'would reject at the end of DATA in [ledger] mode = check once the ledger holds its window of 30 days ' +
            '(3 days old): dsn for example.com is about mail not recorded here',
        ),
        infos(conn).join('\n'),
      )
    })

    it('record, nothing recorded yet: counted young, the log says so', async () => {
      const tp = await start('record')
      const conn = await bounce(tp, NEVER_SENT, 'alice@example.com')
      assert.deepEqual(wouldRefuse(await samplesOf(tp)), ['example.com young=true 1'])
      assert.ok(
        infos(conn).some((l) =>
          l.includes('once the ledger holds its window of 30 days (nothing recorded yet)'),
        ),
        infos(conn).join('\n'),
      )
    })

    it('record, a ledger that holds its window: counted young="false", as check mode would refuse it today', async () => {
      await ledgerSince(40)
      const tp = await start('record')
      const conn = await bounce(tp, NEVER_SENT, 'alice@example.com')
      assert.equal(results(conn).ledger, 'not-ours')
      assert.deepEqual(wouldRefuse(await samplesOf(tp)), ['example.com young=false 1'])
      assert.ok(
        infos(conn).includes(
          'would reject at the end of DATA in [ledger] mode = check: dsn for example.com is about mail not sent from here',
        ),
        infos(conn).join('\n'),
      )
    })

    it('record, young ledger: a bounce of mail it recorded is ours, and not counted', async () => {
      await ledgerSince(3)
      const tp = await start('record')
      assert.equal(await tp.plugin.backscatter.ledger.record('<sent-1@example.com>'), 'recorded')
      const conn = await bounce(tp, '<sent-1@example.com>', 'alice@example.com')
      assert.equal(results(conn).ledger, 'ours')
      assert.deepEqual(wouldRefuse(await samplesOf(tp)), [])
    })

    it('check, young ledger: nothing refused or scored not-ours, nothing counted as "would refuse"', async () => {
      await ledgerSince(3)
      const tp = await start('check')
      const conn = await bounce(tp, NEVER_SENT, 'alice@example.com')
      assert.equal(results(conn).ledger, 'unknown')
      assert.match(conn.transaction.header.get('X-Haraka-Backscatter'), /ledger=unknown/)
      const samples = await samplesOf(tp)
      assert.deepEqual(wouldRefuse(samples), [])
      assert.equal(valueOf(samples, `${P}data_refusals_total`, { action: 'reject', cause: 'ledger' }), 0)
      assert.ok(!infos(conn).some((l) => l.startsWith('would ')), infos(conn).join('\n'))
    })
  },
)
