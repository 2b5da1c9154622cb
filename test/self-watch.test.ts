// The watch of our own IPs against a scripted DNS zone on 127.0.0.1: what it
// looks up (and never), when, what it logs, and in the plugin: the process that
// runs it, the gauge on /metrics, a reload and a shutdown.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it, mock } from 'node:test'

import { BackscatterChecker } from '../lib/dns/checker'
import { parseSettings } from '../lib/settings/parse'
import { watchedAddresses, type HarakaFiles } from '../lib/selfcheck/addresses'
import { SelfWatch } from '../lib/selfcheck/watch'
import { dnsblZone, reverseIpv4, startDns, TYPE, type ScriptedDns } from './support/dns-server'
import { freeTcpPort } from './support/haraka'
import { makeTestPlugin, nextReload, type TestPlugin } from './support/harness'
import { editDelivered } from './support/haraka-config'
import { turn, until } from './support/mock-clock'

const ZONE = 'ips.backscatterer.org'
const OURS = '45.8.1.1'
const OTHER = '45.8.1.2'
const ME = 'mx.example.org'
const ME_IP = '45.8.1.3'

let dns: ScriptedDns
let listed = new Set<string>([OURS])

before(async () => {
  dns = await startDns((q) => {
    if (q.name === ME && q.type === TYPE.A) return { a: [ME_IP] }
    if (q.name === ME) return {}
    const entries = Object.fromEntries([...listed].map((ip) => [ip, { txt: `Listed: ${ip}` }]))
    return dnsblZone(ZONE, entries)(q)
  })
})
after(() => dns.close())
afterEach(() => {
  listed = new Set([OURS])
  mock.timers.reset()
})

function settingsWith(selfCheck: Record<string, unknown>) {
  const { settings, problems } = parseSettings({
    dns: { servers: dns.server, timeout_ms: 2000, health_interval: 0 },
    self_check: selfCheck,
  })
  assert.deepEqual(problems, [])
  return settings
}

const noFiles: HarakaFiles = { ini: () => ({}), value: () => '' }
/** A watch's log, each line with its level. */
const log3 = (lines: string[]) => ({
  info: (m: string) => lines.push(`INFO ${m}`),
  warn: (m: string) => lines.push(`WARN ${m}`),
  error: (m: string) => lines.push(`ERROR ${m}`),
})
const queriesFor = (ip: string): number => dns.count(`${reverseIpv4(ip)}.${ZONE}`, TYPE.A)

/** One look of a watch over `addresses`, through a real checker: asserts the zone was not asked, returns the log. */
async function lookWithoutQuery(
  settings: ReturnType<typeof settingsWith>,
  addresses: () => ReturnType<typeof watchedAddresses>,
): Promise<string[]> {
  const lines: string[] = []
  const checker = new BackscatterChecker(settings, { info: () => {}, warn: () => {} })
  const w = new SelfWatch({ settings, check: (ip) => checker.check(ip), addresses, log: log3(lines) })
  const before = dns.count(ZONE)
  await w.look()
  checker.close()
  assert.equal(dns.count(ZONE), before, 'no query of the zone')
  return lines
}

describe('SelfWatch, through a checker against a zone on 127.0.0.1', () => {
  function watch(ips: string) {
    const settings = settingsWith({ ips, interval_minutes: 30 })
    const checker = new BackscatterChecker(settings, { info: () => {}, warn: () => {} })
    const lines: string[] = []
    const log = {
      info: (m: string) => lines.push(`INFO ${m}`),
      warn: (m: string) => lines.push(`WARN ${m}`),
      error: (m: string) => lines.push(`ERROR ${m}`),
    }
    const w = new SelfWatch({
      settings,
      check: (ip) => checker.check(ip),
      addresses: () => watchedAddresses(settings, noFiles),
      log,
    })
    return { w, lines, checker, settings, log }
  }

  it('logs one ERROR when our IP is listed, nothing when the next look finds the same, INFO when delisted', async () => {
    const { w, lines, checker } = watch(`${OURS}, ${OTHER}`)
    await w.look()
    await w.look()
    listed = new Set()
    checker.close()
    const fresh = watch(`${OURS}, ${OTHER}`)
    // A new checker (no cached answer) carrying on from what the first watch knew, as a reload does.
    const next = new SelfWatch({
      settings: fresh.settings,
      check: (ip) => fresh.checker.check(ip),
      addresses: () => watchedAddresses(fresh.settings, noFiles),
      log: log3(lines),
      previous: w,
    })
    await next.look()
    fresh.checker.close()
    assert.deepEqual(lines.length, 3, lines.join('\n'))
    assert.match(
      lines[0]!,
      /^INFO self check: watching 45\.8\.1\.1 \(\[self_check\] ips\), 45\.8\.1\.2 .* every 30 min$/,
    )
    assert.match(
      lines[1]!,
      /^ERROR our own IP 45\.8\.1\.1 is listed on ips\.backscatterer\.org \(Listed: 45\.8\.1\.1\): .*Find the source and fix it.*four weeks.*express delisting; details: https:\/\/www\.backscatterer\.org\/\?target=test&ip=45\.8\.1\.1$/,
    )
    assert.equal(lines[2], 'INFO our own IP 45.8.1.1 is no longer listed on ips.backscatterer.org')
    assert.deepEqual(
      next.listings().map((l) => `${l.ip} ${l.listed}`),
      [`${OURS} false`, `${OTHER} false`],
    )
  })

  it('looks at start and again each interval_minutes, on a timer that stop() ends', async () => {
    mock.timers.enable({ apis: ['setTimeout'] })
    // No cache: every look asks the zone, so the queries count the looks.
    const settings = settingsWith({ ips: OURS, interval_minutes: 30 })
    const uncached = { ...settings, dns: { ...settings.dns, cacheSize: 0 } }
    const checker = new BackscatterChecker(uncached, { info: () => {}, warn: () => {} })
    let looks = 0
    const w = new SelfWatch({
      settings: uncached,
      check: (ip) => checker.check(ip).finally(() => looks++),
      addresses: () => watchedAddresses(uncached, noFiles),
      log: log3([]),
    })
    const before = queriesFor(OURS)
    w.start()
    await until(() => looks === 1, 'the look at start')
    mock.timers.tick(29 * 60_000)
    await new Promise((r) => setImmediate(r))
    assert.equal(looks, 1, 'nothing before the interval')
    mock.timers.tick(60_000)
    await until(() => looks === 2, 'the look after interval_minutes')
    w.stop()
    mock.timers.tick(120 * 60_000)
    await new Promise((r) => setImmediate(r))
    assert.equal(looks, 2, 'no look after stop()')
    assert.equal(queriesFor(OURS) - before, 2, 'one query per look')
    checker.close()
  })
})

describe('SelfWatch.start() while a look is in progress', () => {
  it('joins that look, then looks again each interval', async () => {
    mock.timers.enable({ apis: ['setTimeout'] })
    const settings = settingsWith({ ips: OURS, interval_minutes: 30 })
    let looks = 0
    let release: () => void = () => {}
    const w = new SelfWatch({
      settings,
      check: () => {
        looks++
        // The first look waits for the test: start() comes while it runs.
        return looks === 1 ? new Promise((r) => (release = () => r([]))) : Promise.resolve([])
      },
      addresses: () => watchedAddresses(settings, noFiles),
      log: log3([]),
    })
    const first = w.look()
    await until(() => looks === 1, 'the first look under way')
    w.start()
    release()
    await first
    // The watch's own wait on that look ends in this turn too: then its timer is set.
    await turn()
    mock.timers.tick(30 * 60_000)
    await until(() => looks === 2, 'the look after interval_minutes')
    assert.equal(looks, 2, 'start() added no look of its own')
    w.stop()
  })
})

describe('watchedAddresses: what is looked up, and what never is', () => {
  const machine = {
    interfaces: () => ({
      lo: [{ address: '127.0.0.1', internal: true }],
      eth0: [
        { address: '10.0.0.7', internal: false },
        { address: '45.8.2.1', internal: false },
      ],
    }),
    hostname: () => 'vm',
  }
  const files = (me: string, smtp: Record<string, unknown> = {}): HarakaFiles => ({
    ini: (name) => (name === 'smtp.ini' ? { main: smtp } : {}),
    value: (name) => (name === 'me' ? me : ''),
  })

  it('gathers public_ip, listen, the interfaces and me resolved through [dns] servers', async () => {
    const settings = settingsWith({})
    const before = dns.count(ME, TYPE.A)
    const list = await watchedAddresses(
      settings,
      files(ME, { public_ip: '45.8.2.2', listen: '[::0]:25,45.8.2.3:587' }),
      machine,
    )
    assert.equal(dns.count(ME, TYPE.A) - before, 1, 'me asked of the configured server')
    assert.deepEqual(
      list.watched.map((w) => `${w.ip} ${w.sources.join(',')}`),
      [
        '45.8.2.2 smtp.ini public_ip',
        '45.8.2.3 smtp.ini listen',
        '45.8.2.1 interface eth0',
        `${ME_IP} me (${ME})`,
      ],
    )
    assert.deepEqual(
      list.skipped.map((s) => s.ip),
      ['::', '10.0.0.7'],
    )
  })

  it('[self_check] ips alone when set; a single-label me is not resolved', async () => {
    const before = dns.queries.length
    const set = await watchedAddresses(settingsWith({ ips: OURS }), files(ME), machine)
    assert.deepEqual(
      set.watched.map((w) => w.ip),
      [OURS],
    )
    const bare = await watchedAddresses(settingsWith({}), files(''), machine)
    assert.ok(!bare.watched.some((w) => w.sources.some((s) => s.startsWith('me'))))
    assert.equal(dns.queries.length, before, 'no DNS query at all')
  })

  it('[self_check] ips naming no public address: nothing is watched, and a WARN says so', async () => {
    const settings = parseSettings({
      dns: { servers: dns.server, timeout_ms: 2000, health_interval: 0 },
      self_check: { ips: '10.0.0.1, 192.168.7.7' },
    }).settings
    const found = await watchedAddresses(settings, files(ME, { public_ip: '45.8.2.2' }), machine)
    assert.deepEqual(found.watched, [], 'nothing Haraka or the machine gives is watched instead')
    assert.deepEqual(
      found.skipped.map((s) => `${s.ip} ${s.sources.join(',')}`),
      ['10.0.0.1 [self_check] ips', '192.168.7.7 [self_check] ips'],
    )
    const lines = await lookWithoutQuery(settings, () =>
      watchedAddresses(settings, files(ME, { public_ip: '45.8.2.2' }), machine),
    )
    assert.deepEqual(lines, [
      "WARN self check: [self_check] ips names no public address, so nothing is watched; not looked up: 10.0.0.1 ([self_check] ips): private (RFC 1918); 192.168.7.7 ([self_check] ips): private (RFC 1918); set it to the public addresses this host sends from, or leave it empty to watch the ones Haraka's configuration gives",
    ])
  })

  it('a private address is never looked up on the zone', async () => {
    const settings = settingsWith({})
    const lines = await lookWithoutQuery(settings, () =>
      watchedAddresses(settings, files('', { public_ip: '10.0.0.9' }), {
        interfaces: () => ({ eth0: [{ address: '192.168.1.4', internal: false }] }),
        hostname: () => 'vm',
      }),
    )
    assert.deepEqual(lines, [
      'WARN self check: no public address of this host found to watch; not looked up: 10.0.0.9 (smtp.ini public_ip): private (RFC 1918); 192.168.1.4 (interface eth0): private (RFC 1918); set [self_check] ips to the addresses it sends from',
    ])
  })
})

describe('the plugin runs the watch in one process', () => {
  let tp: TestPlugin | undefined
  afterEach(() => {
    tp?.close()
    tp = undefined
  })

  const ini = (port: number, extra = ''): string =>
    `[dns]\nservers = ${dns.server}\nhealth_interval = 0\n[metrics]\nlisten = ${port}\n[self_check]\nips = ${OURS}\n${extra}`
  const errors = (t: TestPlugin): string[] =>
    t.logs.filter((l) => l.level === 'logerror' && /our own IP/.test(l.text)).map((l) => l.text)
  const scrape = async (port: number): Promise<string> =>
    (await fetch(`http://127.0.0.1:${port}/metrics`)).text()

  it('init_master: the listing in the log once and on /metrics; none before, none in a worker', async () => {
    const port = await freeTcpPort()
    tp = makeTestPlugin(ini(port))
    const before = queriesFor(OURS)
    await new Promise<void>((resolve) => tp!.plugin.hook_init_child(resolve))
    await new Promise((r) => setImmediate(r))
    assert.equal(queriesFor(OURS) - before, 0, 'a worker does not watch')
    await new Promise<void>((resolve) => tp!.plugin.hook_init_master(resolve, {}))
    await until(() => errors(tp!).length === 1, 'the ERROR line')
    const text = await scrape(port)
    assert.match(text, /# TYPE haraka_backscatter_self_listed gauge/)
    assert.match(text, /haraka_backscatter_self_listed\{zone="ips\.backscatterer\.org",ip="45\.8\.1\.1"\} 1/)
    // Our IP's lookup is no bounce's: it is not counted as one.
    assert.doesNotMatch(text, /haraka_backscatter_lookups_total\{/)
  })

  it('a reload keeps what was known (no second ERROR); enabled = false drops the gauge; shutdown stops', async () => {
    const port = await freeTcpPort()
    tp = makeTestPlugin(ini(port))
    await new Promise<void>((resolve) => tp!.plugin.hook_init_master(resolve, {}))
    await until(() => errors(tp!).length === 1, 'the ERROR line')
    tp.plugin.load_backscatter_ini()
    const watch = tp.plugin.backscatter.selfWatching.watch as SelfWatch
    await watch.look()
    assert.equal(errors(tp).length, 1)
    const reloaded = nextReload(tp.plugin)
    // haraka-config's 5 s wait for an edit to settle runs on the mock clock.
    mock.timers.enable({ apis: ['setTimeout'] })
    try {
      let delivered = false
      void reloaded.then(() => (delivered = true))
      tp.writeIni(ini(port, 'enabled = false\n'))
      await editDelivered(() => delivered)
    } finally {
      mock.timers.reset()
    }
    assert.equal(tp.plugin.backscatter.selfWatching.watch, undefined)
    assert.doesNotMatch(await scrape(port), /haraka_backscatter_self_listed\{/)
    tp.plugin.shutdown()
  })
})
