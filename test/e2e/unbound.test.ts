// End to end with the recommended resolver: Debian's unbound on a loopback port
// with docs/resolver.md's stub zone, in front of rbldnsd serving the zone, and
// the plugin's [dns] servers pointing at unbound. rbldnsd's query log says what
// reached the list's server; unbound's reply log says what unbound answered
// from its cache.
import assert from 'node:assert/strict'
import { Resolver } from 'node:dns/promises'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import {
  connectWithXclient,
  headerOf,
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
import { findRbldnsd, startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import { queuedId, type SmtpClient } from '../support/smtp'
import { findUnbound, startUnbound, type Unbound } from '../support/unbound'

const LISTED = '45.5.0.1'
const UNLISTED = '45.5.0.9'
/** Asked about only once rbldnsd is gone: in no cache. */
const FRESH = '45.5.0.77'
/** What the test asks unbound directly to learn that it has given rbldnsd up. */
const PROBE = '45.5.0.250'
/** The plugin's defaults: timeout_ms × tries. */
const BUDGET_MS = 1000 * 2
const user = (name: string): string => `${name}@${LOCAL_DOMAIN}`
const nameFor = (ip: string): string => `${ip.split('.').reverse().join('.')}.${ZONE}`

/** The stub-zone port docs/resolver.md uses for rbldnsd; the test's rbldnsd has its own. */
const DOC_STUB_ADDR = '127.0.0.1@5300'

/** The fenced code blocks of a Markdown text, in order. */
function codeBlocks(markdown: string): string[] {
  const blocks: string[] = []
  let current: string[] | undefined
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) {
      if (current) blocks.push(current.join('\n'))
      current = current ? undefined : []
    } else current?.push(line)
  }
  return blocks
}

/** docs/resolver.md's unbound config, verbatim but for rbldnsd's address. */
function documentedConfig(rbldnsd: string): string {
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'resolver.md'), 'utf8')
  const block = codeBlocks(doc).find((b) => /^stub-zone:/m.test(b))
  assert.ok(block, 'docs/resolver.md shows an unbound config with a stub-zone')
  assert.equal(block.split(DOC_STUB_ADDR).length, 2, `the doc's config names ${DOC_STUB_ADDR} once`)
  return `${block.replace(DOC_STUB_ADDR, rbldnsd.replace(':', '@'))}\n`
}

const unboundBinary = findUnbound()
const skip = !unboundBinary
  ? 'unbound is not installed (Debian package unbound); the resolver advice is tested where it is'
  : !findRbldnsd()
    ? 'rbldnsd is not installed (Debian package rbldnsd); the unbound test counts queries in its log'
    : false

describe("unbound in front of rbldnsd, with docs/resolver.md's config", { skip }, () => {
  let work: string
  let zone: ZoneServer
  let unbound: Unbound
  let dep: Deployment
  let haraka: Haraka
  const clients: SmtpClient[] = []
  /** Logs of Haraka runs that were stopped. */
  const logs: string[] = []
  const plugins = ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/test', 'e2e_results']
  const start = async (): Promise<Haraka> =>
    startHaraka(dep, { plugins, backscatterIni: `[dns]\nservers = ${unbound.server}\n` })

  async function connectAs(ip: string): Promise<SmtpClient> {
    const c = await connectWithXclient(haraka.port, ip)
    clients.push(c)
    return c
  }

  /** What rbldnsd was asked about `ip`: A and TXT queries. */
  const atRbldnsd = (ip: string): { A: number; TXT: number } => ({
    A: zone.queriedFor(ip, 'A'),
    TXT: zone.queriedFor(ip, 'TXT'),
  })

  /** unbound's replies to the plugin about `ip`, as 'A:miss', 'TXT:cache' … in order. */
  const atUnbound = (ip: string): string[] =>
    unbound
      .replies()
      .filter((r) => r.name === nameFor(ip))
      .map((r) => `${r.type}:${r.cached ? 'cache' : 'miss'}`)

  before(async () => {
    work = makeWorkDir('e2e-unbound')
    zone = await startZone({ listed: [LISTED], prefer: 'rbldnsd' })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    unbound = await startUnbound(unboundBinary as string, documentedConfig(zone.server))
    console.log(`unbound on ${unbound.server}, config ${unbound.configFile}`)
    dep = await sharedDeployment(work)
    haraka = await start()
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await unbound?.close()
    await zone?.close()
    removeWorkDir(work)
  })

  test('the zone passes its health check through unbound', async () => {
    await haraka.waitForLog(
      /\[backscatter\] zone ips\.backscatterer\.org passed its RFC 5782 test-point check/,
    )
    // The plugin asked unbound, which asked rbldnsd: neither answer was cached yet.
    assert.deepEqual(atUnbound('127.0.0.2'), ['A:miss'])
    assert.deepEqual(atUnbound('127.0.0.1'), ['A:miss'])
    assert.equal(atRbldnsd('127.0.0.1').A, 1)
  })

  test('a listed bounce is refused at RCPT; a second one is answered by the plugin cache', async () => {
    const c = await connectAs(LISTED)
    for (let i = 0; i < 2; i++) {
      const r = await c.transaction({ from: '', to: [user('someone')] })
      assert.equal(r.mail.code, 250)
      assert.equal(r.rcpt[0]?.code, 550, r.rcpt[0]?.raw)
      assert.match(
        r.rcpt[0]?.raw ?? '',
        new RegExp(`^550 5\\.7\\.1 Backscatter refused: ${LISTED} is listed`),
      )
    }
    await c.quit()
    // One A and one TXT query for both transactions, at unbound and at rbldnsd.
    assert.deepEqual(atUnbound(LISTED), ['A:miss', 'TXT:miss'])
    assert.deepEqual(atRbldnsd(LISTED), { A: 1, TXT: 1 })
  })

  test('an unlisted bounce is accepted; a second one is answered by the plugin cache', async () => {
    const c = await connectAs(UNLISTED)
    for (let i = 0; i < 2; i++) {
      const r = await c.transaction({ from: '', to: [user('someone')] })
      assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
      assert.equal(r.data?.code, 250, r.data?.raw)
      const msg = await haraka.message(queuedId(r.data) ?? 'none')
      assert.equal(headerOf(msg, 'X-Haraka-Backscatter'), `score=0; listed=none; ip=${UNLISTED}`)
    }
    await c.quit()
    assert.deepEqual(atUnbound(UNLISTED), ['A:miss'])
    assert.deepEqual(atRbldnsd(UNLISTED), { A: 1, TXT: 0 })
  })

  // Listings only: the test zone has no SOA, so unbound keeps its NXDOMAIN answers
  // (127.0.0.1, unlisted IPs) just 5 s, while A and TXT answers live for their
  // 60 s TTL, longer than this test takes.
  test("after a restart the plugin's cache is empty; unbound answers listings from its cache without asking rbldnsd", async () => {
    for (const c of clients) c.close()
    await haraka.stop()
    logs.push(haraka.log())
    haraka = await start()
    // The health check again: test point 127.0.0.2 from unbound's cache.
    await haraka.waitForLog(
      /\[backscatter\] zone ips\.backscatterer\.org passed its RFC 5782 test-point check/,
    )
    await unbound.waitForReplies(nameFor('127.0.0.2'), { count: 2 })
    assert.deepEqual(atUnbound('127.0.0.2'), ['A:miss', 'A:cache'])

    const c = await connectAs(LISTED)
    const r = await c.transaction({ from: '', to: [user('someone')] })
    assert.equal(r.rcpt[0]?.code, 550, r.rcpt[0]?.raw)
    await c.quit()
    assert.deepEqual(atUnbound(LISTED), ['A:miss', 'TXT:miss', 'A:cache', 'TXT:cache'])
    assert.deepEqual(atRbldnsd(LISTED), { A: 1, TXT: 1 }, 'rbldnsd was not asked again')
  })

  test("when rbldnsd stops, unbound's SERVFAIL makes the plugin fail open within its budget", async () => {
    await zone.close()
    // Wait until unbound has given rbldnsd up: from then on it answers SERVFAIL at
    // once. (Before that it retries rbldnsd for longer than the plugin waits, and
    // the plugin's lookups end as timeouts; see docs/resolver.md.)
    const resolver = new Resolver({ timeout: 3000, tries: 1 })
    resolver.setServers([unbound.server])
    let answer = ''
    const stoppedMs = Date.now()
    for (const deadline = stoppedMs + 60_000; answer !== 'ESERVFAIL' && Date.now() < deadline;) {
      answer = await resolver.resolve4(nameFor(PROBE)).then(
        () => 'answered',
        (err: { code?: string }) => err.code ?? 'error',
      )
    }
    assert.equal(answer, 'ESERVFAIL', 'unbound answers SERVFAIL once rbldnsd is gone')
    console.log(`unbound answered SERVFAIL ${Date.now() - stoppedMs} ms after rbldnsd stopped`)

    const c = await connectAs(FRESH)
    const clientPort = c.localPort
    const startedMs = Date.now()
    const r = await c.transaction({ from: '', to: [user('someone')] })
    const elapsedMs = Date.now() - startedMs
    assert.equal(r.rcpt[0]?.code, 250, `fails open: ${r.rcpt[0]?.raw}`)
    assert.equal(r.data?.code, 250, r.data?.raw)
    // Real time passes here (a real resolver): a generous bound, far below
    // Haraka's 30 s hook timeout, that only a lookup ignoring its budget breaks.
    assert.ok(elapsedMs < BUDGET_MS + 5000, `MAIL to end of DATA took ${elapsedMs} ms`)
    const msg = await haraka.message(queuedId(r.data) ?? 'none')
    assert.equal(
      headerOf(msg, 'X-Haraka-Backscatter'),
      `score=0; listed=unknown; unchecked=${ZONE}; ip=${FRESH}`,
    )
    await c.quit()
    await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${clientPort} `))
    const results = loggedResults(haraka.log(), clientPort)
    assert.deepEqual(results[0]?.results.err, [`${ZONE}: SERVFAIL`])
    assert.deepEqual(atUnbound(FRESH), ['A:miss'])
    assert.equal(unbound.replies().find((x) => x.name === nameFor(FRESH))?.rcode, 'SERVFAIL')
  })

  test("Haraka's log has no uncaught error; the SERVFAIL is logged as the lookup's error", async () => {
    for (const c of clients) c.close()
    await haraka.waitForLog(/\[core\] disconnect ip=/, { count: 2 })
    // haraka-results logs each err result at ERROR level.
    const expected = new RegExp(`\\[ERROR\\] .*\\[backscatter\\] .*${ZONE.replace(/\./g, '\\.')}: SERVFAIL`)
    const log = haraka.log()
    assert.match(log, expected)
    const bad = uncaughtErrors([...logs, log].join('\n')).filter((l) => !expected.test(l))
    assert.deepEqual(bad, [], bad.join('\n'))
  })
})
