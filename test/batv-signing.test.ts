// Signed bounces (BATV) in the plugin as Haraka loads it: signing at MAIL for
// relaying clients, secrets that never leave, keys in the old [batv.keys]
// section, and an edit to the keys that takes effect without a restart.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { beforeEach, afterEach, describe, it, mock } from 'node:test'

import fixtures from 'haraka-test-fixtures'

import { BatvKey, signAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import {
  batvPluginTests,
  batvResults,
  bounce,
  CLEAN,
  LISTED,
  NOON,
  SECRET,
  VALID,
  wire,
} from './support/batv-plugin'
import { editDelivered } from './support/haraka-config'
import {
  addr,
  dataPost,
  mail,
  makeConnection,
  rcpt,
  reply,
  results,
  type HarakaTestPlugin,
} from './support/harness'

const BATV = `[batv]\ndomains = example.com\nmissing_from = 2020-01-01\n`

const fx = batvPluginTests()
/** The plugin with `ini` (BATV on for example.com), `keys` as config/backscatter.keys (null: none), its clock at `nowMs`. */
const setup = (ini = BATV, nowMs?: number, keys?: string | null) => fx.setup(ini, nowMs, keys)

describe('sign at MAIL, for relaying clients', () => {
  const key = BatvKey.create(1, SECRET) as BatvKey

  /** MAIL FROM of a client at 192.0.2.10; `original` is the address the client gave. */
  async function relayed(plugin: HarakaTestPlugin, from: string, opts: { relaying?: boolean } = {}) {
    const conn = makeConnection('192.0.2.10', { relaying: opts.relaying ?? true })
    const original = addr(from)
    conn.transaction.mail_from = original
    const r = reply(await fixtures.callHook(plugin, 'hook_mail', conn, [original, {}]))
    return { conn, r, original }
  }

  it('a relaying client from a signing domain: transaction.mail_from is a new, signed address', async () => {
    const { plugin } = setup()
    const conn = makeConnection('192.0.2.10', { relaying: true })
    const from = addr('Bob@Example.COM')
    conn.transaction.mail_from = from
    const r = await fixtures.callHook(plugin, 'hook_mail', conn, [from, {}])
    assert.equal(r.rc, undefined)
    const signed = conn.transaction.mail_from
    assert.notEqual(signed, from, 'replaced, not changed in place')
    assert.equal(wire(from), 'Bob@Example.COM', "the client's address object is untouched")
    assert.equal(signed.address, VALID)
    assert.equal(signed.format(), `<${VALID}>`)
    assert.equal(signed.constructor, from.constructor, "Haraka's own Address class")
  })

  const unsigned: [string, string, { relaying?: boolean }, string?][] = [
    ['a client that does not relay', 'bob@example.com', { relaying: false }],
    ['the null sender', '<>', {}],
    ['a sender already tagged', 'prvs=1792f288fc=bob@example.com', {}],
    ['a sender of another domain', 'bob@example.org', {}],
    ['sign = false', 'bob@example.com', {}, `${BATV}[batv]\nsign = false\n`],
    ['no sign key', 'bob@example.com', {}, `${BATV}[batv]\nsign_key = 2\n`],
  ]
  for (const [name, from, opts, ini] of unsigned) {
    it(`${name}: left as it is`, async () => {
      const { plugin } = setup(ini)
      const { conn, original, r } = await relayed(plugin, from, opts)
      assert.equal(r.rc, undefined)
      assert.equal(conn.transaction.mail_from, original)
      assert.equal(wire(original), wire(addr(from)))
    })
  }

  it('unsigned_recipients: the sender goes back to the unsigned form, whoever else the message is for', async () => {
    const { plugin } = setup(
      `${BATV}[batv]\nunsigned_recipients = list@lists.example.org, @groups.example.net\n`,
    )
    for (const order of [
      ['carol@example.net', 'list@lists.example.org'],
      ['Anyone@Groups.Example.NET', 'carol@example.net'],
    ]) {
      const { conn, original } = await relayed(plugin, 'bob@example.com')
      assert.notEqual(conn.transaction.mail_from, original)
      for (const to of order) await rcpt(plugin, conn, to)
      assert.equal(conn.transaction.mail_from, original, order.join(' + '))
      const said = conn.logs.filter((l: { text: string }) => /sender left unsigned: mail to /.test(l.text))
      assert.equal(said.length, 1, 'said once, for the recipient that needs it')
    }
    const { conn } = await relayed(plugin, 'bob@example.com')
    await rcpt(plugin, conn, 'carol@example.net')
    assert.equal(conn.transaction.mail_from.address, VALID, 'other destinations stay signed')
  })

  it('the signed form is what signAddress makes, and checks as valid', async () => {
    const { plugin } = setup(BATV, NOON + 3 * DAY_MS)
    const { conn } = await relayed(plugin, 'alice@example.com')
    const expected = signAddress('alice@example.com', key, 7, NOON + 3 * DAY_MS)
    assert.ok(expected.ok)
    assert.equal(conn.transaction.mail_from.address, expected.address)
    const back = await bounce(plugin, LISTED, expected.address)
    assert.equal(back.rc, undefined)
    assert.deepEqual(batvResults(back.conn), ['valid key 1'])
  })
})

describe('secrets never leave', () => {
  const SECRET_TEXT = 'Zq7-never-shown-9Xw'

  it('not in log lines, results, replies, headers or metrics', async () => {
    const ini = `[batv]\ndomains = example.com\nmissing_from = 2020-01-01\n`
    const keys = `1 = ${SECRET_TEXT}\n2 = ${SECRET_TEXT}${'x'.repeat(60)}\n3 =\n${SECRET_TEXT}-typo\n`
    const { plugin, logs } = setup(ini, NOON, keys)
    const texts: string[] = logs.map((l) => l.text)
    const relay = makeConnection('192.0.2.10', { relaying: true })
    await mail(plugin, relay, 'bob@example.com')
    await rcpt(plugin, relay, 'carol@example.net')
    await dataPost(plugin, relay)
    for (const to of [VALID, 'alice@example.com', 'prvs=2792f288fc=bob@example.com', 'prvs=x@example.com']) {
      const r = await bounce(plugin, LISTED, to)
      await dataPost(plugin, r.conn)
      texts.push(r.text, JSON.stringify(results(r.conn)), r.conn.transaction.header.toString())
      texts.push(...r.conn.logs.map((l: { text: string }) => l.text))
    }
    texts.push(await plugin.backscatter.metrics.exposition())
    texts.push(
      JSON.stringify(plugin.backscatter.settings, (_k, v: unknown) =>
        v instanceof Set || v instanceof Map ? [...v] : v,
      ),
    )
    const errors = logs.filter((l) => l.level === 'logerror').map((l) => l.text)
    assert.ok(
      errors.some((t) => /^config\/backscatter\.keys line 2: key 2: the secret is \d+ bytes long/.test(t)),
      errors.join('\n'),
    )
    assert.ok(
      errors.includes(
        'config/backscatter.keys line 4: no "=": each line is N=secret; line ignored, not shown',
      ),
      errors.join('\n'),
    )
    for (const t of texts) assert.ok(!t.includes(SECRET_TEXT), t)
  })

  it('config/backscatter.keys readable by others: a warning naming the file and its mode', () => {
    const t = setup()
    const file = path.join(t.dir, 'config', 'backscatter.keys')
    fs.chmodSync(file, 0o644)
    t.plugin.load_backscatter_ini()
    assert.ok(
      t.logs.some(
        (l) =>
          l.level === 'logwarn' &&
          l.text.startsWith('config/backscatter.keys: mode 0644: group or others can read the BATV secrets'),
      ),
      t.logs.map((l) => l.text).join('\n'),
    )
  })
})

describe('keys in [batv.keys] of backscatter.ini, as before config/backscatter.keys', () => {
  const TYPO_SECRET = 'Typo-Qz8-secret'

  it('are used for one more release, with a warning saying where keys belong now', async () => {
    const { plugin, logs } = setup(`${BATV}[batv.keys]\n1 = ${SECRET}\n`, NOON, null)
    assert.equal(plugin.backscatter.settings.batv.keys.size, 1)
    const r = await bounce(plugin, CLEAN, VALID)
    assert.equal(r.rc, undefined, 'the tag signed with the legacy key is valid')
    const warnings = logs.filter((l) => l.level === 'logwarn').map((l) => l.text)
    assert.ok(
      warnings.some(
        (t) =>
          t.startsWith(
            'config/backscatter.ini line 8: [batv.keys]: key 1 read from here for one more release',
          ) && t.endsWith('BATV keys belong in config/backscatter.keys now, one N=secret a line'),
      ),
      warnings.join('\n'),
    )
  })

  it("a mistyped line there: named by its line in the plugin's log, its secret never shown", () => {
    const { logs } = setup(`${BATV}[batv.keys]\n1 ${TYPO_SECRET}\n2 = fine\n`, NOON, null)
    const texts = logs.map((l) => l.text)
    assert.ok(
      texts.some((t) => t.startsWith('config/backscatter.ini line 9: [batv.keys]: not "N = secret"')),
      texts.join('\n'),
    )
    for (const t of texts) assert.ok(!t.includes(TYPO_SECRET), t)
  })
})

describe('an edit to the keys takes effect without a restart', () => {
  // haraka-config's wait for an edit to settle runs on the mock clock.
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }))
  afterEach(() => mock.timers.reset())

  it('a new sign key in config/backscatter.keys', async () => {
    const t = setup(`${BATV}[batv]\nsign_key = 2\n`)
    assert.equal(t.plugin.backscatter.settings.batv.signKey, undefined, 'no key 2 yet')
    fs.writeFileSync(path.join(t.dir, 'config', 'backscatter.keys'), `1 = ${SECRET}\n2 = 0123\n`)
    await editDelivered(() => t.plugin.backscatter.settings.batv.signKey?.id === 2)
    const conn = makeConnection('192.0.2.10', { relaying: true })
    await mail(t.plugin, conn, 'bob@example.com')
    const expected = signAddress('bob@example.com', BatvKey.create(2, '0123') as BatvKey, 7, NOON)
    assert.ok(expected.ok)
    assert.equal(conn.transaction.mail_from.address, expected.address)
  })

  it('config/backscatter.keys created after the start', async () => {
    const t = setup(BATV, NOON, null)
    assert.equal(t.plugin.backscatter.settings.batv.domains.size, 0, 'BATV off without a key')
    fs.writeFileSync(path.join(t.dir, 'config', 'backscatter.keys'), `1 = ${SECRET}\n`, { mode: 0o600 })
    await editDelivered(() => t.plugin.backscatter.settings.batv.keys.has(1))
  })

  it('a key added to keys_file (read for one more release)', async () => {
    const t = setup(`[batv]\ndomains = example.com\nkeys_file = test_keys.ini\n`, NOON, null)
    const keysFile = path.join(t.dir, 'config', 'test_keys.ini')
    fs.writeFileSync(keysFile, `[batv.keys]\n1 = ${SECRET}\n`)
    t.plugin.load_backscatter_ini()
    assert.deepEqual([...t.plugin.backscatter.settings.batv.keys.keys()], [1])
    assert.ok(
      t.logs.some((l) => l.text.startsWith('config/test_keys.ini line 1: [batv.keys]: key 1 read from here')),
      t.logs.map((l) => l.text).join('\n'),
    )
    fs.writeFileSync(keysFile, `[batv.keys]\n1 = ${SECRET}\n4 = four\n`)
    await editDelivered(() => t.plugin.backscatter.settings.batv.keys.has(4))
  })
})
