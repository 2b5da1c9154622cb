/**
 * rbldnsd keeps ip4set entries at octet granularity: /32, /24, /16 and /8
 * blocks (rbldnsd_ip4set.c ip4range_expand). A range is split into those
 * blocks, but each granularity's run of consecutive blocks is kept as one
 * [first, last] pair, so a range costs at most seven pairs however wide it is.
 */

/** Addresses in one block of each granularity: /32, /24, /16, /8 (rbldnsd's E32/E24/E16/E08). */
export const LEVEL_SIZE = [1, 256, 65536, 16777216] as const
export const LEVELS = LEVEL_SIZE.length

/** Runs of blocks of one granularity: [first, last] address and value id, in file order. */
export class BlockList {
  firsts: Uint32Array
  lasts: Uint32Array
  values: Uint32Array
  n = 0

  constructor(capacity = 64) {
    this.firsts = new Uint32Array(capacity)
    this.lasts = new Uint32Array(capacity)
    this.values = new Uint32Array(capacity)
  }

  add(first: number, last: number, value: number): void {
    if (last < first) return
    if (this.n === this.firsts.length) this.grow()
    const n = this.n++
    this.firsts[n] = first
    this.lasts[n] = last
    this.values[n] = value
  }

  private grow(): void {
    const cap = Math.max(64, this.firsts.length * 2)
    const grown = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(cap)
      b.set(a.subarray(0, this.n))
      return b
    }
    this.firsts = grown(this.firsts)
    this.lasts = grown(this.lasts)
    this.values = grown(this.values)
  }
}

/** One BlockList per granularity, /32 first. */
export function newLevels(firstCapacity: number): BlockList[] {
  return [new BlockList(firstCapacity), new BlockList(), new BlockList(), new BlockList()]
}

/**
 * Store the addresses [a, b] as rbldnsd's ip4range_expand does: the unaligned
 * head and tail at the finest granularity, the aligned middle one level up, and
 * so on; a whole block of the next level goes to that level.
 */
export function addRange(levels: readonly BlockList[], a: number, b: number, value: number): void {
  for (let lv = 0; lv < LEVELS - 1; lv++) {
    const level = levels[lv] as BlockList
    const step = LEVEL_SIZE[lv] as number
    // Here a and b count blocks of this level; a block of the next level is 256 of them.
    if ((a | 255) >>> 0 >= b) {
      if (b - a === 255) (levels[lv + 1] as BlockList).add(a * step, (b + 1) * step - 1, value)
      else level.add(a * step, (b + 1) * step - 1, value)
      return
    }
    if (a & 255) {
      level.add(a * step, (((a | 255) >>> 0) + 1) * step - 1, value)
      a = Math.floor(a / 256) + 1
    } else a = Math.floor(a / 256)
    if ((b & 255) !== 255) {
      level.add((b - (b & 255)) * step, (b + 1) * step - 1, value)
      b = Math.floor(b / 256) - 1
    } else b = Math.floor(b / 256)
  }
  const top = LEVEL_SIZE[LEVELS - 1] as number
  ;(levels[LEVELS - 1] as BlockList).add(a * top, (b + 1) * top - 1, value)
}
