/** Placeholders `[main] message` may use. */
export const PLACEHOLDERS = ['ip', 'zone', 'reason', 'url', 'score'] as const
export type Placeholder = (typeof PLACEHOLDERS)[number]

/** A reply template split at its placeholders, once, when the config is read. */
export type Template = readonly (string | { readonly key: Placeholder })[]

const PLACEHOLDER = new RegExp(`\\{(${PLACEHOLDERS.join('|')})\\}`, 'g')

export function parseTemplate(text: string): Template {
  const parts: (string | { key: Placeholder })[] = []
  let from = 0
  for (const m of text.matchAll(PLACEHOLDER)) {
    parts.push(text.slice(from, m.index), { key: m[1] as Placeholder })
    from = m.index + m[0].length
  }
  parts.push(text.slice(from))
  return Object.freeze(parts)
}

/** Fill in the values in one pass, so a value that contains "{zone}" is not expanded again. */
export function fillTemplate(template: Template, values: Readonly<Record<Placeholder, string>>): string {
  let text = ''
  for (const part of template) text += typeof part === 'string' ? part : values[part.key]
  return text
}
