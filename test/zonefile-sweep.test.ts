// The pure core of zone loading, checked against brute force over every
// address: how a range is cut into blocks, the sweep of one granularity's
// overlapping runs, and the merge of the granularities.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { addRange, BlockList, LEVEL_SIZE, newLevels } from '../lib/zonefile/blocks'
import { overlay, SegmentWriter, type Segments } from '../lib/zonefile/merge'
import { MinHeap } from '../lib/zonefile/min-heap'
import { GroupTable, sortByFirst, sweepLevel } from '../lib/zonefile/sweep'
import { parseIPv4 } from '../lib/zonefile'
import { prng } from './support/prng'

/** Run a generator that yields only to pause, and return what it returns. */
function run<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
  }
}

/**
 * rbldnsd's ip4range_expand as it stores entries: one key per block (the
 * reference the runs must cover exactly), per granularity.
 */
function blocksOf(a: number, b: number): number[][] {
  const out: number[][] = [[], [], [], []]
  const add = (lv: number, start: number, count: number, step: number): void => {
    for (let k = 0; k < count; k++) out[lv]!.push(start + k * step)
  }
  for (let lv = 0; lv < 3; lv++) {
    const step = LEVEL_SIZE[lv]!
    if ((a | 255) >>> 0 >= b) {
      if (b - a === 255) add(lv + 1, a * step, 1, step * 256)
      else add(lv, a * step, b - a + 1, step)
      return out
    }
    if (a & 255) {
      add(lv, a * step, 256 - (a & 255), step)
      a = Math.floor(a / 256) + 1
    } else a = Math.floor(a / 256)
    if ((b & 255) !== 255) {
      add(lv, (b - (b & 255)) * step, (b & 255) + 1, step)
      b = Math.floor(b / 256) - 1
    } else b = Math.floor(b / 256)
  }
  add(3, a * 16777216, b - a + 1, 16777216)
  return out
}

/** The block keys a level's runs stand for. */
function keysOf(list: BlockList, lv: number): number[] {
  const keys: number[] = []
  for (let i = 0; i < list.n; i++) {
    for (let k = list.firsts[i]!; k <= list.lasts[i]!; k += LEVEL_SIZE[lv]!) keys.push(k)
  }
  return keys
}

describe('addRange: a range as rbldnsd stores it, in at most seven runs', () => {
  test('the same blocks as rbldnsd’s expansion, for narrow, aligned, unaligned and very wide ranges', () => {
    const rnd = prng(5)
    const cases: [number, number][] = [
      [parseIPv4('1.0.0.1'), parseIPv4('254.255.255.254')],
      [0, 0xffffffff],
      [parseIPv4('10.0.0.0'), parseIPv4('10.255.255.255')],
      [parseIPv4('10.0.0.5'), parseIPv4('10.0.1.7')],
      [parseIPv4('10.1.2.0'), parseIPv4('10.1.2.255')],
      [parseIPv4('10.1.0.1'), parseIPv4('10.1.2.254')],
      [parseIPv4('255.255.255.255'), parseIPv4('255.255.255.255')],
    ]
    for (let i = 0; i < 300; i++) {
      const a = Math.floor(rnd() * 2 ** 32)
      const width = Math.floor(2 ** (rnd() * 32))
      cases.push([a, Math.min(0xffffffff, a + width)])
    }
    for (const [a, b] of cases) {
      const levels = newLevels(4)
      addRange(levels, a, b, 1)
      const runs = levels.reduce((n, l) => n + l.n, 0)
      assert.ok(runs >= 1 && runs <= 7, `${a}-${b}: ${runs} runs`)
      const expected = blocksOf(a, b)
      for (let lv = 0; lv < 4; lv++)
        assert.deepEqual(keysOf(levels[lv]!, lv), expected[lv], `${a}-${b} level ${lv}`)
    }
  })
})

describe('sortByFirst', () => {
  test('sorts by first address and keeps file order among equal ones', () => {
    const list = new BlockList(2)
    const firsts = [5, 3, 5, 0xffffffff, 0, 3, 5, 70000, 2 ** 31]
    for (const f of firsts) list.add(f, f, 1)
    const seqs = run(sortByFirst(list))
    assert.deepEqual(
      [...list.firsts.subarray(0, list.n)],
      [...firsts].sort((x, y) => x - y),
    )
    assert.deepEqual([...seqs], [4, 1, 5, 0, 2, 6, 7, 8, 3])
  })
})

/** Brute force: per address, the values of the runs covering it in file order (first seen), or 'excluded'. */
function reference(runs: [number, number, number][], space: number): (number[] | 'excluded' | undefined)[] {
  const out: (number[] | 'excluded' | undefined)[] = []
  for (let x = 0; x < space; x++) {
    const covering = runs.filter(([f, l]) => f <= x && x <= l).map(([, , v]) => v)
    if (covering.length === 0) out.push(undefined)
    else if (covering.includes(0)) out.push('excluded')
    else out.push(covering.filter((v, i) => covering.indexOf(v) === i))
  }
  return out
}

/** What segments say per address: the group's values, 'excluded', or nothing. */
function perAddress(seg: Segments, table: GroupTable, space: number): (number[] | 'excluded' | undefined)[] {
  const out: (number[] | 'excluded' | undefined)[] = new Array(space).fill(undefined)
  for (let i = 0; i < seg.n; i++) {
    if (i > 0) assert.ok(seg.firsts[i]! > seg.lasts[i - 1]!, 'sorted and not overlapping')
    for (let x = seg.firsts[i]!; x <= seg.lasts[i]! && x < space; x++) {
      const g = seg.groups[i]!
      out[x] = g === 0 ? 'excluded' : table.values[g]
    }
  }
  return out
}

describe('sweepLevel: overlapping runs of one granularity into segments', () => {
  test('equals brute force: every value of the covering runs in file order, an exclusion wins', () => {
    const rnd = prng(11)
    for (let round = 0; round < 300; round++) {
      const space = 200
      const runs: [number, number, number][] = []
      const count = 1 + Math.floor(rnd() * 25)
      for (let i = 0; i < count; i++) {
        const f = Math.floor(rnd() * space)
        const l = Math.min(space - 1, f + Math.floor(rnd() * (rnd() < 0.3 ? 120 : 8)))
        runs.push([f, l, rnd() < 0.15 ? 0 : 1 + Math.floor(rnd() * 5)])
      }
      const list = new BlockList(1)
      for (const [f, l, v] of runs) list.add(f, l, v)
      const table = new GroupTable()
      const seg = run(sweepLevel(list, table, 6, 64))
      assert.ok(!('tooManyValuesAt' in seg))
      assert.deepEqual(
        perAddress(seg, table, space),
        reference(runs, space),
        `round ${round}: ${JSON.stringify(runs)}`,
      )
    }
  })

  test('a run that covers the last address (255.255.255.255) closes cleanly', () => {
    const list = new BlockList(1)
    list.add(0xffffff00, 0xffffffff, 1)
    list.add(0xfffffff0, 0xffffffff, 2)
    const table = new GroupTable()
    const seg = run(sweepLevel(list, table, 3, 64)) as Segments
    assert.deepEqual([...seg.firsts], [0xffffff00, 0xfffffff0])
    assert.deepEqual([...seg.lasts], [0xffffffef, 0xffffffff])
    assert.deepEqual(table.values[seg.groups[1]!], [1, 2])
  })

  test('more values on one address than allowed stops the sweep there', () => {
    const list = new BlockList(1)
    list.add(10, 20, 1)
    list.add(12, 30, 2)
    list.add(15, 15, 3)
    assert.deepEqual(run(sweepLevel(list, new GroupTable(), 4, 2)), { tooManyValuesAt: 15 })
  })

  test('thousands of nested runs of one value: one segment, and file order among many values', () => {
    const list = new BlockList(1)
    for (let i = 0; i < 5000; i++) list.add(i, 20000 - i, 1 + (i % 3))
    const table = new GroupTable()
    const seg = run(sweepLevel(list, table, 4, 64)) as Segments
    assert.deepEqual(table.values[seg.groups[seg.n >> 1]!], [1, 2, 3])
    assert.equal(seg.firsts[0], 0)
    assert.equal(seg.lasts[seg.n - 1], 20000)
  })
})

describe('overlay: a finer granularity over the coarser ones', () => {
  function segments(parts: [number, number, number][]): Segments {
    const w = new SegmentWriter(1, false)
    for (const [f, l, g] of parts) w.push(f, l, g)
    return w.done()
  }
  function randomSegments(rnd: () => number, space: number): [number, number, number][] {
    const parts: [number, number, number][] = []
    let at = Math.floor(rnd() * 10)
    while (at < space) {
      const last = Math.min(space - 1, at + Math.floor(rnd() * 30))
      if (rnd() < 0.7) parts.push([at, last, Math.floor(rnd() * 4)])
      at = last + 1 + Math.floor(rnd() * 10)
    }
    return parts
  }

  test('equals brute force: where the finer has a segment it decides, an excluded one leaves a hole', () => {
    const rnd = prng(3)
    const space = 400
    const table = new GroupTable()
    for (let g = 1; g < 4; g++) table.forValue(g)
    for (let round = 0; round < 300; round++) {
      const coarseParts = randomSegments(rnd, space)
      const fineParts = randomSegments(rnd, space)
      const merged = run(overlay(segments(coarseParts), segments(fineParts)))
      const coarse = perAddress(segments(coarseParts), table, space)
      const fine = perAddress(segments(fineParts), table, space)
      const expected = fine.map((f, x) => {
        const decided = f ?? coarse[x]
        return decided === 'excluded' ? undefined : decided
      })
      assert.deepEqual(perAddress(merged, table, space), expected, `round ${round}`)
      for (let i = 1; i < merged.n; i++) {
        const joined =
          merged.lasts[i - 1]! + 1 === merged.firsts[i] && merged.groups[i - 1] === merged.groups[i]
        assert.ok(!joined, 'adjacent runs of one group are joined')
      }
    }
  })
})

describe('MinHeap', () => {
  test('pops in key order; retain drops items and keeps the order', () => {
    const rnd = prng(9)
    const keys = Array.from({ length: 500 }, () => Math.floor(rnd() * 1000))
    const heap = new MinHeap((i) => keys[i]!)
    for (let i = 0; i < keys.length; i++) heap.push(i)
    heap.retain((i) => i % 2 === 0)
    const popped: number[] = []
    while (heap.size > 0) popped.push(keys[heap.pop()]!)
    assert.deepEqual(
      popped,
      keys.filter((_, i) => i % 2 === 0).sort((x, y) => x - y),
    )
    assert.equal(heap.pop(), -1)
    assert.equal(heap.peek(), -1)
  })
})
