// DnsblResolver against a scripted DNS server on 127.0.0.1: every answer the
// list (or a broken resolver) can give, over real UDP/TCP.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'

import { DnsblResolver, queryName } from '../lib/dns/resolver'
import { reverseIpv4, startDns, TYPE, type Script, type ScriptedDns } from './support/dns-server'
import { advance, onMockClock, STEP_MS, until } from './support/mock-clock'
import type { LookupResult } from '../lib/core/types'

const ZONE = 'bl.test'
const IP = '45.1.2.3'
const NAME = `${reverseIpv4(IP)}.${ZONE}`

// Budget tests run on a mock clock: a try's deadline passes only when the test
// moves the clock, however slow the machine. c-ares keeps its own real timer,
// so those resolvers get a timeout far beyond what a test takes in real time.
const MOCK_TIMEOUT_MS = 10_000
const MOCK_BUDGET_MS = MOCK_TIMEOUT_MS * 2

describe('queryName', () => {
  it('reverses IPv4 octets (RFC 5782 §2.1)', () => {
    assert.equal(queryName('45.1.2.3', ZONE), '3.2.1.45.bl.test')
  })
  it('reverses IPv6 nibbles (RFC 5782 §2.4)', () => {
    assert.equal(
      queryName('2001:db8::1', ZONE),
      '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test',
    )
    assert.equal(
      queryName('::ffff:7f00:2', ZONE),
      '2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test',
    )
  })
})

describe('DnsblResolver', () => {
  let dns: ScriptedDns
  let script: Script | undefined
  let resolver: DnsblResolver

  before(async () => {
    dns = await startDns((q) => (q.name === NAME ? script : undefined))
    // Generous: a retry under load would add a query to the counts the tests check.
    resolver = new DnsblResolver({ servers: [dns.server], timeoutMs: 2000, tries: 2 })
  })
  after(() => dns.close())

  const lookup = async (s: Script | undefined): Promise<{ result: LookupResult; queries: number }> => {
    script = s
    const before = dns.queries.length
    const result = await resolver.lookup(IP, ZONE)
    return { result, queries: dns.queries.length - before }
  }

  it('NXDOMAIN: not listed', async () => {
    const { result } = await lookup(undefined)
    assert.deepEqual(result, { status: 'not-listed' })
  })

  it('NOERROR without an A record: not listed', async () => {
    const { result } = await lookup({ txt: ['only a TXT'] })
    assert.deepEqual(result, { status: 'not-listed' })
  })

  it('listed: codes, TXT reason and TTL', async () => {
    const { result, queries } = await lookup({ a: ['127.0.0.2'], txt: ['Sent backscatter to us'], ttl: 1234 })
    assert.deepEqual(result, {
      status: 'listed',
      codes: ['127.0.0.2'],
      reason: 'Sent backscatter to us',
      ttlSeconds: 1234,
    })
    assert.equal(queries, 2, 'one A and one TXT query')
  })

  it('a listing whose TXT query fails keeps an empty reason', async () => {
    dns.setHandler((q) =>
      q.name === NAME ? (q.type === TYPE.TXT ? { rcode: 'SERVFAIL' } : script) : undefined,
    )
    try {
      const { result } = await lookup({ a: ['127.0.0.2'] })
      assert.deepEqual(result, { status: 'listed', codes: ['127.0.0.2'], reason: '', ttlSeconds: 300 })
    } finally {
      dns.setHandler((q) => (q.name === NAME ? script : undefined))
    }
  })

  it('SERVFAIL: error, no retry', async () => {
    const { result, queries } = await lookup({ rcode: 'SERVFAIL' })
    assert.deepEqual(result, { status: 'error', reason: 'SERVFAIL' })
    assert.equal(queries, 1)
  })

  it('REFUSED: error', async () => {
    const { result } = await lookup({ rcode: 'REFUSED' })
    assert.deepEqual(result, { status: 'error', reason: 'REFUSED' })
  })

  /** A lookup on the mock clock, through a resolver with MOCK_TIMEOUT_MS × 2. */
  const lookupOnMockClock = async (s: Script | undefined, servers = [dns.server]) => {
    script = s
    const r = new DnsblResolver({ servers, timeoutMs: MOCK_TIMEOUT_MS, tries: 2 })
    const before = dns.count(NAME)
    try {
      const { result, ms } = await onMockClock(() => r.lookup(IP, ZONE), MOCK_BUDGET_MS + 10 * STEP_MS)
      return { result, ms, queries: dns.count(NAME) - before }
    } finally {
      r.cancel()
    }
  }

  it('a silent server: error after exactly timeout × tries, each try sent', async () => {
    const { result, ms, queries } = await lookupOnMockClock({ drop: true })
    assert.deepEqual(result, { status: 'error', reason: 'timeout' })
    assert.equal(ms, MOCK_BUDGET_MS)
    assert.equal(queries, 2)
  })

  it('answers slower than the timeout count as silence', async () => {
    const never = new Promise<void>(() => undefined)
    const { result, ms } = await lookupOnMockClock({ a: ['127.0.0.2'], until: never })
    assert.deepEqual(result, { status: 'error', reason: 'timeout' })
    assert.equal(ms, MOCK_BUDGET_MS)
  })

  it('a slow TXT answer cannot stretch the lookup past its budget', async () => {
    let answerA: () => void = () => {}
    const heldA = new Promise<void>((resolve) => (answerA = resolve))
    const never = new Promise<void>(() => undefined)
    dns.setHandler((q) =>
      q.name === NAME
        ? q.type === TYPE.TXT
          ? { txt: ['late'], until: never }
          : { a: ['127.0.0.2'], until: heldA }
        : undefined,
    )
    const r = new DnsblResolver({ servers: [dns.server], timeoutMs: MOCK_TIMEOUT_MS, tries: 2 })
    const txtBefore = dns.count(NAME, TYPE.TXT)
    try {
      const { result, ms } = await onMockClock(
        () => r.lookup(IP, ZONE),
        MOCK_BUDGET_MS + 10 * STEP_MS,
        async (settled) => {
          // The A answer comes 1.5 s into the budget; the TXT query gets only what is left.
          await advance(() => false, 0, 1500)
          answerA()
          await until(() => dns.count(NAME, TYPE.TXT) > txtBefore, 'the TXT query')
          return advance(settled, 1500, MOCK_BUDGET_MS + 10 * STEP_MS)
        },
      )
      assert.deepEqual(result, { status: 'listed', codes: ['127.0.0.2'], reason: '', ttlSeconds: 300 })
      assert.equal(ms, MOCK_BUDGET_MS)
    } finally {
      r.cancel()
      dns.setHandler((q) => (q.name === NAME ? script : undefined))
    }
  })

  it('an answer outside 127/8 is an error', async () => {
    const { result } = await lookup({ a: ['62.0.58.94'] })
    assert.deepEqual(result, { status: 'error', reason: 'answer 62.0.58.94 is outside 127.0.0.0/8' })
  })

  it('127.255.255.254 (public resolver blocked) is an error', async () => {
    const { result } = await lookup({ a: ['127.255.255.254'] })
    assert.deepEqual(result, { status: 'error', reason: 'answer 127.255.255.254 is an error code' })
  })

  it('many A records are classified together', async () => {
    const a = Array.from({ length: 40 }, (_, i) => `127.0.0.${(i % 10) + 2}`)
    const { result } = await lookup({ a })
    assert.equal(result.status, 'listed')
    assert.equal((result as { codes: readonly string[] }).codes.length, 10)
  })

  it('a CNAME chain is followed to the A records', async () => {
    const { result } = await lookup({
      cname: ['a.alias.test', 'b.alias.test'],
      a: ['127.0.0.2'],
      txt: ['via alias'],
    })
    assert.deepEqual(result, { status: 'listed', codes: ['127.0.0.2'], reason: 'via alias', ttlSeconds: 300 })
  })

  it('a CNAME chain to an address outside 127/8 is an error', async () => {
    const { result } = await lookup({ cname: ['parked.example'], a: ['62.0.58.94'] })
    assert.equal(result.status, 'error')
  })

  it('huge and many TXT strings, control and non-ASCII characters: one clean, bounded reason', async () => {
    const txt = [
      ['Listed\r\nX-Injected: yes\0', 'é'.repeat(100)],
      ...Array.from({ length: 30 }, () => ['z'.repeat(255)]),
    ]
    const { result } = await lookup({ a: ['127.0.0.2'], txt })
    assert.equal(result.status, 'listed')
    const reason = (result as { reason: string }).reason
    assert.ok(reason.startsWith('Listed X-Injected: yes z'), reason.slice(0, 40))
    assert.doesNotMatch(reason, /[^\x20-\x7e]/)
    assert.ok(reason.length <= 200)
  })

  it('a truncated UDP answer is retried over TCP', async () => {
    const { result } = await lookup({ a: ['127.0.0.2'], txt: ['over tcp'], truncate: true })
    assert.equal(result.status, 'listed')
    assert.ok(
      dns.queries.some((q) => q.name === NAME && q.transport === 'tcp'),
      'a TCP query was made',
    )
  })

  it('garbage instead of a DNS message: an error within the budget', async () => {
    const { result, ms } = await lookupOnMockClock({ garbage: Buffer.from('not dns at all, not even close') })
    assert.equal(result.status, 'error')
    assert.ok(ms <= MOCK_BUDGET_MS, `settled at ${ms} ms`)
  })

  it('a short packet with a wrong ID is ignored like silence', async () => {
    const { result, ms } = await lookupOnMockClock({ garbage: Buffer.from([0, 1]) })
    assert.equal(result.status, 'error')
    assert.ok(ms <= MOCK_BUDGET_MS, `settled at ${ms} ms`)
  })

  it('a wildcard zone (everything listed) is seen as listed here; the health check catches it', async () => {
    dns.setHandler((q) => (q.name.endsWith(ZONE) ? { a: ['127.0.0.2'] } : undefined))
    try {
      const r = await resolver.lookup('127.0.0.1', ZONE)
      assert.equal(r.status, 'listed')
    } finally {
      dns.setHandler((q) => (q.name === NAME ? script : undefined))
    }
  })

  it('a resolver that refuses connections (no server on the port): error within the budget', async () => {
    const closed = await startDns(() => undefined)
    const server = closed.server
    await closed.close()
    const { result, ms } = await lookupOnMockClock(undefined, [server])
    assert.equal(result.status, 'error')
    assert.ok(ms <= MOCK_BUDGET_MS, `settled at ${ms} ms`)
  })
})

describe('DnsblResolver tries', () => {
  it('a silent server gets exactly `tries` queries, even with budget to spare', async () => {
    const silent = await startDns(() => ({ drop: true }))
    try {
      const r = new DnsblResolver({ servers: [silent.server], timeoutMs: 100, tries: 2 })
      assert.deepEqual(await r.lookup(IP, ZONE, 5000), { status: 'error', reason: 'timeout' })
      assert.equal(silent.count(NAME), 2)
    } finally {
      await silent.close()
    }
  })
})

describe('DnsblResolver with two servers, the first silent', () => {
  let silent: ScriptedDns
  let working: ScriptedDns

  before(async () => {
    silent = await startDns(() => ({ drop: true }))
    working = await startDns((q) =>
      q.name === NAME || q.name === `2.0.0.127.${ZONE}`
        ? { a: ['127.0.0.2'], txt: ['via the second'] }
        : undefined,
    )
  })
  after(async () => {
    await silent.close()
    await working.close()
  })

  // The tries left at the silent server, given up: c-ares would keep the process alive for them.
  const made: DnsblResolver[] = []
  const resolver = (options: ConstructorParameters<typeof DnsblResolver>[0]): DnsblResolver => {
    made.push(new DnsblResolver(options))
    return made[made.length - 1]!
  }
  afterEach(() => {
    for (const r of made.splice(0)) r.cancel()
  })

  /** `call` on the mock clock; its result, once no more than `limitMs` have passed. */
  const within = async <T>(limitMs: number, call: () => Promise<T>): Promise<T> => {
    const { result, ms } = await onMockClock(call, limitMs + 10 * STEP_MS)
    assert.ok(ms <= limitMs, `settled at ${ms} ms, not later than ${limitMs}`)
    return result
  }

  it('the second try goes to the second server; later queries start at the one that answered', async () => {
    const r = resolver({
      servers: [silent.server, working.server],
      timeoutMs: MOCK_TIMEOUT_MS,
      tries: 2,
    })
    assert.deepEqual(await within(MOCK_BUDGET_MS, () => r.lookup(IP, ZONE)), {
      status: 'listed',
      codes: ['127.0.0.2'],
      reason: 'via the second',
      ttlSeconds: 300,
    })
    assert.equal(silent.count(NAME), 1, 'one try at the silent server')
    assert.equal(working.count(NAME, TYPE.A), 1)
    assert.deepEqual(await r.lookup('45.9.9.9', ZONE), { status: 'not-listed' })
    assert.equal(silent.count(`9.9.9.45.${ZONE}`), 0, 'straight to the server that answered')
  })

  it('tries = 1: a lookup gets one try, a health-check probe tries every server', async () => {
    const r = resolver({
      servers: [silent.server, working.server],
      timeoutMs: MOCK_TIMEOUT_MS,
      tries: 1,
    })
    assert.deepEqual(await within(MOCK_TIMEOUT_MS, () => r.lookup('45.8.8.8', ZONE)), {
      status: 'error',
      reason: 'timeout',
    })
    assert.equal(working.count(`8.8.8.45.${ZONE}`), 0)
    const before = silent.count(`2.0.0.127.${ZONE}`)
    const probe = await within(2 * MOCK_TIMEOUT_MS, () => r.probe('127.0.0.2', ZONE))
    assert.equal(probe.status, 'listed')
    assert.equal(silent.count(`2.0.0.127.${ZONE}`) - before, 1)
    assert.equal(working.count(`2.0.0.127.${ZONE}`, TYPE.TXT), 0, 'a probe asks for no TXT')
    assert.equal((await r.lookup('45.8.8.8', ZONE)).status, 'not-listed', 'then lookups go to the second')
  })

  it('[dns] servers empty: each system nameserver gets its own tries, so a silent first one does not fail the health check', async () => {
    // The nameservers of /etc/resolv.conf, as node reads them, are injected here.
    const r = resolver({
      servers: [],
      systemServers: [silent.server, working.server],
      timeoutMs: MOCK_TIMEOUT_MS,
      tries: 1,
    })
    const before = silent.count(`2.0.0.127.${ZONE}`)
    const probe = await within(2 * MOCK_TIMEOUT_MS, () => r.probe('127.0.0.2', ZONE))
    assert.equal(probe.status, 'listed', 'the probe passes through the second')
    assert.equal(silent.count(`2.0.0.127.${ZONE}`) - before, 1, 'one try at the silent one')
    assert.equal((await r.lookup('45.7.7.7', ZONE)).status, 'not-listed')
    assert.equal(silent.count(`7.7.7.45.${ZONE}`), 0, 'lookups start at the server that answered')
  })

  it('SERVFAIL from one server: the other is asked (as c-ares does with several servers)', async () => {
    const failing = await startDns(() => ({ rcode: 'SERVFAIL' }))
    try {
      const r = new DnsblResolver({ servers: [failing.server, working.server], timeoutMs: 1000, tries: 2 })
      assert.equal((await r.lookup(IP, ZONE)).status, 'listed')
      assert.equal(failing.count(NAME), 1)
    } finally {
      await failing.close()
    }
  })
})
