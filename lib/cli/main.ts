// The operator's command: check IPs, test the zones, explain a decision, sign
// an address, read saved mail as a machine's reply. It reads backscatter.ini the way the plugin does, looks up
// through the same BackscatterChecker and signs and checks tags with the same
// core, so its answers are the plugin's.
import { parseCommandLine, type CommandName, type Values } from './args'
import fs from 'node:fs'
import path from 'node:path'

import { runAudit } from './audit'
import { runCheck } from './check'
import { PACKAGE_ROOT } from './config'
import { runConfigtest } from './configtest'
import { runExplain } from './explain'
import { runHealth } from './health'
import { runMessage } from './message'
import { runSign } from './sign'
import { HELP } from './help'
import { EXIT, PROG, processIo, UsageError, type Io } from './io'
import { quote } from './table'

export { EXIT, type Io } from './io'

type Run = (values: Values, positionals: readonly string[], io: Io) => Promise<number>

const RUN: Record<Exclude<CommandName, 'help'>, Run> = {
  check: runCheck,
  health: runHealth,
  explain: runExplain,
  sign: runSign,
  configtest: runConfigtest,
  message: runMessage,
  audit: runAudit,
}

/** `haraka-backscatter 1.2.0`: the package's version, from its package.json. */
function versionText(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
    version?: unknown
  }
  return `${PROG} ${String(pkg.version)}\n`
}

/** `help [COMMAND]`: the main help, or a command's. */
function runHelp(positionals: readonly string[], io: Io): number {
  const topic = positionals[0]
  if (topic !== undefined && (topic === 'help' || !Object.hasOwn(RUN, topic))) {
    throw new UsageError(`unknown command ${quote(topic)}`)
  }
  io.out(HELP[(topic as keyof typeof RUN | undefined) ?? 'main'])
  return EXIT.OK
}

/**
 * Run the command with `args` (the arguments after the program name) and
 * return the exit status. Never throws.
 */
export async function main(args: readonly string[], io: Io = processIo): Promise<number> {
  let command: CommandName | undefined
  try {
    const line = parseCommandLine(args)
    command = line.command
    if (line.values.version) {
      io.out(versionText())
      return EXIT.OK
    }
    if (command === 'help') return runHelp(line.positionals, io)
    if (command === undefined) {
      if (line.values.help) return runHelp([], io)
      throw new UsageError('no command given')
    }
    if (line.values.help) {
      io.out(HELP[command])
      return EXIT.OK
    }
    return await RUN[command](line.values, line.positionals, io)
  } catch (err) {
    if (err instanceof UsageError) {
      const where = err.command || (command === 'help' ? '' : (command ?? ''))
      io.err(`${PROG}${where ? ` ${where}` : ''}: ${err.message}\n`)
      io.err(`Try '${PROG}${where ? ` ${where}` : ''} --help'.\n`)
      return EXIT.UNKNOWN
    }
    io.err(`${PROG}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return EXIT.UNKNOWN
  }
}
