// The metrics: what the recorder counts, what a scrape shows, where /metrics is
// served, and the cluster master's sum of its workers' counts.
import assert from 'node:assert/strict'
import cluster from 'node:cluster'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'

import { BackscatterMetrics, LOOKUP_SECONDS_BUCKETS, METRIC_PREFIX } from '../lib/metrics/metrics'
import { clusterExposition, processExposition } from '../lib/metrics/cluster'
import { formatListen, isLoopback, parseListen } from '../lib/settings/listen'
import { MetricsEndpoint, type Exposition } from '../lib/metrics/server'
import { startDns, dnsblZone, type ScriptedDns } from './support/dns-server'
import {
  PROMTOOL,
  promtoolCheck,
  readExposition,
  recipientCounts,
  valueOf,
  type Sample,
} from './support/exposition'
import {
  constants,
  mail,
  makeConnection,
  makeTestPlugin,
  nextReload,
  rcpt,
  type TestPlugin,
} from './support/harness'
import type { ListenAddress } from '../lib/core/types'

const ZONE = 'ips.backscatterer.org'
const FILE_ZONE = 'mirror.example'
const P = METRIC_PREFIX

async function scrape(metrics: BackscatterMetrics): Promise<{ text: string; samples: Sample[] }> {
  const text = await metrics.exposition()
  return { text, samples: readExposition(text) }
}

/** A known mix: 3 listed (1 from DNS, 2 cached), 2 clean from DNS, 1 error, 1 skipped; a file zone. */
function knownMix(m: BackscatterMetrics): void {
  m.lookup(ZONE, 'listed', 'dns', 0.003)
  m.lookup(ZONE, 'listed', 'cache')
  m.lookup(ZONE, 'listed', 'cache')
  m.lookup(ZONE, 'not-listed', 'dns', 0.0004)
  m.lookup(ZONE, 'not-listed', 'dns', 0.02)
  m.lookup(ZONE, 'error', 'dns', 1.5)
  m.lookup(ZONE, 'skipped', 'dns')
  m.lookup(FILE_ZONE, 'listed', 'file', 0.00002)
  for (const d of ['refused', 'refused', 'exempt', 'accepted', 'deferred', 'accepted', 'accepted'] as const) {
    m.recipient(d)
  }
  m.batv('signed')
  m.observeState(() => ({
    zones: [
      { zone: ZONE, usable: true },
      {
        zone: FILE_ZONE,
        usable: false,
        entries: 1234,
        loadedAtSeconds: 1_764_330_649.5,
        fileTimestampSeconds: 1_764_330_000,
      },
    ],
    cacheEntries: 17,
  }))
}

describe('recorder: the counts a scrape shows', () => {
  it('lookups by zone, outcome and source, exactly', async () => {
    const m = new BackscatterMetrics()
    knownMix(m)
    const { samples } = await scrape(m)
    const lookups = samples.filter((s) => s.name === `${P}lookups_total`)
    assert.deepEqual(
      lookups.map((s) => `${s.labels.zone} ${s.labels.outcome} ${s.labels.source} ${s.value}`).sort(),
      [
        `${FILE_ZONE} listed file 1`,
        `${ZONE} error dns 1`,
        `${ZONE} listed cache 2`,
        `${ZONE} listed dns 1`,
        `${ZONE} not_listed dns 2`,
        `${ZONE} skipped dns 1`,
      ].sort(),
    )
  })

  it('recipients by decision and BATV results, every value shown from zero', async () => {
    const m = new BackscatterMetrics()
    let { samples } = await scrape(m)
    for (const decision of ['accepted', 'refused', 'deferred', 'exempt']) {
      assert.equal(valueOf(samples, `${P}recipients_total`, { decision }), 0, decision)
    }
    for (const result of ['signed', 'valid', 'invalid', 'missing']) {
      assert.equal(valueOf(samples, `${P}batv_total`, { result }), 0, result)
    }
    knownMix(m)
    ;({ samples } = await scrape(m))
    const recipients = { accepted: 3, refused: 2, deferred: 1, exempt: 1 }
    for (const [decision, n] of Object.entries(recipients)) {
      assert.equal(valueOf(samples, `${P}recipients_total`, { decision }), n, decision)
    }
    assert.equal(valueOf(samples, `${P}batv_total`, { result: 'signed' }), 1)
    assert.equal(valueOf(samples, `${P}batv_total`, { result: 'valid' }), 0)
  })

  it('lookup_seconds: DNS and file lookups in cumulative buckets; cached answers and skips not counted', async () => {
    const m = new BackscatterMetrics()
    knownMix(m)
    const { samples } = await scrape(m)
    const bucket = (zone: string, le: string): number | undefined =>
      valueOf(samples, `${P}lookup_seconds_bucket`, { zone, le })
    assert.equal(valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }), 4)
    assert.ok(Math.abs((valueOf(samples, `${P}lookup_seconds_sum`, { zone: ZONE }) ?? 0) - 1.5234) < 1e-9)
    assert.equal(bucket(ZONE, '0.0001'), 0)
    assert.equal(bucket(ZONE, '0.0005'), 1)
    assert.equal(bucket(ZONE, '0.005'), 2)
    assert.equal(bucket(ZONE, '0.025'), 3)
    assert.equal(bucket(ZONE, '1'), 3)
    assert.equal(bucket(ZONE, '2.5'), 4)
    assert.equal(bucket(ZONE, '+Inf'), 4)
    assert.equal(bucket(FILE_ZONE, '0.0001'), 1)
    assert.equal(valueOf(samples, `${P}lookup_seconds_count`, { zone: FILE_ZONE }), 1)
    const les = samples.filter((s) => s.name === `${P}lookup_seconds_bucket` && s.labels.zone === ZONE)
    assert.deepEqual(
      les.map((s) => s.labels.le),
      [...LOOKUP_SECONDS_BUCKETS.map(String), '+Inf'],
    )
  })

  it('a value on a bucket bound counts in that bucket (le is "less or equal")', async () => {
    const m = new BackscatterMetrics()
    m.lookup(ZONE, 'not-listed', 'dns', 0.005)
    const { samples } = await scrape(m)
    assert.equal(valueOf(samples, `${P}lookup_seconds_bucket`, { zone: ZONE, le: '0.0025' }), 0)
    assert.equal(valueOf(samples, `${P}lookup_seconds_bucket`, { zone: ZONE, le: '0.005' }), 1)
  })

  it('gauges read the state when scraped: zone usable, file zone entries, cache entries', async () => {
    const m = new BackscatterMetrics()
    let usable = false
    let zones = [ZONE, FILE_ZONE]
    m.observeState(() => ({
      zones: zones.map((zone) => ({ zone, usable, ...(zone === FILE_ZONE ? { entries: 10 } : {}) })),
      cacheEntries: usable ? 5 : 0,
    }))
    let { samples } = await scrape(m)
    assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 0)
    assert.equal(valueOf(samples, `${P}zone_entries`, { zone: FILE_ZONE }), 10)
    assert.equal(valueOf(samples, `${P}zone_entries`, { zone: ZONE }), undefined, 'a DNS zone has no entries')
    assert.equal(valueOf(samples, `${P}cache_entries`), 0)
    usable = true
    zones = [ZONE]
    ;({ samples } = await scrape(m))
    assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 1)
    assert.equal(
      valueOf(samples, `${P}zone_usable`, { zone: FILE_ZONE }),
      undefined,
      'a zone no longer configured',
    )
    assert.equal(valueOf(samples, `${P}zone_entries`, { zone: FILE_ZONE }), undefined)
    assert.equal(valueOf(samples, `${P}cache_entries`), 5)
  })

  it('zone file gauges: when its data was loaded, and its $TIMESTAMP where it has one', async () => {
    const m = new BackscatterMetrics()
    let stamped = true
    m.observeState(() => ({
      zones: [
        { zone: ZONE, usable: true },
        {
          zone: FILE_ZONE,
          usable: true,
          entries: 10,
          loadedAtSeconds: 1_764_330_649.5,
          ...(stamped ? { fileTimestampSeconds: 1_764_330_000 } : {}),
        },
      ],
      cacheEntries: 0,
    }))
    let { samples } = await scrape(m)
    assert.equal(
      valueOf(samples, `${P}zone_file_loaded_timestamp_seconds`, { zone: FILE_ZONE }),
      1_764_330_649.5,
    )
    assert.equal(valueOf(samples, `${P}zone_file_data_timestamp_seconds`, { zone: FILE_ZONE }), 1_764_330_000)
    assert.equal(valueOf(samples, `${P}zone_file_loaded_timestamp_seconds`, { zone: ZONE }), undefined)
    stamped = false
    ;({ samples } = await scrape(m))
    assert.equal(valueOf(samples, `${P}zone_file_data_timestamp_seconds`, { zone: FILE_ZONE }), undefined)
  })

  it('label names are fixed per metric, and no label value is an IP address or an e-mail address', async () => {
    const m = new BackscatterMetrics()
    knownMix(m)
    const { samples } = await scrape(m)
    const names = new Map<string, Set<string>>()
    for (const s of samples) {
      const family = s.name.replace(/_(bucket|sum|count)$/, '')
      const set = names.get(family) ?? new Set<string>()
      for (const k of Object.keys(s.labels)) set.add(k)
      names.set(family, set)
      for (const v of Object.values(s.labels)) {
        assert.equal(net.isIP(v), 0, `${s.name} has an IP label value ${v}`)
        assert.ok(!v.includes('@'), `${s.name} has an address label value ${v}`)
      }
    }
    assert.deepEqual(Object.fromEntries([...names].map(([k, v]) => [k, [...v].sort()])), {
      [`${P}lookups_total`]: ['outcome', 'source', 'zone'],
      [`${P}recipients_total`]: ['decision'],
      [`${P}batv_total`]: ['result'],
      [`${P}lookup_seconds`]: ['le', 'zone'],
      [`${P}zone_usable`]: ['zone'],
      [`${P}zone_entries`]: ['zone'],
      [`${P}zone_file_loaded_timestamp_seconds`]: ['zone'],
      [`${P}zone_file_data_timestamp_seconds`]: ['zone'],
      [`${P}cache_entries`]: [],
    })
  })

  it(
    'the exposition passes promtool check metrics',
    { skip: PROMTOOL ? false : 'promtool not installed (Debian package prometheus)' },
    async () => {
      const m = new BackscatterMetrics()
      const empty = promtoolCheck(await m.exposition())
      assert.deepEqual(empty, { status: 0, output: '' }, 'nothing counted yet')
      knownMix(m)
      const full = promtoolCheck(await m.exposition())
      assert.deepEqual(full, { status: 0, output: '' }, 'after the known mix')
    },
  )

  it(
    'promtool does catch a bad exposition (the check can fail)',
    { skip: PROMTOOL ? false : 'promtool not installed (Debian package prometheus)' },
    () => {
      const bad = promtoolCheck('# TYPE x counter\nx{zone="a" 1\n')
      assert.notEqual(bad.status, 0, bad.output)
    },
  )
})

describe('listen setting: loopback unless another address is written out', () => {
  const ok = (text: string): ListenAddress | undefined => {
    const r = parseListen(text)
    assert.ok('address' in r, `${text}: ${'why' in r ? r.why : ''}`)
    return r.address
  }
  const why = (text: string): string => {
    const r = parseListen(text)
    assert.ok('why' in r, `${text} was accepted`)
    return r.why
  }

  it('empty is off', () => {
    assert.equal(ok(''), undefined)
    assert.equal(ok('   '), undefined)
  })

  it('a bare port is 127.0.0.1; localhost is 127.0.0.1', () => {
    assert.deepEqual(ok('9100'), { host: '127.0.0.1', port: 9100 })
    assert.deepEqual(ok('localhost:9101'), { host: '127.0.0.1', port: 9101 })
  })

  it('explicit addresses are taken as written, IPv6 in brackets', () => {
    assert.deepEqual(ok('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 })
    assert.deepEqual(ok('192.0.2.10:9100'), { host: '192.0.2.10', port: 9100 })
    assert.deepEqual(ok('[::1]:9100'), { host: '::1', port: 9100 })
    assert.deepEqual(ok('[::]:9100'), { host: '::', port: 9100 })
    assert.equal(formatListen({ host: '::1', port: 9100 }), '[::1]:9100')
  })

  it('an empty host (":9100", "[]:9100") is refused: every interface must be written out', () => {
    assert.match(why(':9100'), /names no address: write 127\.0\.0\.1:9100, or 0\.0\.0\.0:9100/)
    assert.match(why('[]:9100'), /names no address/)
  })

  it('names, bad ports and unbracketed IPv6 are refused', () => {
    assert.match(why('metrics.example.com:9100'), /not an IP address/)
    assert.match(why('0'), /not PORT, IP:PORT/)
    assert.match(why('65536'), /not PORT, IP:PORT/)
    assert.match(why('127.0.0.1'), /not PORT, IP:PORT/)
    assert.match(why('::1:9100'), /not PORT, IP:PORT/)
    assert.match(why('[127.0.0.1]:9100'), /not an IP address/)
  })

  it('isLoopback', () => {
    assert.ok(isLoopback('127.0.0.1') && isLoopback('127.3.2.1') && isLoopback('::1'))
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('::') && !isLoopback('192.0.2.1'))
  })
})

/** A TCP port on 127.0.0.1 held open by a plain server until release(). */
async function holdPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as net.AddressInfo
  return { port, release: () => new Promise<void>((r) => srv.close(() => r())) }
}

async function freePort(): Promise<number> {
  const held = await holdPort()
  await held.release()
  return held.port
}

interface Logged {
  info: string[]
  error: string[]
}

function endpointFor(exposition: Exposition): { endpoint: MetricsEndpoint; logged: Logged } {
  const logged: Logged = { info: [], error: [] }
  const endpoint = new MetricsEndpoint(exposition, {
    info: (msg) => logged.info.push(msg),
    error: (msg) => logged.error.push(msg),
  })
  return { endpoint, logged }
}

describe('the /metrics endpoint', () => {
  const endpoints: MetricsEndpoint[] = []
  after(async () => {
    for (const e of endpoints) await e.close()
  })

  it('serves the exposition on a bare port, bound to 127.0.0.1 only', async () => {
    const m = new BackscatterMetrics()
    knownMix(m)
    const { endpoint, logged } = endpointFor(processExposition(m.registry))
    endpoints.push(endpoint)
    const port = await freePort()
    const parsed = parseListen(String(port))
    assert.ok('address' in parsed)
    await endpoint.listen(parsed.address)
    assert.deepEqual(endpoint.listening, { host: '127.0.0.1', port })
    assert.deepEqual(logged.info, [`metrics: serving http://127.0.0.1:${port}/metrics (loopback only)`])
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    const samples = readExposition(await res.text())
    assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'refused' }), 2)
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405)
    await endpoint.close()
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'closed')
  })

  it('a non-loopback address written out is used, and the log says so', async () => {
    const { endpoint, logged } = endpointFor(processExposition(new BackscatterMetrics().registry))
    endpoints.push(endpoint)
    const port = await freePort()
    await endpoint.listen({ host: '0.0.0.0', port })
    assert.deepEqual(endpoint.listening, { host: '0.0.0.0', port })
    assert.deepEqual(logged.info, [
      `metrics: serving http://0.0.0.0:${port}/metrics (NOT loopback: reachable from the network)`,
    ])
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200)
    await endpoint.close()
  })

  it('a port in use: one error line, no exception, and nothing served', async () => {
    const held = await holdPort()
    const { endpoint, logged } = endpointFor(processExposition(new BackscatterMetrics().registry))
    endpoints.push(endpoint)
    await endpoint.listen({ host: '127.0.0.1', port: held.port })
    assert.deepEqual(logged.error, [
      `metrics: cannot serve /metrics on 127.0.0.1:${held.port}: the port is already in use (EADDRINUSE); ` +
        'Haraka and the mail go on without metrics',
    ])
    assert.deepEqual(logged.info, [])
    assert.equal(endpoint.listening, undefined)
    await held.release()
    // The same endpoint serves once a reload names a port it can bind.
    const port = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port })
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200)
    assert.equal(logged.error.length, 1)
    await endpoint.close()
  })

  it('a reload that changes the address moves the endpoint; the same address keeps it', async () => {
    const { endpoint, logged } = endpointFor(processExposition(new BackscatterMetrics().registry))
    endpoints.push(endpoint)
    const first = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port: first })
    await endpoint.listen({ host: '127.0.0.1', port: first })
    assert.equal(logged.info.length, 1, 'not re-opened for the same address')
    const second = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port: second })
    await assert.rejects(fetch(`http://127.0.0.1:${first}/metrics`))
    assert.equal((await fetch(`http://127.0.0.1:${second}/metrics`)).status, 200)
    await endpoint.listen(undefined)
    assert.equal(endpoint.listening, undefined)
    await assert.rejects(fetch(`http://127.0.0.1:${second}/metrics`))
  })

  it('scrapes arriving together share one rendering; a failed one answers 503', async () => {
    let renders = 0
    let finish: (text: string) => void = () => undefined
    let fail = false
    const { endpoint } = endpointFor({
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      render: () => {
        renders++
        if (fail) return Promise.reject(new Error('Operation timed out.'))
        return new Promise<string>((resolve) => (finish = resolve))
      },
    })
    endpoints.push(endpoint)
    const port = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port })
    const url = `http://127.0.0.1:${port}/metrics`
    const first = fetch(url)
    const second = fetch(url)
    while (endpoint.scrapesWaiting < 2) await new Promise((r) => setImmediate(r))
    finish('x_total 1\n')
    const bodies = await Promise.all([first, second].map(async (p) => (await p).text()))
    assert.deepEqual(bodies, ['x_total 1\n', 'x_total 1\n'])
    assert.equal(renders, 1)
    fail = true
    const failed = await fetch(url)
    assert.equal(failed.status, 503)
    assert.equal(await failed.text(), 'metrics unavailable: Operation timed out.\n')
    await endpoint.close()
  })
})

describe('cluster: one scrape of the master sums its workers', () => {
  it(
    'counters and cache entries summed, zone_usable the minimum, zone_entries the maximum',
    { timeout: 60_000 },
    async () => {
      cluster.setupPrimary({
        exec: path.join(__dirname, 'support', 'metrics-worker.ts'),
        execArgv: ['--import', 'tsx'],
        silent: false,
      })
      const exposition = clusterExposition()
      const workers = [0, 1].map((i) => cluster.fork({ METRICS_WORKER: String(i) }))
      try {
        await Promise.all(
          workers.map(
            (w) =>
              new Promise<void>((resolve) => w.on('message', (msg: unknown) => msg === 'ready' && resolve())),
          ),
        )
        const text = await exposition.render()
        const samples = readExposition(text)
        // Worker i counted i+1 listed DNS lookups and 2 refused recipients.
        assert.equal(
          valueOf(samples, `${P}lookups_total`, { zone: ZONE, outcome: 'listed', source: 'dns' }),
          3,
        )
        assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'refused' }), 4)
        assert.equal(valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }), 3)
        assert.equal(valueOf(samples, `${P}cache_entries`), 1 + 2)
        assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 0, 'usable only in worker 1')
        assert.equal(valueOf(samples, `${P}zone_entries`, { zone: FILE_ZONE }), 101)
        if (PROMTOOL) assert.deepEqual(promtoolCheck(text), { status: 0, output: '' })
      } finally {
        for (const w of workers) w.kill()
      }
    },
  )
})

describe('the plugin counts what it did (haraka-test-fixtures, scripted DNS on 127.0.0.1)', () => {
  const LISTED = '45.1.2.3'
  const CLEAN = '45.9.8.7'
  let dns: ScriptedDns
  let current: TestPlugin | undefined

  const setup = (ini = ''): TestPlugin => {
    current = makeTestPlugin(`[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\n\n${ini}\n`)
    return current
  }
  const pluginScrape = async (tp: TestPlugin): Promise<{ text: string; samples: Sample[] }> =>
    scrape(tp.plugin.backscatter.metrics as BackscatterMetrics)
  /** MAIL FROM `from`, then each recipient; the RCPT return codes. */
  const transaction = async (tp: TestPlugin, ip: string, from: string, to: string[]): Promise<unknown[]> => {
    const conn = makeConnection(ip)
    await mail(tp.plugin, conn, from)
    const codes: unknown[] = []
    for (const r of to) codes.push((await rcpt(tp.plugin, conn, r)).rc)
    return codes
  }

  before(async () => {
    dns = await startDns(dnsblZone(ZONE, { [LISTED]: { txt: 'Listed' } }))
  })
  after(() => dns.close())
  afterEach(() => {
    current?.close()
    current = undefined
  })

  it('a known mix: listed and unlisted bounces, exempt recipients, ordinary mail', async () => {
    const tp = setup()
    assert.deepEqual(await transaction(tp, LISTED, '<>', ['a@example.net', 'postmaster@example.net']), [
      constants.DENY,
      undefined,
    ])
    assert.deepEqual(await transaction(tp, LISTED, '<>', ['b@example.net']), [constants.DENY])
    assert.deepEqual(await transaction(tp, CLEAN, '<>', ['c@example.net', 'abuse@example.net']), [
      undefined,
      undefined,
    ])
    assert.deepEqual(await transaction(tp, LISTED, 'someone@sender.example', ['d@example.net']), [undefined])
    assert.deepEqual(await transaction(tp, '192.168.1.1', '<>', ['e@example.net']), [undefined])
    const { text, samples } = await pluginScrape(tp)
    const lookups = samples.filter((x) => x.name === `${P}lookups_total`)
    assert.deepEqual(
      lookups.map((x) => `${x.labels.outcome} ${x.labels.source} ${x.value}`).sort(),
      ['listed cache 1', 'listed dns 1', 'not_listed dns 1'],
      'ordinary mail and a private client are not looked up',
    )
    assert.ok(lookups.every((x) => x.labels.zone === ZONE))
    assert.deepEqual(recipientCounts(samples), { accepted: 1, refused: 2, deferred: 0, exempt: 2 })
    assert.equal(
      valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }),
      2,
      'the cached answer not timed',
    )
    assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 1)
    assert.equal(valueOf(samples, `${P}cache_entries`), 2)
    for (const ip of [LISTED, CLEAN, '192.168.1.1'])
      assert.ok(!text.includes(ip), `${ip} appears in the exposition`)
    assert.ok(!text.includes('example.net') && !text.includes('sender.example'), 'an address appears')
  })

  it('defer counts deferred; score counts a listed recipient as accepted', async () => {
    for (const [action, decision, code] of [
      ['defer', 'deferred', constants.DENYSOFT],
      ['score', 'accepted', undefined],
    ] as const) {
      const tp = setup(`[main]\naction = ${action}`)
      assert.deepEqual(await transaction(tp, LISTED, '<>', ['a@example.net']), [code])
      const { samples } = await pluginScrape(tp)
      assert.equal(valueOf(samples, `${P}recipients_total`, { decision }), 1, action)
      assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'refused' }), 0, action)
      tp.close()
      current = undefined
    }
  })

  it('a zone answered from a file: lookups from the file, its entries, no cache', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-metrics-'))
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    const file = path.join(dir, 'mirror.zone')
    fs.writeFileSync(file, '$TIMESTAMP 2026:11:28:12:00\n127.0.0.2\n45.1.2.0/24\n45.7.0.0/16\n')
    const started = Date.now() / 1000
    const tp = setup(`[ips.backscatterer.org]\nfile = ${file}`)
    assert.deepEqual(await transaction(tp, LISTED, '<>', ['a@example.net']), [constants.DENY])
    assert.deepEqual(await transaction(tp, LISTED, '<>', ['a@example.net']), [constants.DENY])
    const { samples } = await pluginScrape(tp)
    assert.equal(valueOf(samples, `${P}lookups_total`, { outcome: 'listed', source: 'file' }), 2)
    assert.equal(valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }), 2)
    assert.equal(valueOf(samples, `${P}zone_entries`, { zone: ZONE }), 3)
    const loaded = valueOf(samples, `${P}zone_file_loaded_timestamp_seconds`, { zone: ZONE }) ?? 0
    assert.ok(loaded >= started && loaded <= Date.now() / 1000, `loaded at ${loaded}`)
    assert.equal(
      valueOf(samples, `${P}zone_file_data_timestamp_seconds`, { zone: ZONE }),
      Date.UTC(2026, 10, 28, 12) / 1000,
    )
    assert.equal(valueOf(samples, `${P}cache_entries`), 0)
  })

  it('counts survive a config reload', async () => {
    const tp = setup()
    await transaction(tp, LISTED, '<>', ['a@example.net'])
    tp.plugin.load_backscatter_ini()
    await transaction(tp, CLEAN, '<>', ['a@example.net'])
    const { samples } = await pluginScrape(tp)
    assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'refused' }), 1)
    assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'accepted' }), 1)
    const dnsLookups = (outcome: string): number | undefined =>
      valueOf(samples, `${P}lookups_total`, { zone: ZONE, outcome, source: 'dns' })
    assert.deepEqual([dnsLookups('listed'), dnsLookups('not_listed')], [1, 1])
    assert.equal(valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }), 2)
  })

  it('[metrics] listen: an unusable value is one warning line, and metrics stay off', () => {
    const tp = setup('[metrics]\nlisten = :9100')
    const lines = tp.logs.filter((l) => l.text.includes('[metrics]'))
    assert.deepEqual(
      lines.map((l) => `${l.level} ${l.text}`),
      [
        'logwarn config/backscatter.ini [metrics] listen: ":9100" names no address: write 127.0.0.1:9100, ' +
          'or 0.0.0.0:9100 to serve every interface; metrics stay off',
      ],
    )
    assert.equal(tp.plugin.backscatter.settings.metrics.listen, undefined)
  })

  it('hook_init_master serves /metrics; a reload moves it; shutdown stops it', async () => {
    const port = await freePort()
    const tp = setup(`[metrics]\nlisten = ${port}`)
    await new Promise<void>((resolve) => tp.plugin.hook_init_master(resolve, {}))
    const endpoint = tp.plugin.backscatter.endpoint as MetricsEndpoint
    await endpoint.settled()
    await transaction(tp, LISTED, '<>', ['a@example.net'])
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.equal(
      valueOf(readExposition(await res.text()), `${P}recipients_total`, { decision: 'refused' }),
      1,
    )
    const moved = await freePort()
    const reloaded = nextReload(tp.plugin)
    tp.writeIni(`[dns]\nservers = ${dns.server}\n\n[metrics]\nlisten = 127.0.0.1:${moved}\n`)
    await reloaded
    assert.deepEqual(tp.plugin.backscatter.settings.metrics.listen, { host: '127.0.0.1', port: moved })
    await endpoint.settled()
    assert.deepEqual(endpoint.listening, { host: '127.0.0.1', port: moved })
    assert.equal((await fetch(`http://127.0.0.1:${moved}/metrics`)).status, 200)
    tp.plugin.shutdown()
    await endpoint.settled()
    await assert.rejects(fetch(`http://127.0.0.1:${moved}/metrics`))
  })

  it('hook_init_master with the port in use: one error line, and next() is called', async () => {
    const held = await holdPort()
    try {
      const tp = setup(`[metrics]\nlisten = 127.0.0.1:${held.port}`)
      await new Promise<void>((resolve) => tp.plugin.hook_init_master(resolve, {}))
      const endpoint = tp.plugin.backscatter.endpoint as MetricsEndpoint
      await endpoint.settled()
      const errors = tp.logs.filter((l) => l.level === 'logerror')
      assert.deepEqual(
        errors.map((l) => l.text),
        [
          `metrics: cannot serve /metrics on 127.0.0.1:${held.port}: the port is already in use (EADDRINUSE); Haraka and the mail go on without metrics`,
        ],
      )
      assert.deepEqual(await transaction(tp, LISTED, '<>', ['a@example.net']), [constants.DENY])
    } finally {
      await held.release()
    }
  })
})
