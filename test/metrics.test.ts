// The metrics: what the recorder counts, what a scrape shows, and what the
// plugin counts as it handles mail.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before, describe, it, mock } from 'node:test'

import { BackscatterMetrics, LOOKUP_SECONDS_BUCKETS } from '../lib/metrics/metrics'
import { MetricsEndpoint } from '../lib/metrics/server'
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
import { editDelivered } from './support/haraka-config'

import { FILE_ZONE, freePort, holdPort, knownMix, P, scrape, ZONE } from './support/metrics'

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

  it('ledger_would_refuse_total: by recipient domain, and whether the ledger was young', async () => {
    const m = new BackscatterMetrics()
    knownMix(m)
    const { samples } = await scrape(m)
    assert.deepEqual(
      samples
        .filter((s) => s.name === `${P}ledger_would_refuse_total`)
        .map((s) => `${s.labels.domain} ${s.labels.young} ${s.value}`)
        .sort(),
      ['example.com false 1', 'example.org true 2'],
    )
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
      [`${P}outbound_bounces_total`]: ['decision'],
      [`${P}ledger_records_total`]: ['result'],
      [`${P}ledger_checks_total`]: ['kind', 'result'],
      [`${P}ledger_would_refuse_total`]: ['domain', 'young'],
      [`${P}data_refusals_total`]: ['action', 'cause'],
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
    // haraka-config's 5 s wait for an edit to settle runs on the mock clock.
    mock.timers.enable({ apis: ['setTimeout'] })
    try {
      let delivered = false
      void reloaded.then(() => (delivered = true))
      tp.writeIni(`[dns]\nservers = ${dns.server}\n\n[metrics]\nlisten = 127.0.0.1:${moved}\n`)
      await editDelivered(() => delivered)
    } finally {
      mock.timers.reset()
    }
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
