// The sent-mail ledger in the plugin as Haraka loads it (haraka-test-fixtures),
// against a private redis-server and the scripted DNS server: whose mail is
// recorded as ours at the end of DATA, whose replies are judged, and what
// [ledger] mode = record counts as "would refuse" while the ledger is younger
// than its window and once it holds it.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'

import fixtures from 'haraka-test-fixtures'

import { dayOf, KEY_PREFIX, SINCE_KEY } from '../lib/ledger/entry'
import type { BackscatterMetrics } from '../lib/metrics/metrics'
import { valueOf, type Sample } from './support/exposition'
import { inspector, SECRET, SINCE } from './support/ledger'
import { P, scrape } from './support/metrics'
import { until } from './support/mock-clock'
import { findRedisServer, startRedis, type RedisServer } from './support/redis'
import {
  constants,
  dataPost,
  mail,
  makeConnection,
  rcpt,
  REPO,
  results,
  type HarakaConnection,
  type HarakaTestPlugin,
} from './support/harness'
import { CLEAN, LISTED, pluginTests } from './support/plugin-tests'

const redisBinary = findRedisServer()
const fx = pluginTests()
const WOULD = `${P}ledger_would_refuse_total`

const PRIVATE = '10.1.2.3'
const NEVER_SENT = '<never-sent-0001@example.net>'
const HEADER = 'X-Haraka-Backscatter'

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'replies', 'sisimai', 'bsd')

/** A real Postfix bounce (sisimai set-of-emails lhost-postfix-04) of the message `id`. */
function bounceOf(id: string): string {
  return fs
    .readFileSync(path.join(FIXTURES, 'lhost-postfix-04.eml'), 'utf8')
    .replace('<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>', id)
}

/** A real vacation auto-reply (sisimai rfc3834-03) to the message `id`. */
function autoReplyTo(id: string): string {
  return fs
    .readFileSync(path.join(FIXTURES, 'rfc3834-03.eml'), 'utf8')
    .replaceAll('<25203A4E-F90F-4A14-BF51-3E7B9D39BE8E@libsisimai.org>', id)
}

/** A message our user writes, with `messageId` or none. */
function letter(messageId?: string): string {
  return [
    'From: Alice <alice@example.com>',
    'To: Carol <carol@example.net>',
    'Subject: Lunch',
    ...(messageId ? [`Message-ID: ${messageId}`] : []),
    '',
    'Tomorrow at noon?',
    '',
  ].join('\r\n')
}

/** DATA as Haraka receives it: every line into the transaction, then the end. */
async function data(conn: HarakaConnection, text: string): Promise<void> {
  const txn = conn.transaction
  // Haraka's default; the fixtures' transaction has none, and would then parse no header at all.
  txn.cfg.headers.max_lines ??= 1000
  for (const line of text.replace(/\r?\n$/, '').split(/\r?\n/)) txn.add_data(Buffer.from(`${line}\r\n`))
  await new Promise<void>((resolve) => txn.end_data(() => resolve()))
}

async function queueOk(plugin: HarakaTestPlugin, conn: HarakaConnection): Promise<void> {
  await fixtures.callHook(plugin, 'hook_queue_ok', conn)
}

/** An RFC 3464 delivery report from mx.example.net of the message `id`. */
function reportOf(id: string, to: string): string[] {
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

describe('the ledger in the plugin', { skip: !redisBinary && 'redis-server is not installed' }, () => {
  let redis: RedisServer
  let look: Awaited<ReturnType<typeof inspector>>

  before(async () => {
    redis = await startRedis(redisBinary as string)
    look = await inspector(redis.url)
  })
  after(async () => {
    await look?.quit()
    await redis?.close()
  })
  beforeEach(async () => {
    await look.flushAll()
    // A ledger that has recorded for longer than its window: it may say "not ours".
    await look.zAdd(SINCE_KEY, { score: dayOf(Date.now()) - 40, value: SINCE })
  })

  /** The plugin with the ledger in `mode`, connected to Redis. */
  async function setup(extra = '', mode = 'check'): Promise<HarakaTestPlugin> {
    const { plugin } = fx.start(
      `[dns]\nservers = ${fx.dns.server}\ntimeout_ms = 2000\n\n[ledger]\nmode = ${mode}\nredis_url = ${redis.url}\ntimeout_ms = 2000\n\n${extra}\n`,
      { 'backscatter.keys': `ledger = ${SECRET}\n` },
    )
    const { ledger } = plugin.backscatter
    assert.ok(ledger, 'the ledger is on')
    ledger.start()
    await until(() => ledger.status().state === 'up', 'the ledger connects')
    return plugin
  }

  /** The buckets of recorded messages in Redis. */
  const buckets = async (): Promise<string[]> =>
    (await look.keys(`${KEY_PREFIX}*`)).filter((k) => k !== SINCE_KEY)

  /** A message sent by `conn`'s client, through data_post and queue_ok. */
  async function send(plugin: HarakaTestPlugin, conn: HarakaConnection, text: string) {
    await mail(plugin, conn, 'alice@example.com')
    await rcpt(plugin, conn, 'carol@example.net')
    await data(conn, text)
    const r = await dataPost(plugin, conn)
    await queueOk(plugin, conn)
    return r
  }

  /** A reply `text` from `conn`'s client, sent by `from` to alice@example.com, through data_post. */
  async function reply(plugin: HarakaTestPlugin, conn: HarakaConnection, text: string, from = '<>') {
    await mail(plugin, conn, from)
    await rcpt(plugin, conn, 'alice@example.com')
    await data(conn, text)
    return dataPost(plugin, conn)
  }

  describe('whose mail is ours: a client that authenticated or may relay, never relaying for the recipient only', () => {
    it('relaying set in the transaction only (the relay plugin’s dest_domains): no Message-ID added, nothing recorded', async () => {
      const plugin = await setup()
      const conn = makeConnection(CLEAN)
      // dest_domains runs at RCPT: `connection.relaying = true` lands on the transaction.
      conn.relaying = true
      assert.equal(conn._relaying, false)
      await send(plugin, conn, letter())
      assert.equal(conn.transaction.header.get('Message-ID'), '', 'no Message-ID added to inbound mail')
      const planted = makeConnection(CLEAN)
      planted.relaying = true
      await send(plugin, planted, letter('<planted-0001@attacker.example>'))
      assert.deepEqual(await buckets(), [], 'nothing recorded')
      const answer = await plugin.backscatter.ledger.check(['<planted-0001@attacker.example>'])
      assert.equal(answer.result, 'not-ours', 'an ID planted by inbound mail never counts as ours')
    })

    it('a bounce from such a client is checked against the ledger, and refused in check mode', async () => {
      const plugin = await setup()
      const conn = makeConnection(CLEAN)
      await mail(plugin, conn, '<>')
      await rcpt(plugin, conn, 'alice@example.com')
      conn.relaying = true
      await data(conn, bounceOf(NEVER_SENT))
      const r = await dataPost(plugin, conn)
      assert.equal(results(conn).ledger, 'not-ours')
      assert.equal(r.rc, constants.DENY)
      assert.match(r.text, /^550 5\.7\.1 .*not sent from here/)
    })

    it('relaying of the connection (relay ACL), even from a private address: Message-ID added, recorded, its bounce ours', async () => {
      const plugin = await setup()
      const conn = makeConnection(PRIVATE, { relaying: true })
      await send(plugin, conn, letter())
      const id = conn.transaction.header.get('Message-ID').trim()
      assert.match(id, /^<[^@<>]+@[^<>]+>$/, 'a Message-ID is added')
      assert.equal((await buckets()).length, 1, 'recorded')
      const bounce = makeConnection(CLEAN)
      const r = await reply(plugin, bounce, bounceOf(id))
      assert.equal(results(bounce).ledger, 'ours')
      assert.equal(r.rc, undefined)
    })

    it('a Message-ID without brackets is kept and recorded as a bounce quotes it; one that is no ID is replaced', async () => {
      const plugin = await setup()
      const bare = makeConnection(PRIVATE, { relaying: true })
      await send(plugin, bare, letter('bare.1@Mail.Example.com'))
      assert.equal(
        bare.transaction.header.get('Message-ID').trim(),
        'bare.1@Mail.Example.com',
        'kept as written',
      )
      const bounce = makeConnection(CLEAN)
      await reply(plugin, bounce, bounceOf('<bare.1@mail.example.com>'))
      assert.equal(results(bounce).ledger, 'ours')

      const broken = makeConnection(PRIVATE, { relaying: true })
      await send(plugin, broken, letter('<no-at-sign>'))
      const id = broken.transaction.header.get('Message-ID').trim()
      assert.match(id, /^<[^@<>]+@[^<>]+>$/, 'replaced by one of ours')
      const its = makeConnection(CLEAN)
      await reply(plugin, its, bounceOf(id))
      assert.equal(results(its).ledger, 'ours')
    })

    it('a bounce from a listed host: held at RCPT while Redis answers, refused there while it does not', async () => {
      const plugin = await setup('[main]\naction = reject\n')
      const held = makeConnection(LISTED)
      await mail(plugin, held, '<>')
      assert.equal((await rcpt(plugin, held, 'alice@example.com')).rc, undefined, 'held for the end of DATA')
      await redis.stop()
      try {
        const ledger = plugin.backscatter.ledger!
        await until(() => ledger.status().state === 'down', 'the ledger sees Redis gone')
        const refused = makeConnection(LISTED)
        await mail(plugin, refused, '<>')
        assert.equal((await rcpt(plugin, refused, 'alice@example.com')).rc, constants.DENY)
      } finally {
        await redis.restart()
      }
    })

    it('a Message-ID that is no ID under the client’s own DKIM signature: left as written, not recorded', async () => {
      const plugin = await setup()
      const conn = makeConnection(PRIVATE, { relaying: true })
      const signed = letter('<no-at-sign>').replace(
        'From: ',
        'DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; h=from:to:subject:message-id; bh=x; b=y\r\nFrom: ',
      )
      await send(plugin, conn, signed)
      assert.equal(conn.transaction.header.get('Message-ID').trim(), '<no-at-sign>')
      assert.deepEqual(await buckets(), [])
    })

    it('the 250 comes once the message is recorded', async () => {
      const plugin = await setup()
      const conn = makeConnection(PRIVATE, { relaying: true })
      await send(plugin, conn, letter())
      assert.equal(plugin.backscatter.ledger?.counts().recorded, 1)
      assert.equal((await buckets()).length, 1)
    })

    it('an authenticated client: its Message-ID recorded, its own auto-reply never judged', async () => {
      const plugin = await setup()
      const conn = makeConnection(CLEAN)
      conn.notes.auth_user = 'alice'
      await send(plugin, conn, letter('<sent-0001@example.com>'))
      assert.equal((await plugin.backscatter.ledger.check(['<sent-0001@example.com>'])).result, 'ours')

      const vacation = makeConnection(CLEAN)
      vacation.notes.auth_user = 'alice'
      const r = await reply(plugin, vacation, autoReplyTo(NEVER_SENT), 'alice@example.com')
      assert.equal(r.rc, undefined)
      assert.equal(results(vacation).ledger, undefined, 'not checked')
    })
  })

  describe('[skip]: a client left alone is never refused or scored by the ledger', () => {
    it('a bounce of mail never sent, from a public client: refused (check mode)', async () => {
      const plugin = await setup()
      const conn = makeConnection(CLEAN)
      const r = await reply(plugin, conn, bounceOf(NEVER_SENT))
      assert.equal(r.rc, constants.DENY)
      assert.equal(results(conn).ledger, 'not-ours')
    })

    it('the same from a private client ([skip] private): accepted, not read, no score, no header', async () => {
      const plugin = await setup()
      const conn = makeConnection(PRIVATE)
      const r = await reply(plugin, conn, bounceOf(NEVER_SENT))
      assert.equal(r.rc, undefined)
      assert.equal(results(conn).ledger, undefined, 'not checked')
      assert.deepEqual(results(conn).skip, [`private address ${PRIVATE} ([skip] private)`])
      assert.equal(conn.transaction.header.get(HEADER), '', 'no header, no score')
      assert.equal(plugin.backscatter.ledger.counts().checks['not-ours'], 0)
    })

    it('an auto-reply naming more references than are looked up, none ours: unknown, accepted', async () => {
      const plugin = await setup()
      const conn = makeConnection(CLEAN)
      const many = Array.from({ length: 12 }, (_, i) => `<never-${i}@example.org>`).join(' ')
      const r = await reply(plugin, conn, autoReplyTo(many), 'kijitora@example.org')
      assert.equal(r.rc, undefined)
      assert.equal(results(conn).ledger, 'unknown')
      assert.equal(results(conn).ledger_reason, 'too many references')
    })

    it('an auto-reply to mail never sent, from a private client: accepted, not checked', async () => {
      const plugin = await setup()
      const conn = makeConnection(PRIVATE)
      const r = await reply(plugin, conn, autoReplyTo(NEVER_SENT), 'kijitora@example.org')
      assert.equal(r.rc, undefined)
      assert.equal(results(conn).ledger, undefined)
    })

    it('a client in [skip] ips: accepted, not checked', async () => {
      const plugin = await setup(`[skip]\nips = ${CLEAN}`)
      const conn = makeConnection(CLEAN)
      const r = await reply(plugin, conn, bounceOf(NEVER_SENT))
      assert.equal(r.rc, undefined)
      assert.equal(results(conn).ledger, undefined)
    })

    it('[skip] private = false: the private client is judged, and refused', async () => {
      const plugin = await setup('[skip]\nprivate = false')
      const conn = makeConnection(PRIVATE)
      const r = await reply(plugin, conn, bounceOf(NEVER_SENT))
      assert.equal(r.rc, constants.DENY)
      assert.equal(results(conn).ledger, 'not-ours')
    })

    it('record mode: a skipped client’s reply is not counted as one check mode would refuse', async () => {
      const plugin = await setup('', 'record')
      const skipped = makeConnection(PRIVATE)
      assert.equal((await reply(plugin, skipped, bounceOf(NEVER_SENT))).rc, undefined)
      assert.ok(!skipped.logs.some((l: { text: string }) => /would reject/.test(l.text)))
      const outside = makeConnection(CLEAN)
      assert.equal((await reply(plugin, outside, bounceOf(NEVER_SENT))).rc, undefined)
      assert.ok(outside.logs.some((l: { text: string }) => /would reject/.test(l.text)))
    })
  })

  describe('what record mode counts as "would refuse", per recipient domain, young or not', () => {
    // Each test says how old the ledger is: nothing of the outer ledger's start is kept.
    beforeEach(async () => {
      await look.flushAll()
    })

    /** The ledger has held every message since `daysAgo` whole days (as a record that long ago leaves it). */
    async function ledgerSince(daysAgo: number): Promise<void> {
      await look.zAdd(SINCE_KEY, { score: dayOf(Date.now()) - daysAgo, value: SINCE })
    }

    /** A bounce of the message `id` from a host no zone lists, to `to`, through the end of DATA. */
    async function bounce(plugin: HarakaTestPlugin, id: string, to: string): Promise<HarakaConnection> {
      const conn = makeConnection(CLEAN)
      await mail(plugin, conn, '<>')
      assert.equal((await rcpt(plugin, conn, to)).rc, undefined, 'accepted at RCPT')
      for (const line of reportOf(id, to)) conn.transaction.add_data(Buffer.from(`${line}\r\n`))
      await new Promise<void>((resolve) => conn.transaction.end_data(resolve))
      const r = await dataPost(plugin, conn)
      assert.equal(r.rc, undefined, `accepted at the end of DATA: ${r.text}`)
      return conn
    }

    const samplesOf = async (plugin: HarakaTestPlugin): Promise<Sample[]> =>
      (await scrape(plugin.backscatter.metrics as BackscatterMetrics)).samples
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
      const plugin = await setup('', 'record')
      const conn = await bounce(plugin, NEVER_SENT, 'alice@example.com')
      await bounce(plugin, '<never-sent-0002@example.net>', 'bob@example.com')
      await bounce(plugin, '<never-sent-0003@example.net>', 'carol@example.org')
      assert.equal(results(conn).ledger, 'unknown', 'a young ledger says unknown')
      assert.equal(results(conn).ledger_reason, 'young')
      assert.deepEqual(wouldRefuse(await samplesOf(plugin)), [
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
      const plugin = await setup('', 'record')
      const conn = await bounce(plugin, NEVER_SENT, 'alice@example.com')
      assert.deepEqual(wouldRefuse(await samplesOf(plugin)), ['example.com young=true 1'])
      assert.ok(
        infos(conn).some((l) =>
          l.includes('once the ledger holds its window of 30 days (nothing recorded yet)'),
        ),
        infos(conn).join('\n'),
      )
    })

    it('record, a ledger that holds its window: counted young="false", as check mode would refuse it today', async () => {
      await ledgerSince(40)
      const plugin = await setup('', 'record')
      const conn = await bounce(plugin, NEVER_SENT, 'alice@example.com')
      assert.equal(results(conn).ledger, 'not-ours')
      assert.deepEqual(wouldRefuse(await samplesOf(plugin)), ['example.com young=false 1'])
      assert.ok(
        infos(conn).includes(
          'would reject at the end of DATA in [ledger] mode = check: dsn for example.com is about mail not sent from here',
        ),
        infos(conn).join('\n'),
      )
    })

    it('record, young ledger: a bounce of mail it recorded is ours, and not counted', async () => {
      await ledgerSince(3)
      const plugin = await setup('', 'record')
      assert.equal(await plugin.backscatter.ledger!.record('<sent-1@example.com>'), 'recorded')
      const conn = await bounce(plugin, '<sent-1@example.com>', 'alice@example.com')
      assert.equal(results(conn).ledger, 'ours')
      assert.deepEqual(wouldRefuse(await samplesOf(plugin)), [])
    })

    it('check, young ledger: nothing refused or scored not-ours, nothing counted as "would refuse"', async () => {
      await ledgerSince(3)
      const plugin = await setup('', 'check')
      const conn = await bounce(plugin, NEVER_SENT, 'alice@example.com')
      assert.equal(results(conn).ledger, 'unknown')
      assert.match(conn.transaction.header.get('X-Haraka-Backscatter'), /ledger=unknown/)
      const samples = await samplesOf(plugin)
      assert.deepEqual(wouldRefuse(samples), [])
      assert.equal(valueOf(samples, `${P}data_refusals_total`, { action: 'reject', cause: 'ledger' }), 0)
      assert.ok(!infos(conn).some((l) => l.startsWith('would ')), infos(conn).join('\n'))
    })
  })
})
