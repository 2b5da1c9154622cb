// mayBeMachineReply: which mail has its body read at all. Headers are parsed by
// Haraka's own Header (haraka-email-message), so the values are as raw as
// transaction.header gives them: trailing line breaks, folding, repeats.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Address } from '@haraka/email-address'
import { Header } from 'haraka-email-message'

import { fieldValues, mayBeMachineReply } from '../lib/ledger/reply/markers'

/** A Haraka Header parsed from header lines as they arrive in DATA. */
function header(text: string): Header {
  const h = new Header()
  h.parse(text.split(/(?<=\n)/))
  return h
}

const person = new Address('<alice@example.org>')
const NULL = new Address('<>')

describe('mayBeMachineReply: the envelope', () => {
  it('reads mail from the null sender and from MAILER-DAEMON or postmaster, in any case', () => {
    const none = header('Subject: hi\n')
    assert.equal(mayBeMachineReply(NULL, none), true)
    assert.equal(mayBeMachineReply(new Address('<MAILER-DAEMON@mx.example.net>'), none), true)
    assert.equal(mayBeMachineReply(new Address('<Postmaster@example.net>'), none), true)
    assert.equal(mayBeMachineReply(new Address('<postmaster>'), none), true)
  })
})

describe('mayBeMachineReply: the header', () => {
  const machine: Record<string, string> = {
    'a delivery report': 'Content-Type: multipart/report;\n\treport-type=delivery-status; boundary="b"\n',
    'a read receipt': 'Content-Type: multipart/report; report-type=disposition-notification;\n boundary=x\n',
    'an RFC 6533 report': 'Content-Type: multipart/report; report-type=global-delivery-status; boundary=x\n',
    "Exim's X-Failed-Recipients": 'X-Failed-Recipients: bob@example.net\n',
    'Auto-Submitted: auto-replied': 'Auto-Submitted: auto-replied\n',
    'Auto-Submitted: auto-generated': 'Auto-Submitted: auto-generated\n',
    'Auto-Submitted with a comment': 'Auto-Submitted: auto-replied (vacation)\n',
    'X-Autoreply': 'X-Autoreply: yes\n',
    'X-Autorespond': 'X-Autorespond: Out of office\n',
    'Precedence: auto_reply': 'Precedence: bulk\nPrecedence: auto_reply\n',
    "Exchange's subject": 'Subject: Automatic reply: lunch\n',
    'a TMDA challenge': 'Message-ID: <1234.5678@example.net-tmda-confirm>\n',
    'a BoxTrapper challenge': 'X-Boxtrapper: abc\n',
    'an ASK challenge': 'X-AskVersion: 2.5.3\n',
  }
  for (const [what, text] of Object.entries(machine)) {
    it(`reads ${what}, from an ordinary sender too`, () => {
      assert.equal(mayBeMachineReply(person, header(`From: a@example.org\n${text}`)), true)
    })
  }

  const ordinary: Record<string, string> = {
    'plain mail': 'From: alice@example.org\nSubject: lunch\nContent-Type: text/plain\n',
    "a person's reply": 'Subject: Re: lunch\nIn-Reply-To: <a@example.net>\nReferences: <a@example.net>\n',
    'Auto-Submitted: no': 'Auto-Submitted: no\nIn-Reply-To: <a@example.net>\n',
    'a list message': 'Precedence: list\nList-Id: <x.example.org>\n',
    'bulk mail': 'Precedence: bulk\n',
    'a reply to an automatic reply': 'Subject: Re: Automatic reply: lunch\nIn-Reply-To: <a@example.net>\n',
    'mixed content': 'Content-Type: multipart/mixed; boundary=x\n',
    'X-Autoreply: no': 'X-Autoreply: no\n',
  }
  for (const [what, text] of Object.entries(ordinary)) {
    it(`never reads ${what}`, () => {
      assert.equal(mayBeMachineReply(person, header(text)), false)
    })
  }

  it('never throws: a header whose get throws, no header, no sender', () => {
    const broken = {
      get(): string {
        throw new Error('boom')
      },
    }
    assert.equal(mayBeMachineReply(person, broken), false)
    assert.equal(mayBeMachineReply(person, null), false)
    assert.equal(mayBeMachineReply(undefined, undefined), false)
  })
})

describe('fieldValues reads Haraka raw values', () => {
  it('one value per field, unfolded and trimmed', () => {
    const h = header('References: <a@b>\n <c@d>\nReferences: <e@f>\n')
    assert.deepEqual(fieldValues(h, 'references'), ['<a@b> <c@d>', '<e@f>'])
    assert.deepEqual(fieldValues(h, 'In-Reply-To'), [])
  })
})
