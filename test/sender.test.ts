import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { isBounceSender, isNullSender, localPart, wireAddress } from '../lib/core/sender'
import { parseSettings } from '../lib/settings/parse'
import { addr } from './support/address'

const defaults = parseSettings({}).settings.senders

describe('isBounceSender', () => {
  it('the null sender is a bounce', () => {
    assert.equal(isBounceSender(addr('<>'), defaults), true)
  })

  for (const from of [
    'postmaster@example.com',
    'POSTMASTER@example.com',
    'PostMaster@Sub.Example.ORG',
    '<postmaster>',
    '<Postmaster>',
    '<"postmaster"@example.com>',
    '<"Post\\master"@example.com>',
  ]) {
    it(`${from} is a bounce`, () => assert.equal(isBounceSender(addr(from), defaults), true))
  }

  for (const from of [
    'alice@example.com',
    'postmaster-list@example.com',
    'mailer-daemon@example.com',
    'xpostmaster@example.com',
    'postmaster.bob@example.com',
  ]) {
    it(`${from} is not a bounce by default`, () => assert.equal(isBounceSender(addr(from), defaults), false))
  }

  it('[senders] local_parts adds names in any letter case', () => {
    const s = parseSettings({ senders: { local_parts: 'Mailer-Daemon, MAILER_DAEMON' } }).settings.senders
    assert.equal(isBounceSender(addr('MAILER-DAEMON@mx.example.net'), s), true)
    assert.equal(isBounceSender(addr('mailer_daemon@mx.example.net'), s), true)
    assert.equal(isBounceSender(addr('postmaster@mx.example.net'), s), true, 'postmaster stays')
    assert.equal(isBounceSender(addr('alice@mx.example.net'), s), false)
  })

  it('[senders] null = false turns the null-sender test off', () => {
    const s = parseSettings({ senders: { null: 'false' } }).settings.senders
    assert.equal(isBounceSender(addr('<>'), s), false)
    assert.equal(isBounceSender(addr('postmaster@example.com'), s), true)
  })

  it('a missing sender is not a bounce', () => {
    assert.equal(isBounceSender(undefined, defaults), false)
    assert.equal(isBounceSender(null, defaults), false)
  })

  it('works on plain objects without isNull()', () => {
    assert.equal(isNullSender({ user: null, host: null }), true)
    assert.equal(isNullSender({ user: 'a', host: 'b' }), false)
    assert.equal(isBounceSender({ user: '', host: '' }, defaults), true)
  })
})

describe('localPart', () => {
  it('lower-cases the local part, empty when absent', () => {
    assert.equal(localPart(addr('PostMaster@example.com')), 'postmaster')
    assert.equal(localPart(addr('<>')), '')
    assert.equal(localPart(undefined), '')
  })

  it('compares the unquoted local part: "postmaster"@ is postmaster@ (RFC 5321 section 4.1.2)', () => {
    assert.equal(localPart(addr('<"postmaster"@example.com>')), 'postmaster')
    assert.equal(localPart(addr('<"Abuse"@example.com>')), 'abuse')
    assert.equal(
      localPart(addr('<"post\\master"@example.com>')),
      'postmaster',
      'a quoted pair is its character',
    )
    assert.equal(localPart(addr('<"a b"@example.com>')), 'a b')
    assert.equal(localPart(addr('<"a\\"b"@example.com>')), 'a"b')
  })
})

describe('wireAddress', () => {
  it('the local part as written, quotes kept, the domain Haraka routes on; the null sender and odd values are empty', () => {
    assert.equal(wireAddress(addr('<Bob@Example.COM>')), 'Bob@example.com')
    assert.equal(wireAddress(addr('<"a b"@example.com>')), '"a b"@example.com')
    assert.equal(wireAddress(addr('<postmaster>')), 'postmaster')
    assert.equal(wireAddress(addr('<>')), '')
    assert.equal(wireAddress(undefined), '')
    assert.equal(wireAddress({ user: 42 as unknown as string, host: 'x' }), '')
    assert.equal(wireAddress({ user: 'bob', host: 'example.com' }), 'bob@example.com')
  })

  it('a domain typed in Unicode is the lower-case ASCII domain Haraka routes on, never the one typed', () => {
    for (const typed of [
      'ｅｘａｍｐｌｅ.com',
      'example。com',
      'exam\u00adple.com',
      'EXAMPLE.com',
      'ＥＸＡＭＰＬＥ．ＣＯＭ',
    ]) {
      assert.equal(wireAddress(addr(`<Bob@${typed}>`)), 'Bob@example.com', typed)
    }
    assert.equal(wireAddress(addr('<bob@Bücher.example>')), 'bob@xn--bcher-kva.example')
  })
})
