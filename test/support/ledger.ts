// A Ledger against a private redis-server, with a clock the test moves, its
// log lines kept, and its changes of state to wait on.
import crypto from 'node:crypto'

import { createClient } from '@redis/client'

import { dayOf, sinceMember } from '../../lib/ledger/entry'
import { Ledger, type LedgerOptions, type LedgerState, type LedgerStatus } from '../../lib/ledger/ledger'
import type { LedgerSettings } from '../../lib/core/types'

export const SECRET = 'a ledger secret for the tests, 32+'
/** The tests' key's member of the ledger's start (SINCE_KEY). */
export const SINCE = sinceMember(crypto.createSecretKey(Buffer.from(SECRET, 'utf8')))
/** Noon of 2026-12-06, UTC. */
export const NOON = Date.parse('2026-12-06T12:00:00Z')
export const TODAY = dayOf(NOON)
export const DAY_MS = 86_400_000

export function ledgerSettings(url: string, values: Partial<LedgerSettings> = {}): LedgerSettings {
  return {
    mode: 'check',
    redisUrl: url,
    windowDays: 30,
    timeoutMs: 200,
    scores: { ours: -10, notOurs: 5 },
    key: crypto.createSecretKey(Buffer.from(SECRET, 'utf8')),
    ...values,
  }
}

export interface TestLedger {
  readonly ledger: Ledger
  readonly lines: { level: 'info' | 'error'; text: string }[]
  errors(): string[]
  infos(): string[]
  /** The clock the ledger reads; the test moves it. */
  clock: { ms: number }
  /** Resolves when the ledger reaches `state` (at once when it is there). */
  reach(state: LedgerState): Promise<LedgerStatus>
}

export function testLedger(
  settings: LedgerSettings,
  options: Partial<LedgerOptions> = {},
  clock = { ms: NOON },
): TestLedger {
  const lines: TestLedger['lines'] = []
  const waiting: { state: LedgerState; resolve: (s: LedgerStatus) => void }[] = []
  const ledger = new Ledger(settings, {
    log: {
      info: (text) => lines.push({ level: 'info', text }),
      error: (text) => lines.push({ level: 'error', text }),
    },
    now: () => clock.ms,
    probeIntervalMs: 50,
    onState: (status) => {
      for (const w of waiting.filter((w) => w.state === status.state)) {
        waiting.splice(waiting.indexOf(w), 1)
        w.resolve(status)
      }
    },
    ...options,
  })
  return {
    ledger,
    lines,
    errors: () => lines.filter((l) => l.level === 'error').map((l) => l.text),
    infos: () => lines.filter((l) => l.level === 'info').map((l) => l.text),
    clock,
    reach: (state) =>
      ledger.status().state === state
        ? Promise.resolve(ledger.status())
        : new Promise((resolve) => waiting.push({ state, resolve })),
  }
}

/** A plain client to look into the server the ledger uses. */
export async function inspector(url: string) {
  const client = createClient({ url })
  client.on('error', () => undefined)
  await client.connect()
  return client
}
