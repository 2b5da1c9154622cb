// The lines the plugin logs when it loads its settings: what it checks, where
// the answers come from, what happens to a listed bounce, and what BATV uses.
import type { BatvSettings, Settings, ZoneSettings } from '../core/types'

/** `a`, `a and b`, `a, b and c`. */
export function listText(items: readonly string[]): string {
  if (items.length <= 1) return items.join('')
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1) ?? ''}`
}

function zoneText(zone: ZoneSettings, servers: readonly string[]): string {
  if (zone.file) return `${zone.name} (answered from the zone file ${zone.file})`
  const resolvers = servers.length ? servers.join(', ') : 'the system resolvers'
  return `${zone.name} (by DNS through ${resolvers})`
}

function actionText(settings: Settings): string {
  const { action, threshold } = settings
  if (action === 'score')
    return 'nothing is refused (action score): the score is recorded in the results and the header'
  const what = action === 'reject' ? 'rejected with 550' : 'deferred with 450'
  return `a recipient is ${what} when the score reaches ${threshold}`
}

function batvText(batv: BatvSettings): string {
  const keys = [...batv.keys.keys()]
  const checking = `tags are checked with key${keys.length === 1 ? '' : 's'} ${listText(keys.map(String))}`
  const signing = batv.signKey
    ? `senders are signed with key ${batv.signKey.id}`
    : batv.sign
      ? `senders are not signed (there is no key ${batv.signKeyId} to sign with)`
      : 'senders are not signed ([batv] sign = false)'
  const missing = batv.missingFrom
    ? `a missing tag counts from ${batv.missingFrom}`
    : 'a missing tag is recorded, not scored until [batv] missing_from is set'
  return `signed bounces (BATV) for ${listText([...batv.domains])}: ${signing}, ${checking}; ${missing}`
}

/** One sentence per line, naming the zones and their zone files, the action and threshold, and BATV's domains and keys. */
export function startupLines(settings: Settings): string[] {
  const zones = listText(settings.zones.map((z) => zoneText(z, settings.dns.servers)))
  const lines = [`checking bounces against ${zones}; ${actionText(settings)}`]
  const domains = [...settings.recipientActions]
  if (domains.length) {
    const each = domains.map(([domain, action]) => `${domain}: ${action}`).join(', ')
    lines.push(`recipients in these domains get their own action ([recipient_domains]): ${each}`)
  }
  if (settings.batv.domains.size && settings.batv.keys.size) lines.push(batvText(settings.batv))
  return lines
}
