import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, it } from 'node:test'
import util from 'node:util'

import {
  canCarryTag,
  BatvKey,
  dayNumber,
  EXIM_LIFETIME_DAYS,
  isKeyId,
  isLifetimeDays,
  MAX_LIFETIME_DAYS,
  parseTag,
  prepareKeys,
  secretProblem,
  signAddress,
  verifyAddress,
  type TagCheck,
} from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import { prng } from './support/prng'

/** Noon UTC of day number `day`: far from midnight, so no test depends on the hour. */
const noonOf = (day: number): number => day * DAY_MS + DAY_MS / 2

function key(id: number, secret: string): BatvKey {
  const k = BatvKey.create(id, secret)
  assert.ok(k instanceof BatvKey, `key ${id} should be usable`)
  return k
}

function keysOf(entries: [number, string][]): ReadonlyMap<number, BatvKey> {
  const { keys, problems } = prepareKeys(new Map(entries))
  assert.deepEqual(problems, [])
  return keys
}

function sign(address: string, k: BatvKey, lifetimeDays: number, nowMs: number): string {
  const out = signAddress(address, k, lifetimeDays, nowMs)
  assert.ok(out.ok, `${address} should be signed, got ${JSON.stringify(out)}`)
  return out.address
}

/** The tag by the letter of the format, computed with node:crypto as an independent reference. */
function referenceTag(address: string, keyId: number, secret: string, expiry: number): string {
  const ddd = String(expiry % 1000).padStart(3, '0')
  const hex = crypto.createHmac('sha1', secret).update(`${keyId}${ddd}${address}`).digest('hex').slice(0, 6)
  return `prvs=${keyId}${ddd}${hex}=${address}`
}

const DAY = 20785 // the DOMAIN.md example's day
const k1 = key(1, 's3cret')

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

describe('BATV verify', () => {
  const now = noonOf(DAY)
  const keys = keysOf([[1, 's3cret']])

  it('a plain address is missing, and stays as it is', () => {
    for (const address of [
      'bob@example.com',
      '',
      'prvsx=1792f288fc=bob@example.com',
      'SRS0=abcd=xy=example.org=bob@example.com',
    ]) {
      assert.deepEqual(verifyAddress(address, keys, 7, now), { status: 'missing', original: address })
    }
  })

  it('a valid tag gives its key and the original address', () => {
    assert.deepEqual(verifyAddress('prvs=1792f288fc=bob@example.com', keys, 7, now), {
      status: 'valid',
      keyId: 1,
      original: 'bob@example.com',
    })
  })

  it('one changed signature digit is a bad signature; the tag is still stripped', () => {
    assert.deepEqual(verifyAddress('prvs=1792f288fd=bob@example.com', keys, 7, now), {
      status: 'invalid',
      reason: 'bad signature',
      keyId: 1,
      original: 'bob@example.com',
    })
  })

  it('a changed day or address is a bad signature', () => {
    assert.equal(verifyAddress('prvs=1791f288fc=bob@example.com', keys, 7, now).status, 'invalid')
    assert.equal(verifyAddress('prvs=1792f288fc=bob@example.org', keys, 7, now).status, 'invalid')
    assert.equal(verifyAddress('prvs=1792f288fc=rob@example.com', keys, 7, now).status, 'invalid')
  })

  it('an expired forgery is reported as a bad signature, not as expired', () => {
    const check = verifyAddress('prvs=1700abcdef=bob@example.com', keys, 7, now)
    assert.equal(check.status === 'invalid' && check.reason, 'bad signature')
  })

  it('unknown key: a tag of key 2 when only key 1 is configured', () => {
    const tagged = sign('bob@example.com', key(2, 'other'), 7, now)
    assert.deepEqual(verifyAddress(tagged, keys, 7, now), {
      status: 'invalid',
      reason: 'unknown key',
      keyId: 2,
      original: 'bob@example.com',
    })
  })

  it('key rotation: tags of both keys verify while both are configured', () => {
    const both = keysOf([
      [1, 's3cret'],
      [2, 'n3w-secret'],
    ])
    const old = sign('bob@example.com', k1, 7, now)
    const fresh = sign('bob@example.com', key(2, 'n3w-secret'), 7, now)
    assert.notEqual(old, fresh)
    assert.deepEqual(verifyAddress(old, both, 7, now), {
      status: 'valid',
      keyId: 1,
      original: 'bob@example.com',
    })
    assert.deepEqual(verifyAddress(fresh, both, 7, now), {
      status: 'valid',
      keyId: 2,
      original: 'bob@example.com',
    })
    // Once key 1 is removed, its tags no longer verify.
    const onlyNew = keysOf([[2, 'n3w-secret']])
    assert.equal(verifyAddress(old, onlyNew, 7, now).status, 'invalid')
  })

  it('a long tag (over 341 characters, hashed outside the reused buffer) verifies', () => {
    const long = `${'a'.repeat(300)}@${'b'.repeat(60)}.example.com`
    assert.deepEqual(verifyAddress(referenceTag(long, 1, 's3cret', DAY + 7), keys, 7, now), {
      status: 'valid',
      keyId: 1,
      original: long,
    })
  })

  it('the same key number with another secret does not verify', () => {
    const tagged = sign('bob@example.com', key(1, 'other'), 7, now)
    assert.equal(verifyAddress(tagged, keys, 7, now).status, 'invalid')
  })

  it('signatures are compared with crypto.timingSafeEqual', (t) => {
    const spy = t.mock.method(crypto, 'timingSafeEqual')
    assert.equal(verifyAddress('prvs=1792f288fc=bob@example.com', keys, 7, now).status, 'valid')
    assert.equal(spy.mock.callCount(), 1)
    assert.equal(verifyAddress('prvs=1792f288fd=bob@example.com', keys, 7, now).status, 'invalid')
    assert.equal(spy.mock.callCount(), 2, 'a lower-case address is checked once')
    for (const call of spy.mock.calls) assert.equal((call.arguments[0] as Buffer).length, 3)
  })
})

describe('BATV letter case of the address', () => {
  const now = noonOf(DAY)
  const keys = keysOf([[1, 's3cret']])

  it('signing lower-cases the address: the tag of Bob@Example.COM is the tag of bob@example.com', () => {
    assert.equal(sign('Bob@Example.COM', k1, 7, now), 'prvs=1792f288fc=bob@example.com')
  })

  it('only ASCII letters are lower-cased, as Exim does: Ö stays Ö', () => {
    const tagged = sign('JÖRAN@Exämple.COM', k1, 7, now)
    assert.equal(tagged, referenceTag('jÖran@exämple.com', 1, 's3cret', DAY + 7))
    assert.equal(verifyAddress(tagged, keys, 7, now).status, 'valid')
  })

  it("a tag that arrives in capitals still verifies, as in Exim's RCPT ACL; the original keeps the capitals", () => {
    assert.deepEqual(verifyAddress('PRVS=1792F288FC=BOB@EXAMPLE.COM', keys, 7, now), {
      status: 'valid',
      keyId: 1,
      original: 'BOB@EXAMPLE.COM',
    })
    assert.equal(verifyAddress('prvs=1792f288fc=bob@Example.Com', keys, 7, now).status, 'valid')
  })

  it("a tag signed over a mixed-case address (Exim ${prvs} of such a return path) is invalid, as in Exim's RCPT ACL", () => {
    const tagged = referenceTag('Bob@Example.COM', 1, 's3cret', DAY + 7)
    assert.notEqual(tagged.slice(9, 15), 'f288fc')
    assert.deepEqual(verifyAddress(tagged, keys, 7, now), {
      status: 'invalid',
      reason: 'bad signature',
      keyId: 1,
      original: 'Bob@Example.COM',
    })
  })

  it('a mixed-case address checks the signature once, lower-cased', (t) => {
    const spy = t.mock.method(crypto, 'timingSafeEqual')
    assert.equal(verifyAddress('prvs=1792000000=Bob@example.com', keys, 7, now).status, 'invalid')
    assert.equal(spy.mock.callCount(), 1)
  })
})

describe('BATV quoted local parts', () => {
  const now = noonOf(DAY)
  const keys = keysOf([[1, 's3cret']])

  it('a local part that needs quotes is signed unquoted and the whole tagged local part is quoted', () => {
    const tagged = sign('"A b"@Example.com', k1, 7, now)
    const hex = referenceTag('a b@example.com', 1, 's3cret', DAY + 7).slice(9, 15)
    assert.equal(tagged, `"prvs=1792${hex}=a b"@example.com`)
    assert.deepEqual(verifyAddress(tagged, keys, 7, now), {
      status: 'valid',
      keyId: 1,
      original: '"a b"@example.com',
    })
  })

  it('quotes and backslashes inside are escaped again', () => {
    const tagged = sign('"a\\"b"@example.com', k1, 7, now)
    assert.match(tagged, /^"prvs=1792[0-9a-f]{6}=a\\"b"@example\.com$/)
    assert.deepEqual(verifyAddress(tagged, keys, 7, now), {
      status: 'valid',
      keyId: 1,
      original: '"a\\"b"@example.com',
    })
  })

  it('needless quotes are dropped: "bob"@example.com signs as bob@example.com', () => {
    assert.equal(sign('"bob"@example.com', k1, 7, now), 'prvs=1792f288fc=bob@example.com')
    assert.equal(verifyAddress('"prvs=1792f288fc=bob"@example.com', keys, 7, now).status, 'valid')
  })
})

describe('BATV malformed tags', () => {
  const now = noonOf(DAY)
  const keys = keysOf([[1, 's3cret']])
  for (const address of [
    'prvs=',
    'prvs==x@y',
    'prvs=@example.com',
    'prvs=1792f288fc=',
    'prvs=1792f288fc=bob',
    'prvs=1792f288fc=@example.com',
    'prvs=1792f288fc=bob@',
    'prvs=1792f288fc0=bob@example.com', // overlong signature
    'prvs=11792f288fc=bob@example.com', // overlong: two-digit key
    'prvs=17921f288fc=bob@example.com', // overlong: four-digit day
    'prvs=1792f288f=bob@example.com', // short signature
    'prvs=179f288fc=bob@example.com', // short day
    'prvs=1792f288fg=bob@example.com', // not hex
    'prvs=x792f288fc=bob@example.com', // key not a digit
    'prvs=1a92f288fc=bob@example.com', // day not digits: each of its three places
    'prvs=17a2f288fc=bob@example.com',
    'prvs=179af288fc=bob@example.com',
    'prvs=179:f288fc=bob@example.com', // the character after 9
    '"prvs=179af288fc=bob"@example.com',
    'prvs=1792f288fcbob@example.com', // no second =
    'prvs=1792 f288fc=bob@example.com',
  ]) {
    it(`${address} is malformed and left as it is`, () => {
      assert.equal(parseTag(address), undefined)
      assert.deepEqual(verifyAddress(address, keys, 7, now), {
        status: 'invalid',
        reason: 'malformed',
        original: address,
      })
    })
  }

  it('parseTag reads the parts of a well-formed tag', () => {
    assert.deepEqual(parseTag('PRVS=0999ABCDEF=Bob+x@Example.com'), {
      keyId: 0,
      expiryStamp: 999,
      signature: 0xabcdef,
      original: 'Bob+x@Example.com',
      mailbox: 'Bob+x@Example.com',
    })
    assert.deepEqual(parseTag('"prvs=9001000f00=A \\"b\\""@example.com'), {
      keyId: 9,
      expiryStamp: 1,
      signature: 0xf00,
      original: '"A \\"b\\""@example.com',
      mailbox: 'A "b"@example.com',
    })
  })
})

describe('BATV keys and secrets', () => {
  it('key numbers are the digits 0..9', () => {
    for (const id of [0, 5, 9]) assert.equal(isKeyId(id), true)
    for (const id of [-1, 10, 1.5, Number.NaN]) {
      assert.equal(isKeyId(id), false)
      const made = BatvKey.create(id, 's3cret')
      assert.ok(!(made instanceof BatvKey) && made.problem.includes('not a digit'))
    }
  })

  it('secrets: empty and over 64 bytes are refused, 64 bytes and UTF-8 within 64 bytes are fine', () => {
    assert.match(secretProblem('') ?? '', /empty/)
    assert.equal(secretProblem('x'.repeat(64)), undefined)
    assert.match(secretProblem('x'.repeat(65)) ?? '', /65 bytes/)
    assert.equal(secretProblem('é'.repeat(32)), undefined) // 64 bytes
    assert.match(secretProblem('é'.repeat(33)) ?? '', /66 bytes/)
    const k = key(1, 'é'.repeat(32))
    assert.equal(
      sign('bob@example.com', k, 7, noonOf(DAY)),
      referenceTag('bob@example.com', 1, 'é'.repeat(32), DAY + 7),
    )
  })

  it('prepareKeys keeps the good keys and names the bad ones without their secrets', () => {
    const long = 'Z'.repeat(70)
    const { keys, problems } = prepareKeys(
      new Map([
        [1, 's3cret'],
        [2, ''],
        [3, long],
        [12, 'twelve-secret'],
      ]),
    )
    assert.deepEqual([...keys.keys()], [1])
    assert.equal(problems.length, 3)
    for (const p of problems)
      assert.ok(!p.includes(long) && !p.includes('twelve-secret') && !p.includes('ZZZ'), p)
  })

  it('no secret appears in a key, a sign outcome or a check, however printed', () => {
    const secret = 'Very-Distinct-Secret-42'
    const k = key(3, secret)
    const keys = keysOf([[3, secret]])
    const tagged = sign('bob@example.com', k, 7, noonOf(DAY))
    const texts = [
      util.inspect(k, { showHidden: true, depth: 5 }),
      JSON.stringify(k),
      String(k),
      util.inspect(keys, { showHidden: true, depth: 5 }),
      JSON.stringify(signAddress('bob@example.com', k, 7, noonOf(DAY))),
      ...['bob@example.com', tagged, tagged.replace(/=3/, '=4'), 'prvs=='].map((a) =>
        util.inspect(verifyAddress(a, keys, 7, noonOf(DAY)), { showHidden: true, depth: 5 }),
      ),
    ]
    for (const text of texts) assert.ok(!text.includes(secret), text)
  })

  it('dayNumber counts whole UTC days since 1970-01-01', () => {
    assert.equal(dayNumber(0), 0)
    assert.equal(dayNumber(DAY_MS - 1), 0)
    assert.equal(dayNumber(Date.UTC(2026, 11, 1, 23, 59)), 20788)
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
