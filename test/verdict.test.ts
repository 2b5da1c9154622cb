import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import DSN from 'haraka-dsn'

import { isExempt, recipientName } from '../lib/core/recipient'
import { parseSettings } from '../lib/settings/parse'
import {
  decideRecipient,
  decideVerdict,
  formatBatvReply,
  formatReply,
  headerValue,
  listingScore,
  MAX_REPLY_LENGTH,
  refusal,
} from '../lib/core/verdict'
import type { ZoneOutcome } from '../lib/core/types'

const two = parseSettings({
  main: { zones: 'ips.backscatterer.org, bounces.example.net', threshold: 5 },
  'ips.backscatterer.org': { score: 3, '127.0.0.4': 4 },
  'bounces.example.net': { score: 2.5 },
}).settings

const listed = (zone: string, codes = ['127.0.0.2'], reason = 'seen sending backscatter'): ZoneOutcome => ({
  zone,
  status: 'listed',
  codes,
  reason,
})

describe('scoring', () => {
  it('uses the zone score, or the best matching per-answer score', () => {
    const z = two.zones[0]!
    assert.equal(listingScore(z, ['127.0.0.2']), 3)
    assert.equal(listingScore(z, ['127.0.0.4']), 4)
    assert.equal(listingScore(z, ['127.0.0.2', '127.0.0.4']), 4)
  })

  it('of several matching per-answer scores the highest counts, whatever the order of the answers', () => {
    const z = parseSettings({
      main: { zones: 'bl.example' },
      'bl.example': { score: 3, '127.0.0.2': 1, '127.0.0.4': 4, '127.0.0.5': 2 },
    }).settings.zones[0]!
    assert.equal(listingScore(z, ['127.0.0.2', '127.0.0.4', '127.0.0.5']), 4)
    assert.equal(listingScore(z, ['127.0.0.5', '127.0.0.4', '127.0.0.2']), 4)
    assert.equal(listingScore(z, ['127.0.0.2', '127.0.0.5']), 2)
  })

  it('a matching per-answer score applies even when it is below the zone score', () => {
    const z = parseSettings({
      main: { zones: 'bl.example' },
      'bl.example': { score: 3, '127.0.0.2': 1 },
    }).settings.zones[0]!
    assert.equal(listingScore(z, ['127.0.0.2']), 1)
    assert.equal(listingScore(z, ['127.0.0.9']), 3)
  })

  it('sums over the zones that list the client', () => {
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org'), listed('bounces.example.net')], two)
    assert.equal(v.score, 5.5)
    assert.equal(v.actionable, true)
    assert.deepEqual(
      v.listed.map((o) => o.zone),
      ['ips.backscatterer.org', 'bounces.example.net'],
    )
  })

  it('one zone below the threshold does not act', () => {
    const v = decideVerdict(
      '45.1.2.3',
      [listed('ips.backscatterer.org'), { zone: 'bounces.example.net', status: 'not-listed' }],
      two,
    )
    assert.equal(v.score, 3)
    assert.equal(v.actionable, false)
  })

  it('errors and skips add nothing', () => {
    const v = decideVerdict(
      '45.1.2.3',
      [
        { zone: 'ips.backscatterer.org', status: 'error', reason: 'timeout' },
        { zone: 'bounces.example.net', status: 'skipped', reason: 'IPv6 not checked' },
      ],
      two,
    )
    assert.equal(v.score, 0)
    assert.equal(v.actionable, false)
  })

  it('a threshold of 0 still needs a listing', () => {
    const s = parseSettings({ main: { threshold: 0 } }).settings
    const v = decideVerdict('45.1.2.3', [{ zone: 'ips.backscatterer.org', status: 'not-listed' }], s)
    assert.equal(v.actionable, false)
  })

  it('sorts listings by score, highest first', () => {
    const v = decideVerdict(
      '45.1.2.3',
      [listed('bounces.example.net'), listed('ips.backscatterer.org', ['127.0.0.4'])],
      two,
    )
    assert.equal(v.listed[0]!.zone, 'ips.backscatterer.org')
  })
})

describe('decideRecipient', () => {
  const defaults = parseSettings({}).settings
  const hit = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org')], defaults)
  const miss = decideVerdict('45.1.2.3', [{ zone: 'ips.backscatterer.org', status: 'not-listed' }], defaults)

  it('rejects an ordinary recipient of a listed bounce', () => {
    assert.deepEqual(decideRecipient(hit, 'alice', defaults), {
      action: 'reject',
      cause: 'listing',
      score: 5,
    })
  })

  it('accepts postmaster and abuse (RFC 5321 §4.5.1), in any case', () => {
    assert.deepEqual(decideRecipient(hit, 'postmaster', defaults), {
      action: 'accept',
      why: 'exempt',
      score: 5,
    })
    assert.deepEqual(decideRecipient(hit, 'ABUSE', defaults), { action: 'accept', why: 'exempt', score: 5 })
    assert.equal(isExempt(recipientName('PostMaster'), defaults), true)
  })

  it('accepts everyone when not listed', () => {
    assert.deepEqual(decideRecipient(miss, 'alice', defaults), {
      action: 'accept',
      why: 'not-listed',
      score: 0,
    })
  })

  it('defer and score actions', () => {
    const defer = parseSettings({ main: { action: 'defer' } }).settings
    const score = parseSettings({ main: { action: 'score' } }).settings
    assert.deepEqual(decideRecipient(hit, 'alice', defer), { action: 'defer', cause: 'listing', score: 5 })
    assert.deepEqual(decideRecipient(hit, 'alice', score), { action: 'accept', why: 'score-only', score: 5 })
  })
})

describe('decideRecipient: addresses and domains too', () => {
  const s = parseSettings({
    main: { exempt_recipients: 'postmaster, noreply@example.com, @lists.example.com' },
    recipient_domains: { 'example.org': 'defer', 'example.info': 'off' },
  }).settings
  const hit = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org')], s)

  it('an exempt address or @domain; a local part alone as before', () => {
    assert.equal(isExempt(recipientName('NoReply@Example.com'), s), true)
    assert.equal(isExempt(recipientName('x@Lists.Example.com'), s), true)
    assert.equal(isExempt(recipientName('noreply'), s), false)
    assert.deepEqual(decideRecipient(hit, 'x@lists.example.com', s), {
      action: 'accept',
      why: 'exempt',
      score: 5,
    })
  })

  it("the recipient domain's action; off is never refused", () => {
    assert.deepEqual(decideRecipient(hit, 'a@example.org', s), {
      action: 'defer',
      cause: 'listing',
      score: 5,
    })
    assert.deepEqual(decideRecipient(hit, 'a@example.info', s), { action: 'accept', why: 'off', score: 5 })
    assert.deepEqual(decideRecipient(hit, 'a@example.com', s), {
      action: 'reject',
      cause: 'listing',
      score: 5,
    })
  })
})

describe('formatBatvReply', () => {
  it('its own text for a missing and for an invalid tag, not the listing text', () => {
    assert.equal(
      formatBatvReply('alice@example.com', { result: 'missing' }),
      'Bounce refused: <alice@example.com> takes bounces only at its signed return path (BATV); this bounce is not about mail sent from here',
    )
    assert.match(
      formatBatvReply('prvs=1@example.com', { result: 'invalid' }),
      /^Bounce refused: the signature \(BATV\) of <prvs=1@example\.com> is invalid or expired;/,
    )
  })

  it('control characters and overlong addresses cannot break the reply line', () => {
    const text = formatBatvReply(`a\r\n550 x${'y'.repeat(500)}@example.com`, { result: 'missing' })
    assert.doesNotMatch(text, /[\r\n]/)
    assert.ok(text.length <= MAX_REPLY_LENGTH)
  })
})

describe('formatReply', () => {
  const defaults = parseSettings({}).settings

  it('names the IP, the list, the reason and the lookup URL', () => {
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org')], defaults)
    assert.equal(
      formatReply(v, defaults),
      'Backscatter refused: 45.1.2.3 is listed on ips.backscatterer.org (seen sending backscatter); bounces from it are not accepted, see https://www.backscatterer.org/?target=test&ip=45.1.2.3',
    )
  })

  it('fills every placeholder of a custom message, once', () => {
    const s = parseSettings({ main: { message: '{zone}|{ip}|{reason}|{url}|{score}|{other}' } }).settings
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org', ['127.0.0.2'], '{zone}')], s)
    assert.equal(
      formatReply(v, s),
      'ips.backscatterer.org|45.1.2.3|{zone}|https://www.backscatterer.org/?target=test&ip=45.1.2.3|5|{other}',
    )
  })

  it('says "listed" when the zone gave no reason, and the zone when it has no URL', () => {
    const s = parseSettings({ main: { zones: 'bounces.example.net' } }).settings
    const v = decideVerdict('45.1.2.3', [listed('bounces.example.net', ['127.0.0.2'], '')], s)
    assert.match(formatReply(v, s), /\(listed\).*see bounces\.example\.net$/)
  })

  it('says the lookup URL once when the reason already holds a URL', () => {
    const reason = 'Listed for backscatter, see http://www.backscatterer.org/?target=test&ip=45.1.2.3'
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org', ['127.0.0.2'], reason)], defaults)
    const text = formatReply(v, defaults)
    assert.equal(text.match(/backscatterer\.org\/\?target/g)?.length, 1, text)
    assert.equal(
      text,
      `Backscatter refused: 45.1.2.3 is listed on ips.backscatterer.org (${reason}); bounces from it are not accepted, see ips.backscatterer.org`,
    )
  })

  it('a URL in the reason is recognised in any letter case, with or without a scheme', () => {
    for (const reason of [
      'Listed, see HTTPS://WWW.BACKSCATTERER.ORG/?ip=45.1.2.3',
      'Listed, see Http://backscatterer.org/',
      'Listed, see WWW.backscatterer.org',
    ]) {
      const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org', ['127.0.0.2'], reason)], defaults)
      assert.match(formatReply(v, defaults), /see ips\.backscatterer\.org$/, reason)
    }
  })

  it('keeps the reply on one bounded line', () => {
    const s = parseSettings({ main: { message: '{reason} {reason} {reason}' } }).settings
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org', ['127.0.0.2'], 'r'.repeat(200))], s)
    const text = formatReply(v, s)
    assert.ok(text.length <= MAX_REPLY_LENGTH)
    assert.doesNotMatch(text, /[\r\n]/)
  })
})

describe('headerValue', () => {
  const defaults = parseSettings({}).settings
  it('shows the score, the listing zones and the IP', () => {
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org')], defaults)
    assert.equal(headerValue(v), 'score=5; listed=ips.backscatterer.org; ip=45.1.2.3')
  })
  it('listed=none only when every zone answered and none lists the client', () => {
    const ok = decideVerdict('45.1.2.3', [{ zone: 'ips.backscatterer.org', status: 'not-listed' }], defaults)
    assert.equal(headerValue(ok), 'score=0; listed=none; ip=45.1.2.3')
  })
  it('a zone that failed, was suspended or was not asked is unchecked: never listed=none', () => {
    const zone = 'ips.backscatterer.org'
    for (const outcome of [
      { zone, status: 'error', reason: 'timeout' },
      { zone, status: 'skipped', reason: 'zone suspended: test point 127.0.0.2: timeout' },
      { zone, status: 'skipped', reason: 'IPv6 not checked' },
    ] as const) {
      const v = decideVerdict('45.1.2.3', [outcome], defaults)
      assert.equal(headerValue(v), `score=0; listed=unknown; unchecked=${zone}; ip=45.1.2.3`, outcome.reason)
    }
  })
  it('with several zones: the ones that list, and the ones that gave no answer', () => {
    const outcomes = [
      { zone: 'a.example', status: 'not-listed' },
      { zone: 'b.example', status: 'error', reason: 'SERVFAIL' },
      { zone: 'c.example', status: 'skipped', reason: 'zone suspended: …' },
    ] as const
    const none = decideVerdict('45.1.2.3', outcomes, defaults)
    assert.equal(headerValue(none), 'score=0; listed=unknown; unchecked=b.example,c.example; ip=45.1.2.3')
    const some = decideVerdict('45.1.2.3', [...outcomes, listed('ips.backscatterer.org')], defaults)
    assert.equal(
      headerValue(some, ['valid']),
      'score=5; listed=ips.backscatterer.org; unchecked=b.example,c.example; batv=valid; ip=45.1.2.3',
    )
  })
  it('with BATV on: the distinct outcomes of the checked recipients, or none', () => {
    const v = decideVerdict('45.1.2.3', [listed('ips.backscatterer.org')], defaults)
    assert.equal(
      headerValue(v, ['valid', 'not checked', 'valid', 'missing']),
      'score=5; listed=ips.backscatterer.org; batv=valid,missing; ip=45.1.2.3',
    )
    assert.equal(
      headerValue(v, ['not checked']),
      'score=5; listed=ips.backscatterer.org; batv=none; ip=45.1.2.3',
    )
    assert.equal(headerValue(v, []), 'score=5; listed=ips.backscatterer.org; batv=none; ip=45.1.2.3')
  })
})

describe('refusal: the reply a refused recipient gets, shared by the plugin and the command', () => {
  it('reject is 550 5.7.1 and defer 450 4.7.1', () => {
    assert.deepEqual(refusal('reject', 'Backscatter refused'), {
      code: 550,
      subject: 7,
      detail: 1,
      enhanced: '5.7.1',
      text: 'Backscatter refused',
      line: '550 5.7.1 Backscatter refused',
    })
    assert.equal(refusal('defer', 'Backscatter refused').line, '450 4.7.1 Backscatter refused')
  })

  it('the line is what Haraka sends for the DSN the plugin builds from it', () => {
    for (const action of ['reject', 'defer'] as const) {
      const r = refusal(
        action,
        'Backscatter refused: 45.1.2.3 is listed (see https://example.org/?ip=45.1.2.3)',
      )
      const dsn = DSN.create(r.code, r.text, r.subject, r.detail)
      assert.equal(`${dsn.code} ${dsn.reply}`, r.line)
    }
  })
})
