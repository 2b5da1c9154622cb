// The sent-mail ledger in Haraka: the Message-ID of mail our users send is
// recorded once it is queued; a message that a machine sends in reply is read
// at the end of DATA, and what it refers to is looked up.
import { get_primary_host_name } from 'haraka-net-utils'

import { readMessagePrefix, type MessageStream } from './message-prefix'
import type { LedgerAnswer, Ledger } from '../ledger/ledger'
import { messageIds } from '../ledger/reply/message-id'
import { MAX_REPLY_BYTES, readReply } from '../ledger/reply/read'
import { isNullSender, type EnvelopeAddress } from '../core/sender'
import type { LedgerSettings, ReplyKind } from '../core/types'

/** The headers of a received message, as Haraka parsed them (raw values). */
export interface Header {
  get(name: string): string
  get_all(name: string): readonly string[]
}

export interface LedgerTransaction {
  uuid: string
  header: Header
  message_stream: MessageStream
  mail_from: EnvelopeAddress | null | undefined
  add_header(name: string, value: string): void
  remove_header(name: string): void
}

/**
 * The Message-ID a relayed message leaves with. Haraka's outbound adds one only
 * after the queue hooks, and mail that leaves by smtp_forward gets none from
 * Haraka; so one is added here, in Haraka's own form, and it is the one recorded.
 */
export function outgoingMessageId(txn: LedgerTransaction): string {
  // Read as a bounce's reference is read (a bare left@right too), so that the two meet in the ledger.
  const written = txn.header.get('Message-ID')
  const present = messageIds(written)[0]
  if (present) return present
  // One that is no ID, under the client's own DKIM signature: rewriting it would break the
  // signature, so it leaves as written, unrecorded ('').
  if (written.trim() && txn.header.get('DKIM-Signature').trim()) return ''
  const id = `<${txn.uuid}@${get_primary_host_name()}>`
  txn.remove_header('Message-ID')
  txn.add_header('Message-ID', id)
  return id
}

/** What the ledger made of a message that a machine sent in reply. */
export interface ReplyCheck {
  readonly kind: ReplyKind
  readonly references: readonly string[]
  readonly answer: LedgerAnswer
}

/**
 * Read a message that the envelope or its headers show a machine sent (the
 * caller has asked mayBeMachineReply), and ask the ledger about what it refers
 * to. Undefined: nothing in it a machine replies with. The read and the lookup
 * are each bounded by the ledger's timeout.
 */
export async function checkReply(
  txn: LedgerTransaction,
  ledger: Ledger,
  timeoutMs: number,
): Promise<ReplyCheck | undefined> {
  const raw = await readMessagePrefix(txn.message_stream, MAX_REPLY_BYTES, timeoutMs)
  const nullSender = txn.mail_from ? isNullSender(txn.mail_from) : undefined
  const { kind, references, truncated } = await readReply(raw, { nullSender })
  if (kind === 'none') return undefined
  // A message naming more than were looked up: what was not looked up may be ours.
  const answer = await ledger.check(references, { complete: !truncated })
  return { kind, references, answer }
}

/** Can a ledger made for `a` serve `b`? The same Redis, key, window and bound: then a reload keeps its connection. */
export function sameLedger(a: LedgerSettings, b: LedgerSettings): boolean {
  const sameKey = a.key && b.key ? a.key.equals(b.key) : a.key === b.key
  return sameKey && a.redisUrl === b.redisUrl && a.windowDays === b.windowDays && a.timeoutMs === b.timeoutMs
}
