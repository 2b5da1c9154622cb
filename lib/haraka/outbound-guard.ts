// The outbound guard in Haraka: at data_post, while the SMTP session is there to
// ask, write where the message came from into transaction.notes (the queue file
// keeps them); at the outbound `bounce` hook, judge Haraka's DSN by them. The
// hook answers at once and lets the DSN go on any error: a hook that hangs or
// throws would make Haraka drop the DSN silently.
import constants from 'haraka-constants'

import { connectionProvenance, type ClientConnection } from './client'
import { judgeBounce, PROVENANCE_NOTE, type GuardJudgement } from '../core/outbound-guard'
import type { OutboundGuardSettings, Settings } from '../core/types'
import type { BackscatterMetrics } from '../metrics/metrics'

type Next = (code?: number, msg?: unknown) => void

/** The plugin as the guard uses it (the Plugin instance of plugin.ts). */
interface GuardPlugin {
  backscatter?: { settings: Settings; metrics: BackscatterMetrics }
  loginfo(msg: string): void
  logerror(msg: string): void
}

/** What the guard reads of a connection at data_post. */
interface SessionConnection extends ClientConnection {
  transaction?: object | null
  logerror(plugin: unknown, msg: string): void
}

/** What the guard reads of an outbound HMailItem; todo is re-read from the queue file. */
interface HMail {
  todo?: {
    mail_from?: { user?: unknown; host?: unknown } | null
    notes?: Record<string, unknown> | null
  } | null
  loginfo?(plugin: unknown, msg: string): void
  logerror?(plugin: unknown, msg: string): void
}

/** data_post: record the client's provenance in transaction.notes, unless the guard is off. */
export function recordProvenance(plugin: GuardPlugin, connection: SessionConnection): void {
  try {
    const notes = (connection.transaction as { notes?: Record<string, unknown> } | null | undefined)?.notes
    const mode = plugin.backscatter?.settings.outboundGuard.mode
    if (!notes || !mode || mode === 'off') return
    notes[PROVENANCE_NOTE] = connectionProvenance(connection)
  } catch (err) {
    connection.logerror(
      plugin,
      `provenance not recorded, a DSN for this message goes unjudged: ${String(err)}`,
    )
  }
}

function senderText(from: { user?: unknown; host?: unknown } | null | undefined): string {
  const user = typeof from?.user === 'string' ? from.user : ''
  const host = typeof from?.host === 'string' ? from.host : ''
  return user ? `<${user}${host ? `@${host}` : ''}>` : '<>'
}

function decisionText(j: GuardJudgement, guard: OutboundGuardSettings): string {
  const why = j.reasons.join('; ')
  switch (j.decision) {
    case 'suppressed':
      return `suppressed ([outbound_guard] mode = suppress): ${why}`
    case 'would-suppress':
      return `sent, would be suppressed ([outbound_guard] mode = ${guard.mode}): ${why}`
    case 'sent':
      return `sent: ${why}`
    case 'not-judged':
      return `not judged: ${why}`
  }
}

/**
 * Haraka is about to send a DSN for `hmail`. OK discards it (Haraka logs "Not
 * sending bounce" and deletes the queue file); no code lets Haraka send it.
 */
export function hook_bounce(this: GuardPlugin, next: Next, hmail: HMail): void {
  let code: number | undefined
  const log = (level: 'loginfo' | 'logerror', msg: string): void => {
    const method = hmail?.[level]
    if (typeof method === 'function') method.call(hmail, this, msg)
    else this[level](msg)
  }
  try {
    const state = this.backscatter
    const guard = state?.settings.outboundGuard
    if (state && guard && guard.mode !== 'off') {
      const todo = hmail.todo
      const notes = todo?.notes
      const judgement = judgeBounce(
        {
          sender: todo?.mail_from,
          provenance: notes?.[PROVENANCE_NOTE],
          spf: notes?.spf_mail_result,
          dkim: notes?.dkim_results,
        },
        guard,
      )
      log('loginfo', `DSN to ${senderText(todo?.mail_from)} ${decisionText(judgement, guard)}`)
      // Counted once the line is out: a log that throws makes it an error, counted as that alone.
      state.metrics.outboundBounce(judgement.decision)
      if (judgement.decision === 'suppressed') code = constants.OK
    }
  } catch (err) {
    code = undefined
    try {
      this.backscatter?.metrics.outboundBounce('error')
      log('logerror', `DSN not judged, it goes as Haraka decides: ${String(err)}`)
    } catch {
      // Nothing more to say: the DSN still goes.
    }
  }
  next(code)
}
