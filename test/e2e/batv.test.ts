// End to end, signed bounces (BATV): the packed plugin in a fresh Haraka, mail
// relayed by a relay-allowed client (core plugin relay, [relay] acl) and queued
// by queue/smtp_forward (enable_outbound) to an SMTP sink on 127.0.0.1, bounces
// presented from public-looking addresses through XCLIENT, a DNSBL on 127.0.0.1.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { BatvKey, signAddress, verifyAddress } from '../../lib/batv/sign'
import {
  HARAKA_VERSION,
  LOCAL_DOMAIN,
  loggedResults,
  makeWorkDir,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Deployment,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import { SmtpClient } from '../support/smtp'
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink'

const LISTED = '45.1.2.3'
const UNLISTED = '45.9.9.9'
/** A secret haraka-config would read as the number 123: the plugin must sign with the text 0123. */
const SECRET = '0123'
const BOB = `bob@${LOCAL_DOMAIN}`

/**
 * Shows the next plugin's view of each recipient: what rcpt_to.in_host_list and
 * the rest see. Refuses nobody@, as a recipient validation plugin would.
 */
const RCPT_SEEN_PLUGIN = `'use strict'
exports.hook_rcpt = function (next, connection, params) {
    connection.loginfo(this, 'port=' + connection.remote.port + ' rcpt seen after backscatter: ' + params[0].format())
    if (params[0].user === 'nobody') return next(DENY, 'no such user')
    next()
}
`

const PLUGINS = [
  'xclient',
  '# relay-allowed clients: config/relay_acl_allow',
  'relay',
  'backscatter',
  'e2e_rcpt_seen',
  'rcpt_to.in_host_list',
  '# to the SMTP sink, relayed mail too (enable_outbound)',
  'queue/smtp_forward',
  'e2e_results',
]

describe(`signed bounces (BATV) in a real Haraka ${HARAKA_VERSION}`, () => {
  let work: string
  let zone: ZoneServer
  let sink: SmtpSink
  let dep: Deployment
  let haraka: Haraka
  const clients: SmtpClient[] = []
  const key = BatvKey.create(1, SECRET) as BatvKey
  /** The MAIL FROM the sink received for the relayed message. */
  let signedSender = ''

  async function connect(xclientIp?: string): Promise<SmtpClient> {
    const c = await SmtpClient.connect(haraka.port)
    clients.push(c)
    assert.equal(c.greeting?.code, 220)
    assert.equal((await c.ehlo()).code, 250)
    if (xclientIp) assert.equal((await c.xclient(xclientIp)).code, 220, c.transcript.join('\n'))
    return c
  }

  before(async () => {
    work = makeWorkDir('e2e-batv')
    zone = await startZone({ listed: [LISTED] })
    sink = await startSmtpSink()
    dep = await sharedDeployment(work)
    fs.writeFileSync(path.join(dep.dir, 'plugins', 'e2e_rcpt_seen.js'), RCPT_SEEN_PLUGIN)
    haraka = await startHaraka(dep, {
      plugins: PLUGINS,
      backscatterIni: [
        `[dns]\nservers = ${zone.server}\n`,
        `[batv]\ndomains = ${LOCAL_DOMAIN}\nmissing_from = 2020-01-01\n`,
      ].join('\n'),
      files: {
        'backscatter.keys': `1 = ${SECRET}\n`,
        'relay.ini': '[relay]\nacl=true\nforce_routing=false\n',
        relay_acl_allow: '127.0.0.1/32\n',
        'smtp_forward.ini': `[main]\nhost=127.0.0.1\nport=${sink.port}\nenable_outbound=true\n`,
      },
    })
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await sink?.close()
    await zone?.close()
    removeWorkDir(work)
  })

  test('the plugin reads the key as text and says what it signs', async () => {
    await haraka.waitForLog(
      /\[backscatter\] signed bounces \(BATV\) for example\.net: senders are signed with key 1, tags are checked with key 1;/,
    )
    assert.doesNotMatch(haraka.log(), new RegExp(`\\b${SECRET}\\b`), 'the secret is never logged')
    assert.doesNotMatch(haraka.log(), /backscatter\.keys/, 'config/backscatter.keys read with no problem')
  })

  test('(a) mail relayed by a relay-allowed client reaches the sink with a prvs= MAIL FROM', async () => {
    const c = await connect()
    const r = await c.transaction({ from: BOB, to: ['carol@remote.e2e.test'] })
    assert.equal(r.mail.code, 250, r.mail.raw)
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const got = await sink.message(1)
    assert.match(got.from, /^prvs=1\d{3}[0-9a-f]{6}=bob@example\.net$/)
    assert.deepEqual(got.to, ['carol@remote.e2e.test'])
    const check = verifyAddress(got.from, new Map([[1, key]]), 7, Date.now())
    assert.equal(check.status, 'valid', 'signed with the secret as written, 0123')
    signedSender = got.from
    await c.quit()
  })

  test('(b) a bounce from a listed IP to that tagged address is accepted; the queue sees the original', async () => {
    assert.ok(signedSender, 'needs (a)')
    const c = await connect(LISTED)
    const r = await c.transaction({ from: '', to: [signedSender] })
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const got = await sink.message(2)
    assert.equal(got.from, '')
    assert.deepEqual(got.to, [BOB], 'the queue delivers to the original address')
    assert.match(
      got.data,
      /^X-Haraka-Backscatter: score=5; listed=ips\.backscatterer\.org; batv=valid; ip=45\.1\.2\.3$/m,
    )
    const seen = await haraka.waitForLog(new RegExp(`port=${c.localPort} rcpt seen after backscatter: `))
    assert.deepEqual(
      seen.map((l) => l.replace(/^.* rcpt seen after backscatter: /, '')),
      [`<${BOB}>`],
      'the next plugin sees the original',
    )
    await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${c.localPort} `))
    const results = loggedResults(haraka.log(), c.localPort)[0]?.results as unknown as Record<string, unknown>
    assert.deepEqual(results.fail, [ZONE])
    assert.deepEqual(results.batv, ['valid key 1'])
    await c.quit()
  })

  test('a callout for the tagged address gets 250', async () => {
    const c = await connect(UNLISTED)
    assert.equal((await c.command('MAIL FROM:<>')).code, 250)
    const r = await c.command(`RCPT TO:<${signedSender}>`)
    assert.equal(r.code, 250, r.raw)
    await c.quit()
  })

  test('(c) an untagged bounce from an unlisted IP to a signing domain gets 550 at RCPT', async () => {
    const c = await connect(UNLISTED)
    const r = await c.transaction({ from: '', to: [`alice@${LOCAL_DOMAIN}`, `postmaster@${LOCAL_DOMAIN}`] })
    assert.equal(r.rcpt[0]?.code, 550)
    assert.equal(
      r.rcpt[0]?.raw,
      `550 5.7.1 Bounce refused: <alice@${LOCAL_DOMAIN}> takes bounces only at its signed return path (BATV); this bounce is not about mail sent from here`,
    )
    assert.equal(r.rcpt[1]?.code, 250, 'postmaster stays exempt')
    await c.quit()
  })

  test('a tagged recipient refused by a later plugin keeps its tag; only the accepted one is delivered, untagged', async () => {
    const nobody = signAddress(`nobody@${LOCAL_DOMAIN}`, key, 7, Date.now())
    const bob = signAddress(BOB, key, 7, Date.now())
    assert.ok(nobody.ok && bob.ok)
    const c = await connect(UNLISTED)
    const r = await c.transaction({ from: '', to: [nobody.address, bob.address] })
    assert.equal(r.rcpt[0]?.code, 550, r.rcpt[0]?.raw)
    assert.equal(r.rcpt[1]?.code, 250, r.rcpt[1]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const got = await sink.message(4) // after (c)'s message to postmaster
    assert.deepEqual(got.to, [BOB])
    // Haraka's own line for the refusal names the address as the client sent it.
    await haraka.waitForLog(new RegExp(`recipient <${nobody.address.replace(/[.+]/g, '\\$&')}>.*DENY`))
    await c.quit()
  })

  test('an untagged bounce to a signing domain typed in fullwidth letters or with U+3002 gets 550, as in ASCII', async () => {
    const c = await connect(UNLISTED)
    assert.equal((await c.command('MAIL FROM:<> SMTPUTF8')).code, 250)
    for (const typed of ['ｅｘａｍｐｌｅ.net', 'example。net', 'EXAMPLE.NET']) {
      const r = await c.command(`RCPT TO:<alice@${typed}>`)
      assert.equal(r.code, 550, `${typed}: ${r.raw}`)
      assert.match(r.raw, /takes bounces only at its signed return path \(BATV\)/)
    }
    await c.quit()
  })

  test("Haraka's log has no uncaught error and never the secret", () => {
    assert.deepEqual(uncaughtErrors(haraka.log()), [])
    for (const line of haraka.log().split('\n')) assert.ok(!/=\s*0123\b/.test(line), line)
  })
})
