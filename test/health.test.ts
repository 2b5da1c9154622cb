import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { assessTestPoints, ZoneHealth, type Assessment, type HealthState } from '../lib/health'

const listed = { status: 'listed', codes: ['127.0.0.2'], reason: '', ttlSeconds: 60 } as const
const clean = { status: 'not-listed' } as const

describe('assessTestPoints (RFC 5782 §5)', () => {
  it('usable when 127.0.0.2 is listed and 127.0.0.1 is not', () => {
    assert.deepEqual(
      assessTestPoints([
        { point: '127.0.0.2', mustBeListed: true, result: listed },
        { point: '127.0.0.1', mustBeListed: false, result: clean },
      ]),
      { usable: true },
    )
  })

  it('a zone that lists 127.0.0.1 lists everything', () => {
    const a = assessTestPoints([
      { point: '127.0.0.2', mustBeListed: true, result: listed },
      { point: '127.0.0.1', mustBeListed: false, result: listed },
    ])
    assert.deepEqual(a, { usable: false, reason: 'lists test point 127.0.0.1, so it would list everything' })
  })

  it('a zone that does not list 127.0.0.2', () => {
    const a = assessTestPoints([{ point: '127.0.0.2', mustBeListed: true, result: clean }])
    assert.deepEqual(a, { usable: false, reason: 'does not list test point 127.0.0.2' })
  })

  it('errors (timeouts, answers outside 127/8) fail the check', () => {
    const a = assessTestPoints([
      { point: '127.0.0.2', mustBeListed: true, result: { status: 'error', reason: 'timeout' } },
    ])
    assert.deepEqual(a, { usable: false, reason: 'test point 127.0.0.2: timeout' })
  })
})

describe('ZoneHealth', () => {
  it('reports each change of state once, and resolves ready after the first check', async () => {
    const answers: Assessment[] = [
      { usable: true },
      { usable: true },
      { usable: false, reason: 'x' },
      { usable: false, reason: 'x' },
      { usable: true },
    ]
    const changes: [HealthState, string][] = []
    const h = new ZoneHealth(
      'z',
      async () => answers.shift()!,
      (_z, s, r) => changes.push([s, r]),
    )
    assert.equal(h.state, 'unchecked')
    for (let i = 0; i < 5; i++) await h.check()
    await h.ready
    assert.deepEqual(changes, [
      ['usable', ''],
      ['suspended', 'x'],
      ['usable', ''],
    ])
  })

  it('concurrent checks share one probe', async () => {
    let probes = 0
    const h = new ZoneHealth(
      'z',
      async () => {
        probes++
        await new Promise((r) => setTimeout(r, 10))
        return { usable: true }
      },
      () => {},
    )
    await Promise.all([h.check(), h.check(), h.check()])
    assert.equal(probes, 1)
  })

  it('a probe that throws suspends the zone instead of escaping', async () => {
    const h = new ZoneHealth(
      'z',
      async () => {
        throw new Error('boom')
      },
      () => {},
    )
    await h.check()
    assert.equal(h.state, 'suspended')
    assert.match(h.reason, /boom/)
  })
})
