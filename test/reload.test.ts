// An edit of config/backscatter.ini, as Haraka delivers it (haraka-config's
// watcher calls the plugin back): zones whose DNS and file settings are
// unchanged keep their health, cached answers and loaded zone file.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'

import { dnsblZone, reverseIpv4, startDns, TYPE, type ScriptedDns } from './support/dns-server'
import {
  constants,
  mail,
  makeConnection,
  makeTestPlugin,
  rcpt,
  type HarakaTestPlugin,
  type TestPlugin,
} from './support/harness'

const ZONE = 'ips.backscatterer.org'
const LISTED = '45.1.2.3'
const zoneData = dnsblZone(ZONE, { [LISTED]: { txt: 'Listed for backscatter' } })
const isTestPoint = (name: string): boolean => /^[12]\.0\.0\.127\./.test(name)

/** Resolves after the plugin has read the edited ini (haraka-config waits for the edit to settle). */
function nextReload(plugin: HarakaTestPlugin): Promise<void> {
  return new Promise((resolve) => {
    const load = plugin.load_backscatter_ini as () => void
    plugin.load_backscatter_ini = function (this: unknown): void {
      plugin.load_backscatter_ini = load
      load.call(this)
      resolve()
    }
  })
}

async function editIni(t: TestPlugin, ini: string): Promise<void> {
  const reloaded = nextReload(t.plugin)
  t.writeIni(ini)
  await reloaded
}

async function refused(plugin: HarakaTestPlugin, ip: string): Promise<boolean> {
  const conn = makeConnection(ip)
  await mail(plugin, conn, '<>')
  return (await rcpt(plugin, conn, 'alice@example.com')).rc === constants.DENY
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
  afterEach(() => {
    current?.close()
    current = undefined
  })

  const ini = (server: string, main = ''): string =>
    `[main]\n${main}\n[dns]\nservers = ${server}\ntimeout_ms = 1000\ntries = 2\n`
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
})
