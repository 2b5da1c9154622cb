// Figures per call from a tinybench task whose every sample runs a batch of
// calls (one call is far below the timer's resolution), and how the reports
// print them. Shared by the in-process, metrics and signed-bounce benchmarks.
import type { Task } from 'tinybench'

import { fmt } from './common'

export interface PerCallRow {
  name: string
  /** Nanoseconds per call: mean, median and p99 of the samples. */
  meanNs: number
  p50Ns: number
  p99Ns: number
  /** The samples' relative margin of error, in %. */
  rme: number
  samples: number
  calls: number
  /** The most a call may cost, in nanoseconds, when the project sets a target. */
  targetNs?: number
}

/** The figures of a completed task whose samples each ran `callsPerSample` calls. */
export function perCallRow(task: Task, callsPerSample: number, targetNs?: number): PerCallRow {
  const r = task.result
  if (r.state !== 'completed') {
    throw new Error(`${task.name}: ${r.state}${'error' in r ? `: ${String(r.error)}` : ''}`)
  }
  const ns = (ms: number): number => (ms * 1e6) / callsPerSample
  return {
    name: task.name,
    meanNs: ns(r.latency.mean),
    p50Ns: ns(r.latency.p50),
    p99Ns: ns(r.latency.p99),
    rme: r.latency.rme,
    samples: r.latency.samplesCount,
    calls: r.latency.samplesCount * callsPerSample,
    ...(targetNs === undefined ? {} : { targetNs }),
  }
}

/** Nanoseconds for people: `850 ns`, `1,204 ns`, `12.3 µs`. */
export function fmtNs(n: number): string {
  return n >= 10_000 ? `${fmt(n / 1000, 1)} µs` : `${fmt(n, 0)} ns`
}

/** The `target` and `met` cells of a row: empty without a target; `met` compares the mean. */
export function targetCells(row: Pick<PerCallRow, 'meanNs' | 'targetNs'>): [string, string] {
  if (row.targetNs === undefined) return ['', '']
  return [`≤ ${fmtNs(row.targetNs)}`, row.meanNs <= row.targetNs ? 'yes' : 'NO']
}
