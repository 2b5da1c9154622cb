// Shared by the metrics tests: a known mix of counts, a scrape of them, and ports to listen on.
import net from 'node:net'

import { METRIC_PREFIX, type BackscatterMetrics } from '../../lib/metrics/metrics'
import { readExposition, type Sample } from './exposition'

export const P = METRIC_PREFIX
export const ZONE = 'ips.backscatterer.org'
export const FILE_ZONE = 'mirror.example'

export async function scrape(metrics: BackscatterMetrics): Promise<{ text: string; samples: Sample[] }> {
  const text = await metrics.exposition()
  return { text, samples: readExposition(text) }
}

/**
 * A known mix: 3 listed (1 from DNS, 2 cached), 2 clean from DNS, 1 error, 1 skipped; a file zone;
 * replies record mode would refuse: 1 for example.com, 2 for example.org while the ledger was young.
 */
export function knownMix(m: BackscatterMetrics): void {
  m.lookup(ZONE, 'listed', 'dns', 0.003)
  m.lookup(ZONE, 'listed', 'cache')
  m.lookup(ZONE, 'listed', 'cache')
  m.lookup(ZONE, 'not-listed', 'dns', 0.0004)
  m.lookup(ZONE, 'not-listed', 'dns', 0.02)
  m.lookup(ZONE, 'error', 'dns', 1.5)
  m.lookup(ZONE, 'skipped', 'dns')
  m.lookup(FILE_ZONE, 'listed', 'file', 0.00002)
  for (const d of ['refused', 'refused', 'exempt', 'accepted', 'deferred', 'accepted', 'accepted'] as const) {
    m.recipient(d)
  }
  m.batv('signed')
  m.ledgerWouldRefuse('example.com', false)
  m.ledgerWouldRefuse('example.org', true)
  m.ledgerWouldRefuse('example.org', true)
  m.observeState(() => ({
    zones: [
      { zone: ZONE, usable: true },
      {
        zone: FILE_ZONE,
        usable: false,
        entries: 1234,
        loadedAtSeconds: 1_764_330_649.5,
        fileTimestampSeconds: 1_764_330_000,
      },
    ],
    cacheEntries: 17,
  }))
}

export async function holdPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as net.AddressInfo
  return { port, release: () => new Promise<void>((r) => srv.close(() => r())) }
}

export async function freePort(): Promise<number> {
  const held = await holdPort()
  await held.release()
  return held.port
}
