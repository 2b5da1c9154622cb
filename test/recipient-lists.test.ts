// The recipient lists of the settings (exempt_recipients, unsigned_recipients)
// matched by one function, and the one notion of a recipient that is never refused.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import {
  exemption,
  isExempt,
  isUnsignedDestination,
  matchesRecipient,
  recipientName,
} from '../lib/core/recipient'
import { parseSettings } from '../lib/settings/parse'

const s = parseSettings({
  main: { exempt_recipients: 'postmaster, abuse, noreply@example.com, @lists.example.com' },
  recipient_domains: { 'example.info': 'off', 'example.org': 'defer' },
}).settings

describe('matchesRecipient', () => {
  const list = new Set(['abuse', 'noreply@example.com', '@lists.example.com'])

  it('by local part, by address and by @domain', () => {
    assert.equal(matchesRecipient(recipientName('Abuse@any.example'), list), true)
    assert.equal(matchesRecipient(recipientName('abuse'), list), true)
    assert.equal(matchesRecipient(recipientName('NoReply@Example.com'), list), true)
    assert.equal(matchesRecipient(recipientName('x@lists.example.com'), list), true)
    assert.equal(matchesRecipient(recipientName('noreply@example.org'), list), false)
  })

  it('a quoted local part holding an address is a local part, not that address', () => {
    const quoted = recipientName('"noreply@example.com"@example.net')
    assert.equal(quoted.localPart, 'noreply@example.com')
    assert.equal(matchesRecipient(quoted, list), false)
    assert.equal(matchesRecipient(recipientName('"noreply@example.com"'), list), false)
    assert.equal(isExempt(quoted, s), false)
  })

  it('unsigned_recipients, addresses and @domains only, through the same match', () => {
    const batv = parseSettings({ batv: { unsigned_recipients: 'l@lists.example.org, @g.example.net' } })
      .settings.batv
    assert.equal(isUnsignedDestination(recipientName('L@Lists.Example.org'), batv), true)
    assert.equal(isUnsignedDestination(recipientName('x@g.example.net'), batv), true)
    assert.equal(isUnsignedDestination(recipientName('"l@lists.example.org"@example.com'), batv), false)
    assert.equal(isUnsignedDestination(recipientName('l'), batv), false)
  })
})

describe('exemption', () => {
  it('exempt: named in [main] exempt_recipients', () => {
    assert.equal(exemption(recipientName('postmaster@example.org'), s), 'exempt')
    assert.equal(exemption(recipientName('x@lists.example.com'), s), 'exempt')
  })

  it("off: the recipient domain's action is off", () => {
    assert.equal(exemption(recipientName('bob@example.info'), s), 'off')
  })

  it('none for any other recipient, whatever its action', () => {
    assert.equal(exemption(recipientName('bob@example.org'), s), undefined)
    assert.equal(exemption(recipientName('bob@example.com'), s), undefined)
  })
})
