// A cluster worker for test/metrics.test.ts: counts a fixed mix (worker i: i+1
// listed DNS lookups, 2 refused recipients, i+1 cached answers, zone usable only
// in worker 1, file zone entries 100+i), answers the master's scrapes, says ready.
import { BackscatterMetrics } from '../../lib/metrics/metrics'
import { answerClusterScrapes } from '../../lib/metrics/cluster'

const i = Number(process.env.METRICS_WORKER)
const metrics = new BackscatterMetrics()
for (let n = 0; n <= i; n++) metrics.lookup('ips.backscatterer.org', 'listed', 'dns', 0.002)
metrics.recipient('refused')
metrics.recipient('refused')
metrics.observeState(() => ({
  zones: [
    { zone: 'ips.backscatterer.org', usable: i === 1 },
    { zone: 'mirror.example', usable: true, entries: 100 + i },
  ],
  cacheEntries: i + 1,
}))
answerClusterScrapes(metrics.registry)
process.send?.('ready')
