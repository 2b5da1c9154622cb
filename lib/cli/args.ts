// The command line: which command, its options and its arguments. Options
// may come before or after the command word.
import net from 'node:net'
import { parseArgs } from 'node:util'
import { Address } from '@haraka/email-address'
import { normalize_ip } from 'haraka-net-utils'

import { describeError } from '../core/error'
import { dayStartMs } from '../settings/schema'
import { UsageError } from './io'
import { quote } from './table'

const COMMON_OPTIONS = {
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const

const CONFIGTEST_OPTIONS = {
  config: COMMON_OPTIONS.config,
  help: COMMON_OPTIONS.help,
  version: COMMON_OPTIONS.version,
} as const

const EXPLAIN_OPTIONS = {
  ...COMMON_OPTIONS,
  ip: { type: 'string' },
  from: { type: 'string' },
  rcpt: { type: 'string', multiple: true },
  relaying: { type: 'boolean' },
  date: { type: 'string' },
} as const

const HEALTH_OPTIONS = {
  ...COMMON_OPTIONS,
  'max-age': { type: 'string' },
} as const

const SIGN_OPTIONS = {
  ...COMMON_OPTIONS,
  key: { type: 'string' },
  date: { type: 'string' },
} as const

/** Every option any command takes: enough to tell an option's value from the command word. */
const ALL_OPTIONS = { ...EXPLAIN_OPTIONS, ...HEALTH_OPTIONS, ...SIGN_OPTIONS } as const

const COMMAND_OPTIONS = {
  check: COMMON_OPTIONS,
  health: HEALTH_OPTIONS,
  explain: EXPLAIN_OPTIONS,
  sign: SIGN_OPTIONS,
  configtest: CONFIGTEST_OPTIONS,
  message: COMMON_OPTIONS,
  audit: COMMON_OPTIONS,
  // `help` ignores options, so any command line with `help` put in front works.
  help: ALL_OPTIONS,
} as const

export type CommandName = keyof typeof COMMAND_OPTIONS

export const isCommand = (name: string | undefined): name is CommandName =>
  name !== undefined && Object.hasOwn(COMMAND_OPTIONS, name)

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>

export interface CommandLine {
  /** Undefined when only options were given. */
  readonly command: CommandName | undefined
  readonly values: Values
  readonly positionals: readonly string[]
}

/**
 * Find the command word (the first argument that is neither an option nor an
 * option's value), then parse the rest with that command's options.
 */
export function parseCommandLine(args: readonly string[]): CommandLine {
  const { tokens } = parseArgs({
    args: [...args],
    options: ALL_OPTIONS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  })
  // An option no command takes is named first: its value would pass for the command word.
  const unknown = tokens.find((t) => t.kind === 'option' && !Object.hasOwn(ALL_OPTIONS, t.name))
  if (unknown?.kind === 'option') {
    const command = tokens.find((t) => t.kind === 'positional' && isCommand(t.value))
    const where = command?.kind === 'positional' && command.value !== 'help' ? command.value : ''
    throw new UsageError(`Unknown option '${unknown.rawName}'`, where)
  }
  const word = tokens.find((t) => t.kind === 'positional')
  const name = word?.value
  if (name !== undefined && !isCommand(name)) throw new UsageError(`unknown command ${quote(name)}`)
  const rest = word ? args.filter((_, i) => i !== word.index) : [...args]
  const options = name === undefined ? ALL_OPTIONS : COMMAND_OPTIONS[name]
  try {
    const parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true })
    return { command: name, values: parsed.values as Values, positionals: parsed.positionals }
  } catch (err) {
    throw new UsageError(describeError(err), name === undefined || name === 'help' ? '' : name)
  }
}

export function stringOption(values: Values, key: string): string | undefined {
  const v = values[key]
  return typeof v === 'string' ? v : undefined
}

/** No arguments beyond the options, for the commands that take none. */
export function noArguments(positionals: readonly string[], command: string): void {
  if (positionals.length) throw new UsageError(`unexpected argument ${quote(positionals[0] ?? '')}`, command)
}

/** An IP as the plugin sees it (`::ffff:a.b.c.d` unmapped), or a usage error. */
export function ipArgument(text: string, command: string): string {
  const ip = net.isIP(text) ? normalize_ip(text) : null
  if (!ip) throw new UsageError(`${quote(text)} is not an IP address`, command)
  return ip
}

/**
 * An envelope address from the command line: `<>`, `''`, `user@host`,
 * `<user@host>`, `postmaster`. `what` names it in the message (`--from`).
 */
export function addressArgument(text: string, what: string, command: string): Address {
  const trimmed = text.trim()
  const bracketed = trimmed.startsWith('<') ? trimmed : `<${trimmed}>`
  try {
    return new Address(bracketed)
  } catch (err) {
    throw new UsageError(`${what} ${quote(text)} is not an envelope address: ${describeError(err)}`, command)
  }
}

/** `--date YYYY-MM-DD`: 00:00 UTC of that day, the clock that signs and checks tags; undefined: now. */
export function dateOption(values: Values, command: string): number | undefined {
  const text = stringOption(values, 'date')
  if (text === undefined) return undefined
  const ms = dayStartMs(text)
  if (ms === undefined) throw new UsageError(`--date ${quote(text)} is not a date YYYY-MM-DD`, command)
  return ms
}
