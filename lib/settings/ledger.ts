// [ledger] made usable: the mode in effect and the HMAC key made from the
// `ledger = secret` line of config/backscatter.keys. Without a usable key the
// ledger is off, with one error naming the fix; no line ever quotes the secret.
import crypto from 'node:crypto'

import { KEYS_FILE, type ConfigProblem, type KeysFileSecrets } from '../batv/keys-file'
import type { LedgerSettings } from '../core/types'
import type { SECTIONS, SectionValues } from './schema'

/** Fewer bytes than this make a key that someone holding the ledger could guess. */
export const MIN_LEDGER_SECRET_BYTES = 16

const MAKE_ONE = `add a line "ledger = <secret>" to config/${KEYS_FILE}, e.g. the output of openssl rand -hex 32`

type LedgerValues = SectionValues<typeof SECTIONS.ledger.keys>

export interface LedgerReading {
  readonly ledger: LedgerSettings
  readonly errors: readonly string[]
  /** Problems of config/backscatter.keys met while reading the ledger's key. */
  readonly keyProblems: readonly ConfigProblem[]
}

/** [ledger] as the plugin uses it; the keys file is read only when the mode is not off. */
export function readLedger(
  values: LedgerValues,
  keysFile: (() => KeysFileSecrets) | undefined,
): LedgerReading {
  const errors: string[] = []
  const keyProblems: ConfigProblem[] = []
  const make = (key: crypto.KeyObject | undefined): LedgerSettings =>
    Object.freeze({
      mode: key ? values.mode : 'off',
      redisUrl: values.redis_url,
      windowDays: values.window_days,
      timeoutMs: values.timeout_ms,
      scores: Object.freeze({ ours: values.ours_score, notOurs: values.not_ours_score }),
      key,
    })
  if (values.mode === 'off') return { ledger: make(undefined), errors, keyProblems }

  const read = keysFile?.()
  keyProblems.push(...(read?.problems ?? []))
  const written = read?.ledger
  if (!written) {
    errors.push(
      `[ledger] mode: no ledger key in config/${KEYS_FILE}; the ledger is off, mail flows (${MAKE_ONE})`,
    )
    return { ledger: make(undefined), errors, keyProblems }
  }
  const bytes = Buffer.byteLength(written.secret, 'utf8')
  if (bytes < MIN_LEDGER_SECRET_BYTES) {
    keyProblems.push({
      severity: 'error',
      file: written.file,
      line: written.line,
      text: `the ledger secret is ${bytes} bytes long, fewer than ${MIN_LEDGER_SECRET_BYTES}; left out`,
    })
    errors.push(
      `[ledger] mode: no usable ledger key in config/${KEYS_FILE}; the ledger is off, mail flows (${MAKE_ONE})`,
    )
    return { ledger: make(undefined), errors, keyProblems }
  }
  return { ledger: make(crypto.createSecretKey(Buffer.from(written.secret, 'utf8'))), errors, keyProblems }
}
