// Signed bounces (BATV) in the plugin as Haraka loads it (haraka-test-fixtures),
// against a scripted DNS server on 127.0.0.1, with the plugin's clock set by the
// test: verify at RCPT, remove the tag, sign at MAIL, results, header, metrics.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, before, beforeEach, describe, it, mock } from 'node:test'

import fixtures from 'haraka-test-fixtures'

import { BatvKey, signAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import { dnsblZone, startDns, type ScriptedDns } from './support/dns-server'
import {
  addr,
  constants,
  dataPost,
  makeConnection,
  makeTestPlugin,
  results,
  type HarakaConnection,
  type HarakaTestPlugin,
  type TestPlugin,
} from './support/harness'
import { editDelivered } from './support/haraka-config'

const ZONE = 'ips.backscatterer.org'
const LISTED = '45.1.2.3'
const CLEAN = '45.9.8.7'

/** The DOMAIN.md example: key 1, secret s3cret, bob@example.com on day 20785 (valid through day 20792). */
const SECRET = 's3cret'
const DAY = 20785
const NOON = DAY * DAY_MS + DAY_MS / 2
const VALID = 'prvs=1792f288fc=bob@example.com'
const BATV = `[batv]\ndomains = example.com\nmissing_from = 2020-01-01\n`
/** config/backscatter.keys of the tests: key 1. */
const KEYS = `1 = ${SECRET}\n`

let dns: ScriptedDns
let current: TestPlugin | undefined

before(async () => {
  dns = await startDns(dnsblZone(ZONE, { [LISTED]: { txt: 'Listed, backscatter seen' } }))
})
after(() => dns.close())
afterEach(() => {
  current?.close()
  current = undefined
})

/** The plugin with `ini` after the DNS settings and `keys` as config/backscatter.keys (null: none), its clock at `nowMs`. */
function setup(ini = BATV, nowMs = NOON, keys: string | null = KEYS): TestPlugin {
  const files: Record<string, string> = keys === null ? {} : { 'backscatter.keys': keys }
  current = makeTestPlugin(`[dns]\nservers = ${dns.server}\ntimeout_ms = 3000\n\n${ini}\n`, files)
  current.plugin.backscatter.now = () => nowMs
  return current
}

interface Reply {
  rc: number | undefined
  text: string
}

function replyOf(r: { rc: number | undefined; msg: unknown }): Reply {
  const msg = r.msg as { code?: number; reply?: string } | undefined
  return { rc: r.rc, text: msg && typeof msg === 'object' && msg.code ? `${msg.code} ${msg.reply}` : '' }
}

async function mail(plugin: HarakaTestPlugin, conn: HarakaConnection, from: string): Promise<Reply> {
  const a = addr(from)
  conn.transaction.mail_from = a
  return replyOf(await fixtures.callHook(plugin, 'hook_mail', conn, [a, {}]))
}

/** RCPT as Haraka does it: the address pushed onto rcpt_to first, popped again on a refusal. */
async function rcpt(
  plugin: HarakaTestPlugin,
  conn: HarakaConnection,
  to: string,
): Promise<Reply & { params: unknown[] }> {
  const params = [addr(to), {}]
  conn.transaction.rcpt_to.push(params[0])
  const r = replyOf(await fixtures.callHook(plugin, 'hook_rcpt', conn, params))
  if (r.rc === constants.DENY || r.rc === constants.DENYSOFT) conn.transaction.rcpt_to.pop()
  return { ...r, params }
}

/** `.address` of an Address (a getter the type declarations lack). */
const wire = (a: unknown): string => (a as { address: string }).address

const addresses = (conn: HarakaConnection): string[] =>
  conn.transaction.rcpt_to.map((a: { address: string }) => a.address)

const batvResults = (conn: HarakaConnection): string[] => (results(conn).batv as string[] | undefined) ?? []

/** A bounce from `ip` to `to`: the reply and the connection. */
async function bounce(plugin: HarakaTestPlugin, ip: string, to: string, from = '<>') {
  const conn = makeConnection(ip)
  await mail(plugin, conn, from)
  const r = await rcpt(plugin, conn, to)
  return { ...r, conn }
}

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
    const before = dns.queries.length
    const conn = makeConnection(LISTED)
    await mail(plugin, conn, 'carol@example.net')
    assert.equal((await rcpt(plugin, conn, 'prvs=1001aaaaaa=bob@example.com')).rc, undefined)
    assert.deepEqual(addresses(conn), ['bob@example.com'])
    assert.equal(dns.queries.length, before)
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

describe('sign at MAIL, for relaying clients', () => {
  const key = BatvKey.create(1, SECRET) as BatvKey

  /** MAIL FROM of a client at 192.0.2.10; `original` is the address the client gave. */
  async function relayed(plugin: HarakaTestPlugin, from: string, opts: { relaying?: boolean } = {}) {
    const conn = makeConnection('192.0.2.10', { relaying: opts.relaying ?? true })
    const original = addr(from)
    conn.transaction.mail_from = original
    const r = replyOf(await fixtures.callHook(plugin, 'hook_mail', conn, [original, {}]))
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
