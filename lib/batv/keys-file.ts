// config/backscatter.keys: the BATV secrets, one `N=secret` a line, and the
// sent-mail ledger's secret, a line `ledger=secret`. Only this
// parser reads the file, never haraka-config's ini reader, so a mistyped line
// is reported by its number and never shown: it may hold a secret. The files
// that held keys before it are read as lines through the same reader.
import fs from 'node:fs'
import path from 'node:path'

import { describeError } from '../core/error'

/** The keys file's name in Haraka's config folder. */
export const KEYS_FILE = 'backscatter.keys'

/** A problem found in a config file, for the log and for configtest. Its text never quotes a secret. */
export interface ConfigProblem {
  readonly severity: 'error' | 'warning'
  /** The file's name in Haraka's config folder, e.g. `backscatter.keys`. */
  readonly file: string
  /** 1-based; undefined: the problem is about the whole file. */
  readonly line?: number
  readonly text: string
}

/** A secret as written, and where it was written. */
export interface WrittenSecret {
  readonly secret: string
  readonly file: string
  readonly line: number
}

/** The keys file's lines and permission bits, or why it cannot be read. */
export type KeysFileText =
  { readonly lines: readonly string[]; readonly mode?: number } | { readonly error: string }

/** Reads config/backscatter.keys; undefined: there is no such file. */
export type ReadKeysFile = () => KeysFileText | undefined

const BLANK = /^[ \t]*$/
const COMMENT = /^[ \t]*#/
// Spaces and tabs around the = are allowed; the secret is the rest of the line,
// without the spaces and tabs at its ends. Nothing in it is special: not #, ;, = nor \.
const KEY_LINE = /^[ \t]*(\d|ledger)[ \t]*=[ \t]*(.*?)[ \t]*$/i

/** The name of the ledger's key in the file. */
export const LEDGER_KEY_NAME = 'ledger'

/** Why a line is not `N=secret`, in words that quote nothing of it. */
function malformed(text: string): string {
  const t = text.trim()
  if (t.startsWith('[') && t.endsWith(']')) return 'a section heading: this file holds N=secret lines only'
  if (t.startsWith(';')) return 'comments start with #, not ;'
  if (!t.includes('=')) return 'no "=": each line is N=secret'
  return 'not N=secret with a key number 0-9'
}

/** What a keys file holds. */
export interface KeysFileSecrets {
  /** The BATV secrets by key number. */
  readonly secrets: Map<number, WrittenSecret>
  /** The ledger's secret, `ledger=secret`. */
  readonly ledger: WrittenSecret | undefined
  readonly problems: ConfigProblem[]
}

/**
 * The secrets of a keys file's lines: the BATV keys by number, the ledger's,
 * and one problem per line that is neither `N=secret` nor `ledger=secret`.
 */
export function parseKeysFile(lines: readonly string[], file = KEYS_FILE): KeysFileSecrets {
  const secrets = new Map<number, WrittenSecret>()
  const problems: ConfigProblem[] = []
  let ledger: WrittenSecret | undefined
  lines.forEach((raw, i) => {
    // An editor's byte order mark is not part of the first key.
    const text = i === 0 ? raw.replace(/^\uFEFF/, '') : raw
    if (BLANK.test(text) || COMMENT.test(text)) return
    const line = i + 1
    const m = KEY_LINE.exec(text)
    if (!m) {
      problems.push({ severity: 'error', file, line, text: `${malformed(text)}; line ignored, not shown` })
      return
    }
    if (m[1]?.toLowerCase() === LEDGER_KEY_NAME) {
      if (ledger) {
        const text = `the ledger key is given again (first on line ${ledger.line}); this line's is used`
        problems.push({ severity: 'warning', file, line, text })
      }
      ledger = { secret: m[2] ?? '', file, line }
      return
    }
    const id = Number(m[1])
    const first = secrets.get(id)
    if (first) {
      problems.push({
        severity: 'warning',
        file,
        line,
        text: `key ${id} is given again (first on line ${first.line}); this line's is used`,
      })
    }
    secrets.set(id, { secret: m[2] ?? '', file, line })
  })
  return { secrets, ledger, problems }
}

const NO_SECRETS: KeysFileSecrets = { secrets: new Map(), ledger: undefined, problems: [] }

/** The secrets of config/backscatter.keys as `readKeysFile` finds it, with the file's own problems. */
export function readKeysFileSecrets(readKeysFile: ReadKeysFile | undefined): KeysFileSecrets {
  const text = readKeysFile?.()
  if (text === undefined) return NO_SECRETS
  if ('error' in text)
    return {
      ...NO_SECRETS,
      problems: [{ severity: 'error', file: KEYS_FILE, text: `cannot read it: ${text.error}` }],
    }
  const mode = text.mode === undefined ? undefined : modeProblem(text.mode)
  const read = parseKeysFile(text.lines)
  return { ...read, problems: [...(mode ? [mode] : []), ...read.problems] }
}

/**
 * config/backscatter.keys read at most once, for every section that needs a
 * secret of it (BATV, the ledger): its problems come with the first reading only.
 */
export function keysFileOnce(readKeysFile: ReadKeysFile | undefined): () => KeysFileSecrets {
  let read: KeysFileSecrets | undefined
  return () => {
    if (read) return { ...read, problems: [] }
    read = readKeysFileSecrets(readKeysFile)
    return read
  }
}

/** Reads a file of Haraka's config folder as its lines (haraka-config's `data` type), or says why it cannot. */
export type ReadConfigLines = (name: string) => readonly string[] | { readonly error: string }

/** A ReadConfigLines over haraka-config's `get(name, 'data')`; never throws (a bad name is an error value). */
export function configLinesReader(getData: (name: string) => unknown): ReadConfigLines {
  return (name) => {
    try {
      const lines = getData(name)
      return Array.isArray(lines) ? lines.map(String) : { error: 'not readable as text' }
    } catch (err) {
      return { error: describeError(err) }
    }
  }
}

/** A warning when group or others may read the file (`mode & 0o077`), as ssh gives for a private key. */
export function modeProblem(mode: number, file = KEYS_FILE): ConfigProblem | undefined {
  if ((mode & 0o077) === 0) return undefined
  const octal = (mode & 0o7777).toString(8).padStart(4, '0')
  return {
    severity: 'warning',
    file,
    text: `mode ${octal}: group or others can read the BATV secrets; make it readable by the Haraka user only (chmod 600)`,
  }
}

/**
 * A ReadKeysFile over the first of `dirs` that holds the file (the
 * deployment's config folder, then the package's), its lines read through
 * `getData`: haraka-config's `data` type, which also watches the file, so an
 * edit (or the file's creation) reloads the settings.
 */
export function keysFileReader(
  dirs: readonly (string | undefined)[],
  getData: (name: string) => unknown,
): ReadKeysFile {
  return () => {
    // Asked for even when there is no file, so that one created later is watched and read.
    const lines = configLinesReader(getData)(KEYS_FILE)
    const text: KeysFileText = 'error' in lines ? lines : { lines }
    for (const dir of dirs) {
      if (!dir) continue
      const file = path.join(dir, KEYS_FILE)
      let stat: fs.Stats
      try {
        stat = fs.statSync(file)
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ENOENT') continue
        return { error: describeError(err) }
      }
      if (!stat.isFile()) return { error: 'not a regular file' }
      try {
        fs.accessSync(file, fs.constants.R_OK)
      } catch (err) {
        return { error: describeError(err) }
      }
      return 'lines' in text ? { lines: text.lines, mode: stat.mode } : text
    }
    return undefined
  }
}
