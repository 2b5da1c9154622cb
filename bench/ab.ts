// Part 1's hook figures as a before/after: this tree's plugin against the same
// plugin from another checkout, both loaded in one process on real Haraka
// Plugin instances (each tree's own haraka-test-fixtures), rounds alternating
// between the two, so drift of a shared machine falls on both alike. The
// figure per round is CPU time (process.cpuUsage) per call; the report gives
// each tree's median (min-max) and the median of the per-round ratios.
//
//   git worktree add /tmp/before <commit> && (cd /tmp/before && npm ci && npm run build)
//   BENCH_AB=/tmp/before node --expose-gc --import tsx bench/ab.ts
//   BENCH_AB_ROUNDS=15 BENCH_AB_CALLS=2000
import path from 'node:path'

import { dnsblZone, startDns } from '../test/support/dns-server'
import { envInt, fmtSpread, machine, runStandalone, spread, table } from './common'

const ZONE = 'ips.backscatterer.org'
const LISTED_IP = '45.33.12.7'
const UNLISTED_IP = '45.33.12.8'
const LEVELS = ['logdebug', 'loginfo', 'lognotice', 'logwarn', 'logerror', 'logcrit', 'logprotocol']

type Next = (code?: number, msg?: unknown) => void
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */

/** One tree's plugin, registered with `ini`, everything it logs dropped (as at Haraka's default level, cheaply). */
interface Subject {
  name: string
  plugin: any
  connection(ip: string): any
  transaction(conn: any): unknown
  address(text: string): unknown
  close(): void
}

function subject(name: string, tree: string, ini: string): Subject {
  const harness = require(path.join(tree, 'test/support/harness.ts'))
  const fixtures = require(path.join(tree, 'node_modules/haraka-test-fixtures'))
  const tp = harness.makeTestPlugin(ini)
  for (const level of LEVELS) tp.plugin[level] = () => undefined
  return {
    name,
    plugin: tp.plugin,
    connection: (ip) => {
      const conn = fixtures.makeConnection({ ip, withTxn: true })
      for (const level of LEVELS) conn[level] = () => undefined
      return conn
    },
    transaction: (conn) => {
      const txn = fixtures.transaction.createTransaction(null, conn.cfg)
      txn.results = new fixtures.results(conn)
      return txn
    },
    address: (text) => harness.addr(text),
    close: () => tp.close(),
  }
}

interface Case {
  name: string
  /** Nanoseconds of CPU per call, one round of `calls` calls on `s`. */
  run(s: Subject, calls: number): Promise<number>
}

function cpuNs(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from)
  return (d.user + d.system) * 1000
}

/** Transactions are made 100 at a time with the clock stopped, so their making is not counted. */
const TXN_BATCH = 100

/** MAIL FROM:<> then RCPT, each on a fresh transaction made before the clock starts. */
function bounceCase(name: string, ip: string): Case {
  return {
    name,
    async run(s, calls) {
      const conn = s.connection(ip)
      const nullSender = s.address('<>')
      const rcpt = s.address('user@example.net')
      let ns = 0
      for (let done = 0; done < calls; done += TXN_BATCH) {
        const txns = Array.from({ length: Math.min(TXN_BATCH, calls - done) }, () => s.transaction(conn))
        const start = process.cpuUsage()
        for (const txn of txns) {
          conn.transaction = txn
          s.plugin.hook_mail(() => undefined, conn, [nullSender, []])
          await new Promise<void>((resolve) => {
            const next: Next = () => resolve()
            s.plugin.hook_rcpt(next, conn, [rcpt, []])
          })
        }
        ns += cpuNs(start)
      }
      return ns / calls
    },
  }
}

/** MAIL and RCPT of an ordinary sender: nothing is looked up. */
const ordinaryCase: Case = {
  name: 'hook_mail + hook_rcpt, ordinary sender',
  async run(s, calls) {
    const conn = s.connection(UNLISTED_IP)
    const from = s.address('someone@sender.example')
    const rcpt = s.address('user@example.net')
    const noop: Next = () => undefined
    const n = calls * 50
    const start = process.cpuUsage()
    for (let i = 0; i < n; i++) {
      s.plugin.hook_mail(noop, conn, [from, []])
      s.plugin.hook_rcpt(noop, conn, [rcpt, []])
    }
    return Promise.resolve(cpuNs(start) / n)
  },
}

export async function benchAb(
  other: string,
  rounds: number,
  calls: number,
  log: (s: string) => void,
): Promise<string> {
  const here = path.resolve(__dirname, '..')
  const dns = await startDns(
    dnsblZone(ZONE, { [LISTED_IP]: { txt: `Listed, backscatter seen from ${LISTED_IP}` } }),
  )
  const ini = `[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\n`
  const subjects = [subject('this tree', here, ini), subject('other tree', other, ini)]
  const cases = [
    ordinaryCase,
    bounceCase('MAIL+RCPT, cached bounce, listed (550 at RCPT)', LISTED_IP),
    bounceCase('MAIL+RCPT, cached bounce, not listed', UNLISTED_IP),
  ]
  try {
    // Warm each plugin's cache (and pass the zone's health check) and the JIT.
    for (const s of subjects) for (const c of cases) await c.run(s, 200)
    const queries = dns.queries.length
    const figures = cases.map(() => subjects.map(() => [] as number[]))
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 ? [1, 0] : [0, 1]
      for (const [ci, c] of cases.entries()) {
        for (const si of order) {
          // Each timed run starts with the garbage of the one before collected.
          global.gc?.()
          figures[ci]![si]!.push(await c.run(subjects[si]!, calls))
        }
      }
      log(`  round ${round + 1}/${rounds}`)
    }
    if (dns.queries.length !== queries)
      throw new Error('a timed call sent a DNS query: the cache did not hold')
    const rows = cases.map((c, ci) => {
      const [a, b] = figures[ci] as [number[], number[]]
      const ratios = a.map((x, i) => x / b[i]!)
      return [c.name, fmtSpread(spread(a), 0), fmtSpread(spread(b), 0), fmtSpread(spread(ratios), 3)]
    })
    return [
      `In process, before and after: this tree (${here}) against ${other}; CPU ns per call, ` +
        `median (min–max) over ${rounds} rounds of ${calls} calls (ordinary: ${calls * 50}), the trees alternating; ` +
        `ratio: this tree / other tree, round by round.`,
      '',
      table(['what', 'this tree', 'other tree', 'ratio'], rows),
      '',
      `machine: ${Object.entries(machine())
        .map(([k, v]) => `${k} ${v}`)
        .join('; ')}`,
    ].join('\n')
  } finally {
    for (const s of subjects) s.close()
    await dns.close()
  }
}

if (require.main === module) {
  const other = process.env.BENCH_AB
  if (!other) {
    console.error('BENCH_AB=<a built checkout of this plugin, with node_modules> is needed')
    process.exit(2)
  }
  runStandalone(
    () =>
      benchAb(
        path.resolve(other),
        envInt('BENCH_AB_ROUNDS', 15),
        envInt('BENCH_AB_CALLS', 2000),
        console.error,
      ),
    (report) => report,
  )
}
