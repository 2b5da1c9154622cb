// What the ledger's lookups mean for a bounce: ours, not ours, or unknown.
// Plain decisions over what Redis answered, no I/O.

import type { LedgerResult } from '../core/types'

export type { LedgerResult }

/** The ledger's answer for the references of one message. */
export interface LedgerAnswer {
  readonly result: LedgerResult
  /**
   * Why, in a word or two: `found`, `not found` (not-ours); `no references`,
   * `young`, `too many references`, `unavailable`, `timeout`, `error` (unknown).
   */
  readonly reason: string
  /** The references found in the ledger (canonical form), for ours. */
  readonly found: readonly string[]
  /**
   * Every reference was looked up and none was found: true for not-ours, and
   * for an unknown answer whose only reason is a `young` ledger (it would be
   * not-ours once the ledger holds the whole window); false otherwise.
   */
  readonly noneFound: boolean
  /** Whole days the ledger has held every message sent; undefined when unknown. */
  readonly ageDays?: number
}

/** What the lookups of one check found, with the ledger's first whole day. */
export interface Lookups {
  /** Canonical references, each with whether any day of the window holds it. */
  readonly references: readonly { readonly id: string; readonly found: boolean }[]
  /** Every reference of the message was looked up (none left out). */
  readonly complete: boolean
  /** The first whole day the ledger holds (SINCE_KEY); undefined: nothing recorded yet. */
  readonly sinceDay: number | undefined
  readonly today: number
  readonly windowDays: number
}

/** Whole days of the ledger on `today` (0 on the day it started), or undefined before anything is recorded. */
export function ageDays(sinceDay: number | undefined, today: number): number | undefined {
  return sinceDay === undefined ? undefined : Math.max(0, today - sinceDay)
}

/**
 * Whether the ledger has held every message sent for the whole window on
 * `today`: only then can a reference it lacks be called not ours.
 */
export function holdsWholeWindow(sinceDay: number | undefined, today: number, windowDays: number): boolean {
  return sinceDay !== undefined && today - sinceDay >= windowDays
}

/**
 * Ours when any reference is found; not ours only when every reference was
 * looked up, none found, and the ledger has held every message for the whole
 * window (a younger one may miss what was sent before it started: unknown,
 * `young`, with `noneFound` so that record mode can still count it).
 */
export function judge(lookups: Lookups): LedgerAnswer {
  const age = ageDays(lookups.sinceDay, lookups.today)
  const withAge = age === undefined ? {} : { ageDays: age }
  const found = lookups.references.filter((r) => r.found).map((r) => r.id)
  if (found.length > 0) return { result: 'ours', reason: 'found', found, noneFound: false, ...withAge }
  if (lookups.references.length === 0) return unknown('no references', withAge)
  if (!lookups.complete) return unknown('too many references', withAge)
  // Every reference looked up, none found: not ours, unless the ledger may lack what was sent before it started.
  if (!holdsWholeWindow(lookups.sinceDay, lookups.today, lookups.windowDays))
    return { ...unknown('young', withAge), noneFound: true }
  return { result: 'not-ours', reason: 'not found', found: [], noneFound: true, ...withAge }
}

/** An unknown answer: nothing changes for the message. */
export function unknown(reason: string, extra: { ageDays?: number } = {}): LedgerAnswer {
  return { result: 'unknown', reason, found: [], noneFound: false, ...extra }
}
