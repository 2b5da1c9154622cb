// Shared by the plugin's test files (plugin*.test.ts): the zone they ask about,
// the addresses it lists, and the plugin set up against a scripted DNS server
// on 127.0.0.1 that answers for it.
import { dnsblZone } from './dns-server'
import { pluginFixture, type PluginFixture, type TestPlugin } from './harness'

export const ZONE = 'ips.backscatterer.org'
export const LISTED = '45.1.2.3'
export const CLEAN = '45.9.8.7'

/** The zone: LISTED with a TXT reason, one listing whose TXT tries an injection, one with 127.0.0.3. */
export const listedZone = dnsblZone(ZONE, {
  [LISTED]: { txt: 'Listed, backscatter seen 2026-11-27' },
  '45.1.2.4': { txt: 'Sent backscatter\r\n550 5.7.1 X-Injected: evil\0' },
  '45.1.2.5': { a: ['127.0.0.3'] },
})

export interface PluginTests extends PluginFixture {
  /**
   * A registered plugin whose deployment config/backscatter.ini is `ini` plus the DNS server. The
   * default budget is generous: the scripted server answers at once, and a busy machine must not
   * turn a zone's first health check into "still running".
   */
  setup(ini?: string, dnsExtra?: string): TestPlugin
  /** Queries other than the zone health checks' test points. */
  clientQueries(): number
  /** Queries for `ip` in ZONE. */
  queriesFor(ip: string): number
  /**
   * Hold the answer for LISTED (45.1.2.3) until `release()`; `arrived` settles when its query
   * reaches the server. Other names are answered at once.
   */
  holdListed(): { arrived: Promise<void>; release: () => void }
}

/** The fixture of a plugin test file: call once, at the top of the file. */
export function pluginTests(): PluginTests {
  const fx = pluginFixture(listedZone)
  return Object.assign(fx, {
    setup: (ini = '', dnsExtra = 'timeout_ms = 2000\ntries = 2'): TestPlugin =>
      fx.start(`[dns]\nservers = ${fx.dns.server}\n${dnsExtra}\n\n${ini}\n`),
    clientQueries: (): number =>
      fx.dns.queries.filter(
        (q) => !/^[12]\.0\.0\.127\./.test(q.name) && !/^[12](\.0){4}\.f\.7\.f\.f\.f\.f\./.test(q.name),
      ).length,
    queriesFor: (ip: string): number => fx.dns.count(`${ip.split('.').reverse().join('.')}.${ZONE}`),
    holdListed: () => {
      let release: () => void = () => {}
      const held = new Promise<void>((resolve) => (release = resolve))
      let reached: () => void = () => {}
      const arrived = new Promise<void>((resolve) => (reached = resolve))
      fx.handler = (q) => {
        if (q.name !== `3.2.1.45.${ZONE}`) return listedZone(q)
        reached()
        return { a: ['127.0.0.2'], until: held }
      }
      return { arrived, release }
    },
  })
}
