// Errors in a few words, for a log line or the command's stderr.
import { getSystemErrorMap } from 'node:util'

/**
 * An error in a few words: a system error (file, socket) as the operating
 * system's reason and its code, `no such file or directory (ENOENT)`, never
 * the path or address, which the caller names; any other error by its
 * message; anything else thrown as its text.
 */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown } | null | undefined
  if (typeof e?.message !== 'string') return String(err)
  // A zlib error has an errno too, from another table: the code must agree.
  const system = typeof e.errno === 'number' ? getSystemErrorMap().get(e.errno) : undefined
  return system && system[0] === e.code ? `${system[1]} (${e.code})` : e.message
}
