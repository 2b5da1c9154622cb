// The sent-mail ledger in the plugin as Haraka loads it (haraka-test-fixtures),
// against a private redis-server and the scripted DNS server: whose mail is
// recorded as ours at the end of DATA, and whose replies are judged.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'

import fixtures from 'haraka-test-fixtures'

import { dayOf, KEY_PREFIX, SINCE_KEY } from '../lib/ledger/entry'
import { inspector, SECRET, SINCE } from './support/ledger'
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
})
