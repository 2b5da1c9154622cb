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

/** Exit statuses, as documented in --help. */
export const EXIT = { OK: 0, PROBLEM: 1, USAGE: 2 } as const

/** Bad arguments or configuration: a message and exit status 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command = '',
  ) {
    super(message)
  }
}
