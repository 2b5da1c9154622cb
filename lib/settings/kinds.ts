// The kinds of value a setting can hold: how each is read from what haraka-config
// delivers (a string, a number, or an array for `key[]`), and how it is written back.

/** A value read from the ini, or why it cannot be used; `notes` report list items dropped. */
export type Reading<T> =
  | { readonly ok: true; readonly value: T; readonly notes: readonly string[] }
  | { readonly ok: false; readonly why: string; readonly notes: readonly string[] }

export interface Kind<T> {
  read(raw: unknown): Reading<T>
  /** The value as written in the ini file (and in log lines). */
  format(value: T): string
  /** Bounds of a number, inclusive. */
  readonly range?: { readonly min: number; readonly max: number; readonly integer: boolean }
}

/** One setting: its kind, default and a line of documentation. */
export interface Setting<T> {
  readonly kind: Kind<T>
  readonly default: T
  readonly doc: string
  /** Used instead of the default for an invalid value, where the default would refuse more. */
  readonly onInvalid?: T
  /** An invalid value changes what is refused: report it at error level. */
  readonly severity?: 'error'
  /** Free text: `;` and `#` belong to the value, they never start a comment. */
  readonly freeText?: true
  /** What an empty value does, for the line that says an invalid value falls back to empty (e.g. "metrics stay off"). */
  readonly emptyMeans?: string
}

export function setting<T>(
  kind: Kind<T>,
  // T comes from the kind alone: a default of 'reject' must not widen oneOf(...) to string.
  def: NoInfer<T>,
  doc: string,
  options: Pick<Setting<NoInfer<T>>, 'onInvalid' | 'severity' | 'freeText' | 'emptyMeans'> = {},
): Setting<T> {
  return Object.freeze({ kind, default: def, doc, ...options })
}

const ok = <T>(value: T, notes: readonly string[] = []): Reading<T> => ({ ok: true, value, notes })
const bad = <T>(why: string, notes: readonly string[] = []): Reading<T> => ({ ok: false, why, notes })

function text(raw: unknown): string {
  return Array.isArray(raw) ? raw.join(',') : String(raw).trim()
}

// A value haraka-config did not turn into a number reads as NaN when empty, not as 0.
function toNumber(raw: unknown): number {
  return typeof raw === 'number' ? raw : String(raw).trim() === '' ? NaN : Number(raw)
}

export function boolean(): Kind<boolean> {
  return {
    read(raw) {
      if (typeof raw === 'boolean') return ok(raw)
      const word = String(raw).trim().toLowerCase()
      if (['true', 'yes', 'on', '1'].includes(word)) return ok(true)
      if (['false', 'no', 'off', '0'].includes(word)) return ok(false)
      return bad(`"${String(raw)}" is not true or false`)
    },
    format: String,
  }
}

export function number(min: number, max: number, options: { integer?: boolean } = {}): Kind<number> {
  const integer = options.integer ?? false
  return {
    read(raw) {
      const n = toNumber(raw)
      if (!Number.isFinite(n) || (integer && !Number.isInteger(n)))
        return bad(`"${String(raw)}" is not a${integer ? ' whole' : ''} number`)
      if (n < min || n > max) return bad(`${n} is outside ${min}..${max}`)
      return ok(n)
    },
    format: String,
    range: { min, max, integer },
  }
}

export const integer = (min: number, max: number): Kind<number> => number(min, max, { integer: true })

/** One of a few words, any letter case. */
export function oneOf<const W extends string>(words: readonly W[]): Kind<W> {
  const listed = words.slice(0, -1).join(', ') + ` or ${words.at(-1) ?? ''}`
  return {
    read(raw) {
      const word = text(raw).toLowerCase()
      return (words as readonly string[]).includes(word)
        ? ok(word as W)
        : bad(`"${text(raw)}" is not ${listed}`)
    },
    format: String,
  }
}

/** Text; `check` says why a value cannot be used. */
export function textOf(check: (value: string) => string | undefined = () => undefined): Kind<string> {
  return {
    read(raw) {
      const value = text(raw)
      const why = check(value)
      return why === undefined ? ok(value) : bad(why)
    },
    format: String,
  }
}

/** What a list item is read as, or the line that says why it is dropped. */
/** A list item: kept (with a line to log, when it needs saying), or dropped with the reason. */
export type Item = { readonly value: string; readonly note?: string } | { readonly drop: string }

/** A comma or space separated list, or an ini `key[]` array; bad items are dropped with a note. */
export function list(
  item: (raw: string) => Item = (raw) => ({ value: raw }),
  options: { noteTwice?: boolean; noneUsable?: string } = {},
): Kind<readonly string[]> {
  return {
    read(raw) {
      const notes: string[] = []
      const values: string[] = []
      const words = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => String(v).split(/[\s,;]+/))
      for (const word of words.filter((w) => w !== '')) {
        const got = item(word)
        if ('drop' in got) notes.push(got.drop)
        else if (!values.includes(got.value)) {
          values.push(got.value)
          if (got.note) notes.push(got.note)
        } else if (options.noteTwice) notes.push(`"${word}" is named twice`)
      }
      if (values.length === 0 && options.noneUsable) return bad(options.noneUsable, notes)
      return ok(values, notes)
    },
    format: (values) => values.join(', '),
  }
}

// Whitespace then `;` or `#` starts a comment; so does either at the start of a value.
const TRAILING_COMMENT = /(?:^|\s)[;#].*$/s

/** The value with an ini comment after it removed (haraka-config keeps it). */
export function withoutComment(raw: unknown): unknown {
  if (typeof raw === 'string') return raw.replace(TRAILING_COMMENT, '').trim()
  if (Array.isArray(raw)) return raw.map(withoutComment)
  return raw
}
