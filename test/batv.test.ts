// The BATV core (Exim's prvs= format): the tag's format, what cannot be signed,
// expiry and its agreement with Exim's rule, and the signature itself.
// Checking tags: batv-verify.test.ts.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, it } from 'node:test'

import {
  canCarryTag,
  BatvKey,
  EXIM_LIFETIME_DAYS,
  isLifetimeDays,
  MAX_LIFETIME_DAYS,
  signAddress,
  verifyAddress,
  type TagCheck,
} from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import { DAY, k1, key, keysOf, noonOf, referenceTag, sign } from './support/batv'
import { prng } from './support/prng'

describe('BATV tag format', () => {
  it('DOMAIN.md example: key 1, secret s3cret, bob@example.com on day 20785', () => {
    assert.equal(sign('bob@example.com', k1, 7, noonOf(DAY)), 'prvs=1792f288fc=bob@example.com')
  })

  it('the same tag at the first and the last millisecond of the day', () => {
    assert.equal(sign('bob@example.com', k1, 7, DAY * DAY_MS), 'prvs=1792f288fc=bob@example.com')
    assert.equal(sign('bob@example.com', k1, 7, (DAY + 1) * DAY_MS - 1), 'prvs=1792f288fc=bob@example.com')
    assert.notEqual(sign('bob@example.com', k1, 7, (DAY + 1) * DAY_MS), 'prvs=1792f288fc=bob@example.com')
  })

  it('matches the format computed with node:crypto for many addresses, keys, days and lifetimes', () => {
    const rand = prng(11)
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789+-_'
    for (let n = 0; n < 500; n++) {
      const id = Math.floor(rand() * 10)
      const secret = `secret-${Math.floor(rand() * 1e9)}`
      const local = Array.from(
        { length: 1 + Math.floor(rand() * 30) },
        () => chars[Math.floor(rand() * 38)],
      ).join('')
      const address = `${local}@d${n}.example`
      const day = 18000 + Math.floor(rand() * 5000)
      const lifetime = 1 + Math.floor(rand() * 30)
      assert.equal(
        sign(address, key(id, secret), lifetime, noonOf(day)),
        referenceTag(address, id, secret, day + lifetime),
        `${address} key ${id} day ${day} lifetime ${lifetime}`,
      )
    }
  })

  it('writes the day and the signature with their leading zeros', () => {
    // Day 20993 + 7 = 21000 → "000"; find an address whose signature starts with "0".
    let found = 0
    for (let i = 0; i < 400 && found < 3; i++) {
      const tagged = sign(`user${i}@example.com`, k1, 7, noonOf(20993))
      assert.match(tagged, /^prvs=1000[0-9a-f]{6}=user\d+@example\.com$/)
      assert.equal(tagged, referenceTag(`user${i}@example.com`, 1, 's3cret', 21000))
      if (tagged.startsWith('prvs=10000')) found++
    }
    assert.equal(found, 3, 'some signatures start with a zero digit')
  })

  for (const id of [0, 9]) {
    it(`key number ${id} is the first digit`, () => {
      assert.equal(
        sign('bob@example.com', key(id, 's3cret'), 7, noonOf(DAY)),
        referenceTag('bob@example.com', id, 's3cret', DAY + 7),
      )
    })
  }

  it('a secret that looks like a number is text: 0123 is not 123', () => {
    const a = sign('bob@example.com', key(1, '0123'), 7, noonOf(DAY))
    assert.equal(a, referenceTag('bob@example.com', 1, '0123', DAY + 7))
    assert.notEqual(a, sign('bob@example.com', key(1, '123'), 7, noonOf(DAY)))
  })

  it('plus signs and other atext stay as they are', () => {
    const tagged = sign("bob+lists&x'y@example.com", k1, 7, noonOf(DAY))
    assert.equal(tagged, referenceTag("bob+lists&x'y@example.com", 1, 's3cret', DAY + 7))
  })

  it('UTF-8 addresses are signed as their UTF-8 bytes', () => {
    const tagged = sign('jöran@exämple.com', k1, 7, noonOf(DAY))
    assert.equal(tagged, referenceTag('jöran@exämple.com', 1, 's3cret', DAY + 7))
  })
})

describe('BATV sign refusals', () => {
  const now = noonOf(DAY)
  for (const [address, reason] of [
    ['', 'null sender'],
    ['bob', 'not an address'],
    ['bob@', 'not an address'],
    ['@example.com', 'not an address'],
    ['""@example.com', 'not an address'],
    ['prvs=1792f288fc=bob@example.com', 'already tagged'],
    ['PRVS=1792F288FC=bob@example.com', 'already tagged'],
    ['"prvs=1792f288fc=a b"@example.com', 'already tagged'],
    ['prvs=bob@example.com', 'already tagged'],
    [`${'a'.repeat(64)}@${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.com`, 'too long'],
  ] as const) {
    it(`${JSON.stringify(address).slice(0, 40)}: ${reason}`, () => {
      assert.deepEqual(signAddress(address, k1, 7, now), { ok: false, reason })
    })
  }

  it('254 octets signed is still fine, 255 is too long', () => {
    const domain = `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.${'g'.repeat(20)}.com`
    // prvs=KDDDSSSSSS= adds 16 octets to the local part.
    const local = 'a'.repeat(254 - 16 - 1 - domain.length)
    assert.equal(sign(`${local}@${domain}`, k1, 7, now).length, 254)
    assert.deepEqual(signAddress(`${local}a@${domain}`, k1, 7, now), { ok: false, reason: 'too long' })
  })

  it('a local part of 48 octets is signed into 64; one of 49 would be 65 and is not signed (RFC 5321)', () => {
    const tagged = sign(`${'a'.repeat(48)}@example.com`, k1, 7, now)
    assert.equal(tagged.indexOf('@'), 64)
    assert.ok(canCarryTag(`${'a'.repeat(48)}@example.com`))
    assert.deepEqual(signAddress(`${'a'.repeat(49)}@example.com`, k1, 7, now), {
      ok: false,
      reason: 'too long',
    })
    assert.ok(!canCarryTag(`${'a'.repeat(49)}@example.com`))
  })

  it('octets, not characters, and the quotes count: ö is two, "a b" needs its quotes once tagged', () => {
    // 46 + 2 octets of ö: 48.
    assert.equal(
      Buffer.byteLength(sign(`${'a'.repeat(46)}ö@example.com`, k1, 7, now).split('@')[0] ?? ''),
      64,
    )
    assert.deepEqual(signAddress(`${'a'.repeat(47)}ö@example.com`, k1, 7, now), {
      ok: false,
      reason: 'too long',
    })
    // "a b…" quoted: 16 + 46 + 2 quotes = 64.
    const quoted = `"a ${'b'.repeat(44)}"@example.com`
    assert.equal(sign(quoted, k1, 7, now).split('@')[0]?.length, 64)
    assert.ok(!canCarryTag(`"a ${'b'.repeat(45)}"@example.com`))
  })

  for (const lifetime of [0, -1, 1.5, MAX_LIFETIME_DAYS + 1, Number.NaN]) {
    it(`lifetime ${lifetime} is refused`, () => {
      assert.deepEqual(signAddress('bob@example.com', k1, lifetime, now), {
        ok: false,
        reason: 'bad lifetime or clock',
      })
    })
  }

  it('a clock that is not a number is refused', () => {
    assert.deepEqual(signAddress('bob@example.com', k1, 7, Number.NaN), {
      ok: false,
      reason: 'bad lifetime or clock',
    })
  })

  it('lifetimes 1 and MAX_LIFETIME_DAYS are accepted', () => {
    assert.equal(isLifetimeDays(1), true)
    assert.equal(isLifetimeDays(MAX_LIFETIME_DAYS), true)
    assert.equal(sign('bob@example.com', k1, 1, now), referenceTag('bob@example.com', 1, 's3cret', DAY + 1))
  })
})

describe('BATV expiry', () => {
  const keys = keysOf([[1, 's3cret']])
  const statusOn = (tagged: string, day: number, lifetime = 7): TagCheck =>
    verifyAddress(tagged, keys, lifetime, noonOf(day))

  it('valid from signing until the end of the expiry day, expired the next day', () => {
    const tagged = sign('bob@example.com', k1, 7, noonOf(DAY))
    for (let day = DAY; day <= DAY + 7; day++) {
      assert.deepEqual(
        statusOn(tagged, day),
        { status: 'valid', keyId: 1, original: 'bob@example.com' },
        `${day}`,
      )
    }
    assert.deepEqual(statusOn(tagged, DAY + 8), {
      status: 'invalid',
      reason: 'expired',
      keyId: 1,
      original: 'bob@example.com',
    })
    // To the millisecond: valid until the last one of the expiry day.
    assert.equal(verifyAddress(tagged, keys, 7, (DAY + 8) * DAY_MS - 1).status, 'valid')
    assert.equal(verifyAddress(tagged, keys, 7, (DAY + 8) * DAY_MS).status, 'invalid')
  })

  it('a tag signed at the last millisecond of a day lives its full lifetime after that day', () => {
    const tagged = sign('bob@example.com', k1, 7, (DAY + 1) * DAY_MS - 1)
    assert.equal(statusOn(tagged, DAY + 7).status, 'valid')
    assert.equal(statusOn(tagged, DAY + 8).status, 'invalid')
  })

  it('the wrap from 999 to 000: a tag expiring on 002 is valid on 995..999 and 000..002', () => {
    const signedOn = 20995 // 20995 % 1000 = 995; + 7 = 21002 → "002"
    const tagged = sign('bob@example.com', k1, 7, noonOf(signedOn))
    assert.match(tagged, /^prvs=1002/)
    for (let day = signedOn; day <= 21002; day++)
      assert.equal(statusOn(tagged, day).status, 'valid', `${day}`)
    assert.equal(statusOn(tagged, 21003).status, 'invalid')
    assert.equal(
      statusOn(tagged, signedOn - 1).status,
      'invalid',
      'not valid before it could have been signed',
    )
  })

  it('every start day of a 1000-day cycle and several lifetimes: exactly lifetime + 1 valid days', () => {
    for (const lifetime of [1, 7, 30]) {
      for (let start = 21000 - 40; start < 22000; start += 7) {
        const tagged = sign('bob@example.com', k1, lifetime, noonOf(start))
        const validDays: number[] = []
        for (let day = start - 3; day <= start + lifetime + 3; day++) {
          if (statusOn(tagged, day, lifetime).status === 'valid') validDays.push(day)
        }
        assert.deepEqual(
          validDays,
          Array.from({ length: lifetime + 1 }, (_, i) => start + i),
          `start ${start} lifetime ${lifetime}`,
        )
      }
    }
  })

  it('a tag from further ahead than the lifetime (a longer lifetime elsewhere) is refused as expired', () => {
    const tagged = sign('bob@example.com', k1, 30, noonOf(DAY))
    assert.equal(statusOn(tagged, DAY, 30).status, 'valid')
    assert.deepEqual(statusOn(tagged, DAY, 7), {
      status: 'invalid',
      reason: 'expired',
      keyId: 1,
      original: 'bob@example.com',
    })
  })

  it('the same tag is valid again 1000 days later (the format has no more room; Exim likewise)', () => {
    const tagged = sign('bob@example.com', k1, 7, noonOf(DAY))
    assert.equal(statusOn(tagged, DAY + 1000).status, 'valid')
  })
})

/** Exim 4.96's prvscheck expiry rule, restated from its source: valid when DDD >= today's stamp, with a flip near 999. */
function eximAcceptsStamp(expiry: number, today: number): boolean {
  const now = expiry < 7 && today >= 993 ? 0 : today
  return expiry >= now
}

describe('BATV expiry compared with Exim prvscheck', () => {
  it(`with lifetime ≤ ${EXIM_LIFETIME_DAYS}, every tag valid here is valid for Exim, on every day of the cycle`, () => {
    const keys = keysOf([[1, 's3cret']])
    const tags = Array.from({ length: 1000 }, (_, stamp) =>
      referenceTag('bob@example.com', 1, 's3cret', stamp),
    )
    for (let lifetime = 1; lifetime <= EXIM_LIFETIME_DAYS; lifetime++) {
      for (let day = 21000; day < 22000; day++) {
        // The stamps near today, where the rules matter, and a sample of the rest.
        const stamps = new Set<number>()
        for (let ahead = -3; ahead <= lifetime + 3; ahead++) stamps.add((day + ahead + 1000) % 1000)
        for (let stamp = day % 37; stamp < 1000; stamp += 37) stamps.add(stamp)
        for (const stamp of stamps) {
          const here = verifyAddress(tags[stamp] as string, keys, lifetime, noonOf(day)).status === 'valid'
          const ahead = (stamp - (day % 1000) + 1000) % 1000
          assert.equal(here, ahead <= lifetime, `day ${day} stamp ${stamp} lifetime ${lifetime}`)
          if (here) assert.ok(eximAcceptsStamp(stamp, day % 1000), `day ${day} stamp ${stamp}`)
        }
      }
    }
  })

  it('Exim accepts expired tags that are refused here', () => {
    const keys = keysOf([[1, 's3cret']])
    // Expired five days ago, just after the wrap: Exim compares 998 >= 3.
    const tagged = referenceTag('bob@example.com', 1, 's3cret', 998)
    assert.equal(eximAcceptsStamp(998, 3), true)
    assert.equal(verifyAddress(tagged, keys, 7, noonOf(21003)).status, 'invalid')
    // Expired 500 days ago: Exim compares 900 >= 400.
    assert.equal(eximAcceptsStamp(900, 400), true)
    const old = referenceTag('bob@example.com', 1, 's3cret', 900)
    assert.equal(verifyAddress(old, keys, 7, noonOf(21400)).status, 'invalid')
  })

  it('a lifetime over 7 makes tags that Exim refuses around the wrap (why a fleet with Exim keeps 7)', () => {
    // Signed on day 991 with lifetime 10: DDD 001; Exim on day 991 compares 1 >= 991.
    const tagged = sign('bob@example.com', k1, 10, noonOf(20991))
    assert.match(tagged, /^prvs=1001/)
    assert.equal(eximAcceptsStamp(1, 991), false)
    assert.equal(verifyAddress(tagged, keysOf([[1, 's3cret']]), 10, noonOf(20991)).status, 'valid')
  })
})

describe('the signature', () => {
  it('is the first 3 bytes of HMAC-SHA1 (node:crypto) over the head then the text, with the secret as UTF-8', () => {
    const key = BatvKey.create(1, 'sécret') as BatvKey
    for (const [head, text] of [
      ['1792', 'bob@example.com'],
      ['', 'jöran@exämple.com'],
      ['1000', '€'.repeat(400)],
    ] as const) {
      const theirs = crypto
        .createHmac('sha1', Buffer.from('sécret', 'utf8'))
        .update(head + text, 'utf8')
        .digest()
      assert.equal(
        key.signatureOf(text, head),
        theirs.readUIntBE(0, 3),
        `${head} + ${text.length} characters`,
      )
    }
  })
})
