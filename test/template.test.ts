import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { fillTemplate, parseTemplate } from '../lib/core/template'

const values = {
  ip: '45.1.2.3',
  zone: 'z.example',
  reason: '{zone}',
  url: 'https://z.example/?ip=45.1.2.3',
  score: '5',
}

describe('message templates', () => {
  it('fills every placeholder, each as often as it appears', () => {
    const t = parseTemplate('{ip} on {zone}: {reason} {url} ({score}) {ip}')
    assert.equal(
      fillTemplate(t, values),
      '45.1.2.3 on z.example: {zone} https://z.example/?ip=45.1.2.3 (5) 45.1.2.3',
    )
  })

  it('leaves unknown braces and plain text alone', () => {
    assert.equal(fillTemplate(parseTemplate('no placeholders {here}'), values), 'no placeholders {here}')
    assert.equal(fillTemplate(parseTemplate(''), values), '')
  })

  it('is frozen data', () => {
    assert.ok(Object.isFrozen(parseTemplate('{ip}')))
  })
})
