// Signed bounces (lib/batv/sign.ts): what checking a recipient's tag costs at RCPT
// and signing a sender costs at MAIL, timed with tinybench in batches of
// calls over distinct addresses. node:crypto's createHmac, which signs, is
// timed beside them. Then what ordinary mail
// pays: the plugin's hooks for an ordinary sender, with [batv] off and on,
// in the same run, rounds alternating.
//
//   node --expose-gc --import tsx bench/batv.ts
//   BENCH_TIME_MS=1000 (per task), BENCH_BATV_ROUNDS=15, BENCH_BATV_CALLS=100000, BENCH_QUICK=1
import crypto from 'node:crypto'

import { Bench } from 'tinybench'

import path from 'node:path'

import * as source from '../lib/batv/sign'
import { BatvKey, prepareKeys, signAddress, verifyAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import { dnsblZone, startDns } from '../test/support/dns-server'
import { addr, testIni, type HarakaConnection, type HarakaTestPlugin } from '../test/support/harness'
import { envInt, fmt, fmtSpread, machine, QUICK, runStandalone, spread, table, type Spread } from './common'
import { quietConnection, quietTestPlugin } from './inprocess'
import { fmtNs, perCallRow, targetCells, type PerCallRow } from './per-call'

export interface BatvRow extends PerCallRow {
  /** CPU nanoseconds per call (user + system, process.cpuUsage), best of a few runs: less swayed by other load. */
  cpuNs: number
}

/** CPU per hook call for ordinary mail, the plugin with [batv] off against the plugin with it on. */
export interface OrdinaryMailRow {
  name: string
  /** CPU ns per call, median (min–max) over the rounds. */
  offNs: Spread
  onNs: Spread
  /** On less off, round by round. */
  extraNs: Spread
  callsPerRound: number
}

export interface BatvResult {
  rows: BatvRow[]
  ordinary: OrdinaryMailRow[]
  timeMs: number
  /** The machine and its load average when the run ended. */
  machine: Record<string, string>
}

export interface BatvOptions {
  /** Time per tinybench task, ms. */
  timeMs?: number
  /** Rounds of the ordinary-mail comparison, each variant once a round. */
  rounds?: number
  /** Hook calls per variant and round. */
  calls?: number
}

const BATCH = 1000
const NOW_MS = 20785 * DAY_MS + DAY_MS / 2
const ZONE = 'ips.backscatterer.org'
const CLIENT_IP = '45.33.12.8'
/** The signing setup of the "on" plugin: one signing domain, one key (config/backscatter.keys). */
const BATV_INI = '[batv]\ndomains = example.com\nsign_key = 1\n'
const BATV_KEYS = '1 = s3cret\n'

/**
 * lib/batv/sign.ts as Haraka runs it: compiled to dist/ by tsc (`npm run bench`
 * builds it first). The other rows run lib/ through tsx, as the tests do.
 */
function compiledBatv(): typeof source {
  const file = path.join(__dirname, '..', 'dist', 'batv', 'sign.js')
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as typeof source
  } catch (err) {
    throw new Error(`${file} is missing or broken: run npm run build first (${String(err)})`)
  }
}

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

export async function benchBatv(opts: BatvOptions = {}): Promise<BatvResult> {
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
  // The same checks on the compiled module, with keys of its own (a key belongs to its module's class).
  const compiled = compiledBatv()
  const compiledKeys = compiled.prepareKeys(
    new Map([
      [1, 's3cret'],
      [2, 'an-older-key'],
    ]),
  ).keys
  for (const address of tagged) {
    if (compiled.verifyAddress(address, compiledKeys, 7, NOW_MS).status !== 'valid') {
      throw new Error(`dist/: ${address} is not valid`)
    }
  }
  const verifyCompiled = (list: readonly string[]) => () => {
    for (let i = 0; i < BATCH; i++) {
      sink += compiled.verifyAddress(list[i] as string, compiledKeys, 7, NOW_MS).original.length
    }
  }
  add('verify at RCPT, valid tag, dist/ (as Haraka runs it)', verifyCompiled(tagged))
  add('verify at RCPT, valid tag in capitals, dist/', verifyCompiled(upper))
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
    'verify at RCPT, valid tag, dist/ (as Haraka runs it)': 2000,
    'verify at RCPT, valid tag in capitals, dist/': 2000,
    'sign at MAIL': 5000,
  }
  const rows = bench.tasks.map((t) => ({
    ...perCallRow(t, BATCH, targets[t.name]),
    cpuNs: cpuNsPerCall(batches.get(t.name) as () => void, timeMs),
  }))
  const ordinary = await ordinaryMailCost(opts.rounds ?? 15, opts.calls ?? 100_000)
  return { rows, ordinary, timeMs, machine: machine() }
}

/** CPU nanoseconds per call of `call`, over `calls` calls. */
function cpuNsOf(call: () => void, calls: number): number {
  const start = process.cpuUsage()
  for (let i = 0; i < calls; i++) call()
  const used = process.cpuUsage(start)
  return ((used.user + used.system) * 1000) / calls
}

/** Fail loudly unless `plugin` signs a relaying sender of example.com exactly when `signs`. */
function expectSigning(plugin: HarakaTestPlugin, signs: boolean): void {
  const conn = quietConnection(CLIENT_IP, true)
  plugin.hook_mail(() => undefined, conn, [addr('someone@example.com'), []])
  const from = String(conn.transaction.mail_from?.address ?? '')
  if (from.startsWith('prvs=') !== signs) {
    throw new Error(`the plugin with [batv] ${signs ? 'on' : 'off'} made MAIL FROM ${JSON.stringify(from)}`)
  }
}

/**
 * What ordinary mail (a sender that is not a bounce, from a client that does
 * not relay) pays for signed bounces: the same hook calls on the plugin with
 * [batv] off and on, alternating round by round (and which goes first) so
 * both see the same load; the extra is the median of the rounds' differences.
 */
async function ordinaryMailCost(rounds: number, calls: number): Promise<OrdinaryMailRow[]> {
  const dns = await startDns(dnsblZone(ZONE, {}))
  const off = quietTestPlugin(testIni(dns.server))
  const on = quietTestPlugin(testIni(dns.server, BATV_INI), { 'backscatter.keys': BATV_KEYS })
  try {
    expectSigning(off.plugin, false)
    expectSigning(on.plugin, true)
    const conn: HarakaConnection = quietConnection(CLIENT_IP)
    const relaying: HarakaConnection = quietConnection(CLIENT_IP, true)
    const sender = addr('someone@sender.example')
    const signingRcpt = addr('user@example.com')
    const otherRcpt = addr('user@example.net')
    const noop = (): void => undefined
    const hooks: [string, (p: HarakaTestPlugin) => () => void][] = [
      ['hook_mail, ordinary sender', (p) => () => p.hook_mail(noop, conn, [sender, []])],
      [
        'hook_rcpt, ordinary sender, recipient elsewhere',
        (p) => () => p.hook_rcpt(noop, conn, [otherRcpt, []]),
      ],
      [
        'hook_rcpt, ordinary sender, recipient in a signing domain',
        (p) => () => p.hook_rcpt(noop, conn, [signingRcpt, []]),
      ],
      [
        'hook_mail, relaying client, sender outside the signing domains',
        (p) => () => p.hook_mail(noop, relaying, [sender, []]),
      ],
    ]
    return hooks.map(([name, callOf]) => {
      const offCall = callOf(off.plugin)
      const onCall = callOf(on.plugin)
      cpuNsOf(offCall, calls)
      cpuNsOf(onCall, calls)
      const offNs: number[] = []
      const onNs: number[] = []
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          offNs.push(cpuNsOf(offCall, calls))
          onNs.push(cpuNsOf(onCall, calls))
        } else {
          onNs.push(cpuNsOf(onCall, calls))
          offNs.push(cpuNsOf(offCall, calls))
        }
      }
      return {
        name,
        offNs: spread(offNs),
        onNs: spread(onNs),
        extraNs: spread(onNs.map((n, i) => n - (offNs[i] as number))),
        callsPerRound: calls,
      }
    })
  } finally {
    off.close()
    on.close()
    await dns.close()
  }
}

export function renderBatv(r: BatvResult): string {
  const o0 = r.ordinary[0]
  return [
    `Signed bounces (lib/batv/sign.ts; tinybench, ${r.timeMs} ms per task, a sample is ${BATCH} calls on distinct ` +
      'addresses; figures per call: mean, median and p99 of the samples, ± the relative margin of error; ' +
      'CPU per call from process.cpuUsage, best of 5 runs; "met" compares the mean, "met by CPU" the CPU per ' +
      'call, which other load on the machine sways less)',
    '',
    table(
      ['what', 'mean', 'median', 'p99', '±', 'calls', 'CPU per call', 'target', 'met', 'met by CPU'],
      r.rows.map((x) => [
        x.name,
        fmtNs(x.meanNs),
        fmtNs(x.p50Ns),
        fmtNs(x.p99Ns),
        `${fmt(x.rme, 1)} %`,
        fmt(x.calls),
        fmtNs(x.cpuNs),
        ...targetCells(x),
        targetCells({ meanNs: x.cpuNs, targetNs: x.targetNs })[1],
      ]),
    ),
    '',
    `Ordinary mail (not a bounce; the last row: relayed, from a domain that does not sign): CPU per hook call of the plugin with [batv] off and ` +
      `with it on (one signing domain, one key), ${fmt(o0?.callsPerRound ?? 0)} calls a round, rounds ` +
      `alternating; median (min–max) over ${o0?.extraNs.n ?? 0} rounds`,
    '',
    table(
      ['hook', '[batv] off', '[batv] on', 'on less off, round by round', 'verdict'],
      r.ordinary.map((x) => [
        x.name,
        `${fmtSpread(x.offNs, 0)} ns`,
        `${fmtSpread(x.onNs, 0)} ns`,
        `${fmtSpread(x.extraNs, 0)} ns`,
        ordinaryVerdict(x),
      ]),
    ),
    '',
    `machine: ${Object.entries(r.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`,
  ].join('\n')
}

/** "nothing new" when the rounds' differences straddle zero; otherwise the median extra, said plainly. */
function ordinaryVerdict(x: OrdinaryMailRow): string {
  if (x.extraNs.min <= 0 && x.extraNs.max >= 0) return 'nothing new: the difference is within the noise'
  return `${x.extraNs.median > 0 ? 'costs' : 'saves'} ${fmt(Math.abs(x.extraNs.median), 0)} ns per call`
}

export function batvOptionsFromEnv(): Required<BatvOptions> {
  return {
    timeMs: envInt('BENCH_TIME_MS', QUICK ? 300 : 1000),
    rounds: envInt('BENCH_BATV_ROUNDS', QUICK ? 5 : 15),
    calls: envInt('BENCH_BATV_CALLS', QUICK ? 20_000 : 100_000),
  }
}

if (require.main === module) {
  runStandalone(() => benchBatv(batvOptionsFromEnv()), renderBatv)
}
