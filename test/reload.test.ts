// An edit of config/backscatter.ini, as Haraka delivers it (haraka-config's
// watcher calls the plugin back): zones whose DNS and file settings are
// unchanged keep their health, cached answers and loaded zone file. Time runs
// on node:test's mock clock: haraka-config's wait for an edit to settle, the
// health checks' schedule and the DNS budgets pass when the test moves it.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, before, beforeEach, describe, it, mock } from 'node:test'

import { BackscatterChecker, keepsZoneState } from '../lib/dns/checker'
import type { Log } from '../lib/core/log'
import { DnsblResolver } from '../lib/dns/resolver'
import { parseSettings } from '../lib/settings/parse'
import { ZoneFileSource } from '../lib/zonefile/source'
import { dnsblZone, reverseIpv4, startDns, TYPE, type Handler, type ScriptedDns } from './support/dns-server'
import { editDelivered } from './support/haraka-config'
import {
  constants,
  mail,
  makeConnection,
  makeTestPlugin,
  rcpt,
  results,
  type HarakaTestPlugin,
  type TestPlugin,
} from './support/harness'
import { advance, until } from './support/mock-clock'

const ZONE = 'ips.backscatterer.org'
const LISTED = '45.1.2.3'
const zoneData = dnsblZone(ZONE, { [LISTED]: { txt: 'Listed for backscatter' } })
const isTestPoint = (name: string): boolean => /^[12]\.0\.0\.127\./.test(name)

/** setTimeout and Date on the mock clock, from before the plugin starts. */
const mockClock = (): void => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 })

/** Whether the plugin has read the ini again since this call. */
function reloadSeen(plugin: HarakaTestPlugin): () => boolean {
  let seen = false
  const load = plugin.load_backscatter_ini as () => void
  plugin.load_backscatter_ini = function (this: unknown): void {
    plugin.load_backscatter_ini = load
    load.call(this)
    seen = true
  }
  return () => seen
}

/** Edit the deployment's backscatter.ini and wait until haraka-config's watcher has reloaded it. */
async function editIni(t: TestPlugin, ini: string): Promise<void> {
  const reloaded = reloadSeen(t.plugin)
  t.writeIni(ini)
  await editDelivered(reloaded)
}

async function refused(plugin: HarakaTestPlugin, ip: string): Promise<boolean> {
  const conn = makeConnection(ip)
  await mail(plugin, conn, '<>')
  return (await rcpt(plugin, conn, 'alice@example.com')).rc === constants.DENY
}

/**
 * A query through a resolver of its own, answered: whatever was sent to `dns`
 * before it has arrived, so a count taken now misses nothing already sent.
 */
async function marker(dns: ScriptedDns): Promise<void> {
  const resolver = new DnsblResolver({ servers: [dns.server], timeoutMs: 2000, tries: 2 })
  assert.equal((await resolver.lookup('45.0.0.1', ZONE)).status, 'not-listed')
}

/** A fresh folder under /tmp (whose real path the zone-file watcher sees), removed by `t`. */
function tmpFolder(): string {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'backscatter-reload-'))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Start the checker as Haraka does in a single process. */
async function initMaster(plugin: HarakaTestPlugin): Promise<void> {
  await new Promise<void>((resolve) => plugin.hook_init_master(() => resolve(), {}))
}

describe('config reload', () => {
  let first: ScriptedDns
  let second: ScriptedDns
  let current: TestPlugin | undefined

  before(async () => {
    first = await startDns(zoneData)
    second = await startDns(zoneData)
  })
  after(async () => {
    await first.close()
    await second.close()
  })
  beforeEach(mockClock)
  afterEach(() => {
    current?.close()
    current = undefined
    mock.timers.reset()
  })

  // Answers arrive in a few turns of the event loop; a try's deadline is 100 turns away.
  const ini = (server: string, main = ''): string =>
    `[main]\n${main}\n[dns]\nservers = ${server}\ntimeout_ms = 10000\ntries = 2\n`
  const testPointQueries = (dns: ScriptedDns): number => dns.queries.filter((q) => isTestPoint(q.name)).length
  const clientQueries = (dns: ScriptedDns): number => dns.count(`${reverseIpv4(LISTED)}.${ZONE}`, TYPE.A)

  it('an edit of an unrelated key keeps the zone’s health and cached answers', async () => {
    current = makeTestPlugin(ini(first.server))
    const { plugin } = current
    await initMaster(plugin)
    assert.equal(await refused(plugin, LISTED), true)
    const checker = plugin.backscatter.checker
    const [pointsBefore, clientBefore] = [testPointQueries(first), clientQueries(first)]

    await editIni(current, ini(first.server, 'action = defer'))
    assert.notEqual(plugin.backscatter.checker, checker, 'a new checker for the new settings')
    assert.equal(plugin.backscatter.settings.action, 'defer')
    assert.deepEqual(plugin.backscatter.checker.healthStates(), [{ zone: ZONE, state: 'usable', reason: '' }])
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENYSOFT)
    assert.equal(clientQueries(first) - clientBefore, 0, 'the cached answer was used')
    assert.equal(testPointQueries(first) - pointsBefore, 0, 'the zone was not checked again')
  })

  it('a change of [dns] servers starts the zone over: a new check, a new query', async () => {
    current = makeTestPlugin(ini(first.server))
    const { plugin } = current
    await initMaster(plugin)
    assert.equal(await refused(plugin, LISTED), true)

    await editIni(current, ini(second.server))
    assert.equal(await refused(plugin, LISTED), true)
    assert.ok(testPointQueries(second) > 0, 'the zone was checked through the new server')
    assert.equal(clientQueries(second), 1, 'the client was looked up through the new server')
  })

  it('a file zone keeps its loaded data over an edit, even of [dns] servers', async () => {
    const file = path.join(fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'backscatter-reload-')), 'zone')
    fs.writeFileSync(file, `127.0.0.2\n${LISTED}\n`)
    try {
      const withFile = (server: string, main = ''): string =>
        `${ini(server, main)}\n[${ZONE}]\nfile = ${file}\n`
      current = makeTestPlugin(withFile(first.server))
      const { plugin, logs } = current
      await initMaster(plugin)
      assert.equal(await refused(plugin, LISTED), true)
      const loads = (): number => logs.filter((l) => l.text.includes(`loaded ${file}`)).length
      assert.equal(loads(), 1)

      await editIni(current, withFile(first.server, 'threshold = 4'))
      assert.equal(await refused(plugin, LISTED), true)
      await editIni(current, withFile(second.server))
      assert.equal(await refused(plugin, LISTED), true)
      assert.equal(loads(), 1, 'the file was not parsed again')
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true })
    }
  })

  describe('what a reload and a shutdown release', () => {
    const SILENT = '45.9.9.9'
    const silentClient: Handler = (q) =>
      q.name.startsWith(`${reverseIpv4(SILENT)}.`) ? { drop: true } : zoneData(q)
    const dnsIni = (server: string, extra = ''): string =>
      `[dns]\nservers = ${server}\ntimeout_ms = 10000\ntries = 2\n${extra}\n`

    it('after a change of [dns] servers, the old settings’ health checks stop', async () => {
      const everySecond = (server: string): string => dnsIni(server, 'health_interval = 1')
      current = makeTestPlugin(everySecond(first.server))
      const { plugin } = current
      await initMaster(plugin)
      await until(() => testPointQueries(first) >= 2, 'the first check')

      await editIni(current, everySecond(second.server))
      await marker(first)
      const [oldChecks, newChecks] = [testPointQueries(first), testPointQueries(second)]
      // Three checks by the new settings, a second apart: the old ones would have made one meanwhile.
      const movedMs = await advance(() => testPointQueries(second) >= newChecks + 6, 0, 10_000)
      assert.ok(movedMs !== undefined, 'three checks through the new server')
      await marker(first)
      assert.equal(testPointQueries(first), oldChecks, 'no check through the old server after the reload')
    })

    it('a reload that changes or drops a zone file closes the old file’s watcher; a dropped file’s zone is checked through DNS', async (t) => {
      const closes = t.mock.method(ZoneFileSource.prototype, 'close')
      const closed = (): string[] => closes.mock.calls.map((c) => (c.this as ZoneFileSource).path)
      const dir = tmpFolder()
      const [fileA, fileB] = [path.join(dir, 'a.zone'), path.join(dir, 'b.zone')]
      for (const file of [fileA, fileB]) fs.writeFileSync(file, `127.0.0.2\n${LISTED}\n`)
      const withFile = (file: string): string => `${dnsIni(first.server)}\n[${ZONE}]\nfile = ${file}\n`

      current = makeTestPlugin(withFile(fileA))
      const { plugin } = current
      await initMaster(plugin)
      assert.equal(await refused(plugin, LISTED), true)

      await editIni(current, withFile(fileB))
      assert.deepEqual(closed(), [fileA], 'the old file closed, the new one open')
      assert.equal(await refused(plugin, LISTED), true)

      const [points, client] = [testPointQueries(first), clientQueries(first)]
      await editIni(current, dnsIni(first.server))
      assert.deepEqual(closed(), [fileA, fileB])
      assert.equal(await refused(plugin, LISTED), true)
      assert.ok(testPointQueries(first) > points, 'the zone was checked anew, through DNS')
      assert.equal(clientQueries(first), client + 1, 'and the client looked up through DNS')
    })

    it('shutdown: no health check after it, the zone file closed, a lookup in flight abandoned', async (t) => {
      const closes = t.mock.method(ZoneFileSource.prototype, 'close')
      const file = path.join(tmpFolder(), 'file.zone')
      fs.writeFileSync(file, '127.0.0.2\n')
      // A server of its own: plugins of the tests before may still answer their folders' removal.
      const dns = await startDns(silentClient)
      try {
        current = makeTestPlugin(
          `[main]\nzones = ${ZONE}, file.example\n` +
            `[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\ntries = 1\nhealth_interval = 60\n` +
            `[file.example]\nfile = ${file}\n`,
        )
        const { plugin } = current
        await initMaster(plugin)
        const usable = (): boolean =>
          plugin.backscatter.checker.healthStates().every((h: { state: string }) => h.state === 'usable')
        await until(() => testPointQueries(dns) === 2 && usable(), 'the first check')
        // The mock clock drives the schedule: a minute on, the zone is checked again.
        mock.timers.tick(60_000)
        await until(() => testPointQueries(dns) === 4, 'the check a minute later')

        const conn = makeConnection(SILENT)
        await mail(plugin, conn, '<>')
        const reply = rcpt(plugin, conn, 'alice@example.com')
        await until(() => dns.count(`${reverseIpv4(SILENT)}.${ZONE}`) === 1, 'the lookup sent')
        plugin.shutdown()
        assert.equal((await reply).rc, undefined, 'the recipient is accepted')
        assert.deepEqual(results(conn).err, [`${ZONE}: cancelled at shutdown`])

        mock.timers.tick(10 * 60_000)
        await marker(dns)
        assert.equal(testPointQueries(dns), 4, 'no health check after shutdown')
        assert.ok(
          closes.mock.calls.some((c) => (c.this as ZoneFileSource).path === file),
          'the zone file closed',
        )
      } finally {
        await dns.close()
      }
    })

    it('an edit of the ini after shutdown starts nothing', async () => {
      const dns = await startDns(zoneData)
      try {
        current = makeTestPlugin(dnsIni(dns.server))
        const { plugin } = current
        await initMaster(plugin)
        await until(() => testPointQueries(dns) === 2, 'the first check')
        plugin.shutdown()
        // haraka-config still calls back: the plugin may have been unloaded, not the process.
        await editIni(current, dnsIni(dns.server, 'health_interval = 60'))
        await marker(dns)
        assert.equal(testPointQueries(dns), 2, 'no check after shutdown')
      } finally {
        await dns.close()
      }
    })
  })
})

describe('a reload while a health check is in flight', () => {
  it('the check a failed lookup started is not lost: the new checker checks at once, one line logs the suspension', async () => {
    let dead = false
    const healthy = dnsblZone(ZONE, {})
    const dns = await startDns((q) => (dead ? { drop: true } : healthy(q)))
    const lines: string[] = []
    const log = (who: string): Log => ({
      info: (m) => lines.push(`${who} info ${m}`),
      warn: (m) => lines.push(`${who} warn ${m}`),
    })
    const settings = (action: string) =>
      parseSettings({
        main: { zones: ZONE, action },
        dns: { servers: dns.server, timeout_ms: 10_000, tries: 1, health_interval: 300 },
      }).settings
    const old = new BackscatterChecker(settings('reject'), log('old'))
    let reloaded: BackscatterChecker | undefined
    mockClock()
    try {
      old.start()
      await old.checkHealth()
      dead = true
      const failed = old.check('45.9.9.9')
      await until(() => dns.count(`9.9.9.45.${ZONE}`) === 1, 'the client query')
      mock.timers.tick(10_000)
      assert.deepEqual(await failed, [{ zone: ZONE, status: 'error', reason: 'timeout' }])
      // That failure started a check of the zone; an unrelated key is edited while it runs.
      const current = new BackscatterChecker(settings('defer'), log('new'), { previous: old })
      reloaded = current
      old.retire()
      current.start()
      const suspended = (checker: BackscatterChecker) => () =>
        checker.healthStates()[0]!.state === 'suspended'
      assert.notEqual(await advance(suspended(current), 0, 20_000), undefined, 'the new checker’s check')
      assert.deepEqual((await current.check('45.9.9.10'))[0]?.status, 'skipped', 'costs no lookup')
      assert.notEqual(await advance(suspended(old), 0, 20_000), undefined, 'the old checker’s check to end')
      assert.deepEqual(
        lines.filter((l) => l.includes('suspended')),
        [`new warn zone ${ZONE} suspended: test point 127.0.0.2: timeout; its answers are ignored`],
      )
    } finally {
      mock.timers.reset()
      old.close()
      reloaded?.close()
      await dns.close()
    }
  })
})

describe('what a reload keeps', () => {
  it('keepsZoneState: a zone that moves from a file to DNS, or back, starts over', () => {
    const { settings: fromFile } = parseSettings({ [ZONE]: { file: '/srv/rbldnsd/zone' } })
    const { settings: fromDns } = parseSettings({})
    const file = { zone: fromFile.zones[0]!, dns: fromFile.dns }
    const dns = { zone: fromDns.zones[0]!, dns: fromDns.dns }
    assert.equal(keepsZoneState(file, dns), false)
    assert.equal(keepsZoneState(dns, file), false)
    assert.equal(keepsZoneState(file, file), true)
    assert.equal(keepsZoneState(dns, dns), true)
  })

  it('a zone whose settings change loses its cached answers; a zone whose settings stay keeps them', async () => {
    const OTHER = 'other.example'
    const zone = dnsblZone(ZONE, { [LISTED]: {} })
    const other = dnsblZone(OTHER, { [LISTED]: {} })
    const dns = await startDns((q) => zone(q) ?? other(q))
    const quiet: Log = { info: () => undefined, warn: () => undefined }
    const settings = (otherZone: Record<string, string>) =>
      parseSettings({
        main: { zones: `${ZONE}, ${OTHER}` },
        dns: { servers: dns.server, timeout_ms: 2000, tries: 2, health_interval: 300 },
        [OTHER]: otherZone,
      }).settings
    const queries = (name: string): number => dns.count(`${reverseIpv4(LISTED)}.${name}`, TYPE.A)
    const old = new BackscatterChecker(settings({}), quiet)
    let reloaded: BackscatterChecker | undefined
    try {
      old.start()
      await old.checkHealth()
      assert.deepEqual(
        (await old.check(LISTED)).map((o) => o.status),
        ['listed', 'listed'],
      )
      reloaded = new BackscatterChecker(settings({ require_test_point: 'true' }), quiet, { previous: old })
      old.retire()
      reloaded.start()
      await reloaded.checkHealth()
      assert.deepEqual(
        (await reloaded.check(LISTED)).map((o) => o.status),
        ['listed', 'listed'],
      )
      assert.equal(queries(ZONE), 1, `${ZONE} answered from the cache`)
      assert.equal(queries(OTHER), 2, `${OTHER} asked anew`)
    } finally {
      old.close()
      reloaded?.close()
      await dns.close()
    }
  })
})
