// End to end, the sent-mail ledger: the packed plugin in a fresh Haraka with
// nodes=2 and a private redis-server on 127.0.0.1. Mail relayed by a
// relay-allowed client goes out through queue/smtp_forward (enable_outbound)
// to an SMTP sink; bounces and auto-replies come from public-looking addresses
// through XCLIENT; the DNSBL is rbldnsd on 127.0.0.1. The replies are real
// ones from the corpus (test/fixtures/replies), pointed at our Message-IDs.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { createClient } from '@redis/client'

import { dayOf, SINCE_KEY, sinceMember } from '../../lib/ledger/entry'
import {
  cloneDeployment,
  HARAKA_VERSION,
  headerOf,
  LOCAL_DOMAIN,
  loggedResults,
  makeWorkDir,
  processHoldingConnection,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Deployment,
  type Haraka,
  type HarakaOptions,
} from '../support/haraka'
import { REPO } from '../support/repo'
import { startZone, type ZoneServer } from '../support/rbldnsd'
import { findRedisServer, startRedis, type RedisServer } from '../support/redis'
import { SmtpClient } from '../support/smtp'
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink'

const LISTED = '45.1.2.3'
const UNLISTED = '45.9.9.9'
const ALICE = `alice@${LOCAL_DOMAIN}`
const BOB = `bob@${LOCAL_DOMAIN}`
const KEY = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00'
const SINCE = sinceMember(crypto.createSecretKey(Buffer.from(KEY, 'utf8')))
const NEVER_SENT = '<never-sent-0001@example.net>'

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'replies', 'sisimai', 'bsd')
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8')

/** A real Postfix bounce (sisimai set-of-emails lhost-postfix-04) of the message `id`, sent by ALICE. */
function bounceOf(id: string): string {
  return fixture('lhost-postfix-04.eml')
    .replace('<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>', id)
    .replaceAll('shironeko@example.ne.jp', ALICE)
}

/** A real vacation auto-reply (sisimai rfc3834-03) to the message `id`, sent to BOB. */
function autoReplyTo(id: string): string {
  return fixture('rfc3834-03.eml')
    .replaceAll('<25203A4E-F90F-4A14-BF51-3E7B9D39BE8E@libsisimai.org>', id)
    .replaceAll('neko@libsisimai.org', BOB)
}

/** A person's answer to the message `id`: the same thread, none of a machine's marks. */
function personalReplyTo(id: string): string {
  return [
    'From: Kijitora <kijitora@apple.example.com>',
    `To: ${BOB}`,
    'Subject: Re: Nyaan',
    'Date: Tue, 17 Dec 2019 02:53:09 +0000',
    'Message-ID: <reply-1@apple.example.com>',
    `In-Reply-To: ${id}`,
    `References: ${id}`,
    '',
    'Sounds good, see you then.',
    '',
  ].join('\r\n')
}

const PLUGINS = [
  'xclient',
  '# relay-allowed clients: config/relay_acl_allow',
  'relay',
  'backscatter',
  'rcpt_to.in_host_list',
  '# to the SMTP sink, relayed mail too (enable_outbound)',
  'queue/smtp_forward',
  'e2e_results',
]

/** Errors in the log other than the ledger's one line per Redis outage. */
const otherErrors = (log: string): string[] =>
  uncaughtErrors(log).filter((l) => !/\[backscatter\] ledger: Redis \S+ unavailable/.test(l))

const redisBinary = findRedisServer()
const skip = redisBinary ? false : 'redis-server is not installed (Debian package redis-server)'

describe(`the sent-mail ledger in a real Haraka ${HARAKA_VERSION}, nodes=2, real Redis`, { skip }, () => {
  let work: string
  let zone: ZoneServer
  let sink: SmtpSink
  let redis: RedisServer
  let dep: Deployment
  let haraka: Haraka
  let options: HarakaOptions
  const clients: SmtpClient[] = []
  /** The relayed message's Message-ID as it left, and the worker that took it. */
  let sentId = ''
  let relayWorker: number | undefined

  async function connect(xclientIp?: string): Promise<SmtpClient> {
    const c = await SmtpClient.connect(haraka.port)
    clients.push(c)
    assert.equal(c.greeting?.code, 220)
    assert.equal((await c.ehlo()).code, 250)
    if (xclientIp) assert.equal((await c.xclient(xclientIp)).code, 220, c.transcript.join('\n'))
    return c
  }

  const workerOf = (c: SmtpClient): number | undefined =>
    processHoldingConnection(haraka.workers, haraka.port, c.localPort)

  before(async () => {
    work = makeWorkDir('e2e-ledger')
    zone = await startZone({ listed: [LISTED] })
    sink = await startSmtpSink()
    redis = await startRedis(redisBinary as string)
    // A ledger that has recorded for longer than its window: it may say "not ours".
    const seed = createClient({ url: redis.url })
    await seed.connect()
    await seed.zAdd(SINCE_KEY, { score: dayOf(Date.now()) - 40, value: SINCE })
    await seed.quit()
    dep = await sharedDeployment(work)
    options = {
      plugins: PLUGINS,
      nodes: 2,
      backscatterIni: [
        `[dns]\nservers = ${zone.server}\n`,
        `[ledger]\nmode = check\nredis_url = ${redis.url}\n`,
      ].join('\n'),
      files: {
        'backscatter.keys': `ledger = ${KEY}\n`,
        'relay.ini': '[relay]\nacl=true\nforce_routing=false\n',
        relay_acl_allow: '127.0.0.1/32\n',
        'smtp_forward.ini': `[main]\nhost=127.0.0.1\nport=${sink.port}\nenable_outbound=true\n`,
      },
    }
    haraka = await startHaraka(dep, options)
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await sink?.close()
    await redis?.close()
    await zone?.close()
    removeWorkDir(work)
  })

  test('mail relayed without a Message-ID leaves with one, and that one is recorded', async () => {
    const c = await connect()
    const data = `From: ${ALICE}\r\nTo: carol@remote.e2e.test\r\nSubject: lunch\r\n\r\nAt noon?\r\n`
    const r = await c.transaction({ from: ALICE, to: ['carol@remote.e2e.test'], data })
    assert.equal(r.data?.code, 250, r.data?.raw)
    relayWorker = workerOf(c)
    const got = await sink.message(1)
    sentId = headerOf(got.data, 'Message-ID') ?? ''
    assert.match(
      sentId,
      /^<[0-9A-F-]{36}\.\d+@[^>]+>$/i,
      'the Message-ID Haraka would add, added before the queue',
    )
    const look = createClient({ url: redis.url })
    await look.connect()
    const buckets = await look.keys('bs:l:*:*')
    await look.quit()
    assert.equal(buckets.length, 1, 'one bucket holds the one message relayed')
    await c.quit()
  })

  test('its real bounce from a listed host is accepted, on either worker: ours outweighs the listing', async () => {
    assert.ok(sentId, 'needs the relayed message')
    const workers = new Set<number | undefined>()
    // Node's cluster hands connections to the workers in turn; a few bounces reach the other one.
    for (let i = 0; i < 4; i++) {
      const c = await connect(LISTED)
      const r = await c.transaction({ from: '', to: [ALICE], data: bounceOf(sentId) })
      assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
      assert.equal(r.data?.code, 250, r.data?.raw)
      workers.add(workerOf(c))
      await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${c.localPort} `))
      const results = loggedResults(haraka.log(), c.localPort)[0]?.results as unknown as Record<
        string,
        unknown
      >
      assert.equal(results.ledger, 'ours')
      assert.equal(results.kind, 'dsn')
      await c.quit()
    }
    assert.ok(relayWorker !== undefined && workers.has(relayWorker), 'a bounce on the worker that relayed')
    assert.ok(
      [...workers].some((w) => w !== relayWorker),
      'a bounce on the other worker',
    )
    const delivered = sink.messages.filter((m) => m.from === '' && m.data.includes(sentId))
    assert.ok(delivered.length >= 4)
    assert.match(
      delivered[0]?.data ?? '',
      /^X-Haraka-Backscatter: score=5; listed=ips\.backscatterer\.org; ledger=ours; ip=45\.1\.2\.3$/m,
    )
  })

  test('a bounce of a Message-ID never sent is refused at the end of DATA', async () => {
    const listed = await connect(LISTED)
    const r = await listed.transaction({ from: '', to: [ALICE], data: bounceOf(NEVER_SENT) })
    assert.equal(r.rcpt[0]?.code, 250, 'held at RCPT: the ledger could still have shown it ours')
    assert.equal(r.data?.code, 550, r.data?.raw)
    assert.match(
      r.data?.raw ?? '',
      /^550 5\.7\.1 Backscatter refused: 45\.1\.2\.3 is listed on ips\.backscatterer\.org/,
    )
    await listed.quit()
    const unlisted = await connect(UNLISTED)
    const u = await unlisted.transaction({ from: '', to: [ALICE], data: bounceOf(NEVER_SENT) })
    assert.equal(u.data?.code, 550, u.data?.raw)
    assert.equal(
      u.data?.raw,
      '550 5.7.1 Backscatter refused: this bounce is about a message that was not sent from here',
    )
    await unlisted.quit()
  })

  test('an auto-reply to a message never sent is refused; a person replying to it is not judged', async () => {
    const c = await connect(UNLISTED)
    const auto = await c.transaction({
      from: 'kijitora@apple.example.com',
      to: [BOB],
      data: autoReplyTo(NEVER_SENT),
    })
    assert.equal(auto.rcpt[0]?.code, 250)
    assert.equal(
      auto.data?.raw,
      '550 5.7.1 Backscatter refused: this auto-reply is about a message that was not sent from here',
    )
    const person = await c.transaction({
      from: 'kijitora@apple.example.com',
      to: [BOB],
      data: personalReplyTo(NEVER_SENT),
    })
    assert.equal(person.data?.code, 250, person.data?.raw)
    const mine = await c.transaction({
      from: 'kijitora@apple.example.com',
      to: [BOB],
      data: autoReplyTo(sentId),
    })
    assert.equal(mine.data?.code, 250, `an auto-reply to our own mail: ${mine.data?.raw}`)
    await c.quit()
  })

  test('with Redis stopped, mail flows: relayed, bounced and auto-replied, one ERROR per worker and outage', async () => {
    const from = haraka.mark()
    await redis.stop()
    const relay = await connect()
    const started = Date.now()
    const r = await relay.transaction({ from: ALICE, to: ['carol@remote.e2e.test'] })
    assert.equal(r.data?.code, 250, r.data?.raw)
    await relay.quit()
    const c = await connect(UNLISTED)
    const b = await c.transaction({ from: '', to: [ALICE], data: bounceOf(NEVER_SENT) })
    assert.equal(b.data?.code, 250, `the ledger cannot answer: the bounce goes on (${b.data?.raw})`)
    const a = await c.transaction({
      from: 'kijitora@apple.example.com',
      to: [BOB],
      data: autoReplyTo(NEVER_SENT),
    })
    assert.equal(a.data?.code, 250, a.data?.raw)
    await c.quit()
    assert.ok(Date.now() - started < 5000, 'no transaction waited for Redis past its bound')
    const errors = haraka
      .log()
      .slice(from)
      .split('\n')
      .filter((l) => /\[ERROR\].*\[backscatter\].*[Rr]edis/.test(l))
    assert.ok(
      errors.length >= 1 && errors.length <= 2,
      `one ERROR per worker that noticed:\n${errors.join('\n')}`,
    )
    assert.deepEqual(otherErrors(haraka.log()), [])
  })

  test('Haraka starts and mail flows while Redis is down from the start', async () => {
    const dir = makeWorkDir('e2e-ledger-down')
    const down = await startHaraka(cloneDeployment(dep, dir), { ...options, nodes: 0 })
    try {
      const c = await SmtpClient.connect(down.port)
      clients.push(c)
      assert.equal((await c.ehlo()).code, 250)
      const r = await c.transaction({ from: ALICE, to: ['carol@remote.e2e.test'] })
      assert.equal(r.data?.code, 250, r.data?.raw)
      await c.quit()
      assert.match(down.log(), /\[ERROR\].*ledger: Redis .* unavailable .*mail goes on/)
      assert.deepEqual(otherErrors(down.log()), [])
    } finally {
      await down.stop()
      removeWorkDir(dir)
    }
  })
})
