// `haraka-backscatter check IP...`: what each zone says about each IP, and the verdict a bounce gets.
import { ipArgument, stringOption, type Values } from './args'
import { loadConfig } from './config'
import { bounceVerdict } from './decision'
import { UsageError, type Io } from './io'
import { lookupStatus, healthLines, lookupAll, ROW_HEADINGS, rowCells, withChecker } from './lookups'
import { table } from './table'

export async function runCheck(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  if (positionals.length === 0) throw new UsageError('give at least one IP address', 'check')
  const ips = [...new Set(positionals.map((p) => ipArgument(p, 'check')))]
  const { settings } = loadConfig(stringOption(values, 'config'), io)
  const { reports, health } = await withChecker(settings, (c) => lookupAll(c, settings, ips))
  const status = lookupStatus(reports, health)

  if (values.json) {
    for (const report of reports) {
      const verdict = bounceVerdict(report, settings)
      for (const row of report.rows) io.out(`${JSON.stringify({ ...row, verdict })}\n`)
    }
    return status
  }

  const rows = [['IP', ...ROW_HEADINGS]]
  for (const report of reports) {
    for (const r of report.rows) rows.push([r.ip, ...rowCells(r)])
  }
  const verdicts = [
    ['IP', 'SCORE', `VERDICT FOR A BOUNCE (threshold ${settings.threshold}, action ${settings.action})`],
  ]
  for (const report of reports) {
    const v = bounceVerdict(report, settings)
    const text = v.reply ? `${v.action} (${v.why}): ${v.reply}` : `${v.action}: ${v.why}`
    verdicts.push([report.ip, String(v.score), text])
  }
  io.out(`${healthLines(settings, health)}\n${table(rows)}\n${table(verdicts)}`)
  return status
}
