// `haraka-backscatter configtest`: load the configuration exactly as the
// plugin does and say whether it is clean, as `nginx -t`, `postfix check` and
// `rspamadm configtest` do. loadConfig has printed every problem by then.
import { noArguments, stringOption, type Values } from './args'
import { findingText, loadConfig } from './config'
import { EXIT, PROG, type Io } from './io'

const counted = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`

export async function runConfigtest(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  noArguments(positionals, 'configtest')
  const { settings, findings, notes, source } = loadConfig(stringOption(values, 'config'), io)
  for (const note of notes) io.out(findingText(note))
  if (findings.length) {
    const errors = findings.filter((f) => f.severity === 'error').length
    const warnings = findings.length - errors
    io.err(`${PROG} configtest: failed: ${counted(errors, 'error')}, ${counted(warnings, 'warning')}\n`)
    // Any problem, warning or error, fails the test, as nginx -t does.
    return EXIT.WARNING
  }
  const { batv } = settings
  const keys = batv.domains.size ? `; BATV keys ${[...batv.keys.keys()].join(', ')}` : ''
  io.out(`${PROG} configtest: ok: ${source}${keys}\n`)
  return EXIT.OK
}
