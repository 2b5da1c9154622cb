// The plugin as Haraka loads it, against a scripted DNS server on 127.0.0.1:
// what the client and later plugins see of its decision: the action per
// recipient, the header on accepted mail, the results karma reads.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { constants, dataPost, mail, makeConnection, rcpt, results } from './support/harness'
import { dnsblZone } from './support/dns-server'
import { CLEAN, LISTED, listedZone, pluginTests, ZONE } from './support/plugin-tests'

const fx = pluginTests()
const { setup } = fx

describe('the action applies per recipient, never to the connection', () => {
  it('reject: 550 5.7.1 with IP, zone, reason and URL; postmaster and abuse accepted', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const alice = await rcpt(plugin, conn, 'alice@example.com')
    const pm = await rcpt(plugin, conn, 'Postmaster@example.com')
    const abuse = await rcpt(plugin, conn, 'abuse@example.com')
    const bob = await rcpt(plugin, conn, 'bob@example.com')
    assert.equal(alice.rc, constants.DENY)
    assert.equal(
      alice.text,
      '550 5.7.1 Backscatter refused: 45.1.2.3 is listed on ips.backscatterer.org (Listed, backscatter seen 2026-11-27); bounces from it are not accepted, see https://www.backscatterer.org/?target=test&ip=45.1.2.3',
    )
    assert.equal(pm.rc, undefined)
    assert.equal(abuse.rc, undefined)
    assert.equal(bob.rc, constants.DENY)
    assert.deepEqual(
      conn.transaction.rcpt_to.map((a: { address: string }) => a.address),
      ['Postmaster@example.com', 'abuse@example.com'],
    )
  })

  it('a quoted postmaster or abuse recipient is the same mailbox and is accepted', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, '<"postmaster"@example.com>')).rc, undefined)
    assert.equal((await rcpt(plugin, conn, '<"Abuse"@example.com>')).rc, undefined)
    assert.equal((await rcpt(plugin, conn, '<"alice"@example.com>')).rc, constants.DENY)
  })

  it('never DENYDISCONNECT: a second transaction on the connection is accepted', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
    conn.reset_transaction()
    conn.init_transaction()
    await mail(plugin, conn, 'newsletter@provider.example')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
    assert.equal(conn.transaction.results.get('backscatter'), undefined)
    conn.reset_transaction()
    conn.init_transaction()
    await mail(plugin, conn, '<>')
    assert.equal(
      (await rcpt(plugin, conn, 'alice@example.com')).rc,
      constants.DENY,
      'each bounce is decided anew',
    )
  })

  it('defer: 450 4.7.1', async () => {
    const { plugin } = setup('[main]\naction = defer')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'alice@example.com')
    assert.equal(r.rc, constants.DENYSOFT)
    assert.match(r.text, /^450 4\.7\.1 Backscatter refused/)
  })

  it('score: accepted, score recorded, header added', async () => {
    const { plugin } = setup('[main]\naction = score')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
    await dataPost(plugin, conn)
    assert.equal(results(conn).score, 5)
    assert.equal(conn.transaction.header.get('X-Haraka-Backscatter'), `score=5; listed=${ZONE}; ip=${LISTED}`)
  })

  it('a custom message and exempt list', async () => {
    const { plugin, logs } = setup(
      '[main]\nmessage = No bounces from {ip} ({zone}: {reason}) {url} score {score}\nexempt_recipients = hostmaster',
    )
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal(
      (await rcpt(plugin, conn, 'abuse@example.com')).rc,
      constants.DENY,
      'abuse is no longer exempt',
    )
    assert.equal((await rcpt(plugin, conn, 'HostMaster@example.com')).rc, undefined)
    assert.equal((await rcpt(plugin, conn, 'postmaster@example.com')).rc, undefined, 'postmaster always is')
    assert.ok(logs.some((l) => /exempt_recipients: postmaster is always exempt/.test(l.text)))
    const r = await rcpt(plugin, conn, 'alice@example.com')
    assert.equal(
      r.text,
      '550 5.7.1 No bounces from 45.1.2.3 (ips.backscatterer.org: Listed, backscatter seen 2026-11-27) https://www.backscatterer.org/?target=test&ip=45.1.2.3 score 5',
    )
  })

  it('a TXT reason with CR/LF/NUL cannot inject reply lines, log lines or headers', async () => {
    const { plugin } = setup('[main]\naction = reject')
    const conn = makeConnection('45.1.2.4')
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'alice@example.com')
    assert.match(r.text, /\(Sent backscatter 550 5\.7\.1 X-Injected: evil\)/)
    assert.doesNotMatch(r.text, /[\r\n\0]/)
    for (const line of conn.logs) assert.doesNotMatch(line.text, /[\r\n\0]/)
    assert.ok(
      conn.logs.some((l: { text: string }) => l.text.includes('Sent backscatter 550 5.7.1 X-Injected: evil')),
    )
  })
})

describe('the header on accepted, checked mail', () => {
  it('an unlisted bounce that was checked carries the header', async () => {
    const { plugin } = setup()
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    await rcpt(plugin, conn, 'alice@example.com')
    await dataPost(plugin, conn)
    assert.equal(conn.transaction.header.get('X-Haraka-Backscatter'), `score=0; listed=none; ip=${CLEAN}`)
  })

  it('a zone that gave no answer is named unchecked, and the bounce is not called clean', async () => {
    // A second zone whose server never answers: its health check suspends it.
    fx.handler = (q) => (q.name.endsWith('.silent.example') ? { drop: true } : listedZone(q))
    const { plugin } = setup(`[main]\nzones = ${ZONE}, silent.example`, 'timeout_ms = 200\ntries = 1')
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    await rcpt(plugin, conn, 'alice@example.com')
    await dataPost(plugin, conn)
    assert.equal(
      conn.transaction.header.get('X-Haraka-Backscatter'),
      `score=0; listed=unknown; unchecked=silent.example; ip=${CLEAN}`,
    )
    const ipv6 = makeConnection('2001:470::7')
    await mail(plugin, ipv6, '<>')
    await dataPost(plugin, ipv6)
    assert.equal(
      ipv6.transaction.header.get('X-Haraka-Backscatter'),
      `score=0; listed=unknown; unchecked=${ZONE},silent.example; ip=2001:470::7`,
      'zones not asked for IPv6 clients did not check this one either',
    )
  })

  it('a bounce only to postmaster from a listed host is accepted with the header', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'postmaster@example.com')).rc, undefined)
    await dataPost(plugin, conn)
    assert.equal(conn.transaction.header.get('X-Haraka-Backscatter'), `score=5; listed=${ZONE}; ip=${LISTED}`)
  })

  it('a header forged by the sender is replaced', async () => {
    const { plugin } = setup()
    const conn = makeConnection(CLEAN)
    conn.transaction.add_header('X-Haraka-Backscatter', 'score=-100; listed=none')
    await mail(plugin, conn, '<>')
    await dataPost(plugin, conn)
    assert.deepEqual(conn.transaction.header.get_all('X-Haraka-Backscatter'), [
      `score=0; listed=none; ip=${CLEAN}`,
    ])
  })

  it('a custom name, and an empty setting adds none', async () => {
    const a = setup('[main]\nheader = X-Bounce-Check')
    const c1 = makeConnection(CLEAN)
    await mail(a.plugin, c1, '<>')
    await dataPost(a.plugin, c1)
    assert.equal(c1.transaction.header.get('X-Bounce-Check'), `score=0; listed=none; ip=${CLEAN}`)
    a.close()
    const b = setup('[main]\nheader =')
    const c2 = makeConnection(CLEAN)
    await mail(b.plugin, c2, '<>')
    await dataPost(b.plugin, c2)
    assert.equal(c2.transaction.header.get('X-Haraka-Backscatter'), '')
  })

  it('ordinary mail is not stamped, and a forged copy is removed', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    conn.transaction.add_header('X-Haraka-Backscatter', 'score=0; listed=none; ip=45.1.2.3')
    await mail(plugin, conn, 'alice@bounce.example')
    await dataPost(plugin, conn)
    assert.equal(conn.transaction.header.get('X-Haraka-Backscatter'), '')
  })
})

describe('results for karma', () => {
  it('fail per listing zone, pass per clean zone, score', async () => {
    fx.handler = (q) => (q.name.endsWith('.second.test') ? dnsblZone('second.test', {})(q) : listedZone(q))
    const { plugin } = setup(`[main]\nzones = ${ZONE}, second.test`)
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    await rcpt(plugin, conn, 'alice@example.com')
    const r = results(conn)
    assert.deepEqual(r.fail, [ZONE])
    assert.deepEqual(r.pass, ['second.test'])
    assert.equal(r.score, 5)
    assert.ok(
      conn.transaction.results.has('backscatter', 'fail', ZONE),
      'karma matches fail equals ips.backscatterer.org',
    )
  })
})
