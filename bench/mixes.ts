// The benchmark's mixes of transactions: who sends, to whom, which message,
// and on which servers each mix runs.
import { LOCAL_DOMAIN } from '../test/support/haraka'
import { clientIp, isListed } from './common'
import type { TxnSpec } from './loadgen'
import type { ServerName } from './servers'

export type MixName = 'ordinary' | 'cached' | 'uncached' | 'relay' | 'replies'

export const MIX_NAMES: readonly MixName[] = ['ordinary', 'cached', 'uncached', 'relay', 'replies']

export const MIX_LABEL: Record<MixName, string> = {
  ordinary: 'ordinary mail, a new client address each',
  cached: 'bounces (<>) from 20 client addresses in turn, 2 listed: cached',
  uncached: 'bounces (<>), a new client address each, 10 % listed: not cached',
  relay: 'mail relayed out by a relay-allowed client (127.0.0.1), a new Message-ID each',
  replies: 'delivery reports (<>) returning a message, from 20 client addresses in turn: cached',
}

/**
 * The servers a mix runs on (those of BENCH_SERVERS among them). The ledger
 * changes nothing for bounces it does not read, so it runs only where it works
 * (relayed mail, replies) and on ordinary mail, which it must leave alone; the
 * zone file changes only lookups, so it runs only where the plugin looks up.
 */
export const MIX_SERVERS: Record<MixName, readonly ServerName[]> = {
  ordinary: ['none', 'noop', 'backscatter', 'zonefile', 'ledger', 'baseline'],
  cached: ['none', 'noop', 'backscatter', 'zonefile', 'baseline'],
  uncached: ['none', 'noop', 'backscatter', 'zonefile', 'baseline'],
  relay: ['none', 'noop', 'backscatter', 'ledger', 'baseline'],
  replies: ['noop', 'backscatter', 'ledger', 'baseline'],
}

const crlf = (lines: readonly string[]): string => lines.join('\r\n')

/** A person's mail: nothing in it says a machine sent it, so the ledger never reads it. */
function ordinaryMessage(messageId: string, from: string, to: string): string {
  return crlf([
    `From: Someone <${from}>`,
    `To: ${to}`,
    'Subject: Lunch on Thursday',
    `Message-ID: ${messageId}`,
    '',
    'Are we still on for Thursday? The usual place at noon.',
    '',
  ])
}

/** A bounce without a report: its sender and subject say it is one; it returns nothing. */
const BOUNCE = crlf([
  'From: Mail Delivery System <MAILER-DAEMON@mx.sender.example>',
  `To: user@${LOCAL_DOMAIN}`,
  'Subject: Undelivered Mail Returned to Sender',
  'Message-ID: <bench@mx.sender.example>',
  '',
  'This is the mail system at host mx.sender.example.',
  '',
])

/** An RFC 3464 delivery report returning the message `original` (the ledger reads it and looks that ID up). */
function deliveryReport(messageId: string, original: string): string {
  return crlf([
    'From: Mail Delivery System <MAILER-DAEMON@mx.sender.example>',
    `To: user@${LOCAL_DOMAIN}`,
    'Subject: Undelivered Mail Returned to Sender',
    `Message-ID: ${messageId}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'This is the mail system at host mx.sender.example. Your message could not be delivered.',
    '',
    '--b1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.sender.example',
    '',
    'Final-Recipient: rfc822; nobody@sender.example',
    'Action: failed',
    'Status: 5.1.1',
    '',
    '--b1',
    'Content-Type: message/rfc822',
    '',
    `From: user@${LOCAL_DOMAIN}`,
    'To: nobody@sender.example',
    'Subject: Lunch on Thursday',
    `Message-ID: ${original}`,
    '',
    'Are we still on for Thursday?',
    '',
    '--b1--',
    '',
  ])
}

/** 20 addresses in turn, 2 of them listed, from `seed` on: after the warm-up every answer is cached. */
function cachedPool(seed: number): string[] {
  const listed: string[] = []
  const unlisted: string[] = []
  for (let k = seed; listed.length < 2 || unlisted.length < 18; k++) {
    const ip = clientIp(k)
    if (isListed(ip)) {
      if (listed.length < 2) listed.push(ip)
    } else if (unlisted.length < 18) unlisted.push(ip)
  }
  return [listed[0], ...unlisted.slice(0, 9), listed[1], ...unlisted.slice(9)] as string[]
}

/** The transactions of a mix; `seed` gives every server and mix addresses and Message-IDs of its own. */
export function transactions(mix: MixName, seed: number): () => TxnSpec {
  const user = `user@${LOCAL_DOMAIN}`
  let i = seed
  switch (mix) {
    case 'ordinary':
      return () => {
        const from = 'someone@sender.example'
        return {
          ip: clientIp(i),
          from,
          to: user,
          data: ordinaryMessage(`<${i++}@sender.example>`, from, user),
        }
      }
    case 'uncached':
      return () => ({ ip: clientIp(i++), from: '', to: user, data: BOUNCE })
    case 'cached': {
      const pool = cachedPool(seed)
      return () => ({ ip: pool[i++ % pool.length] as string, from: '', to: user, data: BOUNCE })
    }
    case 'relay':
      return () => {
        const to = 'friend@remote.example'
        return { from: user, to, data: ordinaryMessage(`<${i++}@${LOCAL_DOMAIN}>`, user, to) }
      }
    case 'replies': {
      const pool = cachedPool(seed)
      return () => {
        const n = i++
        return {
          ip: pool[n % pool.length] as string,
          from: '',
          to: user,
          data: deliveryReport(`<${n}@mx.sender.example>`, `<${n}@${LOCAL_DOMAIN}>`),
        }
      }
    }
  }
}
