// One recipient of a bounce, decided from plain data: exemptions, the domain's
// action, the tag's result and score, and the sum with the zones' score.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { BatvKey, signAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import {
  decideBounceRecipient,
  isExempt,
  isUnsignedDestination,
  notChecked,
  recipientAction,
  recipientName,
  tagResultText,
} from '../lib/core/recipient'
import { parseSettings, type ReadKeysFile } from '../lib/settings/parse'
import { decideVerdict } from '../lib/core/verdict'
import type { Settings, ZoneOutcome } from '../lib/core/types'
import { checkRecipientTag, untaggedAddress } from '../lib/batv/recipient'

const NOON = 20785 * DAY_MS + DAY_MS / 2
const VALID = 'prvs=1792f288fc=bob@example.com'

function settingsOf(raw: Record<string, Record<string, unknown>>, keys = '1 = s3cret'): Settings {
  const readKeysFile: ReadKeysFile = () => ({ lines: keys.split('\n'), mode: 0o100600 })
  const parsed = parseSettings(raw, { readKeysFile, nowMs: NOON })
  assert.deepEqual([...parsed.problems, ...parsed.errors, ...parsed.keyProblems], [])
  return parsed.settings
}

const s = settingsOf({
  main: { exempt_recipients: 'postmaster, abuse, noreply@example.com, @lists.example.com' },
  batv: {
    domains: 'example.com',
    missing_from: '2020-01-01',
    unsigned_recipients: 'l@lists.example.org, @g.example.net',
  },
  recipient_domains: { 'example.org': 'defer', 'example.info': 'off' },
})

const listed: ZoneOutcome = {
  zone: 'ips.backscatterer.org',
  status: 'listed',
  codes: ['127.0.0.2'],
  reason: '',
}
const hit = decideVerdict('45.1.2.3', [listed], s)
const miss = decideVerdict('45.1.2.3', [{ zone: 'ips.backscatterer.org', status: 'not-listed' }], s)

describe('recipientName', () => {
  it('unquotes and lower-cases; a bare local part has no domain', () => {
    assert.deepEqual(recipientName('"Post\\master"@Example.COM'), {
      localPart: 'postmaster',
      domain: 'example.com',
    })
    assert.deepEqual(recipientName('Abuse'), { localPart: 'abuse', domain: '' })
    assert.deepEqual(recipientName('"a@b"@x.example'), { localPart: 'a@b', domain: 'x.example' })
  })
})

describe('exemptions, unsigned destinations and the per-domain action', () => {
  it('by local part, by address and by @domain', () => {
    for (const a of ['postmaster@any.example', 'NoReply@Example.com', 'x@lists.example.com', 'abuse']) {
      assert.equal(isExempt(recipientName(a), s), true, a)
    }
    for (const a of ['noreply@example.org', 'x@sub.lists.example.com', 'bob@example.com']) {
      assert.equal(isExempt(recipientName(a), s), false, a)
    }
  })

  it('unsigned_recipients by address and @domain, never by local part alone', () => {
    assert.equal(isUnsignedDestination(recipientName('L@Lists.Example.org'), s.batv), true)
    assert.equal(isUnsignedDestination(recipientName('x@g.example.net'), s.batv), true)
    assert.equal(isUnsignedDestination(recipientName('l@example.org'), s.batv), false)
  })

  it('[recipient_domains], else [main] action', () => {
    assert.equal(recipientAction(recipientName('a@example.org'), s), 'defer')
    assert.equal(recipientAction(recipientName('a@example.info'), s), 'off')
    assert.equal(recipientAction(recipientName('a@example.com'), s), 'reject')
  })
})

describe('checkRecipientTag', () => {
  it('valid: the key, the original address, the valid score', () => {
    assert.deepEqual(checkRecipientTag(VALID, s.batv, NOON), {
      result: 'valid',
      keyId: 1,
      original: 'bob@example.com',
      score: -10,
      scored: true,
    })
  })

  it('invalid: the reason; the tag removed unless malformed', () => {
    assert.deepEqual(checkRecipientTag('prvs=1792f288fd=bob@example.com', s.batv, NOON), {
      result: 'invalid',
      keyId: 1,
      reason: 'bad signature',
      original: 'bob@example.com',
      score: 5,
      scored: true,
    })
    assert.deepEqual(checkRecipientTag('prvs=x@example.com', s.batv, NOON), {
      result: 'invalid',
      reason: 'malformed',
      original: 'prvs=x@example.com',
      score: 5,
      scored: true,
    })
  })

  it('missing, scored from missing_from on; not checked outside the signing domains', () => {
    assert.deepEqual(checkRecipientTag('bob@example.com', s.batv, NOON).score, 5)
    const later = settingsOf({ batv: { domains: 'example.com', missing_from: '2026-12-08' } })
    const early = checkRecipientTag('bob@example.com', later.batv, Date.parse('2026-12-07T23:59:59Z'))
    assert.deepEqual([early.result, early.scored, early.score], ['missing', false, 0])
    const onTime = checkRecipientTag('bob@example.com', later.batv, Date.parse('2026-12-08T00:00:00Z'))
    assert.deepEqual([onTime.scored, onTime.score], [true, 5])
    assert.deepEqual(
      checkRecipientTag(VALID.replace('.com', '.org'), s.batv, NOON),
      notChecked(VALID.replace('.com', '.org')),
    )
  })

  it('every key checks; the tag names which', () => {
    const two = settingsOf(
      { batv: { domains: 'example.com', missing_from: '2020-01-01', sign_key: 2 } },
      '1 = s3cret\n2 = other',
    )
    const key2 = BatvKey.create(2, 'other') as BatvKey
    const signed = signAddress('bob@example.com', key2, 7, NOON)
    assert.ok(signed.ok)
    assert.equal(checkRecipientTag(signed.address, two.batv, NOON).keyId, 2)
    assert.equal(checkRecipientTag(VALID, two.batv, NOON).result, 'valid', 'key 1 still checks')
  })

  it('how the results show it', () => {
    assert.equal(tagResultText(checkRecipientTag(VALID, s.batv, NOON)), 'valid key 1')
    assert.equal(
      tagResultText(checkRecipientTag('prvs=7792f288fc=bob@example.com', s.batv, NOON)),
      'invalid key 7: unknown key',
    )
    assert.equal(tagResultText(notChecked('x')), 'not checked')
  })
})

describe('untaggedAddress: any well-formed tag to a signing domain, unchecked', () => {
  it('removes it, keeps the rest', () => {
    assert.equal(untaggedAddress('prvs=1001aaaaaa=bob@example.com', s.batv), 'bob@example.com')
    assert.equal(
      untaggedAddress('prvs=1001aaaaaa=bob@example.org', s.batv),
      'prvs=1001aaaaaa=bob@example.org',
    )
    assert.equal(untaggedAddress('prvs=oops@example.com', s.batv), 'prvs=oops@example.com')
    assert.equal(untaggedAddress('bob@example.com', s.batv), 'bob@example.com')
  })
})

describe('decideBounceRecipient: zones + tag, threshold, then the action', () => {
  const valid = checkRecipientTag(VALID, s.batv, NOON)
  const missing = checkRecipientTag('alice@example.com', s.batv, NOON)
  const rcpt = (a: string) => recipientName(a)

  it('a valid tag outweighs a listing', () => {
    assert.deepEqual(decideBounceRecipient(hit, rcpt('bob@example.com'), valid, s), {
      action: 'accept',
      why: 'below-threshold',
      score: -5,
    })
  })

  it('a missing tag alone reaches the threshold: refused, caused by the tag', () => {
    assert.deepEqual(decideBounceRecipient(miss, rcpt('alice@example.com'), missing, s), {
      action: 'reject',
      cause: 'batv',
      score: 5,
    })
  })

  it('a listing alone reaches it: caused by the listing, the tag adds', () => {
    assert.deepEqual(decideBounceRecipient(hit, rcpt('alice@example.com'), missing, s), {
      action: 'reject',
      cause: 'listing',
      score: 10,
    })
  })

  it('nothing listed and nothing scored: accepted as not listed; a failed lookup adds nothing', () => {
    assert.deepEqual(
      decideBounceRecipient(miss, rcpt('a@example.net'), notChecked('a@example.net'), s).action,
      'accept',
    )
    assert.deepEqual(decideBounceRecipient(undefined, rcpt('alice@example.com'), missing, s), {
      action: 'reject',
      cause: 'batv',
      score: 5,
    })
  })

  it('exempt, off, defer and score', () => {
    assert.equal(decideBounceRecipient(hit, rcpt('noreply@example.com'), missing, s).action, 'accept')
    assert.deepEqual(decideBounceRecipient(hit, rcpt('a@example.info'), missing, s), {
      action: 'accept',
      why: 'off',
      score: 10,
    })
    assert.equal(decideBounceRecipient(hit, rcpt('a@example.org'), missing, s).action, 'defer')
    const score = settingsOf({ main: { action: 'score' }, batv: { domains: 'example.com' } })
    assert.equal(decideBounceRecipient(hit, rcpt('a@example.com'), missing, score).action, 'accept')
  })
})
