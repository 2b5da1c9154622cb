// Part 2 counted in instructions instead of seconds: each Haraka server runs
// under valgrind's callgrind, and the instructions its process executes (every
// thread: JavaScript, the JIT, GC, libuv, the kernel calls' user side) are read
// per transaction of a mix, after a warm-up, with callgrind_control's dump. The
// counts do not depend on the speed of the shared machine, but they are not
// steady either: in repeats of 500 transactions the same server varied by
// ±15 %, as garbage collection and the JIT's threads fall in one repeat or
// another (BENCHMARKS.md), so use many repeats, or many more transactions,
// before reading a few per cent from them. Slow (valgrind runs node 50-100
// times slower): not part of `npm run bench`.
//
//   node --import tsx bench/instructions.ts
//   BENCH_SERVERS=noop,backscatter BENCH_MIXES=ordinary,distinct,repeat
//   BENCH_CG_WARMUP=1000 BENCH_CG_TXNS=1000 BENCH_CG_REPEATS=3 BENCH_CG_SESSIONS=5
//   BENCH_BASELINE=<commit or .tgz> (adds (f), this plugin built from another commit)
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

import type { Haraka } from '../test/support/haraka'
import { envInt, fmt, fmtSpread, machine, runStandalone, sleep, spread, table, type Spread } from './common'
import { LoadClients, type TxnSpec } from './loadgen'
import { setUpBed, type ServerName } from './servers'
import { MIX_LABEL, SERVER_LABEL, type MixName } from './system-report'
import { mixSource, systemOptionsFromEnv } from './system'

const run = promisify(execFile)

export interface InstructionOptions {
  servers: ServerName[]
  mixes: MixName[]
  /** Transactions per mix before counting starts. */
  warmup: number
  /** Transactions per counted repeat. */
  txns: number
  repeats: number
  sessions: number
  baseline?: string
  log: (s: string) => void
}

export function instructionOptionsFromEnv(log: (s: string) => void = console.error): InstructionOptions {
  const system = systemOptionsFromEnv(log)
  const asked = process.env.BENCH_SERVERS ? system.servers : (['noop', 'backscatter'] as ServerName[])
  return {
    servers: system.baseline && !asked.includes('baseline') ? [...asked, 'baseline'] : asked,
    mixes: system.mixes,
    warmup: envInt('BENCH_CG_WARMUP', 1000),
    txns: envInt('BENCH_CG_TXNS', 1000),
    repeats: envInt('BENCH_CG_REPEATS', 3),
    sessions: envInt('BENCH_CG_SESSIONS', 5),
    ...(system.baseline ? { baseline: system.baseline } : {}),
    log,
  }
}

export interface InstructionResult {
  options: Omit<InstructionOptions, 'log'>
  machine: Record<string, string>
  baseline?: string
  valgrind: string
  /** Instructions per transaction, each repeat, by mix and server. */
  perTxn: Record<string, Partial<Record<ServerName, number[]>>>
}

/** A server under callgrind: dump its counts (which zeroes them) and read the total of the dump. */
class Counted {
  private dumps = 0

  constructor(
    readonly haraka: Haraka,
    private readonly outPrefix: string,
    /** Where valgrind and callgrind_control meet (Haraka's TMPDIR is its own mail folder). */
    private readonly vgdbPrefix: string,
  ) {}

  async dump(): Promise<number> {
    const pid = this.haraka.serverPid()
    await run('callgrind_control', [`--vgdb-prefix=${this.vgdbPrefix}`, '--dump', String(pid)])
    const file = `${this.outPrefix}.${pid}.${++this.dumps}`
    for (let i = 0; i < 600; i++) {
      if (fs.existsSync(file)) {
        const totals = /^totals:\s*(\d+)/m.exec(fs.readFileSync(file, 'utf8'))
        if (totals) {
          fs.rmSync(file)
          return Number(totals[1])
        }
      }
      await sleep(100)
    }
    throw new Error(`callgrind wrote no ${file}`)
  }
}

/** Run exactly `count` transactions (or a few more: those in flight when the count is reached). */
async function runCount(pool: LoadClients, next: () => TxnSpec, count: number): Promise<number> {
  let done = 0
  const { records, errors } = await pool.run(
    24 * 3600_000,
    next,
    () => done++,
    () => done >= count,
  )
  if (errors) throw new Error(`${errors} transactions failed`)
  return records.length
}

export async function benchInstructions(opts: InstructionOptions): Promise<InstructionResult> {
  const { log } = opts
  const { stdout: valgrind } = await run('valgrind', ['--version'])
  const bed = await setUpBed(log, opts.baseline)
  try {
    const counted: Partial<Record<ServerName, Counted>> = {}
    await Promise.all(
      opts.servers.map(async (s) => {
        const outPrefix = path.join(bed.dir, `callgrind-${s}`)
        const vgdbPrefix = path.join(bed.dir, `vgdb-${s}`)
        const haraka = await bed.start(s, {
          wrapper: [
            'valgrind',
            '--tool=callgrind',
            `--callgrind-out-file=${outPrefix}.%p`,
            `--vgdb-prefix=${vgdbPrefix}`,
            '--dump-instr=no',
          ],
          startTimeoutMs: 30 * 60_000,
        })
        counted[s] = new Counted(haraka, outPrefix, vgdbPrefix)
        log(`${s}: under callgrind, pid ${haraka.serverPid()}`)
      }),
    )
    const perTxn: InstructionResult['perTxn'] = {}
    let seed = 500_000_000
    for (const mix of opts.mixes) {
      const perServer: Partial<Record<ServerName, number[]>> = {}
      perTxn[mix] = perServer
      // The servers are loaded at once: each runs on one thread under valgrind, and counts are not times.
      await Promise.all(
        opts.servers.map(async (s) => {
          const c = counted[s] as Counted
          const pool = new LoadClients(c.haraka.port, opts.sessions)
          const next = mixSource(mix, (seed += 10_000_000))
          await runCount(pool, next, opts.warmup)
          await sleep(1000)
          await c.dump()
          const counts: number[] = []
          for (let r = 0; r < opts.repeats; r++) {
            const txns = await runCount(pool, next, opts.txns)
            // Let the server finish each connection's QUIT and close before reading.
            await sleep(1000)
            counts.push((await c.dump()) / txns)
            log(
              `  ${mix} ${s} repeat ${r + 1}: ${fmt(counts[counts.length - 1] as number)} instructions per transaction`,
            )
          }
          perServer[s] = counts
        }),
      )
    }
    return {
      options: {
        servers: opts.servers,
        mixes: opts.mixes,
        warmup: opts.warmup,
        txns: opts.txns,
        repeats: opts.repeats,
        sessions: opts.sessions,
      },
      machine: machine(),
      ...(bed.baseline ? { baseline: bed.baseline } : {}),
      valgrind: valgrind.trim(),
      perTxn,
    }
  } finally {
    await bed.close()
  }
}

export function renderInstructions(r: InstructionResult): string {
  const o = r.options
  const out = [
    `Instructions per transaction (${r.valgrind} callgrind, every thread of the server process): per mix, ` +
      `${o.warmup} transactions of warm-up, then ${o.repeats} counts of ${o.txns} transactions each, ` +
      `${o.sessions} concurrent clients; median (min–max) of the counts.` +
      (r.baseline ? ` Baseline (f): ${r.baseline}.` : ''),
    '',
  ]
  const rows: string[][] = []
  for (const mix of o.mixes) {
    const per = r.perTxn[mix] ?? {}
    const floor = per.noop ? spread(per.noop) : undefined
    for (const s of o.servers) {
      const xs = per[s]
      if (!xs) continue
      const own: Spread = spread(xs)
      rows.push([
        MIX_LABEL[mix],
        SERVER_LABEL[s],
        fmtSpread(own, 0),
        floor && s !== 'noop' ? fmt(own.median - floor.median) : '',
        floor && s !== 'noop' ? fmt(own.median / floor.median, 3) : '',
      ])
    }
  }
  out.push(table(['mix', 'server', 'instructions per transaction', 'above (e)', 'ratio to (e)'], rows))
  return out.join('\n')
}

if (require.main === module)
  runStandalone(() => benchInstructions(instructionOptionsFromEnv()), renderInstructions)
