// Finding the Debian programs some tests use; a test whose program is missing says so and skips.
import fs from 'node:fs'
import path from 'node:path'

/** The path of program `name` (PATH, then the sbin folders), or undefined when it is not installed. */
export function findProgram(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(path.delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/usr/local/sbin',
    '/usr/local/bin',
    '/sbin',
  ]
  for (const dir of dirs) {
    if (!dir) continue
    const p = path.join(dir, name)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      // next
    }
  }
  return undefined
}
