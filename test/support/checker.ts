// A BackscatterChecker for tests, against a scripted DNS server on 127.0.0.1,
// with its cache on a clock the test moves.
import assert from 'node:assert/strict'

import { BackscatterChecker } from '../../lib/dns/checker'
import { parseSettings } from '../../lib/settings/parse'

/** The zone the checker tests ask about. */
export const ZONE = 'bl.test'

/** A checker of ZONE (with IPv6) through `server`; `dns`, `main` and `zone` add to its ini sections. */
export function makeChecker(
  server: string,
  dns: Record<string, unknown> = {},
  main: Record<string, unknown> = {},
  zone: Record<string, unknown> = {},
) {
  const lines: string[] = []
  const { settings, problems } = parseSettings({
    main: { zones: ZONE, ...main },
    // Generous: a retry under load would add a query to the counts the tests check.
    dns: { servers: server, timeout_ms: 2000, tries: 2, health_interval: 0, ...dns },
    [ZONE]: { ipv6: 'true', ...zone },
  })
  assert.deepEqual(problems, [])
  const clock = { ms: 1_000_000, now: () => clock.ms } // lru-cache reads a start time of 0 as none
  const checker = new BackscatterChecker(
    settings,
    { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) },
    { clock },
  )
  return { checker, lines, clock }
}

/** A promise and the function that settles it. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => {}
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { opened, open }
}
