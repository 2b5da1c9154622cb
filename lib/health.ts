import type { LookupResult } from './resolver'

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

export type Assessment = { readonly usable: true } | { readonly usable: false; readonly reason: string }

export interface TestPointAnswers extends TestPoint {
  readonly result: LookupResult
}

/** Judge a zone by its test-point answers; the first failure names the reason. */
export function assessTestPoints(answers: readonly TestPointAnswers[]): Assessment {
  for (const { point, mustBeListed, result } of answers) {
    if (result.status === 'error') return { usable: false, reason: `test point ${point}: ${result.reason}` }
    if (!mustBeListed && result.status === 'listed') {
      return { usable: false, reason: `lists test point ${point}, so it would list everything` }
    }
    if (mustBeListed && result.status !== 'listed') {
      return { usable: false, reason: `does not list test point ${point}` }
    }
  }
  return { usable: true }
}

/**
 * Tracks one zone's health: unchecked until the first check settles, then
 * usable or suspended. `ready` settles once the first check has.
 */
export class ZoneHealth {
  state: HealthState = 'unchecked'
  reason = ''
  readonly ready: Promise<void>
  private markReady: () => void = () => {}
  private running: Promise<void> | undefined

  constructor(
    readonly zone: string,
    private readonly probe: () => Promise<Assessment>,
    private readonly onChange: (zone: string, state: HealthState, reason: string) => void,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve))
  }

  /** Run one check (or join the one running); never rejects. */
  check(): Promise<void> {
    this.running ??= this.probe()
      .catch((err: unknown): Assessment => ({ usable: false, reason: `check failed: ${String(err)}` }))
      .then((a) => this.apply(a))
      .finally(() => {
        this.running = undefined
        this.markReady()
      })
    return this.running
  }

  private apply(a: Assessment): void {
    const state: HealthState = a.usable ? 'usable' : 'suspended'
    const reason = a.usable ? '' : a.reason
    const changed = state !== this.state || reason !== this.reason
    this.state = state
    this.reason = reason
    if (changed) this.onChange(this.zone, state, reason)
  }
}
