// Waiting in tests without sleeping: on events (a condition, polled once per
// turn of the event loop) or on node:test's mock clock, moved by the test while
// real packets still flow between its steps.
import assert from 'node:assert/strict'
import { mock } from 'node:test'
import { performance } from 'node:perf_hooks'

/** Step by which advance() moves the mock clock, in ms. */
export const STEP_MS = 100

/** One turn of the event loop: pending promise callbacks and ready I/O run first. */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Wait, turn by turn, until `done()` holds; fails after `limitMs` of real time. */
export async function until(done: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs
  while (!done()) {
    if (performance.now() > deadline) assert.fail(`still waiting: ${what}`)
    await turn()
  }
}

/**
 * Wait, turn by turn, until `done()` holds, moving the mock clock a step each
 * turn until it has moved `clockLimitMs`; fails after `limitMs` of real time.
 * For what a mock timer sets off and real I/O then completes (a watch event,
 * a file read): the clock stops short of what the test rules out. Returns how
 * far the clock moved.
 */
export async function untilTicking(
  done: () => boolean,
  what: string,
  clockLimitMs: number,
  limitMs = 10_000,
): Promise<number> {
  const deadline = performance.now() + limitMs
  let movedMs = 0
  while (!done()) {
    if (performance.now() > deadline) assert.fail(`still waiting: ${what} (clock moved ${movedMs} ms)`)
    await turn()
    if (movedMs < clockLimitMs) {
      mock.timers.tick(STEP_MS)
      movedMs += STEP_MS
    }
  }
  return movedMs
}

/**
 * Move the mock clock in steps from `fromMs` to `toMs`, letting the event loop
 * turn after each; returns the clock reading at which `settled()` first held,
 * or undefined when it did not by `toMs`.
 */
export async function advance(
  settled: () => boolean,
  fromMs: number,
  toMs: number,
): Promise<number | undefined> {
  for (let t = fromMs; ; t += STEP_MS) {
    await turn()
    if (settled()) return t
    if (t >= toMs) return undefined
    mock.timers.tick(STEP_MS)
  }
}

/**
 * Start `run` with setTimeout and Date on a mock clock at 0, then let `during`
 * move the clock (by default: up to `limitMs`). Returns the result and the
 * clock reading when it settled; fails when it did not.
 */
export async function onMockClock<T>(
  run: () => Promise<T>,
  limitMs: number,
  during: (settled: () => boolean) => Promise<number | undefined> = (settled) => advance(settled, 0, limitMs),
): Promise<{ result: T; ms: number }> {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  try {
    let value: { result: T } | undefined
    void run().then((result) => (value = { result }))
    const ms = await during(() => value !== undefined)
    assert.ok(value && ms !== undefined, `settled within ${limitMs} ms of the mock clock`)
    return { result: value.result, ms }
  } finally {
    mock.timers.reset()
  }
}
