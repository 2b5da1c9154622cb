// Shared by the tests of signed bounces (BATV) in the plugin (batv-plugin,
// batv-signing, batv-domains): the DOMAIN.md example key, a scripted zone on
// 127.0.0.1, the plugin with its clock set by the test, and what to read back.
import { DAY_MS } from '../../lib/batv/tag'
import { dnsblZone } from './dns-server'
import {
  mail,
  makeConnection,
  pluginFixture,
  rcpt,
  results,
  type HarakaConnection,
  type HarakaTestPlugin,
  type PluginFixture,
  type TestPlugin,
} from './harness'

export const ZONE = 'ips.backscatterer.org'
export const LISTED = '45.1.2.3'
export const CLEAN = '45.9.8.7'

/** The DOMAIN.md example: key 1, secret s3cret, bob@example.com on day 20785 (valid through day 20792). */
export const SECRET = 's3cret'
export const DAY = 20785
export const NOON = DAY * DAY_MS + DAY_MS / 2
export const VALID = 'prvs=1792f288fc=bob@example.com'
/** config/backscatter.keys of the tests: key 1. */
export const KEYS = `1 = ${SECRET}\n`

export interface BatvPluginTests extends PluginFixture {
  /** The plugin with `ini` after the DNS settings and `keys` as config/backscatter.keys (null: none), its clock at `nowMs`. */
  setup(ini: string, nowMs?: number, keys?: string | null): TestPlugin
}

/** The fixture of a BATV plugin test file: call once, at the top of the file. */
export function batvPluginTests(): BatvPluginTests {
  const fx = pluginFixture(dnsblZone(ZONE, { [LISTED]: { txt: 'Listed, backscatter seen' } }))
  return Object.assign(fx, {
    setup(ini: string, nowMs = NOON, keys: string | null = KEYS): TestPlugin {
      const files: Record<string, string> = keys === null ? {} : { 'backscatter.keys': keys }
      const t = fx.start(`[dns]\nservers = ${fx.dns.server}\ntimeout_ms = 3000\n\n${ini}\n`, files)
      t.plugin.backscatter.now = () => nowMs
      return t
    },
  })
}

/** `.address` of an Address (a getter the type declarations lack). */
export const wire = (a: unknown): string => (a as { address: string }).address

/** The addresses Haraka would deliver to. */
export const addresses = (conn: HarakaConnection): string[] =>
  conn.transaction.rcpt_to.map((a: { address: string }) => a.address)

/** The plugin's `batv` results in the transaction. */
export const batvResults = (conn: HarakaConnection): string[] =>
  (results(conn).batv as string[] | undefined) ?? []

/** A bounce from `ip` to `to`: the RCPT reply and the connection. */
export async function bounce(plugin: HarakaTestPlugin, ip: string, to: string, from = '<>') {
  const conn = makeConnection(ip)
  await mail(plugin, conn, from)
  return { ...(await rcpt(plugin, conn, to)), conn }
}
