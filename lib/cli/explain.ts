// `haraka-backscatter explain`: the plugin's whole decision for one transaction, step by step.
import type { Address } from '@haraka/email-address'

import { clientToCheck } from '../client'
import { isBounceSender, isNullSender, localPart } from '../sender'
import type { Settings } from '../settings'
import { decideRecipient, headerValue } from '../verdict'
import { addressArgument, ipArgument, noArguments, stringOption, type Values } from './args'
import { loadConfig } from './config'
import { acceptWhy, replyLine } from './decision'
import { EXIT, UsageError, type Io } from './io'
import { hasProblem, lookupAll, ROW_HEADINGS, rowCells, withChecker, type IpReport } from './lookups'
import { quote, table } from './table'

function addressText(a: Address): string {
  if (isNullSender(a)) return '<>'
  return a.host ? `<${a.user ?? ''}@${a.host}>` : `<${a.user ?? ''}>`
}

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
    from: addressArgument(fromText, 'from', 'explain'),
    rcpts: rcptTexts.map((r) => addressArgument(r, 'rcpt', 'explain')),
    relaying: values.relaying === true,
  }
}

interface RecipientLine {
  readonly rcpt: string
  readonly action: string
  readonly why: string
  readonly reply: string
}

function recipientLine(rcpt: Address, report: IpReport | undefined, settings: Settings): RecipientLine {
  const addr = addressText(rcpt)
  if (!report) return { rcpt: addr, action: 'accept', why: 'transaction not checked', reply: '' }
  const d = decideRecipient(report.verdict, localPart(rcpt), settings)
  if (d.action === 'accept') {
    return { rcpt: addr, action: 'accept', why: acceptWhy(report, d.why, settings), reply: '' }
  }
  const reply = replyLine(d.action, report.verdict, settings)
  return { rcpt: addr, action: d.action, why: 'score reached the threshold', reply }
}

function scoreLine(report: IpReport, settings: Settings): string {
  const { verdict } = report
  if (verdict.actionable) return `reached: action ${settings.action}`
  if (verdict.listed.length) return 'below it: every recipient accepted'
  const answered = report.failed.length === 0 && report.rows.some((r) => r.counted)
  return `${answered ? 'no listing' : acceptWhy(report, 'not-listed', settings)}: every recipient accepted`
}

export async function runExplain(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  const { ip, from, rcpts, relaying } = transactionArguments(values, positionals)
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
  const recipients = rcpts.map((rcpt) => recipientLine(rcpt, report, settings))
  const reply = recipients.find((r) => r.reply)?.reply ?? ''
  const status = result && hasProblem(result.reports, result.health) ? EXIT.PROBLEM : EXIT.OK
  const header = verdict && settings.header ? `${settings.header}: ${headerValue(verdict)}` : ''

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
      recipients,
      reply,
      header,
    }
    io.out(`${JSON.stringify(out)}\n`)
    return status
  }

  const lines: string[] = [`config: ${source}`, '']
  lines.push(`1. Sender   MAIL FROM:${addressText(from)}: ${sender.why}`)
  const who = `${ip}${relaying ? ', relaying' : ''}`
  if (!sender.bounce) lines.push('2. Client   not looked up: the sender is not a bounce')
  else if (skip) lines.push(`2. Client   ${who}: skipped (${skip}); never looked up`)
  else lines.push(`2. Client   ${who}: ${clientPasses(relaying, settings)}: looked up`)
  if (report) {
    lines.push("3. Lookups  (HEALTH: the zone's RFC 5782 test-point check; a failed zone does not count)")
    lines.push(table([ROW_HEADINGS, ...report.rows.map(rowCells)], '     ').trimEnd())
    lines.push(
      `4. Score    ${report.verdict.score} (threshold ${settings.threshold}): ${scoreLine(report, settings)}`,
    )
  } else {
    lines.push('3. Lookups  none')
    lines.push('4. Score    none: every recipient accepted')
  }
  lines.push('5. Recipients')
  lines.push(
    table(
      recipients.map((r) => [r.rcpt, r.action, r.reply || r.why]),
      '     ',
    ).trimEnd(),
  )
  lines.push(`6. Reply    ${reply || 'none: no recipient is refused'}`)
  if (header) lines.push(`   Header   on accepted mail: ${header}`)
  io.out(`${lines.join('\n')}\n`)
  return status
}
