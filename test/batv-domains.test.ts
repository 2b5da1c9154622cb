// Signed bounces (BATV) on the domain Haraka routes on, and only on bounces:
// domains typed in Unicode at RCPT, in signing and in the config; mail from
// postmaster; addresses too long to carry a tag; a refused recipient keeps its
// tag. The plugin as Haraka loads it (haraka-test-fixtures), a scripted DNS
// server on 127.0.0.1, the plugin's clock set by the test.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import fixtures from 'haraka-test-fixtures'

import { BatvKey, signAddress } from '../lib/batv/sign'
import {
  batvPluginTests,
  batvResults,
  bounce,
  CLEAN,
  LISTED,
  NOON,
  SECRET,
  wire,
  ZONE,
} from './support/batv-plugin'
import {
  addr,
  constants,
  mail,
  makeConnection,
  rcpt,
  results,
  type HarakaConnection,
  type HarakaTestPlugin,
} from './support/harness'

const KEY = BatvKey.create(1, SECRET) as BatvKey
const BATV = (domains: string): string => `[batv]\ndomains = ${domains}\nmissing_from = 2020-01-01\n`

/** The same domain as a client may type it: fullwidth letters, U+3002 dot, a soft hyphen, capitals. */
const TYPED_EXAMPLE_COM = [
  'ｅｘａｍｐｌｅ.com',
  'example。com',
  'exam\u00adple.com',
  'ExAmPlE.CoM',
  'ＥＸＡＭＰＬＥ．ＣＯＭ',
]

const fx = batvPluginTests()
/** The plugin with `ini`, key 1 in config/backscatter.keys, its clock at noon on the example's day. */
const setup = (ini: string) => fx.setup(ini)

describe('one domain for every decision: the lower-case ASCII one Haraka routes on', () => {
  for (const typed of TYPED_EXAMPLE_COM) {
    it(`an untagged bounce to bob@${typed} meets example.com's tag check`, async () => {
      const { plugin } = setup(BATV('example.com'))
      const r = await bounce(plugin, CLEAN, `bob@${typed}`)
      assert.equal(r.rc, constants.DENY)
      assert.deepEqual(batvResults(r.conn), ['missing'])
    })

    it(`a valid tag to prvs=…=bob@${typed} is valid, and delivered to bob@example.com`, async () => {
      const { plugin } = setup(BATV('example.com'))
      const signed = signAddress('bob@example.com', KEY, 7, NOON)
      assert.ok(signed.ok)
      const r = await bounce(plugin, LISTED, signed.address.replace('example.com', typed))
      assert.equal(r.rc, undefined)
      assert.deepEqual(batvResults(r.conn), ['valid key 1'])
      assert.equal(wire(r.params[0]), 'bob@example.com')
    })

    it(`[recipient_domains] and exempt @domains match bob@${typed}`, async () => {
      const { plugin } = setup(
        '[main]\naction = score\nexempt_recipients = postmaster, @lists.example.com\n' +
          '[recipient_domains]\nexample.com = reject\n',
      )
      assert.equal((await bounce(plugin, LISTED, `bob@${typed}`)).rc, constants.DENY, 'example.com = reject')
      const lists = await bounce(plugin, LISTED, `bob@lists.${typed}`)
      assert.equal(lists.rc, undefined, 'exempt')
      assert.equal(
        (await bounce(plugin, LISTED, `bob@other.${typed}`)).rc,
        undefined,
        '[main] action = score elsewhere',
      )
    })
  }

  it('a Unicode IDN: written in Unicode in the config, typed in Unicode or as its A-label at RCPT', async () => {
    // haraka-config reads ini keys in ASCII only: a [recipient_domains] key is the A-label, any case.
    const { plugin } = setup(`${BATV('Bücher.example')}[recipient_domains]\nXN--BCHER-KVA.example = defer\n`)
    assert.deepEqual([...plugin.backscatter.settings.batv.domains], ['xn--bcher-kva.example'])
    assert.deepEqual([...plugin.backscatter.settings.recipientActions], [['xn--bcher-kva.example', 'defer']])
    for (const typed of [
      'bücher.example',
      'BÜCHER.example',
      'xn--bcher-kva.example',
      'XN--BCHER-KVA.EXAMPLE',
    ]) {
      const r = await bounce(plugin, CLEAN, `bob@${typed}`)
      assert.equal(r.rc, constants.DENYSOFT, typed)
      assert.deepEqual(batvResults(r.conn), ['missing'], typed)
    }
    const signed = signAddress('bob@xn--bcher-kva.example', KEY, 7, NOON)
    assert.ok(signed.ok)
    const r = await bounce(plugin, CLEAN, signed.address.replace('xn--bcher-kva', 'bücher'))
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), ['valid key 1'])
  })

  it('a config domain with no ASCII form is dropped with a note naming it', () => {
    const { plugin, logs } = setup(BATV('\ufffd.example, example.com'))
    assert.deepEqual([...plugin.backscatter.settings.batv.domains], ['example.com'])
    assert.ok(
      logs.some(
        (l) => l.level === 'logwarn' && l.text.includes('"\ufffd.example" is not a domain name; ignored'),
      ),
      JSON.stringify(logs),
    )
  })

  for (const typed of [
    'Bob@ｅｘａｍｐｌｅ.com',
    'bob@example。com',
    'BOB@EXAMPLE.COM',
    'bob@exam\u00adple.com',
  ]) {
    it(`signing ${typed}: the tag is over the ASCII address, and the bounce to it is valid`, async () => {
      const { plugin } = setup(BATV('example.com'))
      const conn = makeConnection('192.0.2.10', { relaying: true })
      await mail(plugin, conn, typed)
      const signed = wire(conn.transaction.mail_from)
      assert.match(signed, /^prvs=1792[0-9a-f]{6}=bob@example\.com$/)
      assert.equal(signed, (signAddress('bob@example.com', KEY, 7, NOON) as { address: string }).address)
      const back = await bounce(plugin, CLEAN, signed)
      assert.equal(back.rc, undefined)
      assert.deepEqual(batvResults(back.conn), ['valid key 1'])
    })
  }
})

describe('tags are checked on bounces (<>), not on mail from postmaster', () => {
  it('postmaster@other.example to an untagged address of a signing domain: accepted, no tag result', async () => {
    const { plugin } = setup(BATV('example.com'))
    const r = await bounce(plugin, CLEAN, 'alice@example.com', 'postmaster@other.example')
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), [])
    assert.deepEqual(results(r.conn).pass, [ZONE], 'still looked up on the zones (safe mode)')
  })

  it('postmaster from a listed host is still refused by the listing', async () => {
    const { plugin } = setup(BATV('example.com'))
    assert.equal(
      (await bounce(plugin, LISTED, 'alice@example.com', 'postmaster@other.example')).rc,
      constants.DENY,
    )
  })

  it('postmaster to a tagged address: the tag is removed, not judged', async () => {
    const { plugin } = setup(BATV('example.com'))
    const r = await bounce(plugin, CLEAN, 'prvs=1792f288fd=bob@example.com', 'postmaster@other.example')
    assert.equal(r.rc, undefined, 'a bad signature is not judged on ordinary mail')
    assert.equal(wire(r.params[0]), 'bob@example.com')
  })

  it('[batv] check_local_parts = postmaster: mail from postmaster is checked as a bounce is', async () => {
    const { plugin } = setup(
      BATV('example.com').replace('[batv]\n', '[batv]\ncheck_local_parts = postmaster\n'),
    )
    const r = await bounce(plugin, CLEAN, 'alice@example.com', 'Postmaster@other.example')
    assert.equal(r.rc, constants.DENY)
    assert.deepEqual(batvResults(r.conn), ['missing'])
  })

  it('a check_local_parts entry that is not a bounce-type sender is never checked: a warning says so', () => {
    const { logs } = setup(
      BATV('example.com').replace('[batv]\n', '[batv]\ncheck_local_parts = mailer-daemon\n'),
    )
    assert.ok(
      logs.some(
        (l) =>
          l.level === 'logwarn' && /check_local_parts.*mailer-daemon.*\[senders\] local_parts/.test(l.text),
      ),
      JSON.stringify(logs),
    )
  })
})

describe('addresses too long to carry a tag (RFC 5321: 64 octets in a local part)', () => {
  const long = `${'a'.repeat(49)}@example.com`
  const longest = `${'a'.repeat(48)}@example.com`

  it('a relaying sender of 49 octets is left unsigned, with a log line; 48 is signed into 64', async () => {
    const { plugin } = setup(BATV('example.com'))
    const conn = makeConnection('192.0.2.10', { relaying: true })
    await mail(plugin, conn, long)
    assert.equal(wire(conn.transaction.mail_from), long)
    assert.ok(
      conn.logs.some((l: { text: string }) => /left unsigned: a{49}@example\.com is too long/.test(l.text)),
    )
    const conn48 = makeConnection('192.0.2.10', { relaying: true })
    await mail(plugin, conn48, longest)
    assert.equal(wire(conn48.transaction.mail_from).indexOf('@'), 64)
  })

  it("an untagged bounce to such an address is judged as an unsigned domain's: not checked", async () => {
    const { plugin } = setup(BATV('example.com'))
    const r = await bounce(plugin, CLEAN, long)
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), ['not checked'])
    assert.equal((await bounce(plugin, CLEAN, longest)).rc, constants.DENY, '48 octets could be signed')
    assert.equal((await bounce(plugin, LISTED, long)).rc, constants.DENY, 'the zones still apply')
  })
})

describe('only accepted recipients are delivered untagged', () => {
  /** A refusal of the recipient by a later plugin, as Haraka runs the deny hooks. */
  async function refusedLater(
    plugin: HarakaTestPlugin,
    conn: HarakaConnection,
    params: unknown[],
    hook: string,
  ) {
    const denyParams = [constants.DENY, 'no such user', 'rcpt_to.other', `hook_${hook}`, params, hook]
    return fixtures.callHook(plugin, 'hook_deny', conn, denyParams)
  }

  it('a tagged recipient refused by a later rcpt plugin gets its tag back, as the client wrote it', async () => {
    const { plugin } = setup(BATV('example.com'))
    const signed = signAddress('bob@example.com', KEY, 7, NOON)
    assert.ok(signed.ok)
    const typed = signed.address.replace('example.com', 'Example.COM')
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, typed)
    assert.equal(r.rc, undefined)
    assert.equal(wire(r.params[0]), 'bob@example.com', 'the later plugins judge the real mailbox')
    const deny = await refusedLater(plugin, conn, r.params, 'rcpt')
    assert.equal(deny.rc, undefined, 'the refusal goes on')
    assert.equal(wire(r.params[0]), typed)
    assert.equal((r.params[0] as { format(): string }).format(), `<${typed}>`)
  })

  it('ordinary mail to a tagged address refused at rcpt_ok gets its tag back too', async () => {
    const { plugin } = setup(BATV('example.com'))
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, 'carol@example.org')
    const r = await rcpt(plugin, conn, 'prvs=1792f288fc=bob@example.com')
    assert.equal(wire(r.params[0]), 'bob@example.com')
    await refusedLater(plugin, conn, r.params[0] as unknown as unknown[], 'rcpt_ok')
    assert.equal(wire(r.params[0]), 'prvs=1792f288fc=bob@example.com')
  })

  it('an accepted recipient stays untagged; a refusal of another one, or at another hook, changes nothing', async () => {
    const { plugin } = setup(BATV('example.com'))
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'prvs=1792f288fc=bob@example.com')
    const other = [addr('carol@example.com'), {}]
    await refusedLater(plugin, conn, other, 'rcpt')
    await refusedLater(plugin, conn, r.params, 'data_post')
    assert.equal(wire(r.params[0]), 'bob@example.com')
    assert.equal(wire(other[0]), 'carol@example.com')
  })

  it('odd deny parameters never throw and always go on', async () => {
    const { plugin } = setup(BATV('example.com'))
    const conn = makeConnection(CLEAN)
    for (const params of [
      undefined,
      [],
      [1, 2, 3, 4, null, 'rcpt'],
      [1, 2, 3, 4, [null], 'rcpt'],
      [1, 2, 3, 4, 'x', 'rcpt_ok'],
    ]) {
      const r = await fixtures.callHook(plugin, 'hook_deny', conn, params)
      assert.equal(r.rc, undefined)
    }
  })
})
