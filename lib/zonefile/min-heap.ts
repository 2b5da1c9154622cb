/** A binary min-heap of item numbers, ordered by a key of each item (ties in any order). */
export class MinHeap {
  private items: number[] = []

  constructor(private readonly key: (item: number) => number) {}

  get size(): number {
    return this.items.length
  }

  /** The item with the smallest key, or -1 when empty. */
  peek(): number {
    return this.items.length > 0 ? (this.items[0] as number) : -1
  }

  push(item: number): void {
    const items = this.items
    const k = this.key(item)
    let i = items.length
    items.push(item)
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent] as number
      if (this.key(p) <= k) break
      items[i] = p
      i = parent
    }
    items[i] = item
  }

  /** Remove and return the item with the smallest key, or -1 when empty. */
  pop(): number {
    const items = this.items
    if (items.length === 0) return -1
    const top = items[0] as number
    const last = items.pop() as number
    if (items.length > 0) this.siftDown(0, last)
    return top
  }

  /** Keep only the items `keep` accepts. */
  retain(keep: (item: number) => boolean): void {
    this.items = this.items.filter(keep)
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i, this.items[i] as number)
  }

  private siftDown(i: number, item: number): void {
    const items = this.items
    const n = items.length
    const k = this.key(item)
    for (;;) {
      let child = 2 * i + 1
      if (child >= n) break
      const right = child + 1
      if (right < n && this.key(items[right] as number) < this.key(items[child] as number)) child = right
      const c = items[child] as number
      if (this.key(c) >= k) break
      items[i] = c
      i = child
    }
    items[i] = item
  }
}
