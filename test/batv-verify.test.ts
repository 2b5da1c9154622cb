// The BATV core: checking a tagged address (valid, expired, wrong key or
// signature), letter case, quoted local parts, malformed tags, keys and secrets.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, it } from 'node:test'
import util from 'node:util'

import {
  BatvKey,
  dayNumber,
  isKeyId,
  parseTag,
  prepareKeys,
  secretProblem,
  signAddress,
  verifyAddress,
} from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import { DAY, k1, key, keysOf, noonOf, referenceTag, sign } from './support/batv'

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
