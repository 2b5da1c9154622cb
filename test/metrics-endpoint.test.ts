// The metrics: where /metrics is served (the listen setting, the endpoint) and
// the cluster master's sum of its workers' counts.
import assert from 'node:assert/strict'
import cluster from 'node:cluster'

import path from 'node:path'
import { after, describe, it } from 'node:test'

import { BackscatterMetrics } from '../lib/metrics/metrics'
import { clusterExposition, processExposition } from '../lib/metrics/cluster'
import { formatListen, isLoopback, parseListen } from '../lib/settings/listen'
import { MetricsEndpoint, type Exposition } from '../lib/metrics/server'

import { PROMTOOL, promtoolCheck, readExposition, valueOf } from './support/exposition'

import type { ListenAddress } from '../lib/core/types'
import { FILE_ZONE, freePort, holdPort, knownMix, P, ZONE } from './support/metrics'

describe('listen setting: loopback unless another address is written out', () => {
  const ok = (text: string): ListenAddress | undefined => {
    const r = parseListen(text)
    assert.ok('address' in r, `${text}: ${'why' in r ? r.why : ''}`)
    return r.address
  }
  const why = (text: string): string => {
    const r = parseListen(text)
    assert.ok('why' in r, `${text} was accepted`)
    return r.why
  }

  it('empty is off', () => {
    assert.equal(ok(''), undefined)
    assert.equal(ok('   '), undefined)
  })

  it('a bare port is 127.0.0.1; localhost is 127.0.0.1', () => {
    assert.deepEqual(ok('9100'), { host: '127.0.0.1', port: 9100 })
    assert.deepEqual(ok('localhost:9101'), { host: '127.0.0.1', port: 9101 })
  })

  it('explicit addresses are taken as written, IPv6 in brackets', () => {
    assert.deepEqual(ok('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 })
    assert.deepEqual(ok('192.0.2.10:9100'), { host: '192.0.2.10', port: 9100 })
    assert.deepEqual(ok('[::1]:9100'), { host: '::1', port: 9100 })
    assert.deepEqual(ok('[::]:9100'), { host: '::', port: 9100 })
    assert.equal(formatListen({ host: '::1', port: 9100 }), '[::1]:9100')
  })

  it('an empty host (":9100", "[]:9100") is refused: every interface must be written out', () => {
    assert.match(why(':9100'), /names no address: write 127\.0\.0\.1:9100, or 0\.0\.0\.0:9100/)
    assert.match(why('[]:9100'), /names no address/)
  })

  it('names, bad ports and unbracketed IPv6 are refused', () => {
    assert.match(why('metrics.example.com:9100'), /not an IP address/)
    assert.match(why('0'), /not PORT, IP:PORT/)
    assert.match(why('65536'), /not PORT, IP:PORT/)
    assert.match(why('127.0.0.1'), /not PORT, IP:PORT/)
    assert.match(why('::1:9100'), /not PORT, IP:PORT/)
    assert.match(why('[127.0.0.1]:9100'), /not an IP address/)
  })

  it('isLoopback', () => {
    assert.ok(isLoopback('127.0.0.1') && isLoopback('127.3.2.1') && isLoopback('::1'))
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('::') && !isLoopback('192.0.2.1'))
  })
})

/** A TCP port on 127.0.0.1 held open by a plain server until release(). */

interface Logged {
  info: string[]
  error: string[]
}

function endpointFor(exposition: Exposition): { endpoint: MetricsEndpoint; logged: Logged } {
  const logged: Logged = { info: [], error: [] }
  const endpoint = new MetricsEndpoint(exposition, {
    info: (msg) => logged.info.push(msg),
    error: (msg) => logged.error.push(msg),
  })
  return { endpoint, logged }
}

describe('the /metrics endpoint', () => {
  const endpoints: MetricsEndpoint[] = []
  after(async () => {
    for (const e of endpoints) await e.close()
  })

  it('serves the exposition on a bare port, bound to 127.0.0.1 only', async () => {
    const m = new BackscatterMetrics()
    knownMix(m)
    const { endpoint, logged } = endpointFor(processExposition(m.registry))
    endpoints.push(endpoint)
    const port = await freePort()
    const parsed = parseListen(String(port))
    assert.ok('address' in parsed)
    await endpoint.listen(parsed.address)
    assert.deepEqual(endpoint.listening, { host: '127.0.0.1', port })
    assert.deepEqual(logged.info, [`metrics: serving http://127.0.0.1:${port}/metrics (loopback only)`])
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    const samples = readExposition(await res.text())
    assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'refused' }), 2)
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405)
    await endpoint.close()
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'closed')
  })

  it('a non-loopback address written out is used, and the log says so', async () => {
    const { endpoint, logged } = endpointFor(processExposition(new BackscatterMetrics().registry))
    endpoints.push(endpoint)
    const port = await freePort()
    await endpoint.listen({ host: '0.0.0.0', port })
    assert.deepEqual(endpoint.listening, { host: '0.0.0.0', port })
    assert.deepEqual(logged.info, [
      `metrics: serving http://0.0.0.0:${port}/metrics (NOT loopback: reachable from the network)`,
    ])
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200)
    await endpoint.close()
  })

  it('a port in use: one error line, no exception, and nothing served', async () => {
    const held = await holdPort()
    const { endpoint, logged } = endpointFor(processExposition(new BackscatterMetrics().registry))
    endpoints.push(endpoint)
    await endpoint.listen({ host: '127.0.0.1', port: held.port })
    assert.deepEqual(logged.error, [
      `metrics: cannot serve /metrics on 127.0.0.1:${held.port}: the port is already in use (EADDRINUSE); ` +
        'Haraka and the mail go on without metrics',
    ])
    assert.deepEqual(logged.info, [])
    assert.equal(endpoint.listening, undefined)
    await held.release()
    // The same endpoint serves once a reload names a port it can bind.
    const port = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port })
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200)
    assert.equal(logged.error.length, 1)
    await endpoint.close()
  })

  it('a reload that changes the address moves the endpoint; the same address keeps it', async () => {
    const { endpoint, logged } = endpointFor(processExposition(new BackscatterMetrics().registry))
    endpoints.push(endpoint)
    const first = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port: first })
    await endpoint.listen({ host: '127.0.0.1', port: first })
    assert.equal(logged.info.length, 1, 'not re-opened for the same address')
    const second = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port: second })
    await assert.rejects(fetch(`http://127.0.0.1:${first}/metrics`))
    assert.equal((await fetch(`http://127.0.0.1:${second}/metrics`)).status, 200)
    await endpoint.listen(undefined)
    assert.equal(endpoint.listening, undefined)
    await assert.rejects(fetch(`http://127.0.0.1:${second}/metrics`))
  })

  it('scrapes arriving together share one rendering; a failed one answers 503', async () => {
    let renders = 0
    let finish: (text: string) => void = () => undefined
    let fail = false
    const { endpoint } = endpointFor({
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      render: () => {
        renders++
        if (fail) return Promise.reject(new Error('Operation timed out.'))
        return new Promise<string>((resolve) => (finish = resolve))
      },
    })
    endpoints.push(endpoint)
    const port = await freePort()
    await endpoint.listen({ host: '127.0.0.1', port })
    const url = `http://127.0.0.1:${port}/metrics`
    const first = fetch(url)
    const second = fetch(url)
    while (endpoint.scrapesWaiting < 2) await new Promise((r) => setImmediate(r))
    finish('x_total 1\n')
    const bodies = await Promise.all([first, second].map(async (p) => (await p).text()))
    assert.deepEqual(bodies, ['x_total 1\n', 'x_total 1\n'])
    assert.equal(renders, 1)
    fail = true
    const failed = await fetch(url)
    assert.equal(failed.status, 503)
    assert.equal(await failed.text(), 'metrics unavailable: Operation timed out.\n')
    await endpoint.close()
  })
})

describe('cluster: one scrape of the master sums its workers', () => {
  it(
    'counters and cache entries summed, zone_usable the minimum, zone_entries the maximum',
    { timeout: 60_000 },
    async () => {
      cluster.setupPrimary({
        exec: path.join(__dirname, 'support', 'metrics-worker.ts'),
        execArgv: ['--require', 'tsx/cjs'],
        silent: false,
      })
      const exposition = clusterExposition()
      const workers = [0, 1].map((i) => cluster.fork({ METRICS_WORKER: String(i) }))
      try {
        await Promise.all(
          workers.map(
            (w) =>
              new Promise<void>((resolve) => w.on('message', (msg: unknown) => msg === 'ready' && resolve())),
          ),
        )
        const text = await exposition.render()
        const samples = readExposition(text)
        // Worker i counted i+1 listed DNS lookups and 2 refused recipients.
        assert.equal(
          valueOf(samples, `${P}lookups_total`, { zone: ZONE, outcome: 'listed', source: 'dns' }),
          3,
        )
        assert.equal(valueOf(samples, `${P}recipients_total`, { decision: 'refused' }), 4)
        assert.equal(valueOf(samples, `${P}lookup_seconds_count`, { zone: ZONE }), 3)
        assert.equal(valueOf(samples, `${P}cache_entries`), 1 + 2)
        assert.equal(valueOf(samples, `${P}zone_usable`, { zone: ZONE }), 0, 'usable only in worker 1')
        assert.equal(valueOf(samples, `${P}zone_entries`, { zone: FILE_ZONE }), 101)
        if (PROMTOOL) assert.deepEqual(promtoolCheck(text), { status: 0, output: '' })
      } finally {
        for (const w of workers) w.kill()
      }
    },
  )
})
