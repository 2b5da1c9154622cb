// End to end, the outbound guard: the packed plugin in a real Haraka with
// haraka-plugin-spf, both resolving against a scripted DNS server on 127.0.0.1.
// Inbound mail (clients presented through XCLIENT) goes into Haraka's outbound
// as queue/lmtp puts it there, relayed mail as Haraka queues it; every outbound
// message, Haraka's own DSNs included, goes to a test MX on 127.0.0.1 that
// accepts at RCPT and refuses the message with a 5xx after DATA, and takes DSNs.
// A client on 127.0.0.2 is neither in the relay ACL nor presented through
// XCLIENT: its address is a private one, and only AUTH makes it ours.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { dnsblZone, startDns, TYPE, type Handler, type ScriptedDns } from '../support/dns-server'
import { readExposition, valueOf } from '../support/exposition'
import {
  connectWithXclient,
  freeTcpPort,
  HARAKA_VERSION,
  LOCAL_DOMAIN,
  makeWorkDir,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Deployment,
  type Haraka,
} from '../support/haraka'
import { SmtpClient } from '../support/smtp'
import { startSmtpSink, type Envelope, type SmtpSink } from '../support/smtp-sink'

const ZONE = 'ips.backscatterer.org'
/** The outside client, presented through XCLIENT. */
const OUTSIDE = '45.1.2.3'
const FAIL_DOMAIN = 'spf-fail.e2e.test'
const PASS_DOMAIN = 'spf-pass.e2e.test'
/** A loopback address outside relay_acl_allow. */
const PRIVATE = '127.0.0.2'
const AUTH_USER = 'gina'
const AUTH_PASSWORD = 'e2e-secret'
const P = 'haraka_backscatter_'

/** SPF for the two sender domains; the plugin's zone and everything else as a DNSBL answers. */
const zone = dnsblZone(ZONE, {})
const HANDLER: Handler = (q) => {
  if (q.type === TYPE.TXT && q.name === FAIL_DOMAIN) return { txt: ['v=spf1 ip4:192.0.2.0/24 -all'] }
  if (q.type === TYPE.TXT && q.name === PASS_DOMAIN) return { txt: [`v=spf1 ip4:${OUTSIDE}/32 -all`] }
  return zone(q)
}

/**
 * The plumbing of the test, as a deployment would have its own: the process's
 * resolver (haraka-plugin-spf's) on the scripted server, every outbound message
 * to the test MX, inbound mail into Haraka's outbound as queue/lmtp puts it.
 */
const PLUMBING_PLUGIN = `'use strict'
const dns = require('node:dns')
let outbound
exports.register = function () {
    dns.setServers([process.env.E2E_DNS])
    outbound = this.haraka_require('outbound')
}
exports.hook_get_mx = function (next) {
    next(OK, { priority: 0, exchange: '127.0.0.1', port: Number(process.env.E2E_MX_PORT) })
}
exports.hook_queue = function (next, connection) {
    outbound.send_trans_email(connection.transaction, next)
}
`

const PLUGINS = [
  'xclient',
  '# relay-allowed clients: config/relay_acl_allow',
  'relay',
  '# AUTH PLAIN against config/auth_flat_file.ini; Haraka offers it without TLS to private clients',
  'auth/flat_file',
  'e2e_plumbing',
  'spf',
  'backscatter',
  'rcpt_to.in_host_list',
]

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe(`the outbound guard in a real Haraka ${HARAKA_VERSION}`, () => {
  let work: string
  let dns: ScriptedDns
  let sink: SmtpSink
  let dep: Deployment
  let haraka: Haraka
  let metricsPort: number
  const clients: SmtpClient[] = []

  const ini = (mode: string): string =>
    `[dns]\nservers = ${dns.server}\n\n[metrics]\nlisten = ${metricsPort}\n\n[outbound_guard]\nmode = ${mode}\n`

  /** The first message at the MX after message number `after` that `match` accepts. */
  async function atMx(match: (e: Envelope) => boolean, from = 0): Promise<Envelope> {
    for (let n = from + 1; ; n++) {
      const m = await sink.message(n)
      if (match(m)) return m
    }
  }

  /** Send one message; resolves once the MX has refused it and the guard has logged its decision. */
  async function sendAndFail(c: SmtpClient, sender: string, rcpt: string): Promise<string> {
    const before = sink.messages.length
    const r = await c.transaction({ from: sender, to: [rcpt] })
    assert.equal(r.data?.code, 250, c.transcript.join('\n'))
    await c.quit()
    await atMx((e) => e.from === sender, before)
    const [line] = await haraka.waitForLog(new RegExp(`\\[backscatter\\] DSN to <${escape(sender)}> `))
    return line ?? ''
  }

  /** The DSN the MX received for `sender`. */
  const dsnFor = (sender: string): Promise<Envelope> => atMx((e) => e.from === '' && e.to.includes(sender))

  before(async () => {
    work = makeWorkDir('e2e-guard')
    dns = await startDns(HANDLER)
    sink = await startSmtpSink({
      dataReply: (e) => (e.from === '' ? '250 2.0.0 DSN taken' : '554 5.7.1 delivery refused by the test MX'),
    })
    metricsPort = await freeTcpPort()
    dep = await sharedDeployment(work)
    fs.writeFileSync(path.join(dep.dir, 'plugins', 'e2e_plumbing.js'), PLUMBING_PLUGIN)
    haraka = await startHaraka(dep, {
      plugins: PLUGINS,
      backscatterIni: ini('suppress'),
      env: { E2E_DNS: dns.server, E2E_MX_PORT: String(sink.port) },
      files: {
        'relay.ini': '[relay]\nacl=true\nforce_routing=false\n',
        relay_acl_allow: '127.0.0.1/32\n',
        'auth_flat_file.ini': `[core]\nmethods=PLAIN\n\n[users]\n${AUTH_USER}=${AUTH_PASSWORD}\n`,
      },
    })
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await sink?.close()
    await dns?.close()
    removeWorkDir(work)
  })

  const outside = async (): Promise<SmtpClient> => {
    const c = await connectWithXclient(haraka.port, OUTSIDE)
    clients.push(c)
    return c
  }

  test("inbound, the sender's SPF fails: the DSN is suppressed, with its reasons", async () => {
    const sender = `alice@${FAIL_DOMAIN}`
    const line = await sendAndFail(await outside(), sender, `bob@${LOCAL_DOMAIN}`)
    assert.match(
      line,
      new RegExp(
        `DSN to <${escape(sender)}> suppressed \\(\\[outbound_guard\\] mode = suppress\\): accepted from ${escape(OUTSIDE)}, which neither authenticated nor was allowed to relay; SPF fail for ${escape(FAIL_DOMAIN)}; no passing DKIM signature aligned with ${escape(FAIL_DOMAIN)}$`,
      ),
    )
    await haraka.waitForLog(/Not sending bounce/)
    assert.match(
      haraka.log(),
      new RegExp(`\\[spf\\].* mfrom=<${escape(sender)}> result=Fail`),
      'SPF asked the scripted DNS',
    )
  })

  test("inbound, the sender's SPF passes: the DSN is sent", async () => {
    const sender = `carol@${PASS_DOMAIN}`
    const line = await sendAndFail(await outside(), sender, `bob@${LOCAL_DOMAIN}`)
    assert.match(line, new RegExp(`DSN to <${escape(sender)}> sent: SPF pass for ${escape(PASS_DOMAIN)}$`))
    const dsn = await dsnFor(sender)
    assert.match(dsn.data, /^Content-Type: message\/delivery-status\r?$/im)
    assert.match(dsn.data, /^Final-Recipient: rfc822; ?bob@example\.net\r?$/im)
  })

  test("relayed for a relay-allowed client, its sender's SPF would fail: the DSN is sent", async () => {
    const c = await SmtpClient.connect(haraka.port)
    clients.push(c)
    assert.equal((await c.ehlo()).code, 250)
    const sender = `dave@${FAIL_DOMAIN}`
    const line = await sendAndFail(c, sender, 'erin@remote.e2e.test')
    assert.match(line, new RegExp(`DSN to <${escape(sender)}> sent: the client was allowed to relay$`))
    await dsnFor(sender)
  })

  /** A client on PRIVATE, greeted; relaying only if it authenticates. */
  const onPrivate = async (): Promise<SmtpClient> => {
    const c = await SmtpClient.connect(haraka.port, { localAddress: PRIVATE })
    clients.push(c)
    assert.equal((await c.ehlo()).code, 250)
    return c
  }

  test('an authenticated client on a private address, its sender SPF-less: the DSN is sent', async () => {
    const c = await onPrivate()
    const plain = Buffer.from(`\0${AUTH_USER}\0${AUTH_PASSWORD}`).toString('base64')
    assert.equal((await c.command(`AUTH PLAIN ${plain}`)).code, 235, c.transcript.join('\n'))
    const sender = `gina@${FAIL_DOMAIN}`
    const line = await sendAndFail(c, sender, 'erin@remote.e2e.test')
    assert.match(line, new RegExp(`DSN to <${escape(sender)}> sent: the client authenticated$`))
    await dsnFor(sender)
  })

  test('a client on a private address that neither authenticated nor may relay: suppressed', async () => {
    const sender = `hank@${FAIL_DOMAIN}`
    const line = await sendAndFail(await onPrivate(), sender, `bob@${LOCAL_DOMAIN}`)
    // haraka-plugin-spf skips private addresses: no SPF result, and the address alone is not ours.
    assert.match(
      line,
      new RegExp(
        `DSN to <${escape(sender)}> suppressed \\(\\[outbound_guard\\] mode = suppress\\): accepted from ${escape(PRIVATE)}, which neither authenticated nor was allowed to relay; no SPF result for ${escape(FAIL_DOMAIN)}; `,
      ),
    )
  })

  test('mode = log: the DSN is sent, and the log says it would have been suppressed', async () => {
    const mark = haraka.mark()
    dep.writeConfig('backscatter.ini', ini('log'))
    await haraka.waitForLog(/\[backscatter\] checking bounces against/, { from: mark })
    const sender = `frank@${FAIL_DOMAIN}`
    const line = await sendAndFail(await outside(), sender, `bob@${LOCAL_DOMAIN}`)
    assert.match(
      line,
      new RegExp(
        `DSN to <${escape(sender)}> sent, would be suppressed \\(\\[outbound_guard\\] mode = log\\): .*SPF fail`,
      ),
    )
    await dsnFor(sender)
  })

  test('the metric counts each decision; only the suppressed sender got no DSN', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    const samples = readExposition(await res.text())
    const count = (decision: string): number | undefined =>
      valueOf(samples, `${P}outbound_bounces_total`, { decision })
    assert.deepEqual(
      ['suppressed', 'would_suppress', 'sent', 'not_judged', 'error'].map(count),
      [2, 1, 3, 0, 0],
    )
    const dsnTo = sink.messages.filter((e) => e.from === '').flatMap((e) => e.to)
    assert.deepEqual(dsnTo.sort(), [
      `carol@${PASS_DOMAIN}`,
      `dave@${FAIL_DOMAIN}`,
      `frank@${FAIL_DOMAIN}`,
      `gina@${FAIL_DOMAIN}`,
    ])
    const queries = dns.queries.map((q) => q.name)
    assert.ok(queries.includes(FAIL_DOMAIN) && queries.includes(PASS_DOMAIN), 'SPF went to the scripted DNS')
    assert.deepEqual(uncaughtErrors(haraka.log()), [])
  })
})
