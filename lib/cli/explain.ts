// `haraka-backscatter explain`: the plugin's whole decision for one transaction, step by step.
import type { Address } from '@haraka/email-address'

import { dayText } from '../settings/batv'
import { clientToCheck } from '../core/client'
import { tagsCheckedFor } from '../core/recipient'
import { isBounceSender, isNullSender, localPart } from '../core/sender'
import { headerValue } from '../core/verdict'
import { addressArgument, dateOption, ipArgument, noArguments, stringOption, type Values } from './args'
import { loadConfig } from './config'
import { acceptWhy } from './decision'
import { EXIT, UsageError, type Io } from './io'
import { lookupStatus, lookupAll, ROW_HEADINGS, rowCells, withChecker, type IpReport } from './lookups'
import { acceptedResults, addressText, explainRecipient, type RecipientLine } from './recipients'
import { quote, table } from './table'
import type { Settings } from '../core/types'

function senderWhy(from: Address, settings: Settings): { bounce: boolean; why: string } {
  const bounce = isBounceSender(from, settings.senders)
  if (isNullSender(from)) {
    return bounce
      ? { bounce, why: 'the null sender <>: a bounce ([senders] null = true)' }
      : { bounce, why: 'the null sender <>, but [senders] null = false: not treated as a bounce' }
  }
  const part = localPart(from)
  if (bounce) {
    const origin = part === 'postmaster' ? 'postmaster always counts' : 'in [senders] local_parts'
    return { bounce, why: `local part ${quote(part)} claims a bounce (${origin})` }
  }
  return { bounce, why: `local part ${quote(part)} is not a bounce-type sender: never looked up (safe mode)` }
}

function clientPasses(relaying: boolean, settings: Settings): string {
  const parts: string[] = []
  if (settings.skip.private) parts.push('not private')
  if (relaying) parts.push('relaying, but [skip] relaying = false')
  else if (settings.skip.relaying) parts.push('not relaying')
  if (settings.skip.ips.length) parts.push('not in [skip] ips')
  return parts.length ? parts.join(', ') : 'no skip applies'
}

interface Transaction {
  readonly ip: string
  readonly from: Address
  readonly rcpts: readonly Address[]
  readonly relaying: boolean
  /** The clock that checks tags: --date, else now. */
  readonly nowMs: number
}

function transactionArguments(values: Values, positionals: readonly string[]): Transaction {
  noArguments(positionals, 'explain')
  const ipText = stringOption(values, 'ip')
  const fromText = stringOption(values, 'from')
  const rcptTexts = (Array.isArray(values.rcpt) ? values.rcpt : []).filter((r) => typeof r === 'string')
  if (ipText === undefined) throw new UsageError('--ip IP is required', 'explain')
  if (fromText === undefined)
    throw new UsageError("--from ADDR is required ('<>' for the null sender)", 'explain')
  if (rcptTexts.length === 0) throw new UsageError('at least one --rcpt ADDR is required', 'explain')
  return {
    ip: ipArgument(ipText, 'explain'),
    from: addressArgument(fromText, '--from', 'explain'),
    rcpts: rcptTexts.map((r) => addressArgument(r, '--rcpt', 'explain')),
    relaying: values.relaying === true,
    nowMs: dateOption(values, 'explain') ?? Date.now(),
  }
}

function scoreLine(report: IpReport, settings: Settings): string {
  const { verdict } = report
  if (settings.batv.domains.size > 0) {
    // The tags change the score recipient by recipient: the zones' alone decides nothing yet.
    return `${verdict.actionable ? 'reached' : 'not reached'} by the zones alone; each recipient's tag adds to it`
  }
  if (verdict.actionable) return `reached: action ${settings.action}`
  if (verdict.listed.length) return 'below it: every recipient accepted'
  const answered = report.failed.length === 0 && report.rows.some((r) => r.counted)
  return `${answered ? 'no listing' : acceptWhy(report, 'not-listed', settings)}: every recipient accepted`
}

export async function runExplain(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  const { ip, from, rcpts, relaying, nowMs } = transactionArguments(values, positionals)
  const { settings, source } = loadConfig(stringOption(values, 'config'), io)

  const sender = senderWhy(from, settings)
  const client = clientToCheck({ ip, relaying }, settings)
  const skip = 'skip' in client ? client.skip : ''
  const checkIp = sender.bounce && 'ip' in client ? client.ip : undefined
  const result =
    checkIp === undefined
      ? undefined
      : await withChecker(settings, (c) => lookupAll(c, settings, [checkIp], relaying))
  const report = result?.reports[0]
  const verdict = report?.verdict
  const checkTags = tagsCheckedFor(from, settings.batv)
  const unchecked = `not checked: ${sender.bounce ? skip : 'the sender is not a bounce'}`
  const recipients = rcpts.map((rcpt) =>
    explainRecipient(rcpt, report, settings, nowMs, checkTags, unchecked),
  )
  const reply = recipients.find((r) => r.reply)?.reply ?? ''
  const status = result ? lookupStatus(result.reports, result.health) : EXIT.OK
  const batvOn = settings.batv.domains.size > 0
  const batvResults = checkTags ? acceptedResults(recipients) : undefined
  const header = verdict && settings.header ? `${settings.header}: ${headerValue(verdict, batvResults)}` : ''

  if (values.json) {
    const out = {
      ip,
      from: addressText(from),
      relaying,
      sender,
      client: { checked: checkIp !== undefined, skip: sender.bounce ? skip : 'not a bounce-type sender' },
      zones: report?.rows ?? [],
      score: verdict?.score ?? 0,
      threshold: settings.threshold,
      actionable: verdict?.actionable ?? false,
      action: settings.action,
      batv: batvJson(settings, nowMs),
      recipients,
      reply,
      header,
    }
    io.out(`${JSON.stringify(out)}\n`)
    return status
  }

  let n = 0
  const step = (name: string, text: string): string => `${++n}. ${name.padEnd(9)}${text}`.trimEnd()
  const lines: string[] = [`config: ${source}`, '']
  lines.push(step('Sender', `MAIL FROM:${addressText(from)}: ${sender.why}`))
  const who = `${ip}${relaying ? ', relaying' : ''}`
  if (!sender.bounce) lines.push(step('Client', 'not looked up: the sender is not a bounce'))
  else if (skip) lines.push(step('Client', `${who}: skipped, ${skip}: never looked up`))
  else lines.push(step('Client', `${who}: ${clientPasses(relaying, settings)}: looked up`))
  if (report) {
    lines.push(
      step('Lookups', "(HEALTH: the zone's RFC 5782 test-point check; a failed zone does not count)"),
    )
    lines.push(table([ROW_HEADINGS, ...report.rows.map(rowCells)], '     ').trimEnd())
    const zones = batvOn ? ' from the zones' : ''
    const line = `${report.verdict.score}${zones} (threshold ${settings.threshold}): ${scoreLine(report, settings)}`
    lines.push(step('Score', line))
  } else {
    lines.push(step('Lookups', 'none'))
    lines.push(step('Score', 'none: every recipient accepted'))
  }
  const tagged = recipients.filter((r) => r.tag)
  if (tagged.length) {
    lines.push(step('Tags', tagsHeading(settings, nowMs)))
    lines.push(tagTable(tagged))
  }
  const scored = batvOn && report !== undefined
  const sums = scored
    ? `  (SCORE: the zones' ${report.verdict.score} plus the recipient's tag, against threshold ${settings.threshold})`
    : ''
  lines.push(step('Recipients', sums))
  lines.push(
    table(
      recipients.map((r) => [
        r.rcpt,
        r.action,
        ...(scored ? [r.score === null ? '-' : String(r.score)] : []),
        r.reply || r.why,
      ]),
      '     ',
    ).trimEnd(),
  )
  lines.push(step('Reply', reply || 'none: no recipient is refused'))
  if (header) lines.push(`   Header   on accepted mail: ${header}`)
  io.out(`${lines.join('\n')}\n`)
  return status
}

/** BATV as explain applies it: on or off, the signing domains, the keys' numbers (never a secret), the day. */
function batvJson(settings: Settings, nowMs: number): Record<string, unknown> {
  const { batv } = settings
  return {
    on: batv.domains.size > 0,
    domains: [...batv.domains],
    keys: [...batv.keys.keys()],
    lifetime_days: batv.lifetimeDays,
    missing_from: batv.missingFrom,
    date: dayText(nowMs),
  }
}

function tagsHeading(settings: Settings, nowMs: number): string {
  const { batv } = settings
  if (batv.domains.size === 0) return 'not checked: BATV is off ([batv] domains is empty)'
  const missing = batv.missingFrom
    ? `missing counts from ${batv.missingFrom}`
    : 'missing not scored ([batv] missing_from empty)'
  return (
    `BATV for ${[...batv.domains].join(', ')}, checked as on ${dayText(nowMs)}: ` +
    `keys ${[...batv.keys.keys()].join(', ')}, tags live ${batv.lifetimeDays} days, ${missing}`
  )
}

function tagTable(lines: readonly RecipientLine[]): string {
  const rows = [['RECIPIENT', 'RESULT', 'SCORE', 'DELIVERED TO']]
  for (const { rcpt, tag } of lines) {
    if (!tag) continue
    const result = tag.why ? `${tag.recorded} (${tag.why})` : tag.recorded
    rows.push([rcpt, result, String(tag.score), `<${tag.original}>`])
  }
  return table(rows, '     ').trimEnd()
}
