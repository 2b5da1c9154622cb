// `haraka-backscatter message FILE...`: what the plugin would make of saved
// mail as a machine's reply, its kind and the Message-IDs it refers to, read
// by the same readReply. Operators and tests run it over folders of mail.
import fs from 'node:fs/promises'

import { describeError } from '../core/error'
import { MAX_REPLY_BYTES, readReply, type ReplyKind } from '../ledger/reply/read'
import type { Values } from './args'
import { EXIT, PROG, UsageError, type Io } from './io'

/** One file's line of `--json` output. */
export interface MessageOutput {
  readonly file: string
  readonly kind: ReplyKind
  readonly references: readonly string[]
  /** The ledger's answer per reference, where a ledger was asked (see `ReferenceAnswers`). */
  readonly ledger?: Readonly<Record<string, string>>
}

/**
 * The ledger's answer for each reference found, or undefined when no ledger
 * was asked. The seam for `--config DIR` ledger lookups; without one, none.
 */
export type ReferenceAnswers = (references: readonly string[]) => Promise<Record<string, string> | undefined>

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

export async function runMessage(
  values: Values,
  positionals: readonly string[],
  io: Io,
  answers: ReferenceAnswers = noLedger,
): Promise<number> {
  if (positionals.length === 0) throw new UsageError('give one or more message FILEs', 'message')
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
