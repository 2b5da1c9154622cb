// The plugin as Haraka loads it (haraka-test-fixtures), with the package's
// config/ as defaults and a deployment override, against a scripted DNS server
// on 127.0.0.1. One describe block per behaviour.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it, mock } from 'node:test'

import { queryName } from '../lib/dns/resolver'
import {
  addr,
  constants,
  dataPost,
  mail,
  makeConnection,
  makeTestPlugin,
  rcpt,
  results,
  type TestPlugin,
} from './support/harness'
import { dnsblZone, startDns, TYPE, type Handler, type ScriptedDns } from './support/dns-server'
import { editDelivered } from './support/haraka-config'
import { onMockClock } from './support/mock-clock'

const ZONE = 'ips.backscatterer.org'
const LISTED = '45.1.2.3'
const CLEAN = '45.9.8.7'

const listedZone = dnsblZone(ZONE, {
  [LISTED]: { txt: 'Listed, backscatter seen 2026-11-27' },
  '45.1.2.4': { txt: 'Sent backscatter\r\n550 5.7.1 X-Injected: evil\0' },
  '45.1.2.5': { a: ['127.0.0.3'] },
})

let dns: ScriptedDns
let handler: Handler = listedZone
let current: TestPlugin | undefined

before(async () => {
  dns = await startDns((q) => handler(q))
})
after(() => dns.close())
afterEach(() => {
  current?.close()
  current = undefined
  handler = listedZone
})

/**
 * A registered plugin whose deployment config/backscatter.ini is `ini` plus the DNS server. The
 * default budget is generous: the scripted server answers at once, and a busy machine must not
 * turn a zone's first health check into "still running".
 */
function setup(ini = '', dnsExtra = 'timeout_ms = 2000\ntries = 2'): TestPlugin {
  current = makeTestPlugin(`[dns]\nservers = ${dns.server}\n${dnsExtra}\n\n${ini}\n`)
  return current
}

/** Queries other than the zone health checks' test points. */
const clientQueries = (): number =>
  dns.queries.filter(
    (q) => !/^[12]\.0\.0\.127\./.test(q.name) && !/^[12](\.0){4}\.f\.7\.f\.f\.f\.f\./.test(q.name),
  ).length

const queriesFor = (ip: string): number => dns.count(`${ip.split('.').reverse().join('.')}.${ZONE}`)

describe('which senders are looked up: bounce-type only (hook_mail)', () => {
  for (const from of [
    '<>',
    'postmaster@bounce.example',
    'POSTMASTER@bounce.example',
    'PostMaster@bounce.example',
    '<postmaster>',
  ]) {
    it(`${from} from a listed host is refused at RCPT`, async () => {
      const { plugin } = setup()
      const conn = makeConnection(LISTED)
      assert.equal((await mail(plugin, conn, from)).rc, undefined, 'MAIL is never refused')
      const r = await rcpt(plugin, conn, 'alice@example.com')
      assert.equal(r.rc, constants.DENY)
      assert.match(r.text, /^550 5\.7\.1 /)
    })
  }

  it('an ordinary sender: no lookup, no DNS packet, no result', async () => {
    const { plugin } = setup()
    const before = dns.count(`3.2.1.45.${ZONE}`, TYPE.A)
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, 'alice@bounce.example')
    assert.equal(plugin.backscatter.pending.get(conn.transaction), undefined, 'no check started')
    assert.equal((await rcpt(plugin, conn, 'bob@example.com')).rc, undefined)
    // A bounce from the same host afterwards: its query is the first one for the IP.
    const bounce = makeConnection(LISTED)
    await mail(plugin, bounce, '<>')
    await plugin.backscatter.pending.get(bounce.transaction).verdict
    assert.equal(dns.count(`3.2.1.45.${ZONE}`, TYPE.A) - before, 1, 'only the bounce was looked up')
    assert.equal(conn.transaction.results.get('backscatter'), undefined)
  })

  it('[senders] local_parts adds mailer-daemon', async () => {
    const { plugin } = setup('[senders]\nlocal_parts = mailer-daemon')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, 'MAILER-DAEMON@mx.example.net')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
  })

  it('[senders] null = false: the null sender is not looked up', async () => {
    const { plugin } = setup('[senders]\nnull = false')
    const before = queriesFor(LISTED)
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
    assert.equal(queriesFor(LISTED) - before, 0)
  })
})

describe('clients that are never looked up', () => {
  const cases: { name: string; ip: string; ini?: string; relaying?: boolean; skip: string }[] = [
    { name: 'loopback', ip: '127.0.0.1', skip: 'private address 127.0.0.1 ([skip] private)' },
    { name: 'private', ip: '10.1.2.3', skip: 'private address 10.1.2.3 ([skip] private)' },
    { name: 'link-local', ip: '169.254.7.7', skip: 'private address 169.254.7.7 ([skip] private)' },
    { name: 'IPv6 loopback', ip: '::1', skip: 'private address ::1 ([skip] private)' },
    { name: 'relaying', ip: LISTED, relaying: true, skip: 'relaying client ([skip] relaying)' },
    {
      name: '[skip] ips CIDR',
      ip: LISTED,
      ini: '[skip]\nips = 45.1.0.0/16',
      skip: `${LISTED} is in [skip] ips`,
    },
    {
      name: '[skip] ips single',
      ip: LISTED,
      ini: `[skip]\nips = 46.0.0.1, ${LISTED}`,
      skip: `${LISTED} is in [skip] ips`,
    },
  ]
  for (const c of cases) {
    it(`${c.name}: skip result, no lookup, mail accepted`, async () => {
      const { plugin } = setup(c.ini)
      const before = clientQueries()
      const conn = makeConnection(c.ip, { relaying: c.relaying ?? false })
      await mail(plugin, conn, '<>')
      assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
      assert.deepEqual(results(conn).skip, [c.skip])
      assert.equal(clientQueries() - before, 0)
    })
  }

  it('the first skip of each kind is logged once, naming the setting; the results record each', async () => {
    const { plugin } = setup()
    const lines: string[] = []
    for (const [ip, relaying] of [
      ['127.0.0.1', false],
      ['10.1.2.3', false],
      [LISTED, true],
      [LISTED, true],
    ] as const) {
      const conn = makeConnection(ip, { relaying })
      await mail(plugin, conn, '<>')
      assert.equal(results(conn).skip.length, 1)
      lines.push(...conn.logs.map((l: { level: string; text: string }) => `${l.level} ${l.text.trim()}`))
    }
    assert.deepEqual(lines, [
      'loginfo bounce not looked up: private address 127.0.0.1 ([skip] private); said once, the results of each transaction record it',
      'loginfo bounce not looked up: relaying client ([skip] relaying); said once, the results of each transaction record it',
    ])
  })

  it('[skip] private = false looks up private clients', async () => {
    handler = (q) => (q.name === `3.2.1.10.${ZONE}` ? { a: ['127.0.0.2'] } : listedZone(q))
    const { plugin } = setup('[skip]\nprivate = false')
    const conn = makeConnection('10.1.2.3')
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
  })

  it('[skip] relaying = false looks up relaying clients', async () => {
    const { plugin } = setup('[skip]\nrelaying = false')
    const conn = makeConnection(LISTED, { relaying: true })
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
  })

  it('an IPv6 client and an IPv4-only zone: skip result naming the zone, no DNS packet', async () => {
    const { plugin } = setup()
    const before = clientQueries()
    const conn = makeConnection('2a00:1450:4001::1')
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
    assert.deepEqual(results(conn).skip, [`${ZONE}: IPv6 not checked`])
    assert.equal(clientQueries() - before, 0)
  })

  it('an IPv6 client and a zone with ipv6 = true: looked up by nibbles', async () => {
    const name = queryName('2a00:1450:4001::1', ZONE)
    handler = (q) => (q.name === name ? { a: ['127.0.0.2'] } : listedZone(q))
    const { plugin } = setup(`[${ZONE}]\nipv6 = true`)
    const conn = makeConnection('2a00:1450:4001::1')
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
  })

  it('::ffff:a.b.c.d is treated as IPv4', async () => {
    const { plugin } = setup()
    const conn = makeConnection(`::ffff:${LISTED}`)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'alice@example.com')
    assert.equal(r.rc, constants.DENY)
    assert.match(r.text, new RegExp(`refused: ${LISTED.replaceAll('.', '\\.')} is listed`))
  })

  it('a mapped private address is still private', async () => {
    const { plugin } = setup()
    const conn = makeConnection('::ffff:10.0.0.1')
    await mail(plugin, conn, '<>')
    assert.deepEqual(results(conn).skip, ['private address 10.0.0.1 ([skip] private)'])
  })
})

describe('the lookup starts at MAIL and is awaited at RCPT', () => {
  it('MAIL is answered before DNS answers; RCPT waits for it', async () => {
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => (release = resolve))
    let arrived: () => void = () => {}
    const queryArrived = new Promise<void>((resolve) => (arrived = resolve))
    handler = (q) => {
      if (q.name !== `3.2.1.45.${ZONE}`) return listedZone(q)
      if (q.type === TYPE.A) arrived()
      return { a: ['127.0.0.2'], until: held }
    }
    const { plugin } = setup('', 'timeout_ms = 5000\ntries = 1')
    const conn = makeConnection(LISTED)
    const before = queriesFor(LISTED)
    assert.equal((await mail(plugin, conn, '<>')).rc, undefined, 'MAIL answered while DNS holds the answer')
    const pending = plugin.backscatter.pending.get(conn.transaction) as { verdict: Promise<unknown> }
    let rcptDone = false
    const reply = rcpt(plugin, conn, 'alice@example.com').then((r) => {
      rcptDone = true
      return r
    })
    await queryArrived
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(rcptDone, false, 'RCPT waits for the answer')
    release()
    await pending.verdict
    assert.equal((await reply).rc, constants.DENY)
    assert.equal(queriesFor(LISTED) - before, 2, 'one A and one TXT query')
  })

  it('queries every zone in [main] zones through [dns] servers', async () => {
    handler = (q) =>
      q.name.endsWith('.second.test') ? dnsblZone('second.test', { [LISTED]: {} })(q) : listedZone(q)
    const { plugin } = setup('[main]\nzones = ips.backscatterer.org, second.test')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    await rcpt(plugin, conn, 'alice@example.com')
    assert.deepEqual(results(conn).fail, [ZONE, 'second.test'])
    assert.equal(results(conn).score, 10)
  })

  it('a listing fetches the TXT reason too', async () => {
    const { plugin } = setup()
    const before = dns.count(`3.2.1.45.${ZONE}`, TYPE.TXT)
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'alice@example.com')
    assert.match(r.text, /\(Listed, backscatter seen 2026-11-27\)/)
    assert.equal(dns.count(`3.2.1.45.${ZONE}`, TYPE.TXT) - before, 1)
  })
})

describe('DNS answers that are not listings let the mail go on', () => {
  const cases: { name: string; script: Handler; err?: RegExp; pass?: boolean }[] = [
    { name: 'NXDOMAIN: not listed', script: () => undefined, pass: true },
    {
      name: 'answer outside 127/8',
      script: () => ({ a: ['62.0.58.94'] }),
      err: /ips\.backscatterer\.org: answer 62\.0\.58\.94 is outside/,
    },
    {
      name: '127.255.255.254 error code',
      script: () => ({ a: ['127.255.255.254'] }),
      err: /is an error code/,
    },
    { name: 'SERVFAIL', script: () => ({ rcode: 'SERVFAIL' }), err: /: SERVFAIL$/ },
    { name: 'REFUSED', script: () => ({ rcode: 'REFUSED' }), err: /: REFUSED$/ },
    { name: 'timeout', script: () => ({ drop: true }), err: /: timeout$/ },
  ]
  // c-ares keeps a real timer of timeout_ms too: far beyond what the test takes.
  const BUDGET_MS = 10_000
  for (const c of cases) {
    it(`${c.name}: mail goes on`, async () => {
      handler = (q) => (q.name === `7.8.9.45.${ZONE}` ? c.script(q) : listedZone(q))
      const { plugin } = setup('', `timeout_ms = ${BUDGET_MS}\ntries = 1`)
      // The zone's health first, so the budget is the client lookup's alone.
      await plugin.backscatter.checker.checkHealth()
      const conn = makeConnection(CLEAN)
      // From MAIL, where the lookup starts, to the RCPT reply, on the mock clock.
      const { result, ms } = await onMockClock(async () => {
        await mail(plugin, conn, '<>')
        return rcpt(plugin, conn, 'alice@example.com')
      }, BUDGET_MS + 1000)
      assert.equal(result.rc, undefined)
      assert.ok(ms <= BUDGET_MS, `bounded by the DNS budget (timeout_ms × tries): ${ms} ms`)
      const res = results(conn)
      if (c.pass) assert.deepEqual(res.pass, [ZONE])
      if (c.err) {
        assert.equal(res.err.length, 1)
        assert.match(res.err[0]!, c.err)
      }
      assert.deepEqual(res.fail, [])
    })
  }
})

describe('scores add up SpamAssassin style', () => {
  it('per-answer scores and the threshold', async () => {
    const { plugin } = setup(`[main]\nthreshold = 6\n[${ZONE}]\nscore = 5\n127.0.0.3 = 8`)
    const c1 = makeConnection(LISTED) // 127.0.0.2: score 5 < 6
    await mail(plugin, c1, '<>')
    assert.equal((await rcpt(plugin, c1, 'alice@example.com')).rc, undefined)
    assert.equal(results(c1).score, 5)
    const c2 = makeConnection('45.1.2.5') // 127.0.0.3: score 8 ≥ 6
    await mail(plugin, c2, '<>')
    assert.equal((await rcpt(plugin, c2, 'alice@example.com')).rc, constants.DENY)
    assert.equal(results(c2).score, 8)
  })

  it('the sum over zones reaches the threshold that one zone does not', async () => {
    handler = (q) =>
      q.name.endsWith('.second.test') ? dnsblZone('second.test', { [LISTED]: {} })(q) : listedZone(q)
    const { plugin } = setup(
      `[main]\nzones = ${ZONE}, second.test\nthreshold = 5\n[${ZONE}]\nscore = 3\n[second.test]\nscore = 2`,
    )
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
    assert.equal(results(conn).score, 5)
  })
})

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
    handler = (q) => (q.name.endsWith('.silent.example') ? { drop: true } : listedZone(q))
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
    handler = (q) => (q.name.endsWith('.second.test') ? dnsblZone('second.test', {})(q) : listedZone(q))
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

describe('config: package defaults, overrides, reload and bad values', () => {
  it('the deployment file overrides key by key; the rest keeps the package defaults', async () => {
    const { plugin } = setup('[main]\naction = defer')
    const s = plugin.backscatter.settings
    assert.equal(s.action, 'defer')
    assert.equal(s.threshold, 5)
    assert.deepEqual([...s.exemptRecipients], ['postmaster', 'abuse'])
    assert.equal(s.zones[0].lookupUrl, 'https://www.backscatterer.org/?target=test&ip={ip}')
    assert.deepEqual(s.dns.servers, [dns.server])
  })

  it('an edit takes effect without a restart', async (tc) => {
    // haraka-config's wait for an edit to settle runs on the mock clock.
    tc.after(() => mock.timers.reset())
    mock.timers.enable({ apis: ['setTimeout'] })
    const t = setup()
    t.writeIni(`[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\n[main]\naction = defer\n`)
    await editDelivered(() => t.plugin.backscatter.settings.action === 'defer')
    const conn = makeConnection(LISTED)
    await mail(t.plugin, conn, '<>')
    assert.equal((await rcpt(t.plugin, conn, 'alice@example.com')).rc, constants.DENYSOFT)
  })

  it('a reload mid-lookup does not cut off the transaction that started before it', async () => {
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => (release = resolve))
    let arrived: () => void = () => {}
    const queryArrived = new Promise<void>((resolve) => (arrived = resolve))
    handler = (q) => {
      if (q.name !== `3.2.1.45.${ZONE}`) return listedZone(q)
      arrived()
      return { a: ['127.0.0.2'], until: held }
    }
    const { plugin } = setup('', 'timeout_ms = 5000\ntries = 1')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    await queryArrived
    plugin.load_backscatter_ini()
    release()
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
    assert.deepEqual(results(conn).err, [])
  })

  const invalid: [string, string, RegExp][] = [
    [
      'non-numeric score',
      `[${ZONE}]\nscore = lots`,
      /\[ips\.backscatterer\.org\] score: "lots" is not a number; using 5/,
    ],
    [
      'bad CIDR',
      '[skip]\nips = 45.1.2.0/40',
      /\[skip\] ips: "45\.1\.2\.0\/40" is not an IP address or CIDR; ignored/,
    ],
    ['empty zone name', '[main]\nzones = ,', /\[main\] zones: no usable zone; using ips\.backscatterer\.org/],
  ]
  for (const [name, ini, line] of invalid) {
    it(`${name}: logged once at load naming the key, default used, mail still checked`, async () => {
      const { plugin, logs } = setup(ini)
      assert.equal(
        logs.filter((l) => l.level === 'logwarn' && line.test(l.text)).length,
        1,
        JSON.stringify(logs),
      )
      for (let i = 0; i < 3; i++) {
        const conn = makeConnection(LISTED)
        await mail(plugin, conn, '<>')
        assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
      }
      assert.equal(logs.filter((l) => line.test(l.text)).length, 1, 'not repeated per connection')
    })
  }

  it('an unknown action is logged at error level and refuses nothing (score)', async () => {
    const { plugin, logs } = setup('[main]\naction = drop')
    const line = /\[main\] action: "drop" is not reject, defer or score; using score/
    assert.equal(
      logs.filter((l) => l.level === 'logerror' && line.test(l.text)).length,
      1,
      JSON.stringify(logs),
    )
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
    assert.equal(results(conn).score, 5)
  })
})

describe('hooks never throw and always call next once', () => {
  it('no transaction, missing params, odd senders and recipients', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    conn.transaction = null
    const calls: unknown[] = []
    plugin.hook_mail((...a: unknown[]) => calls.push(a), conn, [])
    plugin.hook_rcpt((...a: unknown[]) => calls.push(a), conn, [])
    plugin.hook_data_post((...a: unknown[]) => calls.push(a), conn)
    const c2 = makeConnection(LISTED)
    plugin.hook_mail((...a: unknown[]) => calls.push(a), c2, [{ user: 42, host: {} }])
    plugin.hook_mail((...a: unknown[]) => calls.push(a), c2, undefined)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(calls.length, 5)
    assert.ok(
      calls.every((a) => (a as unknown[])[0] === undefined),
      'each was a plain next()',
    )
  })

  it('a connection without a remote IP is skipped', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    conn.remote.ip = undefined
    await mail(plugin, conn, '<>')
    assert.deepEqual(results(conn).skip, ['no client IP address'])
  })

  it('a client that disconnects mid-lookup leaves nothing in flight', async () => {
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => (release = resolve))
    let arrived: () => void = () => {}
    const queryArrived = new Promise<void>((resolve) => (arrived = resolve))
    handler = (q) => {
      if (q.name !== `3.2.1.45.${ZONE}`) return listedZone(q)
      arrived()
      return { a: ['127.0.0.2'], until: held }
    }
    const { plugin } = setup('', 'timeout_ms = 5000\ntries = 1')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const pending = plugin.backscatter.pending.get(conn.transaction) as { verdict: Promise<unknown> }
    const inflight = plugin.backscatter.checker.inflight as Map<string, unknown>
    await queryArrived
    assert.equal(inflight.size, 1, 'the lookup is in flight')
    conn.transaction = null // the client went away: Haraka drops the transaction
    release()
    await pending.verdict
    assert.equal(inflight.size, 0)
    assert.deepEqual(
      conn.logs.filter((l: { level: string }) => l.level === 'logerror'),
      [],
    )
  })

  it('a next() that throws is called once, not again by the error path', async () => {
    const { plugin } = setup()
    const calls: string[] = []
    const throwingNext =
      (hook: string) =>
      (...args: unknown[]): never => {
        calls.push(`${hook}:${String(args[0])}`)
        throw new Error('next failed')
      }
    const callQuietly = (hook: string, conn: unknown, params?: unknown[]): void => {
      try {
        plugin[hook](throwingNext(hook), conn, params)
      } catch {
        // A throw out of the hook is not what this test is about; a second call is.
      }
    }
    // Answered at once: an ordinary sender's recipient.
    const plain = makeConnection(LISTED)
    await mail(plugin, plain, 'alice@bounce.example')
    callQuietly('hook_rcpt', plain, [addr('bob@example.com'), []])
    // Answered after the lookup: a refused recipient, then the header after DATA.
    const listed = makeConnection(LISTED)
    await mail(plugin, listed, '<>')
    const pending = plugin.backscatter.pending.get(listed.transaction) as { verdict: Promise<unknown> }
    callQuietly('hook_rcpt', listed, [addr('alice@example.com'), []])
    callQuietly('hook_data_post', listed)
    await pending.verdict
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(calls, [
      'hook_rcpt:undefined',
      `hook_rcpt:${constants.DENY}`,
      'hook_data_post:undefined',
    ])
  })

  it('a plugin whose state is gone (shut down) lets mail pass', async () => {
    const { plugin } = setup()
    delete plugin.backscatter
    const conn = makeConnection(LISTED)
    assert.equal((await mail(plugin, conn, '<>')).rc, undefined)
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
  })
})
