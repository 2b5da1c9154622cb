// The plugin's config as Haraka loads it: the package's config/ as defaults, the
// deployment's file overriding them key by key, an edit reloaded without a
// restart, and bad values logged once with a safe default.
import assert from 'node:assert/strict'
import { describe, it, mock } from 'node:test'

import { constants, mail, makeConnection, rcpt, results } from './support/harness'
import { editDelivered } from './support/haraka-config'
import { LISTED, pluginTests, ZONE } from './support/plugin-tests'

const fx = pluginTests()
const { setup } = fx

describe('config: package defaults, overrides, reload and bad values', () => {
  it('the deployment file overrides key by key; the rest keeps the package defaults', async () => {
    const { plugin } = setup('[main]\naction = defer')
    const s = plugin.backscatter.settings
    assert.equal(s.action, 'defer')
    assert.equal(s.threshold, 5)
    assert.deepEqual([...s.exemptRecipients], ['postmaster', 'abuse'])
    assert.equal(s.zones[0].lookupUrl, 'https://www.backscatterer.org/?target=test&ip={ip}')
    assert.deepEqual(s.dns.servers, [fx.dns.server])
  })

  it('an edit takes effect without a restart', async (tc) => {
    // haraka-config's wait for an edit to settle runs on the mock clock.
    tc.after(() => mock.timers.reset())
    mock.timers.enable({ apis: ['setTimeout'] })
    const t = setup()
    t.writeIni(`[dns]\nservers = ${fx.dns.server}\ntimeout_ms = 2000\n[main]\naction = defer\n`)
    await editDelivered(() => t.plugin.backscatter.settings.action === 'defer')
    const conn = makeConnection(LISTED)
    await mail(t.plugin, conn, '<>')
    assert.equal((await rcpt(t.plugin, conn, 'alice@example.com')).rc, constants.DENYSOFT)
  })

  it('a reload mid-lookup does not cut off the transaction that started before it', async () => {
    const { arrived: queryArrived, release } = fx.holdListed()
    const { plugin } = setup('', 'timeout_ms = 5000\ntries = 1')
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    await queryArrived
    plugin.load_backscatter_ini()
    release()
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
    assert.deepEqual(results(conn).err, [])
  })

  const invalid: [string, string, RegExp][] = [
    [
      'non-numeric score',
      `[${ZONE}]\nscore = lots`,
      /\[ips\.backscatterer\.org\] score: "lots" is not a number; using 5/,
    ],
    [
      'bad CIDR',
      '[skip]\nips = 45.1.2.0/40',
      /\[skip\] ips: "45\.1\.2\.0\/40" is not an IP address or CIDR; ignored/,
    ],
    ['empty zone name', '[main]\nzones = ,', /\[main\] zones: no usable zone; using ips\.backscatterer\.org/],
  ]
  for (const [name, ini, line] of invalid) {
    it(`${name}: logged once at load naming the key, default used, mail still checked`, async () => {
      const { plugin, logs } = setup(ini)
      assert.equal(
        logs.filter((l) => l.level === 'logwarn' && line.test(l.text)).length,
        1,
        JSON.stringify(logs),
      )
      for (let i = 0; i < 3; i++) {
        const conn = makeConnection(LISTED)
        await mail(plugin, conn, '<>')
        assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, constants.DENY)
      }
      assert.equal(logs.filter((l) => line.test(l.text)).length, 1, 'not repeated per connection')
    })
  }

  it('an unknown action is logged at error level and refuses nothing (score)', async () => {
    const { plugin, logs } = setup('[main]\naction = drop')
    const line = /\[main\] action: "drop" is not reject, defer or score; using score/
    assert.equal(
      logs.filter((l) => l.level === 'logerror' && line.test(l.text)).length,
      1,
      JSON.stringify(logs),
    )
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'alice@example.com')).rc, undefined)
    assert.equal(results(conn).score, 5)
  })
})
