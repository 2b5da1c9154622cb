// `npm run bench`: the three parts in one run, then one report in Markdown.
//
//   npm run bench                      full run (about 10 minutes on 2 cores)
//   BENCH_QUICK=1 npm run bench        a short run with few rounds, to try things out
//   BENCH_PARTS=1,3 npm run bench      only some parts (1 in process, 2 whole system, 3 dead resolver)
//   BENCH_OUT=report.md npm run bench  also write the report to a file
//
// Each part also runs alone: bench/inprocess.ts, bench/system.ts, bench/dead-resolver.ts.
// Parts 2 and 3 need root (rbldnsd on 127.0.0.1:53, unshare -m) and Debian's rbldnsd.
// Every process the benchmark starts is stopped at the end, on a failure and on Ctrl-C.
import fs from 'node:fs'
import os from 'node:os'

import { HARAKA_VERSION } from '../test/support/haraka'
import { batvOptionsFromEnv, benchBatv, renderBatv } from './batv'
import { cleanupAll, machine } from './common'
import { benchDeadResolver, deadOptionsFromEnv, renderDeadResolver } from './dead-resolver'
import { benchInProcess, inProcessOptionsFromEnv, renderInProcess } from './inprocess'
import { benchMetrics, metricsOptionsFromEnv, renderMetrics } from './metrics'
import { benchSystem, renderSystem, systemOptionsFromEnv } from './system'

async function main(): Promise<void> {
  const parts = new Set((process.env.BENCH_PARTS ?? '1,2,3').split(',').map((p) => p.trim()))
  const log = (s: string): void => console.error(s)
  const started = Date.now()
  const m = machine()
  const sections: string[] = [
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.kernel}, Node ${m.node}, Haraka ${HARAKA_VERSION}; ` +
      `load average at start ${m.load}; ${new Date().toISOString()}`,
  ]
  if (parts.has('1')) {
    const r = await benchInProcess({ ...inProcessOptionsFromEnv(), log })
    sections.push(`## 1. In process\n\n${renderInProcess(r)}`)
    log(renderInProcess(r))
    const m = await benchMetrics(metricsOptionsFromEnv())
    sections.push(`### Metrics\n\n${renderMetrics(m)}`)
    log(renderMetrics(m))
    log('in process: signed bounces (lib/batv/sign.ts), and ordinary mail with [batv] off and on')
    const b = await benchBatv(batvOptionsFromEnv())
    sections.push(`### Signed bounces\n\n${renderBatv(b)}`)
    log(renderBatv(b))
  }
  if (parts.has('2')) {
    const r = await benchSystem(systemOptionsFromEnv(log))
    sections.push(`## 2. Whole system\n\n${renderSystem(r)}`)
    log(renderSystem(r))
  }
  if (parts.has('3')) {
    const r = await benchDeadResolver(deadOptionsFromEnv(log))
    sections.push(`## 3. Dead resolver\n\n${renderDeadResolver(r)}`)
    log(renderDeadResolver(r))
  }
  sections.push(
    `Run took ${Math.round((Date.now() - started) / 1000)} s; load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}.`,
  )
  const report = sections.join('\n\n')
  console.log(`\n${report}`)
  if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${report}\n`)
}

main()
  .catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => cleanupAll())
