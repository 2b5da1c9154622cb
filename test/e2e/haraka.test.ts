// End to end: the packed plugin in a fresh Haraka deployment, a real DNSBL server
// on 127.0.0.1, and real SMTP. Client addresses are presented through XCLIENT
// (Haraka's xclient plugin, allowed for 127.0.0.1 only): no packet ever goes to them.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import {
  headerOf,
  HARAKA_VERSION,
  LOCAL_DOMAIN,
  loggedResults,
  makeWorkDir,
  removeWorkDir,
  REPO,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Deployment,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import { queuedId, SmtpClient } from '../support/smtp'

const LISTED = '45.1.2.3'
/** Listed, but only ever sends ordinary mail until the last step of its test. */
const LISTED_ORDINARY = '45.1.2.4'
const LISTED_MAPPED = '45.1.2.5'
const UNLISTED = '45.9.9.9'
const IPV6 = '2a00:1450::1'
const URL = (ip: string): string => `https://www.backscatterer.org/?target=test&ip=${ip}`
const HEADER = 'X-Haraka-Backscatter'
const user = (name: string): string => `${name}@${LOCAL_DOMAIN}`

const PLUGINS = [
  'xclient',
  'backscatter',
  '# accepts recipients of config/host_list; after backscatter',
  'rcpt_to.in_host_list',
  'queue/test',
  'e2e_results',
]

describe(`a real Haraka ${HARAKA_VERSION} with the plugin installed from its npm tarball`, () => {
  let work: string
  let zone: ZoneServer
  let dep: Deployment
  let haraka: Haraka
  const clients: SmtpClient[] = []
  /** Logs of Haraka runs that were stopped. */
  const logs: string[] = []

  const ini = (extra = ''): string => `[dns]\nservers = ${zone.server}\n\n[main]\n${extra}\n`

  /** A connection that presents `ip` through XCLIENT. */
  async function connectAs(ip: string): Promise<SmtpClient> {
    const c = await SmtpClient.connect(haraka.port)
    clients.push(c)
    assert.equal(c.greeting?.code, 220)
    assert.equal((await c.ehlo()).code, 250)
    const x = await c.xclient(ip)
    assert.equal(x.code, 220, `XCLIENT ${ip}: ${x.raw}`)
    return c
  }

  /** Stop Haraka and start it again with another config/backscatter.ini. */
  async function restart(backscatterIni: string): Promise<void> {
    for (const c of clients) c.close()
    await haraka.stop()
    logs.push(haraka.log())
    haraka = await startHaraka(dep, { plugins: PLUGINS, backscatterIni })
  }

  before(async () => {
    work = makeWorkDir('e2e')
    zone = await startZone({ listed: [LISTED, LISTED_ORDINARY, LISTED_MAPPED] })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    dep = await sharedDeployment(work)
    haraka = await startHaraka(dep, { plugins: PLUGINS, backscatterIni: ini() })
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await zone?.close()
    removeWorkDir(work)
  })

  test('Haraka loads backscatter from the installed tarball and the zone passes its test points', async () => {
    const installed = path.join(dep.dir, 'node_modules', 'haraka-plugin-backscatter')
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'haraka', 'plugin.js')))
    const deployment = JSON.parse(fs.readFileSync(path.join(dep.dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>
    }
    assert.match(
      deployment.dependencies?.['haraka-plugin-backscatter'] ?? '',
      /^file:.*haraka-plugin-backscatter-.*\.tgz$/,
    )
    // Nowhere else could Haraka have found it.
    assert.ok(!fs.existsSync(path.join(REPO, 'node_modules', 'haraka-plugin-backscatter')))
    assert.match(haraka.log(), /\[plugins\] loading backscatter/)
    await haraka.waitForLog(
      /\[backscatter\] zone ips\.backscatterer\.org passed its RFC 5782 test-point check/,
    )
    const q = zone.queries().map((x) => x.name)
    assert.ok(q.includes(`2.0.0.127.${ZONE}`), 'test point 127.0.0.2 asked')
    assert.ok(q.includes(`1.0.0.127.${ZONE}`), 'test point 127.0.0.1 asked')
  })

  test('a listed null sender gets 250 at MAIL and 550 5.7.1 at RCPT; the connection stays', async () => {
    const c = await connectAs(LISTED)
    const r = await c.transaction({ from: '', to: [user('someone')] })
    assert.equal(r.mail.code, 250)
    assert.equal(r.rcpt[0]?.code, 550)
    assert.equal(
      r.rcpt[0]?.raw,
      // The reason already holds the lookup URL, so it is not repeated.
      `550 5.7.1 Backscatter refused: ${LISTED} is listed on ${ZONE} (Test listing of ${LISTED}, see ` +
        `${URL(LISTED)}); bounces from it are not accepted, see ${ZONE}`,
    )
    assert.equal(r.data, undefined)
    assert.equal(await c.rset(), true, 'not disconnected')
    const logged = await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${c.localPort} `))
    const res = loggedResults(haraka.log(), c.localPort)
    assert.equal(res.length, 1, logged.join('\n'))
    assert.deepEqual(res[0]?.results.fail, [ZONE])
    assert.equal(res[0]?.results.score, 5)
    await c.quit()
  })

  test('a postmaster@ sender in any letter case is refused the same way', async () => {
    const c = await connectAs(LISTED)
    for (const from of [
      'postmaster@mx.sender.e2e.test',
      'PostMaster@Mx.Sender.E2E.Test',
      'POSTMASTER@MX.SENDER.E2E.TEST',
    ]) {
      const r = await c.transaction({ from, to: [user('someone')] })
      assert.equal(r.mail.code, 250, from)
      assert.equal(r.rcpt[0]?.code, 550, `${from}: ${r.rcpt[0]?.raw}`)
      assert.match(r.rcpt[0]?.raw ?? '', /^550 5\.7\.1 Backscatter refused: 45\.1\.2\.3 is listed/)
    }
    await c.quit()
  })

  test('a bounce to postmaster@ is delivered, with the header', async () => {
    const c = await connectAs(LISTED)
    const r = await c.transaction({ from: '', to: [user('postmaster')] })
    assert.equal(r.mail.code, 250)
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(headerOf(msg, HEADER), `score=5; listed=${ZONE}; ip=${LISTED}`)
    assert.match(msg, /Undelivered Mail Returned to Sender/)
    await c.quit()
  })

  test('mixed recipients are decided one by one', async () => {
    const c = await connectAs(LISTED)
    const to = [user('alice'), user('postmaster'), user('bob'), user('Abuse')]
    const r = await c.transaction({ from: '', to })
    assert.deepEqual(
      r.rcpt.map((x) => x.code),
      [550, 250, 550, 250],
      r.rcpt.map((x) => x.raw).join('\n'),
    )
    assert.equal(r.data?.code, 250, r.data?.raw)
    const id = queuedId(r.data) ?? 'none'
    const msg = await haraka.message(id)
    assert.equal(headerOf(msg, HEADER), `score=5; listed=${ZONE}; ip=${LISTED}`)
    // Haraka logs each refused recipient, and only those two.
    const refusals = await haraka.waitForLog(
      /\[backscatter\] reject recipient: Backscatter refused: 45\.1\.2\.3/,
      {
        count: 2,
      },
    )
    assert.ok(refusals.length >= 2)
    await c.quit()
  })

  test('an ordinary sender from a listed host is accepted and the zone is not queried', async () => {
    assert.equal(zone.queriedFor(LISTED_ORDINARY), 0, 'not asked before')
    const c = await connectAs(LISTED_ORDINARY)
    const r = await c.transaction({ from: 'carol@sender.e2e.test', to: [user('someone')] })
    assert.equal(r.mail.code, 250)
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(headerOf(msg, HEADER), undefined, 'no header on unchecked mail')
    assert.equal(zone.queriedFor(LISTED_ORDINARY), 0, `${zone.kind} was asked about ${LISTED_ORDINARY}`)
    // The same host's bounce, on the same connection, is looked up (and refused).
    const b = await c.transaction({ from: '', to: [user('someone')] })
    assert.equal(b.rcpt[0]?.code, 550, b.rcpt[0]?.raw)
    assert.equal(zone.queriedFor(LISTED_ORDINARY, 'A'), 1, `${zone.kind} asked once`)
    await c.quit()
  })

  test("an unlisted host's bounce is delivered and carries the header", async () => {
    const c = await connectAs(UNLISTED)
    const r = await c.transaction({ from: '', to: [user('someone')] })
    assert.equal(r.mail.code, 250)
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(headerOf(msg, HEADER), `score=0; listed=none; ip=${UNLISTED}`)
    assert.equal(zone.queriedFor(UNLISTED, 'A'), 1)
    await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${c.localPort} `))
    const res = loggedResults(haraka.log(), c.localPort)
    assert.deepEqual(res[0]?.results.pass, [ZONE])
    assert.equal(res[0]?.results.score, 0)
    await c.quit()
  })

  test('RSET and a second transaction on the same connection work', async () => {
    const c = await connectAs(LISTED)
    assert.equal((await c.command('MAIL FROM:<>')).code, 250)
    assert.equal((await c.command(`RCPT TO:<${user('dave')}>`)).code, 550)
    assert.equal((await c.command('RSET')).code, 250)
    const ordinary = await c.transaction({ from: 'erin@sender.e2e.test', to: [user('dave')] })
    assert.equal(ordinary.rcpt[0]?.code, 250, ordinary.rcpt[0]?.raw)
    assert.equal(ordinary.data?.code, 250)
    const bounce = await c.transaction({ from: '', to: [user('dave'), user('postmaster')] })
    assert.deepEqual(
      bounce.rcpt.map((x) => x.code),
      [550, 250],
    )
    assert.equal(bounce.data?.code, 250)
    const third = await c.transaction({ from: 'frank@sender.e2e.test', to: [user('dave')] })
    assert.equal(third.rcpt[0]?.code, 250)
    const msg = await haraka.message(queuedId(third.data) ?? 'none')
    assert.equal(
      headerOf(msg, HEADER),
      undefined,
      "the bounce's header does not leak into the next transaction",
    )
    await c.quit()
  })

  test('IPv6 clients pass; an IPv4-mapped IPv6 address is checked as IPv4', async () => {
    const c = await connectAs(IPV6)
    const r = await c.transaction({ from: '', to: [user('someone')] })
    assert.equal(r.mail.code, 250)
    assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    // The IPv4-only zone was not asked: not checked, which is not clean.
    assert.equal(headerOf(msg, HEADER), `score=0; listed=unknown; unchecked=${ZONE}; ip=${IPV6}`)
    await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${c.localPort} `))
    assert.deepEqual(loggedResults(haraka.log(), c.localPort)[0]?.results.skip, [`${ZONE}: IPv6 not checked`])
    assert.ok(!zone.queries().some((q) => q.name.split('.').length > 10), 'no IPv6 query')
    await c.quit()

    const m = await connectAs(`::ffff:${LISTED_MAPPED}`)
    const mr = await m.transaction({ from: '', to: [user('someone')] })
    assert.equal(mr.rcpt[0]?.code, 550, mr.rcpt[0]?.raw)
    assert.match(mr.rcpt[0]?.raw ?? '', /45\.1\.2\.5 is listed/)
    await m.quit()
  })

  test('action=score delivers the listed bounce with the header', async () => {
    // A fresh start with the new setting.
    await restart(ini('action = score'))
    const c = await connectAs(LISTED)
    const r = await c.transaction({ from: '', to: [user('someone'), user('other')] })
    assert.deepEqual(
      r.rcpt.map((x) => x.code),
      [250, 250],
      r.rcpt.map((x) => x.raw).join('\n'),
    )
    assert.equal(r.data?.code, 250, r.data?.raw)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(headerOf(msg, HEADER), `score=5; listed=${ZONE}; ip=${LISTED}`)
    await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${c.localPort} `))
    const res = loggedResults(haraka.log(), c.localPort)[0]?.results
    assert.deepEqual(res?.fail, [ZONE])
    assert.equal(res?.score, 5)
    await c.quit()
  })

  test('action=defer, set by editing backscatter.ini while Haraka runs, gives 450 4.7.1', async () => {
    const from = haraka.mark()
    dep.writeConfig('backscatter.ini', ini('action = defer'))
    // haraka-config waits 5 s for edits to settle before it reloads the file.
    await haraka.waitForLog(
      /\[backscatter\] checking bounces against .*; a recipient is deferred with 450 when the score reaches 5/,
      {
        from,
        timeoutMs: 15_000,
      },
    )
    const c = await connectAs(LISTED)
    const r = await c.transaction({ from: '', to: [user('someone'), user('postmaster')] })
    assert.equal(r.rcpt[0]?.code, 450, r.rcpt[0]?.raw)
    assert.match(
      r.rcpt[0]?.raw ?? '',
      /^450 4\.7\.1 Backscatter refused: 45\.1\.2\.3 is listed on ips\.backscatterer\.org/,
    )
    assert.equal(r.rcpt[1]?.code, 250, `postmaster: ${r.rcpt[1]?.raw}`)
    assert.equal(r.data?.code, 250)
    await c.quit()
  })

  test("Haraka's log has no uncaught error", async () => {
    for (const c of clients) c.close()
    await haraka.stop()
    const all = [...logs, haraka.log()].join('\n')
    // Every connection ended: Haraka logged a disconnect for each.
    assert.equal(all.match(/\[core\] disconnect ip=/g)?.length, clients.length)
    const bad = uncaughtErrors(all)
    assert.deepEqual(bad, [], bad.join('\n'))
  })
})
