// Long runs of the checker, for `npm run test:soak`: many lookups through a
// scripted DNS server on 127.0.0.1, with the heap sampled along the way.
import assert from 'node:assert/strict'
import v8 from 'node:v8'
import vm from 'node:vm'
import { after, before, describe, it } from 'node:test'

import { makeChecker } from '../support/checker'
import { startDns, type ScriptedDns } from '../support/dns-server'

// A real collection between heap samples, with or without node --expose-gc.
v8.setFlagsFromString('--expose-gc')
const gc = global.gc ?? (vm.runInNewContext('gc') as () => void)
const collectGarbage = (): void => gc()

describe('BackscatterChecker soak', () => {
  let dns: ScriptedDns

  before(async () => {
    dns = await startDns(() => undefined) // NXDOMAIN for all: the fastest real answer
  })
  after(() => dns.close())

  it('100 000 distinct IPs keep the cache bounded and the heap stable', async () => {
    const { checker } = makeChecker(dns.server, { cache_size: 1000, timeout_ms: 10_000 })
    const cache = (checker as unknown as { cache: { size: number } }).cache
    const inflight = (checker as unknown as { inflight: Map<string, unknown> }).inflight
    const total = 100_000
    const concurrency = 200
    const heap: number[] = []
    let next = 0
    const worker = async () => {
      while (next < total) {
        const n = next++
        const ip = `46.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
        const [o] = await checker.check(ip)
        if (o!.status !== 'not-listed') throw new Error(`${ip}: ${JSON.stringify(o)}`)
        if (n % 20_000 === 0) {
          collectGarbage()
          heap.push(process.memoryUsage().heapUsed)
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    assert.equal(cache.size, 1000, 'cache bounded by cache_size')
    assert.equal(inflight.size, 0, 'nothing left in flight')
    const growth = heap[heap.length - 1]! - heap[1]!
    assert.ok(
      growth < 30 * 1024 * 1024,
      `heap grew ${Math.round(growth / 1024 / 1024)} MB: ${heap.map((h) => Math.round(h / 1e6))}`,
    )
    checker.close()
  })
})
