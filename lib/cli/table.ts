// Text output for people: aligned columns and quoted values.
import type { LookupResult } from '../core/types'

/** Rows as aligned columns; the last column is not padded. */
export function table(rows: readonly (readonly string[])[], indent = ''): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows
    .map(
      (row) =>
        indent + row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  '),
    )
    .map((line) => `${line.trimEnd()}\n`)
    .join('')
}

export const quote = (text: string): string => JSON.stringify(text)

/** One DNS answer in a few words: `listed 127.0.0.2 TXT "…"`, `not listed`, `error: timeout`. */
export function lookupText(r: LookupResult): string {
  if (r.status === 'listed') return `listed ${r.codes.join(',')}${r.reason ? ` TXT ${quote(r.reason)}` : ''}`
  if (r.status === 'not-listed') return 'not listed'
  return `error: ${r.reason}`
}
