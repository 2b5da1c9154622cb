import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { classifyAnswer, cleanText, MAX_TEXT_LENGTH, reasonFromTxt } from '../lib/core/answer'

describe('classifyAnswer', () => {
  it('no A records: not listed', () => {
    assert.deepEqual(classifyAnswer([]), { kind: 'not-listed' })
  })

  it('127.0.0.2 is a listing', () => {
    assert.deepEqual(classifyAnswer(['127.0.0.2']), { kind: 'listed', codes: ['127.0.0.2'] })
  })

  it('several codes are kept once each, sorted', () => {
    assert.deepEqual(classifyAnswer(['127.0.0.4', '127.0.0.2', '127.0.0.4']), {
      kind: 'listed',
      codes: ['127.0.0.2', '127.0.0.4'],
    })
  })

  it('an answer outside 127/8 is an error, never a listing', () => {
    const c = classifyAnswer(['62.0.58.94'])
    assert.equal(c.kind, 'error')
    assert.match((c as { reason: string }).reason, /outside 127\.0\.0\.0\/8/)
  })

  it('one bad record spoils a mixed answer', () => {
    assert.equal(classifyAnswer(['127.0.0.2', '62.0.58.94']).kind, 'error')
  })

  // Spamhaus's three documented codes and others of 127.255.255.0/24: a code added later is no listing either.
  for (const code of [
    '127.255.255.252',
    '127.255.255.254',
    '127.255.255.255',
    '127.255.255.253',
    '127.255.255.0',
  ]) {
    it(`${code} is an error code`, () => {
      const c = classifyAnswer([code])
      assert.equal(c.kind, 'error')
      assert.match((c as { reason: string }).reason, /error code/)
    })
  }

  it('a non-IPv4 string is an error and is not echoed raw', () => {
    const c = classifyAnswer(['bad\r\nvalue'])
    assert.equal(c.kind, 'error')
    assert.doesNotMatch((c as { reason: string }).reason, /[\r\n]/)
  })
})

describe('cleanText', () => {
  it('turns CR, LF, NUL, TAB, DEL and C1 controls into single spaces', () => {
    assert.equal(cleanText('a\r\nb\0c\td\x7fe\x85f'), 'a b c d e f')
  })

  it('drops non-ASCII', () => {
    assert.equal(cleanText('listé ✓ ok'), 'list ok')
  })

  it('bounds the length', () => {
    const long = 'x'.repeat(5000)
    const out = cleanText(long)
    assert.equal(out.length, MAX_TEXT_LENGTH)
    assert.ok(out.endsWith('...'))
  })

  it('keeps text of exactly the bound whole, and cuts one character more', () => {
    const exact = 'x'.repeat(MAX_TEXT_LENGTH)
    assert.equal(cleanText(exact), exact)
    const over = cleanText(`${exact}y`)
    assert.equal(over.length, MAX_TEXT_LENGTH)
    assert.ok(over.endsWith('...'))
    assert.equal(cleanText('abcdef', 6), 'abcdef')
    assert.equal(cleanText('abcdefg', 6), 'abc...')
  })

  it('leaves ordinary text alone', () => {
    assert.equal(
      cleanText('Listed, see https://www.backscatterer.org/?ip=1.2.3.4'),
      'Listed, see https://www.backscatterer.org/?ip=1.2.3.4',
    )
  })
})

describe('reasonFromTxt', () => {
  it('joins the strings of one record and separates records', () => {
    assert.equal(reasonFromTxt([['Sent ', 'backscatter'], ['second']]), 'Sent backscatter second')
  })

  it('stays bounded for thousands of strings', () => {
    const many = Array.from({ length: 5000 }, () => ['y'.repeat(255)])
    assert.equal(reasonFromTxt(many).length, MAX_TEXT_LENGTH)
  })

  it('an empty answer gives an empty reason', () => {
    assert.equal(reasonFromTxt([]), '')
  })
})
