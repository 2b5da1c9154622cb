// Part 3, a dead resolver: one Haraka with this plugin whose [dns] servers is a
// UDP relay on 127.0.0.1 in front of the rbldnsd zone. Under steady load of
// bounces from distinct IPs (every one a cache miss), the relay first answers
// (healthy baseline), then goes silent: it reads every query and answers none.
// The timeline shows the added latency per transaction and the throughput
// before the zone's health check fails, while the zone is suspended, and after
// the resolver answers again.
//
//   node --import tsx bench/dead-resolver.ts
//   BENCH_HEALTH_INTERVAL=5 BENCH_DEAD_SESSIONS=20
import dgram from 'node:dgram'
import { performance } from 'node:perf_hooks'

import { LOCAL_DOMAIN } from '../test/support/haraka'
import { clientIp, envInt, fmt, machine, QUICK, quantile, sleep, table, runStandalone } from './common'
import { LoadClients, type TxnRecord } from './loadgen'
import { setUpBed } from './servers'

/** A UDP relay to a DNS server that can go silent: it then reads queries and answers none. */
export class SilenceableRelay {
  private readonly socket = dgram.createSocket('udp4')
  private readonly upstream = dgram.createSocket('udp4')
  /** DNS message id → the client that asked. */
  private readonly clients = new Map<number, dgram.RemoteInfo>()
  silent = false
  received = 0
  dropped = 0

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<number> {
    this.socket.on('message', (msg, rinfo) => {
      this.received++
      if (this.silent || msg.length < 2) {
        this.dropped++
        return
      }
      this.clients.set(msg.readUInt16BE(0), rinfo)
      this.upstream.send(msg, this.target.port, this.target.host)
    })
    this.upstream.on('message', (msg) => {
      if (msg.length < 2) return
      const id = msg.readUInt16BE(0)
      const client = this.clients.get(id)
      if (!client) return
      this.clients.delete(id)
      this.socket.send(msg, client.port, client.address)
    })
    await new Promise<void>((r) => this.upstream.bind(0, '127.0.0.1', () => r()))
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()))
    return this.socket.address().port
  }

  close(): void {
    this.socket.close()
    this.upstream.close()
  }
}

export interface DeadOptions {
  sessions: number
  healthIntervalSeconds: number
  healthyMs: number
  suspendedMs: number
  revivedMs: number
  log: (s: string) => void
}

export function deadOptionsFromEnv(log: (s: string) => void = console.log): DeadOptions {
  return {
    sessions: envInt('BENCH_DEAD_SESSIONS', 20),
    healthIntervalSeconds: envInt('BENCH_HEALTH_INTERVAL', 5),
    healthyMs: QUICK ? 3000 : 8000,
    suspendedMs: QUICK ? 6000 : 12_000,
    revivedMs: QUICK ? 6000 : 8000,
    log,
  }
}

export interface Phase {
  name: string
  /** Seconds from the start of the load. */
  from: number
  to: number
  txns: number
  tps: number
  p50: number
  p99: number
  max: number
  /** Transactions whose MAIL+RCPT took 500 ms or more. */
  slow: number
}

export interface DeadResult {
  options: Omit<DeadOptions, 'log'>
  machine: Record<string, string>
  timeoutMs: number
  tries: number
  /** Seconds from the start of the load. */
  events: { silent: number; suspended: number | undefined; revived: number; usable: number | undefined }
  phases: Phase[]
  /** Per second: transactions ended and the longest MAIL+RCPT among them. */
  timeline: { second: number; txns: number; maxMs: number }[]
  healthyP50: number
  errors: number
  relay: { received: number; dropped: number }
}

const TIMEOUT_MS = 1000
const TRIES = 2

export async function benchDeadResolver(opts: DeadOptions): Promise<DeadResult> {
  const { log } = opts
  const bed = await setUpBed(log)
  const relay = new SilenceableRelay({ host: '127.0.0.1', port: 53 })
  try {
    const relayPort = await relay.start()
    const ini = [
      '[dns]',
      `servers = 127.0.0.1:${relayPort}`,
      `timeout_ms = ${TIMEOUT_MS}`,
      `tries = ${TRIES}`,
      `health_interval = ${opts.healthIntervalSeconds}`,
      '',
    ].join('\n')
    const haraka = await bed.start('backscatter', {
      inNamespace: false,
      backscatterIni: ini,
      logLevel: 'warn',
    })
    log(
      `dead resolver: Haraka port ${haraka.port}, resolver relay 127.0.0.1:${relayPort} → rbldnsd 127.0.0.1:53`,
    )
    await sleep(500)

    const clients = new LoadClients(haraka.port, opts.sessions)
    let i = 900_000_000
    const to = `user@${LOCAL_DOMAIN}`
    const records: TxnRecord[] = []
    let stop = false
    const t0 = performance.now()
    const since = (): number => (performance.now() - t0) / 1000
    const load = clients.run(
      10 * 60_000,
      () => ({ ip: clientIp(i++), from: '', to }),
      (r) => records.push(r),
      () => stop,
    )

    const events: DeadResult['events'] = { silent: 0, suspended: undefined, revived: 0, usable: undefined }
    let errors = 0
    const warmUp = 2
    try {
      await sleep(warmUp * 1000 + opts.healthyMs)
      const mark = haraka.mark()
      relay.silent = true
      events.silent = since()
      log(`dead resolver: resolver silent at ${fmt(events.silent, 1)} s`)
      await haraka.waitForLog(/zone ips\.backscatterer\.org suspended/, {
        from: mark,
        timeoutMs: (opts.healthIntervalSeconds + 2 * TIMEOUT_MS * TRIES) * 1000 + 10_000,
      })
      events.suspended = since()
      log(`dead resolver: zone suspended at ${fmt(events.suspended, 1)} s`)
      await sleep(opts.suspendedMs)
      relay.silent = false
      events.revived = since()
      log(`dead resolver: resolver answers again at ${fmt(events.revived, 1)} s`)
      await sleep(opts.revivedMs)
    } finally {
      stop = true
      errors = (await load).errors
    }
    const end = since()
    const rel = (t: number): number => (t - t0) / 1000
    const lat = (r: TxnRecord): number => r.mailMs + (Number.isNaN(r.rcptMs) ? 0 : r.rcptMs)
    // The healthy baseline: transactions started after the warm-up that ended before the resolver fell silent.
    const healthy = records.filter((r) => rel(r.start) >= warmUp && rel(r.end) < events.silent)
    const healthyP50 = quantile(healthy.map(lat), 0.5)
    // The zone is back in use when a transaction again gets a refusal (a listed address).
    const firstRefusalAfter = records
      .filter((r) => rel(r.start) >= events.revived && r.rcptCode >= 500)
      .map((r) => rel(r.start))
      .sort((a, b) => a - b)[0]
    events.usable = firstRefusalAfter
    const bounds: [string, number, number][] = [
      ['healthy resolver', warmUp, events.silent],
      ['resolver silent, zone still in use', events.silent, events.suspended ?? end],
      ['zone suspended (resolver still silent)', events.suspended ?? end, events.revived || end],
      ['resolver answers again', events.revived || end, end],
    ]
    const phases = bounds
      .filter(([, from, to2]) => to2 > from)
      .map(([name, from, to2]): Phase => {
        const rs =
          name === 'healthy resolver'
            ? healthy
            : records.filter((r) => rel(r.start) >= from && rel(r.start) < to2)
        const ls = rs.map(lat)
        return {
          name,
          from,
          to: to2,
          txns: rs.length,
          tps: rs.length / (to2 - from),
          p50: quantile(ls, 0.5),
          p99: quantile(ls, 0.99),
          max: ls.length ? Math.max(...ls) : NaN,
          slow: ls.filter((l) => l >= 500).length,
        }
      })
    const timeline: DeadResult['timeline'] = []
    for (let s = 0; s < Math.ceil(end); s++) {
      const rs = records.filter((r) => rel(r.end) >= s && rel(r.end) < s + 1)
      timeline.push({ second: s, txns: rs.length, maxMs: rs.length ? Math.max(...rs.map(lat)) : NaN })
    }
    return {
      options: {
        sessions: opts.sessions,
        healthIntervalSeconds: opts.healthIntervalSeconds,
        healthyMs: opts.healthyMs,
        suspendedMs: opts.suspendedMs,
        revivedMs: opts.revivedMs,
      },
      machine: machine(),
      timeoutMs: TIMEOUT_MS,
      tries: TRIES,
      events,
      phases,
      timeline,
      healthyP50,
      errors,
      relay: { received: relay.received, dropped: relay.dropped },
    }
  } finally {
    relay.close()
    await bed.close()
  }
}

export function renderDeadResolver(r: DeadResult): string {
  const out: string[] = []
  out.push(
    `Dead resolver: after 2 s of warm-up, ${r.options.sessions} concurrent clients sending bounces from distinct IPs (each a cache miss); ` +
      `[dns] timeout_ms = ${r.timeoutMs}, tries = ${r.tries} (budget ${r.timeoutMs * r.tries} ms), ` +
      `health_interval = ${r.options.healthIntervalSeconds} s. Latency = MAIL+RCPT, client side; ` +
      `added = p50 − healthy p50 (${fmt(r.healthyP50, 2)} ms).`,
    '',
  )
  const ev = r.events
  out.push(
    `Resolver silent at ${fmt(ev.silent, 1)} s; zone suspended at ${ev.suspended === undefined ? 'never' : `${fmt(ev.suspended, 1)} s (${fmt(ev.suspended - ev.silent, 1)} s later)`}; ` +
      `resolver answering again at ${fmt(ev.revived, 1)} s; first refusal again (zone in use) at ${ev.usable === undefined ? '–' : `${fmt(ev.usable, 1)} s`}. ` +
      `The relay dropped ${fmt(r.relay.dropped)} of ${fmt(r.relay.received)} queries.` +
      (r.errors ? ` ${r.errors} client errors.` : ''),
    '',
  )
  out.push(
    table(
      ['phase', 'seconds', 'transactions', 'tx/s', 'p50 ms', 'added p50 ms', 'p99 ms', 'max ms', '≥ 500 ms'],
      r.phases.map((p) => [
        p.name,
        `${fmt(p.from, 1)}–${fmt(p.to, 1)}`,
        fmt(p.txns),
        fmt(p.tps),
        fmt(p.p50, 1),
        fmt(p.p50 - r.healthyP50, 1),
        fmt(p.p99, 1),
        fmt(p.max, 0),
        fmt(p.slow),
      ]),
    ),
  )
  out.push(
    '',
    'Per second (transactions ended / longest MAIL+RCPT in ms): ' +
      r.timeline.map((t) => `${t.second}s ${t.txns}/${fmt(t.maxMs, 0)}`).join(', '),
  )
  return out.join('\n')
}

if (require.main === module) runStandalone(() => benchDeadResolver(deadOptionsFromEnv()), renderDeadResolver)
