// End to end: /metrics of a real Haraka with the packed plugin, single process and
// in cluster mode (nodes=2), after a known mix of mail. The exposition must give
// exactly the mix's counts, pass promtool, and name no client address.
import assert from 'node:assert/strict'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import {
  PROMTOOL,
  promtoolCheck,
  readExposition,
  recipientCounts,
  valueOf,
  type Sample,
} from '../support/exposition'
import {
  connectWithXclient,
  createDeployment,
  freeTcpPort,
  LOCAL_DOMAIN,
  makeWorkDir,
  packPlugin,
  processHoldingConnection,
  removeWorkDir,
  startHaraka,
  uncaughtErrors,
  type Deployment,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'
import type { SmtpClient } from '../support/smtp'

const P = 'haraka_backscatter_'
const LISTED = ['45.3.0.1', '45.3.0.2', '45.3.0.3']
const UNLISTED = ['45.4.0.1', '45.4.0.2', '45.4.0.3']
const PLUGINS = ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/test', 'e2e_results']
const user = (name: string): string => `${name}@${LOCAL_DOMAIN}`
const NO_PROMTOOL = 'promtool not installed (Debian package prometheus)'

async function scrape(port: number): Promise<{ text: string; samples: Sample[]; contentType: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  const text = await res.text()
  assert.equal(res.status, 200, text)
  return { text, samples: readExposition(text), contentType: res.headers.get('content-type') ?? '' }
}

/** The RCPT reply codes of one transaction. */
async function send(c: SmtpClient, from: string, to: string[]): Promise<number[]> {
  const r = await c.transaction({ from, to })
  assert.equal(r.mail.code, 250, r.mail.raw)
  return r.rcpt.map((x) => x.code)
}

/**
 * The known mix, each connection opened first so that a cluster spreads them
 * over its workers. Every client address is looked up once, except one that a
 * second transaction on the same connection (so the same worker) asks again.
 */
async function sendKnownMix(haraka: Haraka): Promise<number[]> {
  const [l1, l2, l3] = await Promise.all(LISTED.map((ip) => connectWithXclient(haraka.port, ip)))
  const [u1, u2, u3] = await Promise.all(UNLISTED.map((ip) => connectWithXclient(haraka.port, ip)))
  const all = [l1, l2, l3, u1, u2, u3] as SmtpClient[]
  const holders = all.map((c) => processHoldingConnection(haraka.workers, haraka.port, c.localPort))
  try {
    const [c1, c2, c3, c4, c5, c6] = all as [
      SmtpClient,
      SmtpClient,
      SmtpClient,
      SmtpClient,
      SmtpClient,
      SmtpClient,
    ]
    // Listed bounces: refused, except to postmaster and abuse.
    assert.deepEqual(await send(c1, '', [user('one'), user('postmaster')]), [550, 250])
    assert.deepEqual(await send(c1, '', [user('two')]), [550], 'the same client again: from the cache')
    assert.deepEqual(await send(c2, '', [user('three'), user('abuse')]), [550, 250])
    // Unlisted bounces (one from postmaster@, a bounce-type sender too).
    assert.deepEqual(await send(c4, '', [user('four'), user('postmaster')]), [250, 250])
    assert.deepEqual(await send(c5, `postmaster@sender.example`, [user('five')]), [250])
    // Ordinary mail, from a listed client and an unlisted one: never looked up.
    assert.deepEqual(await send(c3, 'someone@sender.example', [user('six')]), [250])
    assert.deepEqual(await send(c6, 'someone@sender.example', [user('seven')]), [250])
    for (const c of all) await c.quit()
    return holders.filter((pid) => pid !== undefined)
  } finally {
    for (const c of all) c.close()
  }
}

describe('metrics of a real Haraka with the plugin installed from its npm tarball', () => {
  let work: string
  let zone: ZoneServer
  let dep: Deployment

  before(async () => {
    work = makeWorkDir('e2e-metrics')
    zone = await startZone({ listed: LISTED })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    dep = await createDeployment(await packPlugin(path.join(work, 'pack')), work)
    if (!PROMTOOL) console.log(`${NO_PROMTOOL}: the expositions are only read, not checked by promtool`)
  })

  after(async () => {
    await zone?.close()
    removeWorkDir(work)
  })

  for (const nodes of [0, 2]) {
    describe(
      nodes ? 'cluster mode (nodes=2): the master serves the sum of its workers' : 'single process',
      () => {
        let haraka: Haraka
        let metricsPort: number

        before(async () => {
          metricsPort = await freeTcpPort()
          haraka = await startHaraka(dep, {
            nodes,
            plugins: PLUGINS,
            backscatterIni: `[dns]\nservers = ${zone.server}\n\n[metrics]\nlisten = ${metricsPort}\n`,
          })
          await haraka.waitForLog(
            new RegExp(
              `\\[backscatter\\] metrics: serving http://127\\.0\\.0\\.1:${metricsPort}/metrics \\(loopback only\\)`,
            ),
          )
          // Every process that handles mail has checked the zone, so zone_usable is settled.
          await haraka.waitForLog(
            /\[backscatter\] zone ips\.backscatterer\.org passed its RFC 5782 test-point check/,
            {
              count: Math.max(nodes, 1),
            },
          )
        })

        after(async () => {
          await haraka?.stop()
        })

        test('before any mail: recipients and BATV at 0, no lookups, the zone usable', async () => {
          const { samples, contentType } = await scrape(metricsPort)
          assert.match(contentType, /^text\/plain; version=0\.0\.4/)
          for (const decision of ['accepted', 'refused', 'deferred', 'exempt']) {
            assert.equal(valueOf(samples, `${P}recipients_total`, { decision }), 0, decision)
          }
          assert.equal(valueOf(samples, `${P}batv_total`, { result: 'signed' }), 0)
          assert.deepEqual(
            samples.filter((s) => s.name === `${P}lookups_total`),
            [],
          )
          assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 1)
          assert.equal(valueOf(samples, `${P}cache_entries`), 0)
        })

        test('after the known mix: exactly its counts', async () => {
          const looked = [...LISTED.slice(0, 2), ...UNLISTED.slice(0, 2)]
          const askedBefore = looked.map((ip) => zone.queriedFor(ip, 'A'))
          const holders = await sendKnownMix(haraka)
          if (nodes && holders.length === 6) {
            assert.equal(new Set(holders).size, 2, `both workers served connections: ${holders.join(', ')}`)
          } else if (nodes) {
            console.log('/proc does not show which worker holds a socket here; worker spread not checked')
          }
          const { samples } = await scrape(metricsPort)
          const lookups = samples
            .filter((s) => s.name === `${P}lookups_total`)
            .map((s) => `${s.labels.zone} ${s.labels.outcome} ${s.labels.source} ${s.value}`)
            .sort()
          assert.deepEqual(lookups, [
            `${ZONE} listed cache 1`,
            `${ZONE} listed dns 2`,
            `${ZONE} not_listed dns 2`,
          ])
          assert.deepEqual(recipientCounts(samples), { accepted: 2, refused: 3, deferred: 0, exempt: 3 })
          assert.equal(
            valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }),
            4,
            'cache hits not timed',
          )
          assert.equal(valueOf(samples, `${P}lookup_seconds_bucket`, { zone: ZONE, le: '+Inf' }), 4)
          assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 1)
          // One cached answer per client looked up, in whichever worker asked.
          assert.equal(valueOf(samples, `${P}cache_entries`), 4)
          assert.equal(valueOf(samples, `${P}batv_total`, { result: 'valid' }), 0)
          // The zone was asked once per client looked up (the cache answered the repeat).
          const asked = looked.map((ip, i) => zone.queriedFor(ip, 'A') - (askedBefore[i] ?? 0))
          assert.deepEqual(asked, [1, 1, 1, 1])
        })

        test(
          'the exposition passes promtool check metrics',
          { skip: PROMTOOL ? false : NO_PROMTOOL },
          async () => {
            const { text } = await scrape(metricsPort)
            assert.deepEqual(promtoolCheck(text), { status: 0, output: '' })
          },
        )

        test('no client address and no mail address appears in the exposition', async () => {
          const { text } = await scrape(metricsPort)
          for (const ip of [...LISTED, ...UNLISTED]) assert.ok(!text.includes(ip), `${ip} in the exposition`)
          assert.ok(!text.includes('@') && !text.includes(LOCAL_DOMAIN) && !text.includes('sender.example'))
        })

        test('only /metrics is served, and only on loopback', async () => {
          assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404)
          // Nothing listens on the port at another address of this host.
          const other = await new Promise<boolean>((resolve) => {
            const sock = net.connect({ host: '127.0.0.2', port: metricsPort })
            sock.once('connect', () => {
              sock.destroy()
              resolve(true)
            })
            sock.once('error', () => resolve(false))
          })
          assert.equal(other, false, '127.0.0.2 reached the endpoint: it is not bound to 127.0.0.1 alone')
        })

        test('the log has no uncaught error', () => {
          const bad = uncaughtErrors(haraka.log())
          assert.deepEqual(bad, [], bad.join('\n'))
        })
      },
    )
  }

  describe('the metrics port already in use', () => {
    test('one error line, and Haraka and the mail go on', async () => {
      const held = net.createServer()
      await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve))
      const { port } = held.address() as net.AddressInfo
      let haraka: Haraka | undefined
      try {
        haraka = await startHaraka(dep, {
          plugins: PLUGINS,
          backscatterIni: `[dns]\nservers = ${zone.server}\n\n[metrics]\nlisten = 127.0.0.1:${port}\n`,
        })
        const lines = await haraka.waitForLog(/\[backscatter\] metrics: /)
        const c = await connectWithXclient(haraka.port, LISTED[2] as string)
        try {
          assert.deepEqual(await send(c, '', [user('eight'), user('postmaster')]), [550, 250])
          await c.quit()
        } finally {
          c.close()
        }
        const metricsLines = haraka
          .log()
          .split('\n')
          .filter((l) => l.includes('[backscatter] metrics: '))
        assert.equal(metricsLines.length, 1, metricsLines.join('\n'))
        assert.match(
          lines[0] ?? '',
          new RegExp(
            `\\[ERROR\\].*metrics: cannot serve /metrics on 127\\.0\\.0\\.1:${port}: the port is already in use \\(EADDRINUSE\\); Haraka and the mail go on without metrics$`,
          ),
        )
      } finally {
        await haraka?.stop()
        await new Promise<void>((r) => held.close(() => r()))
      }
    })
  })
})
