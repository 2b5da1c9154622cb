// `haraka-backscatter message FILE...`: what the plugin would make of saved
// mail as a machine's reply, its kind and the Message-IDs it refers to, read
// by the same readReply; with --config, the ledger's answer for each of them.
// Operators and tests run it over folders of mail.
import fs from 'node:fs/promises'

import { describeError } from '../core/error'
import { MAX_REPLY_BYTES, readReply, type ReplyKind } from '../ledger/reply/read'
import { stringOption, type Values } from './args'
import { loadConfig } from './config'
import { EXIT, PROG, UsageError, type Io } from './io'
import { ledgerAsker, type ReferenceAnswers } from './ledger'

export type { ReferenceAnswers } from './ledger'

/** One file's line of `--json` output. */
export interface MessageOutput {
  readonly file: string
  readonly kind: ReplyKind
  readonly references: readonly string[]
  /** The ledger's answer per reference (ours, not-ours, unknown), where the ledger answered. */
  readonly ledger?: Readonly<Record<string, string>>
}

const noLedger: ReferenceAnswers = () => Promise.resolve(undefined)

/** The first `maxBytes` of a file: all that readReply parses, so a huge file is never loaded whole. */
async function readPrefix(file: string, maxBytes: number): Promise<Buffer> {
  const handle = await fs.open(file, 'r')
  try {
    const buffer = Buffer.alloc(maxBytes)
    const { bytesRead } = await handle.read(buffer, 0, maxBytes, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/** `FILE: KIND <id> <id>`, each reference followed by the ledger's answer when there is one. */
function textLine(out: MessageOutput): string {
  const refs = out.references.map((id) => (out.ledger?.[id] ? `${id} ${out.ledger[id]}` : id))
  return `${out.file}: ${[out.kind, ...refs].join(' ')}\n`
}

/**
 * `message FILE... [--config DIR]`: with --config and [ledger] on, each
 * reference's answer from the ledger. When it cannot answer, one line on
 * stderr, the files still read, and WARNING, as for a failed lookup.
 * `answers` stands in for the ledger (tests).
 */
export async function runMessage(
  values: Values,
  positionals: readonly string[],
  io: Io,
  answers?: ReferenceAnswers,
): Promise<number> {
  if (positionals.length === 0) throw new UsageError('give one or more message FILEs', 'message')
  const option = stringOption(values, 'config')
  const ledger = option === undefined ? undefined : loadConfig(option, io).settings.ledger
  if (answers || !ledger) return readFiles(values, positionals, io, answers ?? noLedger)
  if (ledger.mode === 'off') {
    io.err(`${PROG} message: note: [ledger] mode is off: references are not looked up\n`)
    return readFiles(values, positionals, io, noLedger)
  }
  let fault = false
  const asker = ledgerAsker(
    ledger,
    (text) => {
      fault = true
      io.err(`${PROG} message: ledger: ${text}; kinds and references printed without its answers\n`)
    },
    (text) => io.err(`${PROG} message: note: ${text}\n`),
  )
  try {
    const status = await readFiles(values, positionals, io, asker.answers)
    return fault ? Math.max(status, EXIT.WARNING) : status
  } finally {
    await asker.close()
  }
}

async function readFiles(
  values: Values,
  positionals: readonly string[],
  io: Io,
  answers: ReferenceAnswers,
): Promise<number> {
  let unreadable = 0
  for (const file of positionals) {
    let raw: Buffer
    try {
      raw = await readPrefix(file, MAX_REPLY_BYTES)
    } catch (err) {
      io.err(`${PROG} message: ${file}: ${describeError(err)}\n`)
      unreadable++
      continue
    }
    const { kind, references } = await readReply(raw)
    const ledger = references.length ? await answers(references) : undefined
    const out: MessageOutput = { file, kind, references, ...(ledger ? { ledger } : {}) }
    io.out(values.json ? `${JSON.stringify(out)}\n` : textLine(out))
  }
  // A file that cannot be read is judged as nothing: UNKNOWN, as an unreadable --config is.
  return unreadable ? EXIT.UNKNOWN : EXIT.OK
}
