/**
 * The sweep of one granularity: its runs of blocks, which may overlap, become
 * non-overlapping segments, each with the answer group of the runs covering
 * it, as rbldnsd answers every entry of the most specific block (an exclusion
 * there wins). Work and memory grow with the number of runs, never with how
 * many addresses they cover. Pure: typed arrays in, typed arrays out.
 */
import type { BlockList } from './blocks'
import { SegmentWriter, type Segments } from './merge'
import { MinHeap } from './min-heap'

// Elements handled between yields while sorting.
const CHUNK = 65536
// Sweep steps between yields.
const STEPS_PER_YIELD = 8192
const RADIX_BITS = 11
const RADIX = 1 << RADIX_BITS

/** Distinct answer groups: the value ids one address answers with, in file order. Group 0 = excluded. */
export class GroupTable {
  readonly values: number[][] = [[]]
  private readonly single: number[] = []
  private readonly multi = new Map<string, number>()

  forValue(v: number): number {
    let g = this.single[v]
    if (g === undefined) {
      g = this.values.length
      this.values.push([v])
      this.single[v] = g
    }
    return g
  }

  forValues(vs: number[]): number {
    if (vs.length === 1) return this.forValue(vs[0] as number)
    const key = vs.join(',')
    let g = this.multi.get(key)
    if (g === undefined) {
      g = this.values.length
      this.values.push(vs)
      this.multi.set(key, g)
    }
    return g
  }
}

/**
 * Sort a level's runs by first address, stably (equal firsts keep file
 * order), by LSD radix sort with cache-sized buckets. Replaces `list.firsts`
 * with the sorted addresses and returns each position's index in file order.
 */
export function* sortByFirst(list: BlockList): Generator<void, Uint32Array> {
  const n = list.n
  let keys: Uint32Array = list.firsts
  let seqs: Uint32Array = new Uint32Array(n)
  for (let i = 0; i < n; i++) seqs[i] = i
  let sorted = true
  for (let i = 1; i < n; i++) {
    if ((keys[i] as number) < (keys[i - 1] as number)) {
      sorted = false
      break
    }
  }
  if (sorted) return seqs
  let k2: Uint32Array = new Uint32Array(n)
  let s2: Uint32Array = new Uint32Array(n)
  const counts = new Uint32Array(RADIX + 1)
  for (let shift = 0; shift < 32; shift += RADIX_BITS) {
    counts.fill(0)
    for (let from = 0; from < n; from += CHUNK) {
      const to = Math.min(n, from + CHUNK)
      for (let i = from; i < to; i++)
        (counts[(((keys[i] as number) >>> shift) & (RADIX - 1)) + 1] as number)++
      yield
    }
    let full = false
    for (let d = 1; d <= RADIX; d++) if (counts[d] === n) full = true
    if (full) continue // every key has the same digit: this pass changes nothing
    for (let d = 1; d <= RADIX; d++) counts[d] = (counts[d] as number) + (counts[d - 1] as number)
    for (let from = 0; from < n; from += CHUNK) {
      const to = Math.min(n, from + CHUNK)
      for (let i = from; i < to; i++) {
        const k = keys[i] as number
        const d = (k >>> shift) & (RADIX - 1)
        const at = counts[d] as number
        counts[d] = at + 1
        k2[at] = k
        s2[at] = seqs[i] as number
      }
      yield
    }
    ;[keys, k2] = [k2, keys]
    ;[seqs, s2] = [s2, seqs]
  }
  list.firsts = keys
  return seqs
}

/** The sweep stopped: more than the allowed number of values apply to one address. */
export interface TooManyValues {
  readonly tooManyValuesAt: number
}

const bySeq = (seq: number): number => seq

/**
 * Sweep one granularity's runs into segments. A segment's group lists the
 * distinct values of the runs covering it, ordered by the first such run in
 * the file; an exclusion among them makes it group 0. `valueCount` bounds the
 * value ids; more than `maxValues` values on one address stops the sweep.
 * The list's arrays are reordered.
 */
export function* sweepLevel(
  list: BlockList,
  table: GroupTable,
  valueCount: number,
  maxValues: number,
): Generator<void, Segments | TooManyValues> {
  const seqs = yield* sortByFirst(list)
  const { firsts, lasts, values, n } = list
  const out = new SegmentWriter(n, false)
  // Runs covering the sweep position, by where they end.
  const byLast = new MinHeap((seq) => lasts[seq] as number)
  const ended = new Uint8Array(n)
  const activeRuns = new Uint32Array(valueCount)
  // Per active value: its active runs in file order (stale entries are dropped lazily).
  const firstRuns = new Map<number, MinHeap>()
  const active: number[] = []
  let excluded = 0
  let group = -1 // of the active runs; -1 = not known yet

  const firstRun = (v: number): number => {
    const heap = firstRuns.get(v) as MinHeap
    while (ended[heap.peek()] === 1) heap.pop()
    return heap.peek()
  }
  const currentGroup = (): number => {
    if (group >= 0) return group
    if (excluded > 0) group = 0
    else if (active.length === 1) group = table.forValue(active[0] as number)
    else group = table.forValues([...active].sort((x, y) => firstRun(x) - firstRun(y)))
    return group
  }
  const activate = (seq: number): void => {
    byLast.push(seq)
    group = -1
    const v = values[seq] as number
    if (v === 0) {
      excluded++
      return
    }
    let heap = firstRuns.get(v)
    if (heap === undefined) {
      heap = new MinHeap(bySeq)
      firstRuns.set(v, heap)
      active.push(v)
    }
    heap.push(seq)
    const count = ((activeRuns[v] as number) += 1)
    if (heap.size > 2 * count + 16) heap.retain((s) => ended[s] === 0)
  }
  const deactivate = (seq: number): void => {
    ended[seq] = 1
    group = -1
    const v = values[seq] as number
    if (v === 0) {
      excluded--
      return
    }
    if (((activeRuns[v] as number) -= 1) === 0) {
      firstRuns.delete(v)
      active.splice(active.indexOf(v), 1)
    }
  }

  let pos = 0 // first address not yet written while runs are active
  let steps = 0
  let i = 0
  while (i < n || byLast.size > 0) {
    if (++steps >= STEPS_PER_YIELD) {
      steps = 0
      yield
    }
    const next = i < n ? (firsts[i] as number) : Infinity
    if (byLast.size > 0) {
      const end = lasts[byLast.peek()] as number
      if (end < next) {
        out.push(pos, end, currentGroup())
        pos = end + 1
        // Many runs may end here (the same line a million times): count them as steps too.
        while (byLast.size > 0 && lasts[byLast.peek()] === end) {
          deactivate(byLast.pop())
          if (++steps >= STEPS_PER_YIELD) {
            steps = 0
            yield
          }
        }
        continue
      }
      if (pos < next) out.push(pos, next - 1, currentGroup())
    } else {
      const seq = seqs[i] as number
      const last = lasts[seq] as number
      if (i + 1 >= n || (firsts[i + 1] as number) > last) {
        // A run no other run overlaps: the common case, with no bookkeeping.
        const v = values[seq] as number
        out.push(next, last, v === 0 ? 0 : table.forValue(v))
        i++
        continue
      }
    }
    pos = next
    while (i < n && firsts[i] === next) {
      activate(seqs[i++] as number)
      if (++steps >= STEPS_PER_YIELD) {
        steps = 0
        yield
      }
    }
    if (active.length > maxValues) return { tooManyValuesAt: next }
  }
  return out.done()
}
