import type { LookupResult } from '../core/types'

/**
 * RFC 5782 §5 test points: a working IPv4 list MUST list 127.0.0.2 and MUST NOT
 * list 127.0.0.1; an IPv6 list likewise ::FFFF:7F00:2 and ::FFFF:7F00:1.
 */
export const TEST_POINTS = {
  ipv4: { listed: '127.0.0.2', unlisted: '127.0.0.1' },
  ipv6: { listed: '::ffff:7f00:2', unlisted: '::ffff:7f00:1' },
} as const

export interface TestPoint {
  readonly point: string
  readonly mustBeListed: boolean
}

/** The test points to query for a zone, by the address families it is queried for. */
export function testPointsFor(zone: { readonly ipv4: boolean; readonly ipv6: boolean }): TestPoint[] {
  const points: TestPoint[] = []
  for (const family of ['ipv4', 'ipv6'] as const) {
    if (!zone[family]) continue
    points.push({ point: TEST_POINTS[family].listed, mustBeListed: true })
    points.push({ point: TEST_POINTS[family].unlisted, mustBeListed: false })
  }
  return points
}

export type HealthState = 'unchecked' | 'usable' | 'suspended'

export type Assessment =
  /** `warning`: why the zone is in use although a test point failed (absent when all passed). */
  { readonly usable: true; readonly warning?: string } | { readonly usable: false; readonly reason: string }

export interface TestPointAnswers extends TestPoint {
  readonly result: LookupResult
}

/** Whether one test point answered as RFC 5782 §5 asks. */
export function answeredAsRequired({ mustBeListed, result }: TestPointAnswers): boolean {
  return result.status === (mustBeListed ? 'listed' : 'not-listed')
}

export interface AssessOptions {
  /** Suspend a zone that does not list its positive test point (127.0.0.2). Default false. */
  readonly requireTestPoint?: boolean
}

/**
 * Judge a zone by its test-point answers; the first failure names the reason.
 * Only answers that could create listings suspend the zone: an error, an answer
 * outside 127/8, or a listed negative point (the zone lists everything). A
 * missing positive point makes the zone look empty, which refuses nothing, so it
 * is a warning unless `requireTestPoint` asks for more.
 */
export function assessTestPoints(
  answers: readonly TestPointAnswers[],
  { requireTestPoint = false }: AssessOptions = {},
): Assessment {
  let missing = ''
  for (const { point, mustBeListed, result } of answers) {
    if (result.status === 'error') return { usable: false, reason: `test point ${point}: ${result.reason}` }
    if (!mustBeListed && result.status === 'listed') {
      return { usable: false, reason: `lists test point ${point}, so it would list everything` }
    }
    if (mustBeListed && result.status !== 'listed' && !missing) missing = `does not list test point ${point}`
  }
  if (missing && requireTestPoint) return { usable: false, reason: missing }
  return missing ? { usable: true, warning: missing } : { usable: true }
}

/** First re-check of a suspended zone, in ms; each further failure doubles it, up to the interval. */
export const FIRST_RECHECK_MS = 5000

/** What a zone's health carries over a config reload that leaves the zone unchanged. */
export interface HealthSnapshot {
  readonly state: HealthState
  readonly reason: string
  /** Checks failed in a row. */
  readonly failures: number
  /** When the next scheduled check is due (ms since the epoch), or undefined when none is. */
  readonly nextCheckAt: number | undefined
}

/**
 * Tracks one zone's health: unchecked until the first check settles, then
 * usable or suspended. `ready` settles once the first check has. Once started,
 * a usable zone is checked every `intervalMs`, a suspended one after
 * FIRST_RECHECK_MS, then twice as long after each failure, up to `intervalMs`.
 * `generation` counts the changes of state: an answer obtained under an older
 * generation may predate a suspension.
 */
export class ZoneHealth {
  state: HealthState = 'unchecked'
  reason = ''
  generation = 0
  readonly ready: Promise<void>
  private markReady: () => void = () => {}
  private running: Promise<void> | undefined
  private failures = 0
  private timer: NodeJS.Timeout | undefined
  private nextCheckAt: number | undefined
  private started = false
  private stopped = false

  constructor(
    readonly zone: string,
    private readonly probe: () => Promise<Assessment>,
    private readonly onChange: (zone: string, state: HealthState, reason: string) => void,
    private readonly intervalMs = 0,
    from?: HealthSnapshot,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve))
    if (from && from.state !== 'unchecked') {
      this.state = from.state
      this.reason = from.reason
      this.failures = from.failures
      this.nextCheckAt = from.nextCheckAt
      this.markReady()
    }
  }

  /** Check now (or when a carried-over check is due), then on schedule; the timer never keeps the process alive. */
  start(): void {
    if (this.started || this.stopped) return
    this.started = true
    if (this.state === 'unchecked') void this.check()
    else this.schedule(Math.max(0, (this.nextCheckAt ?? 0) - Date.now()))
  }

  /** No more scheduled checks; a check running settles as usual. */
  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.nextCheckAt = undefined
  }

  /**
   * The state for the checker that replaces this one. A check still running
   * ends with the old checker, its outcome unseen, so the successor checks at once.
   */
  snapshot(): HealthSnapshot {
    const nextCheckAt = this.running ? Date.now() : this.nextCheckAt
    return { state: this.state, reason: this.reason, failures: this.failures, nextCheckAt }
  }

  /** Run one check (or join the one running); never rejects. The schedule restarts from its end. */
  check(): Promise<void> {
    this.running ??= this.probe()
      .catch((err: unknown): Assessment => ({ usable: false, reason: `check failed: ${String(err)}` }))
      .then((a) => this.apply(a))
      .finally(() => {
        this.running = undefined
        this.schedule(this.delayAfterCheckMs())
        this.markReady()
      })
    return this.running
  }

  private delayAfterCheckMs(): number {
    if (this.state !== 'suspended') return this.intervalMs
    return Math.min(FIRST_RECHECK_MS * 2 ** Math.min(this.failures - 1, 30), this.intervalMs)
  }

  /** Set when the next check is due; the timer only once started (start() keeps to that time). */
  private schedule(delayMs: number): void {
    if (this.stopped || this.intervalMs <= 0) return
    this.nextCheckAt = Date.now() + delayMs
    if (!this.started) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.check(), delayMs)
    this.timer.unref()
  }

  private apply(a: Assessment): void {
    const state: HealthState = a.usable ? 'usable' : 'suspended'
    const reason = a.usable ? (a.warning ?? '') : a.reason
    this.failures = a.usable ? 0 : this.failures + 1
    const changed = state !== this.state || reason !== this.reason
    if (state !== this.state) this.generation++
    this.state = state
    this.reason = reason
    if (changed) this.onChange(this.zone, state, reason)
  }
}
