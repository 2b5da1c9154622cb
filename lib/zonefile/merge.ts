/**
 * Answer segments and the merge of the four granularities into the ranges a
 * zone answers from. Pure: typed arrays in, typed arrays out.
 */

/** Sorted, non-overlapping address runs [first, last] and the answer group of each (0 = excluded). */
export interface Segments {
  readonly firsts: Uint32Array
  readonly lasts: Uint32Array
  readonly groups: Uint32Array
  readonly n: number
}

// Steps of work between yields to the caller.
const STEPS_PER_YIELD = 8192

/** Builds Segments in address order, joining adjacent runs of the same group. */
export class SegmentWriter {
  private firsts: Uint32Array
  private lasts: Uint32Array
  private groups: Uint32Array
  private n = 0

  /** `dropExcluded`: leave out runs of group 0 (after a merge they are holes). */
  constructor(
    capacity: number,
    private readonly dropExcluded: boolean,
  ) {
    const cap = Math.max(16, capacity)
    this.firsts = new Uint32Array(cap)
    this.lasts = new Uint32Array(cap)
    this.groups = new Uint32Array(cap)
  }

  push(first: number, last: number, group: number): void {
    if (first > last || (group === 0 && this.dropExcluded)) return
    const n = this.n
    if (n > 0 && this.groups[n - 1] === group && (this.lasts[n - 1] as number) + 1 === first) {
      this.lasts[n - 1] = last
      return
    }
    if (n === this.firsts.length) this.grow()
    this.firsts[n] = first
    this.lasts[n] = last
    this.groups[n] = group
    this.n = n + 1
  }

  /** The segments written, in arrays of their exact size. */
  done(): Segments {
    const n = this.n
    return {
      firsts: this.firsts.slice(0, n),
      lasts: this.lasts.slice(0, n),
      groups: this.groups.slice(0, n),
      n,
    }
  }

  private grow(): void {
    const grown = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(a.length * 2)
      b.set(a)
      return b
    }
    this.firsts = grown(this.firsts)
    this.lasts = grown(this.lasts)
    this.groups = grown(this.groups)
  }
}

export const NO_SEGMENTS: Segments = Object.freeze({
  firsts: new Uint32Array(0),
  lasts: new Uint32Array(0),
  groups: new Uint32Array(0),
  n: 0,
})

/**
 * Lay the segments of a finer granularity over the result so far: wherever
 * the finer one has a segment, it decides (an excluded one leaves a hole), as
 * rbldnsd's most specific block decides. Yields every few thousand steps.
 */
export function* overlay(coarse: Segments, fine: Segments): Generator<void, Segments> {
  const out = new SegmentWriter(coarse.n + fine.n, true)
  const { firsts: cFirsts, lasts: cLasts, groups: cGroups, n: cn } = coarse
  let i = 0
  // Addresses up to `decided` have their answer already written (or are a hole).
  let decided = -1
  let steps = 0
  for (let j = 0; j < fine.n; j++) {
    const first = fine.firsts[j] as number
    const last = fine.lasts[j] as number
    // The coarse runs, or what is left of them, before this fine run.
    while (i < cn && (cFirsts[i] as number) < first) {
      const cLast = cLasts[i] as number
      out.push(Math.max(cFirsts[i] as number, decided + 1), Math.min(cLast, first - 1), cGroups[i] as number)
      if (cLast >= first) break
      i++
    }
    out.push(first, last, fine.groups[j] as number)
    decided = last
    while (i < cn && (cLasts[i] as number) <= last) i++
    if (++steps === STEPS_PER_YIELD) {
      steps = 0
      yield
    }
  }
  for (; i < cn; i++) {
    out.push(Math.max(cFirsts[i] as number, decided + 1), cLasts[i] as number, cGroups[i] as number)
    if (++steps === STEPS_PER_YIELD) {
      steps = 0
      yield
    }
  }
  return out.done()
}
