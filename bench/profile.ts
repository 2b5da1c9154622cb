// Where a Haraka server's CPU goes: reads the V8 CPU profiles part 2 writes
// with BENCH_PROFILE=DIR (one per server, `--cpu-prof`) and the counted slices'
// time windows (DIR/windows.json), and sums self time per transaction of the
// samples inside those windows only, by function and by where the code lives
// (this plugin, Haraka, one of its packages, Node, GC). A server less the
// no-op floor (e) is what the plugin costs, function by function.
//
//   BENCH_PROFILE=/tmp/prof BENCH_MIXES=repeat node --import tsx bench/system.ts
//   node --import tsx bench/profile.ts /tmp/prof [server] [floor]   (default: backscatter noop)
import fs from 'node:fs'
import path from 'node:path'

import { fmt, table } from './common'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  parent?: number
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Counted slices of one server in one mix: [start, end] in µs of the monotonic clock, and transactions. */
export interface ProfileWindows {
  [server: string]: { [mix: string]: { windows: [number, number][]; txns: number } }
}

export const WINDOWS_FILE = 'windows.json'

/** Microseconds of CLOCK_MONOTONIC, the clock V8 stamps its profile samples with on Linux. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** Where a function's code lives, for the roll-up. */
export function placeOf(frame: CallFrame): string {
  const { url, functionName } = frame
  if (!url) {
    if (functionName.startsWith('(')) return functionName // (garbage collector), (program), (idle)
    return 'native (V8 builtins, C++)'
  }
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(url)
  if (pkg?.[1] === 'haraka-plugin-backscatter') return 'this plugin'
  if (pkg?.[1] === 'Haraka') return 'Haraka core'
  if (pkg) return pkg[1] as string
  if (/\/plugins\/[^/]+\.js$/.test(url)) return 'deployment plugins/'
  return url
}

/** Haraka's hook callback (the plugin's `next`): what runs under it is Haraka going on, not the plugin. */
function isHookCallback(f: CallFrame): boolean {
  return f.functionName === 'callback' && f.url.endsWith('/plugins.js')
}

/**
 * Node ids whose stack holds a frame of this plugin (the node's own frame
 * included) with no call of Haraka's hook callback above it: the plugin's own
 * work and what it calls, but not what Haraka does once `next` is called.
 */
function underPlugin(profile: CpuProfile): Set<number> {
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const memo = new Map<number, boolean>()
  const under = (id: number): boolean => {
    const known = memo.get(id)
    if (known !== undefined) return known
    const node = byId.get(id)
    const p = parent.get(id)
    const yes =
      !!node &&
      !isHookCallback(node.callFrame) &&
      (placeOf(node.callFrame) === 'this plugin' || (p !== undefined && under(p)))
    memo.set(id, yes)
    return yes
  }
  return new Set(profile.nodes.filter((n) => under(n.id)).map((n) => n.id))
}

export interface SelfTimes {
  /** µs of self time per transaction, by "function (file:line)". */
  byFunction: Map<string, number>
  /** µs of self time per transaction, by place. */
  byPlace: Map<string, number>
  /** µs of all non-idle samples per transaction. */
  totalUs: number
  /** µs per transaction of the samples with a frame of this plugin on the stack, by the place of the sampled (self) frame. */
  pluginStacks: Map<string, number>
  /** The same by function. */
  pluginStackFunctions: Map<string, number>
  txns: number
  samples: number
}

/** Self time per transaction of the samples that fall inside `windows`. */
export function selfTimes(profile: CpuProfile, windows: [number, number][], txns: number): SelfTimes {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const byFunction = new Map<string, number>()
  const byPlace = new Map<string, number>()
  const plugin = underPlugin(profile)
  const pluginStacks = new Map<string, number>()
  const pluginStackFunctions = new Map<string, number>()
  const sorted = [...windows].sort((a, b) => a[0] - b[0])
  let t = profile.startTime
  let w = 0
  let totalUs = 0
  let samples = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    t += delta
    while (w < sorted.length && (sorted[w] as [number, number])[1] < t) w++
    const win = sorted[w]
    if (!win || t < win[0]) continue
    const node = byId.get(profile.samples[i] as number)
    if (!node || node.callFrame.functionName === '(idle)') continue
    // A sample stands for the time up to the next one.
    const us = profile.timeDeltas[i + 1] ?? delta
    const f = node.callFrame
    const name = `${f.functionName || '(anonymous)'} (${path.basename(f.url) || '-'}:${f.lineNumber + 1})`
    byFunction.set(name, (byFunction.get(name) ?? 0) + us)
    const place = placeOf(f)
    byPlace.set(place, (byPlace.get(place) ?? 0) + us)
    if (plugin.has(node.id)) {
      pluginStacks.set(place, (pluginStacks.get(place) ?? 0) + us)
      pluginStackFunctions.set(name, (pluginStackFunctions.get(name) ?? 0) + us)
    }
    totalUs += us
    samples++
  }
  for (const m of [byFunction, byPlace, pluginStacks, pluginStackFunctions])
    for (const [k, v] of m) m.set(k, v / txns)
  return { byFunction, byPlace, totalUs: totalUs / txns, pluginStacks, pluginStackFunctions, txns, samples }
}

/** Rows of `a` less `b`, largest difference first. */
function differences(
  a: Map<string, number>,
  b: Map<string, number>,
  top: number,
): [string, number, number][] {
  const keys = new Set([...a.keys(), ...b.keys()])
  return [...keys]
    .map((k): [string, number, number] => [k, a.get(k) ?? 0, b.get(k) ?? 0])
    .sort((x, y) => Math.abs(y[1] - y[2]) - Math.abs(x[1] - x[2]))
    .slice(0, top)
}

/** What runs while a frame of this plugin is on the stack: the plugin's own work and what it calls. */
function pluginStackTable(t: SelfTimes, server: string, top: number): string {
  const sum = [...t.pluginStacks.values()].reduce((a, b) => a + b, 0)
  const rows = (m: Map<string, number>, n: number): string[][] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => [k, fmt(v, 2), `${fmt((100 * v) / t.totalUs, 1)} %`])
  return [
    `${server}, samples with a frame of this plugin on the stack: ${fmt(sum, 1)} µs per transaction ` +
      `(${fmt((100 * sum) / t.totalUs, 1)} % of the process's samples), by where the sampled frame is and by function:`,
    '',
    table(['where (under the plugin)', 'µs/tx', 'share of all'], rows(t.pluginStacks, top)),
    '',
    table(['function (under the plugin)', 'µs/tx', 'share of all'], rows(t.pluginStackFunctions, top)),
  ].join('\n')
}

export function renderProfiles(dir: string, server = 'backscatter', floor = 'noop', top = 25): string {
  const windows = JSON.parse(fs.readFileSync(path.join(dir, WINDOWS_FILE), 'utf8')) as ProfileWindows
  const load = (s: string): CpuProfile =>
    JSON.parse(fs.readFileSync(path.join(dir, `${s}.cpuprofile`), 'utf8')) as CpuProfile
  const a = load(server)
  const b = load(floor)
  const out: string[] = []
  for (const mix of Object.keys(windows[server] ?? {})) {
    const wa = windows[server]?.[mix]
    const wb = windows[floor]?.[mix]
    if (!wa || !wb) continue
    const sa = selfTimes(a, wa.windows, wa.txns)
    const sb = selfTimes(b, wb.windows, wb.txns)
    out.push(
      `**${mix}**: ${server} ${fmt(sa.totalUs, 1)} µs of samples per transaction (${sa.txns} transactions, ${sa.samples} samples), ` +
        `${floor} ${fmt(sb.totalUs, 1)} µs (${sb.txns}, ${sb.samples}); difference ${fmt(sa.totalUs - sb.totalUs, 1)} µs`,
      '',
      table(
        ['where', `${server} µs/tx`, `${floor} µs/tx`, 'difference'],
        differences(sa.byPlace, sb.byPlace, top).map(([k, x, y]) => [k, fmt(x, 1), fmt(y, 1), fmt(x - y, 1)]),
      ),
      '',
      pluginStackTable(sa, server, top),
      '',
      table(
        ['function (self time)', `${server} µs/tx`, `${floor} µs/tx`, 'difference'],
        differences(sa.byFunction, sb.byFunction, top).map(([k, x, y]) => [
          k,
          fmt(x, 2),
          fmt(y, 2),
          fmt(x - y, 2),
        ]),
      ),
      '',
    )
  }
  return out.join('\n')
}

if (require.main === module) {
  const [dir, server, floor] = process.argv.slice(2)
  if (!dir) {
    console.error('usage: bench/profile.ts DIR [server] [floor]')
    process.exitCode = 2
  } else {
    console.log(renderProfiles(dir, server, floor))
  }
}
