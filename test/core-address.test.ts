// One reading of a local part for every decision: the sender test, the
// recipient lists and the BATV signature unquote it alike.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { splitAddress } from '../lib/batv/tag'
import { unquoteLocalPart } from '../lib/core/address'
import { recipientName } from '../lib/core/recipient'
import { localPart } from '../lib/core/sender'

describe('unquoteLocalPart', () => {
  it('removes the quotes and resolves each quoted pair; letter case is kept', () => {
    assert.equal(unquoteLocalPart('"Post\\master"'), 'Postmaster')
    assert.equal(unquoteLocalPart('"a\\"b"'), 'a"b')
    assert.equal(unquoteLocalPart('"a\\\\b"'), 'a\\b')
    assert.equal(unquoteLocalPart('"a b"'), 'a b')
  })

  it('leaves an unquoted local part, and a lone quote, as they are', () => {
    assert.equal(unquoteLocalPart('Bob'), 'Bob')
    assert.equal(unquoteLocalPart('"'), '"')
    assert.equal(unquoteLocalPart('a"b"'), 'a"b"')
    assert.equal(unquoteLocalPart(''), '')
  })

  it('a backslash quotes a line break too (RFC 5322 obs-qp), the one case RFC 5321 leaves open', () => {
    assert.equal(unquoteLocalPart('"a\\\nb"'), 'a\nb')
    assert.equal(unquoteLocalPart('"a\\\rb"'), 'a\rb')
  })

  it('the sender test, the recipient lists and the BATV tag read the same local part', () => {
    for (const written of ['"a\\\nb"', '"A\\\rB"', '"Post\\master"', '"x\\"y"']) {
      const expected = unquoteLocalPart(written).toLowerCase()
      assert.equal(localPart({ user: written, host: 'example.com' }), expected, JSON.stringify(written))
      assert.equal(recipientName(`${written}@example.com`).localPart, expected, JSON.stringify(written))
      assert.equal(splitAddress(`${written}@example.com`)?.localPart.toLowerCase(), expected)
    }
  })
})
