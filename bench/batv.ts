// Signed bounces (lib/batv.ts): what checking a recipient's tag costs at RCPT
// and signing a sender costs at MAIL, timed with tinybench in batches of
// calls over distinct addresses. node:crypto's createHmac is timed beside
// them, as the reason lib/batv/hmac-sha1.ts exists.
//
//   node --expose-gc --import tsx bench/batv.ts
//   BENCH_TIME_MS=1000 (per task), BENCH_QUICK=1
import crypto from 'node:crypto'

import { Bench } from 'tinybench'

import { BatvKey, prepareKeys, signAddress, verifyAddress } from '../lib/batv'
import { DAY_MS } from '../lib/batv/tag'
import { envInt, fmt, machine, QUICK, runStandalone, table } from './common'
import { fmtNs, perCallRow, targetCells, type PerCallRow } from './per-call'

export interface BatvRow extends PerCallRow {
  /** CPU nanoseconds per call (user + system, process.cpuUsage), best of a few runs: less swayed by other load. */
  cpuNs: number
}

export interface BatvResult {
  rows: BatvRow[]
  timeMs: number
  /** The machine and its load average when the run ended. */
  machine: Record<string, string>
}

const BATCH = 1000
const NOW_MS = 20785 * DAY_MS + DAY_MS / 2

/** CPU time per call of `batch` (BATCH calls), the best of several runs of many batches. */
function cpuNsPerCall(batch: () => void, timeMs: number): number {
  let best = Infinity
  for (let run = 0; run < 5; run++) {
    const start = process.cpuUsage()
    const until = performance.now() + timeMs / 5
    let batches = 0
    do {
      batch()
      batches++
    } while (performance.now() < until)
    const used = process.cpuUsage(start)
    best = Math.min(best, ((used.user + used.system) * 1000) / (batches * BATCH))
  }
  return best
}

function signed(address: string, key: BatvKey): string {
  const out = signAddress(address, key, 7, NOW_MS)
  if (!out.ok) throw new Error(`${address}: ${out.reason}`)
  return out.address
}

/** Fail loudly when a timed path is not the one its name says. */
function expectStatus(address: string, keys: ReadonlyMap<number, BatvKey>, status: string): void {
  const got = verifyAddress(address, keys, 7, NOW_MS).status
  if (got !== status) throw new Error(`${address}: ${got}, expected ${status}`)
}

export async function benchBatv(opts: { timeMs?: number } = {}): Promise<BatvResult> {
  const timeMs = opts.timeMs ?? 1000
  const { keys } = prepareKeys(
    new Map([
      [1, 's3cret'],
      [2, 'an-older-key'],
    ]),
  )
  const key = keys.get(1) as BatvKey
  const senders = Array.from({ length: BATCH }, (_, i) => `user${i}.name+tag@mail${i % 7}.example.com`)
  const tagged = senders.map((s) => signed(s, key))
  const forged = tagged.map((t) =>
    t.replace(/=(\d{4})(.)/, (_, d: string, c: string) => `=${d}${c === '0' ? '1' : '0'}`),
  )
  const forgedCaps = forged.map((t) => t.replace('user', 'User'))
  const upper = tagged.map((t) => t.toUpperCase())
  for (const [list, status] of [
    [tagged, 'valid'],
    [upper, 'valid'],
    [forged, 'invalid'],
    [forgedCaps, 'invalid'],
    [senders, 'missing'],
  ] as const) {
    for (const address of list) expectStatus(address, keys, status)
  }

  const bench = new Bench({ name: 'batv', time: timeMs, warmupTime: Math.min(300, timeMs) })
  const batches = new Map<string, () => void>()
  const add = (name: string, batch: () => void): void => {
    batches.set(name, batch)
    bench.add(name, batch)
  }
  let sink = 0
  const verifyAll = (list: readonly string[]) => () => {
    for (let i = 0; i < BATCH; i++) sink += verifyAddress(list[i] as string, keys, 7, NOW_MS).original.length
  }
  add('verify at RCPT, valid tag', verifyAll(tagged))
  add('verify at RCPT, valid tag in capitals', verifyAll(upper))
  add('verify at RCPT, forged signature', verifyAll(forged))
  add('verify at RCPT, forged, mixed case (two HMACs)', verifyAll(forgedCaps))
  add('verify at RCPT, no tag (ordinary recipient)', verifyAll(senders))
  add('sign at MAIL', () => {
    for (let i = 0; i < BATCH; i++) {
      const out = signAddress(senders[i] as string, key, 7, NOW_MS)
      sink += out.ok ? out.address.length : 0
    }
  })
  add('key setup (once per key at load)', () => {
    for (let i = 0; i < BATCH; i++) sink += (BatvKey.create(1, 's3cret') as BatvKey).id
  })
  add('reference: node:crypto createHmac sha1, one tag', () => {
    for (let i = 0; i < BATCH; i++) {
      sink += crypto
        .createHmac('sha1', 's3cret')
        .update(`1792${senders[i] as string}`)
        .digest('hex')
        .slice(0, 6).length
    }
  })
  await bench.run()
  if (sink === 0) throw new Error('nothing was computed')

  const targets: Record<string, number> = {
    'verify at RCPT, valid tag': 2000,
    'verify at RCPT, valid tag in capitals': 2000,
    'sign at MAIL': 5000,
  }
  const rows = bench.tasks.map((t) => ({
    ...perCallRow(t, BATCH, targets[t.name]),
    cpuNs: cpuNsPerCall(batches.get(t.name) as () => void, timeMs),
  }))
  return { rows, timeMs, machine: machine() }
}

export function renderBatv(r: BatvResult): string {
  return [
    `Signed bounces (lib/batv.ts; tinybench, ${r.timeMs} ms per task, a sample is ${BATCH} calls on distinct ` +
      'addresses; figures per call: mean, median and p99 of the samples, ± the relative margin of error; ' +
      'CPU per call from process.cpuUsage, best of 5 runs; "met" compares the mean)',
    '',
    table(
      ['what', 'mean', 'median', 'p99', '±', 'calls', 'CPU per call', 'target', 'met'],
      r.rows.map((x) => [
        x.name,
        fmtNs(x.meanNs),
        fmtNs(x.p50Ns),
        fmtNs(x.p99Ns),
        `${fmt(x.rme, 1)} %`,
        fmt(x.calls),
        fmtNs(x.cpuNs),
        ...targetCells(x),
      ]),
    ),
    '',
    `machine: ${Object.entries(r.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`,
  ].join('\n')
}

if (require.main === module) {
  runStandalone(() => benchBatv({ timeMs: envInt('BENCH_TIME_MS', QUICK ? 300 : 1000) }), renderBatv)
}
