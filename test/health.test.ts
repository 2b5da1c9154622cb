import assert from 'node:assert/strict'
import { afterEach, describe, it, mock } from 'node:test'

import {
  assessTestPoints,
  FIRST_RECHECK_MS,
  ZoneHealth,
  type Assessment,
  type HealthSnapshot,
  type HealthState,
} from '../lib/dns/health'

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

  it('a zone that does not list 127.0.0.2, with require_test_point: suspended', () => {
    const a = assessTestPoints([{ point: '127.0.0.2', mustBeListed: true, result: clean }], {
      requireTestPoint: true,
    })
    assert.deepEqual(a, { usable: false, reason: 'does not list test point 127.0.0.2' })
  })

  it('a zone that does not list 127.0.0.2: in use, with a warning (it looks empty, refuses nothing)', () => {
    const a = assessTestPoints([
      { point: '127.0.0.2', mustBeListed: true, result: clean },
      { point: '127.0.0.1', mustBeListed: false, result: clean },
    ])
    assert.deepEqual(a, { usable: true, warning: 'does not list test point 127.0.0.2' })
  })

  it('a missing 127.0.0.2 does not hide a listed 127.0.0.1 or an error after it', () => {
    const missing = { point: '127.0.0.2', mustBeListed: true, result: clean } as const
    assert.deepEqual(
      assessTestPoints([missing, { point: '127.0.0.1', mustBeListed: false, result: listed }]),
      { usable: false, reason: 'lists test point 127.0.0.1, so it would list everything' },
    )
    assert.deepEqual(
      assessTestPoints([
        missing,
        { point: '127.0.0.1', mustBeListed: false, result: { status: 'error', reason: 'SERVFAIL' } },
      ]),
      { usable: false, reason: 'test point 127.0.0.1: SERVFAIL' },
    )
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
    let answer: (a: Assessment) => void = () => {}
    const h = new ZoneHealth(
      'z',
      () => {
        probes++
        return new Promise<Assessment>((resolve) => (answer = resolve))
      },
      () => {},
    )
    const checks = Promise.all([h.check(), h.check(), h.check()])
    answer({ usable: true })
    await checks
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

describe('ZoneHealth generations', () => {
  it('counts changes of state, not checks or changes of reason', async () => {
    const answers: Assessment[] = [
      { usable: true },
      { usable: true, warning: 'does not list test point 127.0.0.2' },
      { usable: false, reason: 'x' },
      { usable: false, reason: 'y' },
      { usable: true },
    ]
    const h = new ZoneHealth(
      'z',
      async () => answers.shift()!,
      () => {},
    )
    const seen: number[] = []
    for (let i = 0; i < 5; i++) {
      await h.check()
      seen.push(h.generation)
    }
    assert.deepEqual(seen, [1, 1, 2, 2, 3])
  })

  it('a missing positive test point is reported once per change, as a usable state with a reason', async () => {
    const warning = 'does not list test point 127.0.0.2'
    const answers: Assessment[] = [{ usable: true, warning }, { usable: true, warning }, { usable: true }]
    const changes: [HealthState, string][] = []
    const h = new ZoneHealth(
      'z',
      async () => answers.shift()!,
      (_z, s, r) => changes.push([s, r]),
    )
    for (let i = 0; i < 3; i++) await h.check()
    assert.deepEqual(changes, [
      ['usable', warning],
      ['usable', ''],
    ])
  })
})

describe('ZoneHealth schedule (mock timers)', () => {
  const INTERVAL_MS = 300_000
  // One turn of the event loop: the probe's promise chain settles and the next check is scheduled.
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

  afterEach(() => mock.timers.reset())

  /** A zone whose checks pass while `usable()` holds, started from `from` (a reload) when given. */
  function scripted(usable: () => boolean, from?: HealthSnapshot, onChange: () => void = () => {}) {
    const probedAt: number[] = []
    const h = new ZoneHealth(
      'z',
      async () => {
        probedAt.push(Date.now())
        return usable() ? { usable: true } : { usable: false, reason: 'test point 127.0.0.2: timeout' }
      },
      onChange,
      INTERVAL_MS,
      from,
    )
    return { h, probedAt }
  }

  /** Advance the clock to `ms` in steps of one second, letting each check settle. */
  async function runUntil(ms: number): Promise<void> {
    while (Date.now() < ms) {
      mock.timers.tick(1000)
      await settle()
    }
  }

  it('a suspended zone is re-checked after 5 s, 10 s, 20 s … up to health_interval', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const { h, probedAt } = scripted(() => false)
    h.start()
    await settle()
    await runUntil(1_000_000)
    const gaps = probedAt.slice(1).map((t, i) => t - probedAt[i]!)
    assert.equal(FIRST_RECHECK_MS, 5000)
    assert.deepEqual(gaps.slice(0, 8), [5000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000])
    assert.equal(h.state, 'suspended')
    h.stop()
  })

  it('a zone that passes again goes back to health_interval, and its back-off starts over', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    let up = false
    const { h, probedAt } = scripted(() => up)
    h.start()
    await settle()
    await runUntil(15_000) // checks at 0, 5 s, 15 s
    up = true
    await runUntil(35_000) // the next, at 35 s, passes
    assert.equal(h.state, 'usable')
    up = false
    await runUntil(35_000 + INTERVAL_MS + 5000)
    assert.deepEqual(probedAt, [0, 5000, 15_000, 35_000, 35_000 + INTERVAL_MS, 35_000 + INTERVAL_MS + 5000])
    h.stop()
  })

  it('a check made in between (a failed lookup, a new zone file) restarts the schedule from its end', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const { h, probedAt } = scripted(() => true)
    h.start()
    await settle()
    await runUntil(100_000)
    await h.check()
    await runUntil(100_000 + INTERVAL_MS)
    assert.deepEqual(probedAt, [0, 100_000, 100_000 + INTERVAL_MS])
    h.stop()
  })

  it('the timer never keeps the process alive (real timers)', async () => {
    const { h } = scripted(() => true)
    h.start()
    await settle()
    const timer = (h as unknown as { timer: NodeJS.Timeout }).timer
    assert.equal(timer.hasRef(), false)
    h.stop()
  })

  it('stop() ends the schedule', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const { h, probedAt } = scripted(() => true)
    h.start()
    await settle()
    h.stop()
    await runUntil(3 * INTERVAL_MS)
    assert.deepEqual(probedAt, [0])
  })

  it('a state carried over a reload is in force at once; its next check comes when it was due', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const { h: old } = scripted(() => true)
    old.start()
    await settle()
    await runUntil(100_000)
    const { h, probedAt } = scripted(
      () => true,
      old.snapshot(),
      () => assert.fail('no change to report'),
    )
    old.stop()
    assert.equal(h.state, 'usable')
    await h.ready
    h.start()
    await settle()
    assert.deepEqual(probedAt, [], 'no check at start')
    await runUntil(INTERVAL_MS)
    assert.deepEqual(probedAt, [INTERVAL_MS])
    h.stop()
  })

  it('a state carried over a reload while a check runs: the successor checks at once', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const { h: old } = scripted(() => true)
    old.start()
    await settle()
    await runUntil(100_000)
    // A check in between (a failed lookup's) is still running when the settings are reloaded.
    let finish: (a: Assessment) => void = () => {}
    const running = new ZoneHealth(
      'z',
      () => new Promise<Assessment>((resolve) => (finish = resolve)),
      () => {},
      INTERVAL_MS,
      old.snapshot(),
    )
    old.stop()
    running.start()
    void running.check()
    const { h, probedAt } = scripted(() => true, running.snapshot())
    running.stop()
    h.start()
    mock.timers.tick(0)
    await settle()
    assert.deepEqual(probedAt, [100_000], 'its outcome is lost with the old checker: checked again at once')
    finish({ usable: false, reason: 'test point 127.0.0.2: timeout' })
    h.stop()
  })

  it('a check made before start() counts: start() schedules the next one an interval after it', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const { h, probedAt } = scripted(() => true)
    await h.check()
    await runUntil(10_000)
    h.start()
    await runUntil(INTERVAL_MS)
    assert.deepEqual(probedAt, [0, INTERVAL_MS])
    h.stop()
  })
})
