// End to end in Haraka's cluster mode (smtp.ini nodes=2): every worker loads the
// plugin, health-checks the zone and refuses listed bounces on its own.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import {
  headerOf,
  LOCAL_DOMAIN,
  makeWorkDir,
  processHoldingConnection,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import { queuedId, SmtpClient } from '../support/smtp'

const LISTED = '45.2.0.1'
const CONNECTIONS = 4

describe('Haraka in cluster mode (nodes=2)', () => {
  let work: string
  let zone: ZoneServer
  let haraka: Haraka
  const clients: SmtpClient[] = []

  before(async () => {
    work = makeWorkDir('e2e-cluster')
    zone = await startZone({ listed: [LISTED] })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    const dep = await sharedDeployment(work)
    haraka = await startHaraka(dep, {
      nodes: 2,
      plugins: ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/test', 'e2e_results'],
      backscatterIni: `[dns]\nservers = ${zone.server}\n`,
    })
  })

  after(async () => {
    for (const c of clients) c.close()
    await haraka?.stop()
    await zone?.close()
    removeWorkDir(work)
  })

  test('two workers start, and each loads the plugin and finds the zone healthy', async () => {
    assert.equal(haraka.workers.length, 2, haraka.log())
    await haraka.waitForLog(/\[server\] worker \d listening on 127\.0\.0\.1:/, { count: 2 })
    // The master loads the plugins too, so at least three loads and checks.
    await haraka.waitForLog(
      /\[backscatter\] checking bounces against ips\.backscatterer\.org \(by DNS through \S+\); a recipient is rejected with 550/,
      {
        count: 3,
      },
    )
    // Only the workers handle mail, so only they check the zone; the master does not.
    const healthy = /\[backscatter\] zone ips\.backscatterer\.org passed its RFC 5782 test-point check/
    await haraka.waitForLog(healthy, { count: 2 })
    await new Promise((r) => setTimeout(r, 500))
    const lines = haraka
      .log()
      .split('\n')
      .filter((l) => healthy.test(l))
    assert.equal(lines.length, 2, haraka.log())
  })

  test('listed bounces are refused per recipient by both workers', async () => {
    const holders: number[] = []
    // Open every connection first: Node's cluster hands them to the workers in turn.
    for (let i = 0; i < CONNECTIONS; i++) {
      const c = await SmtpClient.connect(haraka.port)
      clients.push(c)
      assert.equal(c.greeting?.code, 220)
      const pid = processHoldingConnection(haraka.workers, haraka.port, c.localPort)
      if (pid !== undefined) holders.push(pid)
    }
    for (const c of clients) {
      await c.ehlo()
      assert.equal((await c.xclient(LISTED)).code, 220)
      const r = await c.transaction({
        from: '',
        to: [`someone@${LOCAL_DOMAIN}`, `postmaster@${LOCAL_DOMAIN}`],
      })
      assert.equal(r.mail.code, 250)
      assert.deepEqual(
        r.rcpt.map((x) => x.code),
        [550, 250],
        r.rcpt.map((x) => x.raw).join('\n'),
      )
      assert.match(
        r.rcpt[0]?.raw ?? '',
        /^550 5\.7\.1 Backscatter refused: 45\.2\.0\.1 is listed on ips\.backscatterer\.org/,
      )
      assert.equal(r.data?.code, 250, r.data?.raw)
      const msg = await haraka.message(queuedId(r.data) ?? 'none')
      assert.equal(headerOf(msg, 'X-Haraka-Backscatter'), `score=5; listed=${ZONE}; ip=${LISTED}`)
    }
    const distinct = [...new Set(holders)].sort()
    if (holders.length === CONNECTIONS) {
      console.log(
        `connections held by worker pids ${holders.join(', ')} (workers ${haraka.workers.join(', ')})`,
      )
      assert.deepEqual(distinct, [...haraka.workers].sort(), 'both workers served connections')
    } else {
      console.log('/proc does not show which worker holds a socket here; worker spread not checked')
    }
    // Each worker has its own cache, so each asked the zone about the host once at most.
    const lookups = zone.queriedFor(LISTED, 'A')
    assert.ok(lookups >= 1 && lookups <= 2, `A lookups: ${lookups}`)
    if (distinct.length === 2) assert.equal(lookups, 2, 'one lookup per worker')
    for (const c of clients) await c.quit()
  })

  test("the cluster's log has no uncaught error", async () => {
    for (const c of clients) c.close()
    await haraka.waitForLog(/\[core\] disconnect ip=/, { count: CONNECTIONS })
    const bad = uncaughtErrors(haraka.log())
    assert.deepEqual(bad, [], bad.join('\n'))
  })
})
