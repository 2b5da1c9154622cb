// The plugin as Haraka loads it (haraka-test-fixtures), with the package's
// config/ as defaults and a deployment override, against a scripted DNS server
// on 127.0.0.1: which bounces are looked up, when, and what the answers count
// for; hooks that never throw. One describe block per behaviour. What the
// client and later plugins see: plugin-outcome.test.ts; the config: plugin-config.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { queryName } from '../lib/dns/resolver'
import { addr, constants, mail, makeConnection, rcpt, results } from './support/harness'
import { dnsblZone, TYPE, type Handler } from './support/dns-server'
import { onMockClock } from './support/mock-clock'
import { CLEAN, LISTED, listedZone, pluginTests, ZONE } from './support/plugin-tests'

const fx = pluginTests()
const { setup, clientQueries, queriesFor } = fx

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
    const before = fx.dns.count(`3.2.1.45.${ZONE}`, TYPE.A)
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, 'alice@bounce.example')
    assert.equal(plugin.backscatter.pending.get(conn.transaction), undefined, 'no check started')
    assert.equal((await rcpt(plugin, conn, 'bob@example.com')).rc, undefined)
    // A bounce from the same host afterwards: its query is the first one for the IP.
    const bounce = makeConnection(LISTED)
    await mail(plugin, bounce, '<>')
    await plugin.backscatter.pending.get(bounce.transaction).verdict
    assert.equal(fx.dns.count(`3.2.1.45.${ZONE}`, TYPE.A) - before, 1, 'only the bounce was looked up')
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
    fx.handler = (q) => (q.name === `3.2.1.10.${ZONE}` ? { a: ['127.0.0.2'] } : listedZone(q))
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
    fx.handler = (q) => (q.name === name ? { a: ['127.0.0.2'] } : listedZone(q))
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
    fx.handler = (q) => {
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
    fx.handler = (q) =>
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
    const before = fx.dns.count(`3.2.1.45.${ZONE}`, TYPE.TXT)
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'alice@example.com')
    assert.match(r.text, /\(Listed, backscatter seen 2026-11-27\)/)
    assert.equal(fx.dns.count(`3.2.1.45.${ZONE}`, TYPE.TXT) - before, 1)
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
      fx.handler = (q) => (q.name === `7.8.9.45.${ZONE}` ? c.script(q) : listedZone(q))
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
    fx.handler = (q) =>
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
    const { arrived: queryArrived, release } = fx.holdListed()
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
