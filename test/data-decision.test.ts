// The decision at the end of DATA once the sent-mail ledger has answered
// (lib/core/data-decision.ts): ours accepts whatever the zones and tags said;
// not ours adds its score per recipient, exemptions and per-domain actions
// apply, and one reply refuses the message only when every recipient would be.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { decideAtData, ledgerReplyText, ledgerScore, type DataRecipient } from '../lib/core/data-decision'
import { notChecked, recipientName } from '../lib/core/recipient'
import { decideVerdict, headerValue, ledgerHeaderValue } from '../lib/core/verdict'
import type { Settings, ZoneOutcome } from '../lib/core/types'
import { parseSettings } from '../lib/settings/parse'

function settingsOf(raw: Record<string, Record<string, unknown>>): Settings {
  const parsed = parseSettings(raw, { readKeysFile: () => undefined, nowMs: 0 })
  assert.deepEqual([...parsed.problems, ...parsed.errors], [])
  return parsed.settings
}

const s = settingsOf({
  main: { exempt_recipients: 'postmaster, @lists.example.com' },
  recipient_domains: { 'example.org': 'defer', 'example.info': 'off', 'example.biz': 'score' },
})
const scores = s.ledger.scores
const ZONE = 'ips.backscatterer.org'
const listedOutcome: ZoneOutcome = { zone: ZONE, status: 'listed', codes: ['127.0.0.2'], reason: '' }
const listed = decideVerdict('45.1.2.3', [listedOutcome], s)
const clean = decideVerdict('45.9.9.9', [{ zone: ZONE, status: 'not-listed' }], s)

const to = (address: string): DataRecipient => ({
  address,
  rcpt: recipientName(address),
  tag: notChecked(address),
})

describe('the ledger at the end of DATA', () => {
  it('ledgerScore: ours and not ours take their settings, unknown adds nothing', () => {
    assert.deepEqual(ledgerScore('ours', scores), { result: 'ours', score: -10 })
    assert.deepEqual(ledgerScore('not-ours', scores), { result: 'not-ours', score: 5 })
    assert.deepEqual(ledgerScore('unknown', scores), { result: 'unknown', score: 0 })
  })

  it('ours: a bounce from a listed host is accepted, though the listing alone refuses it', () => {
    const d = decideAtData(listed, [to('alice@example.com')], ledgerScore('ours', scores), s)
    assert.deepEqual(d, { action: 'accept', why: 'ours', score: -5 })
  })

  it('unknown: the listing decides, as it would have at RCPT', () => {
    const d = decideAtData(listed, [to('alice@example.com')], ledgerScore('unknown', scores), s)
    assert.equal(d.action, 'reject')
    assert.equal(d.action === 'reject' && d.cause, 'listing')
  })

  it('not ours from a clean host: refused, caused by the ledger', () => {
    const d = decideAtData(clean, [to('alice@example.com')], ledgerScore('not-ours', scores), s)
    assert.deepEqual(d, { action: 'reject', cause: 'ledger', score: 5, recipient: to('alice@example.com') })
  })

  it('not ours, no zone asked (an auto-reply from a real sender): the ledger alone decides', () => {
    const d = decideAtData(undefined, [to('alice@example.com')], ledgerScore('not-ours', scores), s)
    assert.equal(d.action === 'reject' && d.cause, 'ledger')
  })

  it('not ours below the threshold is accepted', () => {
    const low = { result: 'not-ours' as const, score: 1 }
    assert.deepEqual(decideAtData(clean, [to('alice@example.com')], low, s), {
      action: 'accept',
      why: 'none-refused',
      score: 1,
    })
  })

  it('exemptions and per-domain actions apply: postmaster, an off or score domain are never refused', () => {
    for (const address of [
      'postmaster@example.com',
      'x@lists.example.com',
      'a@example.info',
      'a@example.biz',
    ]) {
      const d = decideAtData(clean, [to(address)], ledgerScore('not-ours', scores), s)
      assert.equal(d.action, 'accept', address)
    }
  })

  it('a domain that defers: the message is deferred; with a rejecting one too, the milder answer wins', () => {
    const one = decideAtData(clean, [to('a@example.org')], ledgerScore('not-ours', scores), s)
    assert.equal(one.action, 'defer')
    const both = decideAtData(
      clean,
      [to('a@example.com'), to('b@example.org')],
      ledgerScore('not-ours', scores),
      s,
    )
    assert.equal(both.action, 'defer')
    assert.equal(both.action === 'defer' && both.recipient.address, 'b@example.org')
  })

  it('only some recipients would be refused: one reply answers them all, so the message goes on', () => {
    const d = decideAtData(
      clean,
      [to('alice@example.com'), to('postmaster@example.com')],
      ledgerScore('not-ours', scores),
      s,
    )
    assert.deepEqual(d, { action: 'accept', why: 'some-refused', score: 5 })
  })

  it('the reply names the kind of message; the header carries the ledger', () => {
    assert.equal(
      ledgerReplyText('mdn'),
      'Backscatter refused: this read receipt is about a message that was not sent from here',
    )
    assert.equal(
      headerValue(listed, undefined, { result: 'ours' }),
      `score=5; listed=${ZONE}; ledger=ours; ip=45.1.2.3`,
    )
    assert.equal(ledgerHeaderValue('not-ours'), 'ledger=not-ours')
  })
})
