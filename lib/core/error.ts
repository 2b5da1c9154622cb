// Errors in a few words, for a log line or the command's stderr.

// Node's text of a system error: `ENOENT: no such file or directory, open '/path'`.
const SYSTEM_ERROR = /^(E[A-Z0-9]+): (.+?)(?:, [a-z_]+(?: '.*')?)?$/s

/**
 * An error in a few words: a system error as the operating system's reason and
 * its code, `no such file or directory (ENOENT)` (the caller names the path);
 * any other error by its message; anything else thrown as its text.
 */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null | undefined
  if (typeof e?.message !== 'string') return String(err)
  const m = typeof e.code === 'string' ? SYSTEM_ERROR.exec(e.message) : null
  return m && m[1] === e.code ? `${m[2]} (${e.code})` : e.message
}
