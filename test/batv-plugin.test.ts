// Signed bounces (BATV) in the plugin as Haraka loads it (haraka-test-fixtures),
// against a scripted DNS server on 127.0.0.1, with the plugin's clock set by the
// test: verify at RCPT, the exempt recipients and the rollout, the tag removed
// for later plugins and the queue, results and header, hooks that never throw.
// Signing and the keys: batv-signing.test.ts; domains: batv-domains.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import fixtures from 'haraka-test-fixtures'

import { BatvKey, signAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import {
  addresses,
  batvPluginTests,
  batvResults,
  bounce,
  CLEAN,
  DAY,
  LISTED,
  NOON,
  SECRET,
  VALID,
  ZONE,
} from './support/batv-plugin'
import { addr, constants, dataPost, mail, makeConnection, rcpt, results } from './support/harness'

const BATV = `[batv]\ndomains = example.com\nmissing_from = 2020-01-01\n`

const fx = batvPluginTests()
/** The plugin with `ini` (BATV on for example.com), `keys` as config/backscatter.keys (null: none), its clock at `nowMs`. */
const setup = (ini = BATV, nowMs?: number, keys?: string | null) => fx.setup(ini, nowMs, keys)

describe('verify at RCPT, with the default scores', () => {
  it('a valid tag from a listed host is accepted (5 - 10 < 5); the result names the key', async () => {
    const { plugin } = setup()
    const r = await bounce(plugin, LISTED, VALID)
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), ['valid key 1'])
    assert.equal(results(r.conn).score, 5, JSON.stringify(results(r.conn)))
  })

  it('an untagged bounce from an unlisted host to a signing domain is refused, with its own reply', async () => {
    const { plugin, logs } = setup()
    const r = await bounce(plugin, CLEAN, 'alice@example.com')
    assert.equal(r.rc, constants.DENY)
    assert.equal(
      r.text,
      '550 5.7.1 Bounce refused: <alice@example.com> takes bounces only at its signed return path (BATV); this bounce is not about mail sent from here',
    )
    assert.deepEqual(batvResults(r.conn), ['missing'])
    assert.ok(!logs.some((l) => l.level === 'logerror'))
  })

  it('a bounce to a domain that does not sign is decided by the zones alone', async () => {
    const { plugin } = setup()
    const clean = await bounce(plugin, CLEAN, 'alice@example.org')
    assert.equal(clean.rc, undefined)
    assert.deepEqual(batvResults(clean.conn), ['not checked'])
    const listed = await bounce(plugin, LISTED, 'alice@example.org')
    assert.equal(listed.rc, constants.DENY)
    assert.match(listed.text, /^550 5\.7\.1 Backscatter refused: 45\.1\.2\.3 is listed on/)
  })

  it('the zones alone reach the threshold: the listing reply, even with a missing tag added', async () => {
    const { plugin } = setup()
    const r = await bounce(plugin, LISTED, 'alice@example.com')
    assert.equal(r.rc, constants.DENY)
    assert.match(r.text, /^550 5\.7\.1 Backscatter refused: 45\.1\.2\.3 is listed/)
  })

  const invalid: [string, string, string][] = [
    ['a bad signature', 'prvs=1792f288fd=bob@example.com', 'invalid key 1: bad signature'],
    ['an unknown key', 'prvs=7792f288fc=bob@example.com', 'invalid key 7: unknown key'],
    ['a malformed tag', 'prvs=bob@example.com', 'invalid: malformed'],
    ['an empty tag', 'prvs==x@example.com', 'invalid: malformed'],
    ['non-hex digits', 'prvs=1792f288zz=bob@example.com', 'invalid: malformed'],
  ]
  for (const [name, to, result] of invalid) {
    it(`${name} from an unlisted host: refused as invalid`, async () => {
      const { plugin } = setup()
      const r = await bounce(plugin, CLEAN, to)
      assert.equal(r.rc, constants.DENY)
      assert.equal(
        r.text,
        `550 5.7.1 Bounce refused: the signature (BATV) of <${to}> is invalid or expired; this bounce is not about mail sent from here`,
      )
      assert.deepEqual(batvResults(r.conn), [result])
    })
  }

  it('a tag past its expiry day is invalid: expired', async () => {
    const { plugin } = setup(BATV, NOON + 8 * DAY_MS)
    const r = await bounce(plugin, CLEAN, VALID)
    assert.equal(r.rc, constants.DENY)
    assert.deepEqual(batvResults(r.conn), ['invalid key 1: expired'])
  })

  it('the last day of the tag is still valid', async () => {
    const { plugin } = setup(BATV, (DAY + 8) * DAY_MS - 1)
    assert.equal((await bounce(plugin, LISTED, VALID)).rc, undefined)
  })

  it('a postmaster@ sender is looked up on the zones, but its mail is not checked for tags (as Exim)', async () => {
    const { plugin } = setup()
    const r = await bounce(plugin, CLEAN, 'alice@example.com', 'postmaster@mx.example.net')
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), [])
  })

  it('a callout (MAIL FROM:<>, RCPT TO:<tagged>) for a valid tag is accepted', async () => {
    const { plugin } = setup()
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, VALID)).rc, undefined)
  })

  it('each recipient on its own: score = zones + its tag', async () => {
    const { plugin } = setup('[main]\nthreshold = 5\n' + BATV.replace('[batv]\n', '[batv]\nmissing = 3\n'))
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, VALID)).rc, undefined, '5 - 10')
    assert.equal((await rcpt(plugin, conn, 'carol@example.com')).rc, constants.DENY, '5 + 3')
    assert.equal((await rcpt(plugin, conn, 'dave@example.org')).rc, constants.DENY, '5, not signing')
    const unlisted = makeConnection(CLEAN)
    await mail(plugin, unlisted, '<>')
    assert.equal((await rcpt(plugin, unlisted, 'carol@example.com')).rc, undefined, '0 + 3 < 5')
  })
})

describe('exempt recipients and the per-domain action', () => {
  it('postmaster and abuse stay exempt: not checked', async () => {
    const { plugin } = setup()
    const r = await bounce(plugin, CLEAN, 'postmaster@example.com')
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), ['not checked'])
  })

  it('exempt addresses and @domains', async () => {
    const { plugin } = setup(
      `[main]\nexempt_recipients = postmaster, noreply@example.com, @lists.example.com\n${BATV}[batv]\ndomains = example.com, lists.example.com\n`,
    )
    for (const to of ['noreply@example.com', 'anyone@lists.example.com', 'Postmaster@example.com']) {
      assert.equal((await bounce(plugin, CLEAN, to)).rc, undefined, to)
    }
    assert.equal((await bounce(plugin, CLEAN, 'other@example.com')).rc, constants.DENY)
  })

  it('[recipient_domains]: defer, score and off per domain; [main] action elsewhere', async () => {
    const { plugin } = setup(
      `${BATV}[batv]\ndomains = example.com, example.org, example.net, example.info\n[recipient_domains]\nexample.org = defer\nexample.net = score\nexample.info = off\n`,
    )
    const com = await bounce(plugin, CLEAN, 'a@example.com')
    assert.equal(com.rc, constants.DENY)
    const org = await bounce(plugin, CLEAN, 'a@example.org')
    assert.equal(org.rc, constants.DENYSOFT)
    assert.match(org.text, /^450 4\.7\.1 Bounce refused/)
    const net = await bounce(plugin, CLEAN, 'a@example.net')
    assert.equal(net.rc, undefined)
    assert.deepEqual(batvResults(net.conn), ['missing'], 'score: checked, recorded')
    const info = await bounce(plugin, CLEAN, 'a@example.info')
    assert.equal(info.rc, undefined)
    assert.deepEqual(batvResults(info.conn), ['not checked'], 'off: not checked')
  })

  it('[recipient_domains] applies to listings too', async () => {
    const { plugin } = setup('[recipient_domains]\nexample.org = defer\n')
    assert.equal((await bounce(plugin, LISTED, 'a@example.org')).rc, constants.DENYSOFT)
    assert.equal((await bounce(plugin, LISTED, 'a@example.com')).rc, constants.DENY)
  })
})

describe('the rollout: [batv] missing_from', () => {
  const withFrom = (date: string): string =>
    BATV.replace('missing_from = 2020-01-01', `missing_from = ${date}`)

  it('empty: an untagged bounce is recorded as missing, not scored; one info line at load', async () => {
    const { plugin, logs } = setup(withFrom(''))
    const r = await bounce(plugin, CLEAN, 'alice@example.com')
    assert.equal(r.rc, undefined)
    assert.deepEqual(batvResults(r.conn), ['missing (not scored before [batv] missing_from)'])
    const notes = logs.filter((l) => /missing_from is empty/.test(l.text))
    assert.equal(notes.length, 1)
    assert.equal(notes[0]!.level, 'loginfo')
    assert.match(notes[0]!.text, /set missing_from to the day signing started plus lifetime_days/)
  })

  it('empty: invalid tags are still refused, valid ones still pass a listing', async () => {
    const { plugin } = setup(withFrom(''))
    assert.equal((await bounce(plugin, CLEAN, 'prvs=1792f288fd=bob@example.com')).rc, constants.DENY)
    assert.equal((await bounce(plugin, LISTED, VALID)).rc, undefined)
  })

  it('a date: not scored the day before, scored from 00:00 UTC of that day', async () => {
    const from = new Date((DAY + 1) * DAY_MS).toISOString().slice(0, 10)
    const t = setup(withFrom(from))
    t.plugin.backscatter.now = () => (DAY + 1) * DAY_MS - 1
    assert.equal((await bounce(t.plugin, CLEAN, 'alice@example.com')).rc, undefined)
    t.plugin.backscatter.now = () => (DAY + 1) * DAY_MS
    assert.equal((await bounce(t.plugin, CLEAN, 'alice@example.com')).rc, constants.DENY)
  })
})

describe('the tag is removed: later plugins and the queue see the original address', () => {
  it('a valid tag: params[0] itself is changed, and so is the rcpt_to entry', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const r = await rcpt(plugin, conn, 'prvs=1792F288FC=Bob@Example.com')
    assert.equal(r.rc, undefined)
    const a = r.params[0] as { address: string; user: string; host: string; format(): string }
    // The local part as written, the domain as Haraka routes on it.
    assert.equal(a.address, 'Bob@example.com')
    assert.equal(a.user, 'Bob')
    assert.equal(a.host, 'example.com')
    assert.equal(a.format(), '<Bob@example.com>')
    assert.equal(conn.transaction.rcpt_to[0], a, 'the same object Haraka queued')
    assert.deepEqual(addresses(conn), ['Bob@example.com'])
  })

  it('a quoted tagged local part comes back quoted', async () => {
    const { plugin } = setup()
    const key = BatvKey.create(1, SECRET) as BatvKey
    const signed = signAddress('"a b"@example.com', key, 7, NOON)
    assert.ok(signed.ok)
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, signed.address)).rc, undefined)
    assert.deepEqual(addresses(conn), ['"a b"@example.com'])
  })

  it('an invalid tag accepted by the score is removed too', async () => {
    const { plugin } = setup('[main]\naction = score\n' + BATV)
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'prvs=1792f288fd=bob@example.com')).rc, undefined)
    assert.deepEqual(addresses(conn), ['bob@example.com'])
  })

  it('a tagged address reached with an ordinary sender (a reply): removed, no lookup, no check', async () => {
    const { plugin } = setup()
    const before = fx.dns.queries.length
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, 'carol@example.net')
    assert.equal((await rcpt(plugin, conn, 'prvs=1001aaaaaa=bob@example.com')).rc, undefined)
    assert.deepEqual(addresses(conn), ['bob@example.com'])
    assert.equal(fx.dns.queries.length, before)
    assert.equal(conn.transaction.results.get('backscatter'), undefined)
  })

  it('a bounce from a skipped client: not checked, the tag still removed', async () => {
    const { plugin } = setup()
    const conn = makeConnection('10.1.2.3')
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, 'prvs=1001aaaaaa=bob@example.com')).rc, undefined)
    assert.deepEqual(addresses(conn), ['bob@example.com'])
  })

  it('a tag to a domain that does not sign is left alone', async () => {
    const { plugin } = setup()
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, 'carol@example.net')
    await rcpt(plugin, conn, 'prvs=1792f288fc=bob@example.org')
    assert.deepEqual(addresses(conn), ['prvs=1792f288fc=bob@example.org'])
  })

  it('BATV off: tags are left alone', async () => {
    const { plugin } = setup('')
    const conn = makeConnection(CLEAN)
    await mail(plugin, conn, '<>')
    assert.equal((await rcpt(plugin, conn, VALID)).rc, undefined)
    assert.deepEqual(addresses(conn), [VALID])
    assert.equal(batvResults(conn).length, 0, 'no batv result when BATV is off')
  })

  it('the next plugin gets the original in params[0]', async () => {
    const { plugin } = setup()
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, '<>')
    const params = [addr(VALID), {}]
    conn.transaction.rcpt_to.push(params[0])
    await fixtures.callHook(plugin, 'hook_rcpt', conn, params)
    // Haraka hands the next plugin this same array.
    const seen = params[0] as { host: string; user: string }
    assert.equal(`${seen.user}@${seen.host}`, 'bob@example.com')
  })
})

describe('visible: header, results, metrics', () => {
  it('the header carries the outcome of the accepted recipients', async () => {
    const { plugin } = setup()
    const { conn } = await bounce(plugin, LISTED, VALID)
    await dataPost(plugin, conn)
    assert.equal(
      conn.transaction.header.get('X-Haraka-Backscatter'),
      `score=5; listed=${ZONE}; batv=valid; ip=${LISTED}`,
    )
    const other = await bounce(plugin, CLEAN, 'alice@example.org')
    await dataPost(plugin, other.conn)
    assert.equal(
      other.conn.transaction.header.get('X-Haraka-Backscatter'),
      `score=0; listed=none; batv=none; ip=${CLEAN}`,
    )
  })

  it('batv_total counts signed messages and checked recipients by result', async () => {
    const { plugin } = setup(`${BATV}[batv]\nunsigned_recipients = @lists.example.org\n`)
    const count = async (result: string): Promise<number> => {
      const text: string = await plugin.backscatter.metrics.exposition()
      const m = new RegExp(`^haraka_backscatter_batv_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text)
      return Number(m?.[1] ?? NaN)
    }
    const signed = makeConnection('192.0.2.10', { relaying: true })
    await mail(plugin, signed, 'bob@example.com')
    await rcpt(plugin, signed, 'carol@example.net')
    await dataPost(plugin, signed)
    const restored = makeConnection('192.0.2.10', { relaying: true })
    await mail(plugin, restored, 'bob@example.com')
    await rcpt(plugin, restored, 'x@lists.example.org')
    await dataPost(plugin, restored)
    await bounce(plugin, LISTED, VALID)
    await bounce(plugin, CLEAN, 'prvs=1792f288fd=bob@example.com')
    await bounce(plugin, CLEAN, 'alice@example.com')
    await bounce(plugin, CLEAN, 'postmaster@example.com')
    assert.deepEqual(
      [await count('signed'), await count('valid'), await count('invalid'), await count('missing')],
      [1, 1, 1, 1],
    )
  })
})

describe('hooks never throw on odd addresses and always call next once', () => {
  const odd: unknown[] = [
    addr('<prvs=@example.com>'),
    addr('<prvs==x@example.com>'),
    addr('<"prvs=1792f288fc="@example.com>'),
    addr(`<prvs=1792f288fc=${'b'.repeat(40)}@example.com>`),
    { user: 'prvs=1792f288fc=bob', host: 'example.com' },
    { user: 'prvs=1792f288fc=bob', host: null },
    { user: 42, host: {} },
    { user: 'prvs=1792f288fc=bob', host: 'example.com', constructor: 7 },
    null,
  ]
  it('RCPT of a bounce, of ordinary mail, and MAIL of a relaying client', async () => {
    const { plugin } = setup()
    const calls: unknown[][] = []
    for (const a of odd) {
      for (const from of ['<>', 'carol@example.net']) {
        const conn = makeConnection(CLEAN, { relaying: from !== '<>' })
        await mail(plugin, conn, from)
        await new Promise<void>((resolve) => {
          plugin.hook_rcpt(
            (...args: unknown[]) => {
              calls.push(args)
              resolve()
            },
            conn,
            [a, {}],
          )
        })
      }
      const conn = makeConnection(CLEAN, { relaying: true })
      await new Promise<void>((resolve) => {
        plugin.hook_mail(
          (...args: unknown[]) => {
            calls.push(args)
            resolve()
          },
          conn,
          [a, {}],
        )
      })
    }
    assert.equal(calls.length, odd.length * 3)
    for (const args of calls) assert.ok(args[0] === undefined || args[0] === constants.DENY, String(args[0]))
  })
})
