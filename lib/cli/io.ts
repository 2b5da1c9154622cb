// Where the command writes, and how it ends.

/** Where the command writes; tests and the bin script pass their own. */
export interface Io {
  out(text: string): void
  err(text: string): void
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
}

export const PROG = 'haraka-backscatter'

/**
 * Exit statuses, as monitoring plugins (Nagios, Icinga, monitoring-plugins)
 * use them, so that `health` can be a monitoring check as it is; every command
 * keeps to them. Documented in --help and docs/command.md.
 */
export const EXIT = {
  /** Every zone usable, every lookup answered. */
  OK: 0,
  /** Something to look at while the plugin works on: a zone in use that fails a test point, a failed lookup, a stale zone file. */
  WARNING: 1,
  /** A zone is unusable, so the plugin does not use it. */
  CRITICAL: 2,
  /** Nothing could be judged: bad usage, an unreadable --config, an internal error. */
  UNKNOWN: 3,
} as const

/** Bad arguments or configuration: a message and exit status 3 (UNKNOWN). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command = '',
  ) {
    super(message)
  }
}
