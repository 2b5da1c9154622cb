// Interoperability with Exim 4.96's BATV in both directions, with the real
// exim4 binary (Debian's exim4-daemon-light; no Exim daemon runs):
// - tags Exim's ${prvs} makes verify here;
// - tags made here pass Exim's ${prvscheck}, both raw (`exim4 -be`) and in the
//   RCPT ACL the Exim spec documents (`exim4 -bh`, a simulated SMTP session);
// - around the 999 → 000 wrap, with Exim's clock set by faketime (Debian's
//   faketime), Exim's verdicts match the rule restated in batv.test.ts.
// Exim reads the real clock, so the tags here are signed at the real time,
// except in the faketime part. Without exim4 (or faketime) the parts skip.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { Address } from '@haraka/email-address'

import { BatvKey, dayNumber, prepareKeys, signAddress, verifyAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import { wireAddress } from '../lib/core/sender'
import { findProgram } from './support/programs'

const EXIM = findProgram('exim4')
const FAKETIME = findProgram('faketime')
const NO_EXIM = EXIM
  ? false
  : 'exim4 is not installed (Debian package exim4-daemon-light): Exim interop not tested'
const NO_FAKETIME = FAKETIME
  ? NO_EXIM
  : 'faketime is not installed (Debian package faketime): Exim wrap not tested'

/** Secrets by key number; the -bh config looks them up by number, so no spaces or '=' in them. */
const SECRETS = new Map<number, string>([
  [0, 'zero-key'],
  [1, 's3cret'],
  [2, '0123'],
  [3, 'x'.repeat(64)],
  [4, 'Th1s|is;a#secret!'],
  [5, '5'],
  [6, 'six'],
  [7, '7777777'],
  [8, 'eight_8'],
  [9, 'nine.9'],
])
const { keys } = prepareKeys(SECRETS)
const keyOf = (id: number): BatvKey => keys.get(id) as BatvKey

const ADDRESSES = [
  'bob@example.com',
  'Bob@Example.COM',
  'bob+tag@example.com',
  'first.last@sub.example.org',
  'BOB+Lists@mail.example.net',
  "o'brien@example.ie",
  'jöran@exämple.com',
  'x@y.z',
]

let dir = ''
let config = ''

/** Exim's expansion literal: everything between \N and \N is taken as it is. */
const lit = (text: string): string => `\\N${text}\\N`

/** Expand each line with `exim4 -be`, Exim's clock at noon UTC of `fakeDay` when given. */
function eximExpand(lines: readonly string[], fakeDay?: number): string[] {
  const args = ['-C', config, '-be']
  const [cmd, argv] =
    fakeDay === undefined
      ? [EXIM as string, args]
      : [FAKETIME as string, [new Date(fakeDay * DAY_MS + DAY_MS / 2).toISOString(), EXIM as string, ...args]]
  const out = execFileSync(cmd, argv, {
    input: `${lines.join('\n')}\n`,
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC' },
    timeout: 30_000,
  })
  const results = out.split('\n').filter((l) => l.startsWith('>'))
  assert.ok(
    results.length >= lines.length,
    `exim4 -be answered ${results.length} of ${lines.length}:\n${out}`,
  )
  return results.slice(0, lines.length).map((l) => l.replace(/^> ?/, ''))
}

/** Exim's raw check of a tag: "valid <address> <key>" or "invalid", "" when not a tag. */
function prvscheck(tagged: string, secret: string): string {
  return `\${prvscheck{${lit(tagged)}}{${lit(secret)}}{\${if eq{$prvscheck_result}{1}{valid <$prvscheck_address> $prvscheck_keynum}{invalid}}}}`
}

/** Exim's ${prvs} of an address. */
function prvs(address: string, secret: string, keyId: number): string {
  return `\${prvs{${lit(address)}}{${lit(secret)}}{${keyId}}}`
}

/** Run `fn` with the real clock; again if the UTC day turned meanwhile, so Exim and this side agree on it. */
function onOneDay<T>(fn: (nowMs: number) => T): T {
  for (;;) {
    const nowMs = Date.now()
    const result = fn(nowMs)
    if (dayNumber(Date.now()) === dayNumber(nowMs)) return result
  }
}

function signHere(address: string, keyId: number, lifetimeDays: number, nowMs: number): string {
  const out = signAddress(address, keyOf(keyId), lifetimeDays, nowMs)
  assert.ok(out.ok, `${address}: ${JSON.stringify(out)}`)
  return out.address
}

before(() => {
  if (!EXIM) return
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batv-exim-'))
  fs.chmodSync(dir, 0o755) // Exim drops to its own user and must reach its spool directory
  fs.mkdirSync(path.join(dir, 'spool'))
  config = path.join(dir, 'exim.conf')
  const keyList = [...SECRETS].map(([id, secret]) => `k${id}=${secret}`).join(' ')
  const check = `\${prvscheck {$local_part@$domain}{\${extract{k$prvscheck_keynum}{${keyList}}}}{1}}`
  // The RCPT ACL of the Exim spec's BATV section, answering which way it went.
  fs.writeFileSync(
    config,
    [
      'primary_hostname = mx.example.com',
      'acl_smtp_rcpt = acl_rcpt',
      `spool_directory = ${dir}/spool`,
      `log_file_path = ${dir}/%slog`,
      'begin acl',
      'acl_rcpt:',
      `  deny condition = ${check}`,
      '       !condition = $prvscheck_result',
      '       message = BATV invalid <$local_part@$domain>',
      `  accept condition = ${check}`,
      '       message = BATV valid <$local_part@$domain>',
      '  accept message = BATV missing <$local_part@$domain>',
      '',
    ].join('\n'),
  )
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

describe('Exim makes, this side checks', { skip: NO_EXIM }, () => {
  it("${prvs} tags of several addresses, keys 0-9: valid here exactly when valid in Exim's RCPT ACL, stripped to the address Exim signed", () => {
    const cases = ADDRESSES.flatMap((address, i) =>
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => ({ address, k, i })),
    )
    onOneDay((nowMs) => {
      const tags = eximExpand(cases.map(({ address, k }) => prvs(address, SECRETS.get(k) as string, k)))
      const acl = eximSession(tags).map(aclVerdict)
      cases.forEach(({ address, k }, n) => {
        const tagged = tags[n] as string
        assert.match(tagged, /^prvs=\d{4}[0-9a-f]{6}=/, `Exim's tag of ${address}`)
        const here = verifyAddress(tagged, keys, 7, nowMs)
        assert.equal(here.status, acl[n], `${tagged}: Exim's RCPT ACL says ${acl[n]}`)
        // Exim's ${prvs} hashes a mixed-case return path as written; its own RCPT ACL lower-cases it first.
        assert.equal(here.status, address === address.toLowerCase() ? 'valid' : 'invalid', tagged)
        assert.equal(here.original, address)
        if (here.status === 'valid') assert.equal(here.keyId, k)
      })
    })
  })

  it('for a lower-case address, the tag made here is byte for byte the tag Exim makes', () => {
    const lower = ADDRESSES.filter((a) => a === a.toLowerCase())
    onOneDay((nowMs) => {
      const tags = eximExpand(lower.map((a) => prvs(a, 's3cret', 1)))
      lower.forEach((address, n) => assert.equal(signHere(address, 1, 7, nowMs), tags[n]))
    })
  })

  it('the secret 0123 is the text 0123 on both sides, not the number 123', () => {
    onOneDay((nowMs) => {
      const [as0123, as123] = eximExpand([
        prvs('bob@example.com', '0123', 2),
        prvs('bob@example.com', '123', 2),
      ])
      assert.notEqual(as0123, as123)
      assert.equal(signHere('bob@example.com', 2, 7, nowMs), as0123)
    })
  })

  it('a wrong secret or another key number does not verify', () => {
    onOneDay((nowMs) => {
      const [wrongSecret, key5] = eximExpand([
        prvs('bob@example.com', 'not-ours', 1),
        prvs('bob@example.com', 's3cret', 5),
      ])
      assert.equal(verifyAddress(wrongSecret as string, keys, 7, nowMs).status, 'invalid')
      assert.equal(verifyAddress(key5 as string, keys, 7, nowMs).status, 'invalid')
    })
  })

  it('Exim refuses secrets over 64 bytes, and so does this side', () => {
    const [at64, at65] = eximExpand([
      prvs('bob@example.com', 'y'.repeat(64), 1),
      prvs('bob@example.com', 'y'.repeat(65), 1),
    ])
    assert.match(at64 as string, /^prvs=1/)
    assert.match(at65 as string, /^Failed: prvs hmac-sha1 conversion failed/)
    assert.ok(BatvKey.create(1, 'y'.repeat(64)) instanceof BatvKey)
    assert.ok(!(BatvKey.create(1, 'y'.repeat(65)) instanceof BatvKey))
  })

  it('a quoted local part: Exim signs it with its quotes, a form its own SMTP refuses; it still verifies here', () => {
    onOneDay((nowMs) => {
      const [tagged] = eximExpand([prvs('"a b"@example.com', 's3cret', 1)])
      assert.match(tagged as string, /^prvs=1\d{3}[0-9a-f]{6}="a b"@example\.com$/)
      assert.deepEqual(verifyAddress(tagged as string, keys, 7, nowMs), {
        status: 'valid',
        keyId: 1,
        original: '"a b"@example.com',
      })
    })
  })
})

describe('This side makes, Exim checks', { skip: NO_EXIM }, () => {
  it('raw ${prvscheck}: tags of several addresses, keys 0-9, are valid and decode to the signed address', () => {
    const cases = ADDRESSES.flatMap((address) => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => ({ address, k })))
    onOneDay((nowMs) => {
      const tags = cases.map(({ address, k }) => signHere(address, k, 7, nowMs))
      const verdicts = eximExpand(
        cases.map(({ k }, n) => prvscheck(tags[n] as string, SECRETS.get(k) as string)),
      )
      cases.forEach(({ address, k }, n) => {
        const signed = (tags[n] as string).replace(/^prvs=\d{4}[0-9a-f]{6}=/, '')
        assert.equal(signed.toLowerCase(), address.toLowerCase())
        assert.equal(verdicts[n], `valid <${signed}> ${k}`, tags[n])
      })
    })
  })

  it('raw ${prvscheck} refuses a changed signature, a wrong secret, and tags of lifetime 1 expired yesterday', () => {
    onOneDay((nowMs) => {
      const tagged = signHere('bob@example.com', 1, 7, nowMs)
      const flipped = tagged.replace(
        /=(\d{4})(.)/,
        (_, d: string, c: string) => `=${d}${c === '0' ? '1' : '0'}`,
      )
      const yesterday = signHere('bob@example.com', 1, 1, nowMs - 2 * DAY_MS)
      assert.equal(verifyAddress(yesterday, keys, 1, nowMs).status, 'invalid')
      assert.deepEqual(
        eximExpand([
          prvscheck(flipped, 's3cret'),
          prvscheck(tagged, 'other'),
          prvscheck(yesterday, 's3cret'),
        ]),
        ['invalid', 'invalid', 'invalid'],
      )
    })
  })

  it("the RCPT ACL of Exim's spec ($local_part@$domain) accepts tags made here, quoted local parts included", () => {
    const addresses = [...ADDRESSES, '"a b"@example.com', '"John Q. Public"@Example.org', 'JÖRAN@Exämple.com']
    onOneDay((nowMs) => {
      const tags = addresses.map((a, i) => signHere(a, i % 10, 7, nowMs))
      const bad = signHere('bob@example.com', 1, 7, nowMs).replace(
        /=(\d{4})(.)/,
        (_, d: string, c: string) => `=${d}${c === '0' ? '1' : '0'}`,
      )
      const answers = eximSession([...tags, bad, 'bob@example.com'])
      assert.deepEqual(
        answers.map((a) => a.split(' ')[0]),
        [...tags.map(() => '250'), '550', '250'],
        answers.join('\n'),
      )
      assert.match(
        answers[addresses.indexOf('"a b"@example.com')] ?? '',
        /^250 BATV valid <prvs=.*=a b@example\.com>/,
      )
      assert.match(answers.at(-2) ?? '', /^550 BATV invalid/)
      assert.match(answers.at(-1) ?? '', /^250 BATV missing/)
    })
  })
})

describe('One verdict with Exim: case variants of every part of a tag, at RCPT', { skip: NO_EXIM }, () => {
  /** Every letter-case variant of the parts of `tagged`: prefix, hash, local part and domain. */
  function caseVariants(tagged: string): string[] {
    const m = /^(prvs)=(\d)(\d{3})([0-9a-f]{6})=(.+)@(.+)$/i.exec(tagged)
    assert.ok(m, tagged)
    const [, prefix = '', key = '', day = '', hash = '', local = '', domain = ''] = m
    const cases = (t: string): string[] => [
      ...new Set([t.toLowerCase(), t.toUpperCase(), t.replace(/^./, (c) => c.toUpperCase())]),
    ]
    return cases(prefix).flatMap((p) =>
      cases(hash).flatMap((h) =>
        cases(local).flatMap((l) => cases(domain).map((d) => `${p}=${key}${day}${h}=${l}@${d}`)),
      ),
    )
  }

  it("tags made here and by Exim, over lower- and mixed-case addresses: the plugin's verdict is Exim's RCPT ACL verdict", () => {
    const addresses = [
      'bob@example.com',
      'Bob.Smith@Example.COM',
      'Alice@example.net',
      'first.last+x@sub.example.org',
    ]
    onOneDay((nowMs) => {
      const made = [
        ...addresses.map((a) => signHere(a, 1, 7, nowMs)),
        ...eximExpand(addresses.map((a) => prvs(a, 's3cret', 1))),
      ]
      const other = signHere('bob@example.com', 2, 7, nowMs)
      const variants = [
        ...made.flatMap(caseVariants),
        // Another key number and another day: the digits have no case, and change the verdict.
        other.replace(/^prvs=2/, 'prvs=1'),
        other.replace(/^(prvs=\d)(\d)/, (_, head: string, d: string) => `${head}${(Number(d) + 5) % 10}`),
        'Bob@Example.COM',
      ]
      const acl = eximSession(variants).map(aclVerdict)
      // As the plugin sees RCPT TO: Haraka's own address parser, then the plugin's wire form.
      const here = variants.map(
        (v) => verifyAddress(wireAddress(new Address(`<${v}>`)), keys, 7, nowMs).status,
      )
      const disagree = variants.filter((_, n) => here[n] !== acl[n]).map((v, n) => `${v}: ${here[n]} here`)
      assert.deepEqual(disagree, [])
      assert.ok(acl.includes('valid') && acl.includes('invalid') && acl.includes('missing'), acl.join(' '))
      assert.ok(variants.length > 100, `${variants.length} variants`)
    })
  })

  it('raw ${prvscheck} (not the RCPT ACL) is case-exact: upper-case hex is invalid there, the one difference', () => {
    onOneDay((nowMs) => {
      const tagged = signHere('bob@example.com', 1, 7, nowMs)
      const upperHex = tagged.replace(/[0-9a-f]{6}=/, (h) => h.toUpperCase())
      assert.deepEqual(eximExpand([prvscheck(upperHex, 's3cret')]), ['invalid'])
      assert.deepEqual(eximSession([upperHex]).map(aclVerdict), ['valid'])
      assert.equal(verifyAddress(upperHex, keys, 7, nowMs).status, 'valid')
    })
  })
})

/** "valid", "invalid" or "missing" from the test ACL's reply. */
function aclVerdict(reply: string): string {
  return reply.split(' ')[2] ?? ''
}

/** Run an SMTP session through `exim4 -bh` (no delivery); the replies to the RCPT commands. */
function eximSession(recipients: readonly string[]): string[] {
  const commands = [
    'EHLO client.example',
    'MAIL FROM:<> SMTPUTF8',
    ...recipients.map((r) => `RCPT TO:<${r}>`),
    'QUIT',
  ]
  const out = execFileSync(EXIM as string, ['-C', config, '-bh', '192.0.2.1'], {
    input: commands.map((c) => `${c}\r\n`).join(''),
    encoding: 'utf8',
    timeout: 30_000,
  })
  const replies = out.split(/\r?\n/).filter((l) => /^\d{3} BATV /.test(l))
  assert.equal(replies.length, recipients.length, out)
  return replies
}

/** Exim 4.96's expiry rule, as restated in batv.test.ts. */
function eximAcceptsStamp(expiry: number, today: number): boolean {
  return expiry >= (expiry < 7 && today >= 993 ? 0 : today)
}

describe("Around the 999 → 000 wrap, with Exim's clock set by faketime", { skip: NO_FAKETIME }, () => {
  // Signing days whose tags expire on 996..999, 000..006, and one far from the wrap.
  const signDays = [20989, 20992, 20993, 20995, 20999, 21000, 21003, 21500]
  const checkDays = [...new Set(signDays.flatMap((d) => Array.from({ length: 10 }, (_, j) => d + j)))].sort(
    (a, b) => a - b,
  )

  it('tags made here: valid on both sides for 8 days; Exim then follows its own rule, this side refuses', () => {
    const tags = signDays.map((day) => signHere('bob@example.com', 1, 7, day * DAY_MS + DAY_MS / 2))
    for (const checkDay of checkDays) {
      const verdicts = eximExpand(
        tags.map((t) => prvscheck(t, 's3cret')),
        checkDay,
      )
      signDays.forEach((signDay, n) => {
        const age = checkDay - signDay
        if (age < 0 || age > 9) return
        const stamp = (signDay + 7) % 1000
        const exim = verdicts[n] === 'valid <bob@example.com> 1'
        const here =
          verifyAddress(tags[n] as string, keys, 7, checkDay * DAY_MS + DAY_MS / 2).status === 'valid'
        const what = `signed ${signDay}, checked ${checkDay} (stamp ${stamp})`
        assert.equal(exim, eximAcceptsStamp(stamp, checkDay % 1000), `Exim's rule as restated: ${what}`)
        assert.equal(here, age <= 7, `this side: ${what}`)
        if (here) assert.equal(exim, true, `Exim agrees: ${what}`)
      })
    }
  })

  it('tags Exim made on a faked day verify here for that day and 7 more, not on the 8th', () => {
    for (const signDay of signDays) {
      const [tagged] = eximExpand([prvs('bob@example.com', 's3cret', 1)], signDay)
      assert.equal(tagged, signHere('bob@example.com', 1, 7, signDay * DAY_MS + DAY_MS / 2))
      for (let age = 0; age <= 8; age++) {
        const status: string = verifyAddress(
          tagged as string,
          keys,
          7,
          (signDay + age) * DAY_MS + DAY_MS / 2,
        ).status
        assert.equal(status, age <= 7 ? 'valid' : 'invalid', `signed ${signDay}, age ${age}`)
      }
    }
  })
})
