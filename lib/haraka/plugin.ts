// The Haraka glue: translate hooks to the core and the core's answers to Haraka.
import constants from 'haraka-constants'
import DSN from 'haraka-dsn'

import { keepUnsignedFor, signSender, stripTag, untag, type SignedSender, type Untagged } from './batv-hooks'
import { configLinesReader, keysFileReader } from '../batv/keys-file'
import { clientToCheck, isOwnClient, leftAlone, type SkipKind } from '../core/client'
import { connectionProvenance, type ClientConnection } from './client'
import { restore } from './envelope-rewrite'
import { BackscatterMetrics } from '../metrics/metrics'
import { MeteredChecker } from '../metrics/checker'
import { answerClusterScrapes, clusterExposition, processExposition } from '../metrics/cluster'
import { MetricsEndpoint } from '../metrics/server'
import { recipientPluginsBefore } from './placement'
import { harakaFiles, renewSelfWatching, startSelfWatching, type SelfWatching } from './self-watch'
import type { SelfWatchLog } from '../selfcheck/watch'
import { decideBounceRecipient, tagResultText, tagsCheckedFor } from '../core/recipient'
import { isBounceSender, wireAddress, type EnvelopeAddress } from '../core/sender'
import { withVerdict, type Pending } from './pending'
import { recordProvenance } from './outbound-guard'
import { parseSettings } from '../settings/parse'
import { startupLines } from './startup'
import { decideVerdict, headerValue, ledgerHeaderValue, refusal, refusalText } from '../core/verdict'
import type { Settings, Verdict, ZoneOutcome } from '../core/types'
import { decideAtData, ledgerReplyText, ledgerScore, type DataRecipient } from '../core/data-decision'
import {
  checkReply,
  outgoingMessageId,
  sameLedger,
  type LedgerTransaction,
  type ReplyCheck,
} from './ledger-hooks'
import { Ledger } from '../ledger/ledger'
import { mayBeMachineReply } from '../ledger/reply/markers'
import { notChecked, recipientName } from '../core/recipient'
import { checkBounceRecipient } from '../batv/recipient'

export { hook_bounce } from './outbound-guard'

type Next = (code?: number, msg?: unknown) => void

interface Results {
  add(plugin: unknown, obj: Record<string, unknown>): unknown
  push(plugin: unknown, obj: Record<string, unknown>): unknown
}

interface Transaction extends LedgerTransaction {
  results: Results
  mail_from: EnvelopeAddress | null | undefined
  rcpt_to: readonly EnvelopeAddress[]
}

interface Connection extends ClientConnection {
  transaction: Transaction | null | undefined
  loginfo(plugin: unknown, msg: string): void
  logwarn(plugin: unknown, msg: string): void
  logerror(plugin: unknown, msg: string): void
}

interface HarakaConfig {
  /** The package's config folder (defaults), and the deployment's, which overrides it. */
  root_path?: string
  overrides_path?: string
  get(name: string, cb: () => void): unknown
  get(name: string, type: 'list'): unknown
  get(name: string, type: 'data', cb: () => void): unknown
}

interface State {
  settings: Settings
  checker: MeteredChecker
  /** Keyed by transaction, so an abandoned transaction leaves nothing behind. */
  pending: WeakMap<Transaction, Pending>
  /** This process's counts, kept over reloads. */
  metrics: BackscatterMetrics
  /** Serves /metrics: in single-process Haraka and in a cluster's master, from the init hooks on. */
  endpoint?: MetricsEndpoint
  /** Transactions whose sender was signed at MAIL, with the sender as the client gave it. */
  signed: WeakMap<Transaction, SignedSender>
  /** Recipients whose tag was removed at RCPT: a refused one gets it back (hook_deny). */
  untagged: Untagged
  /** The clock for signing and checking tags (tests set it). */
  now: () => number
  /** The kinds of skipped client already logged: each is logged once per process. */
  skipsLogged: Set<SkipKind>
  /** Set by shutdown(): haraka-config still calls back on an edit, and nothing may start again. */
  shutDown?: boolean
  /** The watch of our own IPs, in the one process that runs it (init_master). */
  selfWatching?: SelfWatching
  /** The sent-mail ledger, when [ledger] mode is not off and it has a key. */
  ledger?: Ledger
  /** Relayed transactions and the Message-ID each leaves with, recorded once queued. */
  outgoing: WeakMap<Transaction, string>
}

/** `this` in every hook: the Haraka Plugin instance these exports are copied onto. */
export interface BackscatterPlugin {
  name: string
  config: HarakaConfig
  loginfo(msg: string): void
  logwarn(msg: string): void
  logerror(msg: string): void
  backscatter?: State
  load_backscatter_ini(): void
}

export function register(this: BackscatterPlugin): void {
  this.load_backscatter_ini()
  const plugins = this.config.get('plugins', 'list')
  const before = recipientPluginsBefore(Array.isArray(plugins) ? plugins.map(String) : [])
  if (before.length) {
    this.logwarn(
      `listed after ${before.join(', ')} in config/plugins: recipients accepted there are never checked; list backscatter before them`,
    )
  }
}

/** Read config/backscatter.ini (again on every edit) and start a checker for it. */
export function load_backscatter_ini(this: BackscatterPlugin): void {
  if (this.backscatter?.shutDown) return
  const reload = (): void => this.load_backscatter_ini()
  const raw = this.config.get('backscatter.ini', reload)
  // The BATV secrets as written: haraka-config's ini values would turn 0123 into 123.
  const getData = (name: string): unknown => this.config.get(name, 'data', reload)
  const readLines = configLinesReader(getData)
  const readKeysFile = keysFileReader([this.config.overrides_path, this.config.root_path], getData)
  const previous = this.backscatter
  const now = previous?.now ?? Date.now
  const { settings, problems, errors, keyProblems, notes } = parseSettings(raw, {
    readLines,
    readKeysFile,
    nowMs: now(),
  })
  for (const error of errors) this.logerror(`config/backscatter.ini ${error}`)
  for (const problem of problems) this.logwarn(`config/backscatter.ini ${problem}`)
  for (const p of keyProblems) {
    const text = `config/${p.file}${p.line ? ` line ${p.line}` : ''}: ${p.text}`
    if (p.severity === 'error') this.logerror(text)
    else this.logwarn(text)
  }
  for (const note of notes) this.loginfo(`config/backscatter.ini ${note}`)

  const metrics = previous?.metrics ?? new BackscatterMetrics()
  // Zones whose DNS and file settings did not change keep their health, cached answers and zone data.
  const checker = new MeteredChecker(
    settings,
    { info: (msg) => this.loginfo(msg), warn: (msg) => this.logwarn(msg) },
    metrics,
    { previous: previous?.checker },
  )
  const endpoint = previous?.endpoint
  const pending = previous?.pending ?? new WeakMap()
  const signed = previous?.signed ?? new WeakMap()
  const untagged = previous?.untagged ?? new WeakMap()
  const skipsLogged = previous?.skipsLogged ?? new Set()
  const selfWatching = previous?.selfWatching
  const outgoing = previous?.outgoing ?? new WeakMap()
  const ledger = ledgerFor(this, settings, previous?.ledger, now)
  metrics.observeState(() => ({
    ...checker.metricsState(),
    ledger:
      ledger && settings.ledger.mode !== 'off'
        ? { mode: settings.ledger.mode, up: ledger.status().state === 'up' }
        : undefined,
  }))
  this.backscatter = {
    settings,
    checker,
    pending,
    metrics,
    endpoint,
    signed,
    untagged,
    now,
    skipsLogged,
    selfWatching,
    ledger,
    outgoing,
  }
  void endpoint?.listen(settings.metrics.listen)
  if (selfWatching)
    renewSelfWatching(selfWatching, settings, checker, harakaFiles(this.config), selfLog(this))
  previous?.checker.retire()
  // Zone checks start with the process that handles mail (init hooks below),
  // or at the first lookup; a reload carries on where the old checker was.
  if (previous?.checker.isStarted) {
    checker.start()
    ledger?.start()
  }
  for (const line of startupLines(settings)) this.loginfo(line)
}

/**
 * The ledger for these settings: the previous one while its settings are the
 * same (its connection is kept), else a new one, the old one closed. What was
 * recorded is in Redis, so a reload loses nothing.
 */
function ledgerFor(
  plugin: BackscatterPlugin,
  settings: Settings,
  previous: Ledger | undefined,
  now: () => number,
): Ledger | undefined {
  const wanted = settings.ledger
  const on = wanted.mode !== 'off' && wanted.key !== undefined
  if (on && previous && sameLedger(previous.settings, wanted)) return previous
  void previous?.close()
  if (!on) return undefined
  return new Ledger(wanted, {
    now,
    log: { info: (msg) => plugin.loginfo(msg), error: (msg) => plugin.logerror(msg) },
    previous,
  })
}

/** Single-process Haraka (or a cluster's master, which handles no mail and checks no zones). */
export function hook_init_master(this: BackscatterPlugin, next: Next, server?: { cluster?: unknown }): void {
  const state = this.backscatter
  if (!server?.cluster) {
    state?.checker.start()
    state?.ledger?.start()
  }
  if (state) {
    // One process watches our own IPs: the single process, or the master of a cluster.
    const files = harakaFiles(this.config)
    state.selfWatching = startSelfWatching(state.settings, state.checker, files, selfLog(this))
    const own = state.selfWatching.metrics.registry
    // A cluster's master sums what its workers counted; one process answers from its own counts.
    const exposition = server?.cluster
      ? clusterExposition(own)
      : processExposition(state.metrics.registry, own)
    state.endpoint = new MetricsEndpoint(exposition, {
      info: (msg) => this.loginfo(msg),
      error: (msg) => this.logerror(msg),
    })
    void state.endpoint.listen(state.settings.metrics.listen)
  }
  next()
}

/** A cluster worker: it handles mail, so it checks the zones, and it answers the master's scrapes. */
export function hook_init_child(this: BackscatterPlugin, next: Next): void {
  this.backscatter?.checker.start()
  this.backscatter?.ledger?.start()
  if (this.backscatter) answerClusterScrapes(this.backscatter.metrics.registry)
  next()
}

export function shutdown(this: BackscatterPlugin): void {
  if (this.backscatter) this.backscatter.shutDown = true
  this.backscatter?.checker.close()
  this.backscatter?.selfWatching?.watch?.stop()
  void this.backscatter?.ledger?.close()
  void this.backscatter?.endpoint?.close()
}

function selfLog(plugin: BackscatterPlugin): SelfWatchLog {
  return {
    info: (msg) => plugin.loginfo(msg),
    warn: (msg) => plugin.logwarn(msg),
    error: (msg) => plugin.logerror(msg),
  }
}

/** Call `next` once, whatever happens after. */
function once(next: Next): Next {
  let called = false
  return (code, msg) => {
    if (called) return
    called = true
    next(code, msg)
  }
}

/** A checked bounce's recipient: `next`, once, counting what became of it (a score-only accept counts as accepted). */
function counted(next: Next, metrics: BackscatterMetrics): Next {
  return once((code, msg) => {
    metrics.recipient(
      code === constants.DENY ? 'refused' : code === constants.DENYSOFT ? 'deferred' : 'accepted',
    )
    next(code, msg)
  })
}

/** MAIL FROM: for a bounce-type sender, start the lookup and answer at once. */
export function hook_mail(
  this: BackscatterPlugin,
  next: Next,
  connection: Connection,
  params: [EnvelopeAddress?, ...unknown[]],
): void {
  try {
    const state = this.backscatter
    const txn = connection.transaction
    const from = params?.[0]
    if (state && txn && from && isBounceSender(from, state.settings.senders)) {
      startCheck(this, state, connection, txn, tagsCheckedFor(from, state.settings.batv))
    }
    if (state && txn && from && connection.relaying) {
      const signed = signSender(state.settings.batv, txn, from, state.now())
      if (signed === 'too long') {
        const sender = wireAddress(from)
        connection.loginfo(this, `sender left unsigned: ${sender} is too long to carry a tag (RFC 5321)`)
      } else if (signed) state.signed.set(txn, signed)
    }
  } catch (err) {
    connection.logerror(this, `check not started, mail goes on: ${String(err)}`)
  }
  next()
}

function startCheck(
  plugin: BackscatterPlugin,
  state: State,
  connection: Connection,
  txn: Transaction,
  checkTags: boolean,
): void {
  const { settings, checker } = state
  const client = clientToCheck({ ip: connection.remote.ip, relaying: connection.relaying }, settings)
  if ('skip' in client) {
    txn.results.add(plugin, { skip: client.skip })
    // Once per kind: a test bounce from this machine must not look ignored, and busy relays must not flood the log.
    if (!state.skipsLogged.has(client.kind)) {
      state.skipsLogged.add(client.kind)
      connection.loginfo(
        plugin,
        `bounce not looked up: ${client.skip}; said once, the results of each transaction record it`,
      )
    }
    return
  }
  const pending: Pending = { settings, checkTags, verdict: undefined, accepted: [], recipients: [], held: 0 }
  // Answers the checker already has need no promise, and the hooks after this one no waiting.
  const known = checker.checkNow(client.ip)
  if (known) pending.verdict = settle(plugin, connection, txn, settings, client.ip, known)
  else {
    pending.verdict = checker.checkWaiting(client.ip).then(
      (outcomes) => (pending.verdict = settle(plugin, connection, txn, settings, client.ip, outcomes)),
      (err: unknown) => {
        connection.logerror(plugin, `lookup failed, mail goes on: ${String(err)}`)
        return (pending.verdict = undefined)
      },
    )
  }
  state.pending.set(txn, pending)
}

/** The verdict on the zones' outcomes, recorded in the results and the log. */
function settle(
  plugin: BackscatterPlugin,
  connection: Connection,
  txn: Transaction,
  settings: Settings,
  ip: string,
  outcomes: readonly ZoneOutcome[],
): Verdict {
  const v = decideVerdict(ip, outcomes, settings)
  recordResults(plugin, connection, txn, v)
  return v
}

/**
 * One results entry for the whole verdict: pass/fail per zone, skip/err with
 * reasons, score. Empty lists are left out (haraka-results logs any `err` key).
 */
function verdictResult(v: Verdict): Record<string, unknown> {
  const lists: Record<'pass' | 'fail' | 'err' | 'skip', string[]> = { pass: [], fail: [], err: [], skip: [] }
  for (const o of v.outcomes) {
    if (o.status === 'listed') lists.fail.push(o.zone)
    else if (o.status === 'not-listed') lists.pass.push(o.zone)
    else if (o.status === 'error') lists.err.push(`${o.zone}: ${o.reason}`)
    else lists.skip.push(`${o.zone}: ${o.reason}`)
  }
  const result: Record<string, unknown> = { score: v.score }
  for (const [key, list] of Object.entries(lists)) if (list.length) result[key] = list
  return result
}

function recordResults(
  plugin: BackscatterPlugin,
  connection: Connection,
  txn: Transaction,
  v: Verdict,
): void {
  txn.results.add(plugin, verdictResult(v))
  for (const o of v.listed) {
    const reason = o.reason ? `: ${o.reason}` : ''
    connection.loginfo(plugin, `bounce from ${v.ip} listed on ${o.zone} (${o.codes.join(',')})${reason}`)
  }
}

/**
 * RCPT TO: remove a BATV tag, then, for a checked bounce, refuse this
 * recipient when the zones' score plus the tag's reaches the threshold.
 */
export function hook_rcpt(
  this: BackscatterPlugin,
  next: Next,
  connection: Connection,
  params: [EnvelopeAddress?, ...unknown[]],
): void {
  const done = once(next)
  try {
    const txn = connection.transaction
    const state = this.backscatter
    const addr = params?.[0]
    if (!state || !txn || !addr) return done()
    const pending = state.pending.get(txn)
    const settings = pending?.settings ?? state.settings
    const signed = state.signed.get(txn)
    if (signed && keepUnsignedFor(settings.batv, txn, signed, addr)) {
      connection.loginfo(
        this,
        `sender left unsigned: mail to ${wireAddress(addr)} ([batv] unsigned_recipients)`,
      )
    }
    if (!pending) {
      stripTag(settings.batv, addr, state.untagged)
      return done()
    }
    checkRecipient(this, state, connection, txn, pending, addr, done)
  } catch (err) {
    connection.logerror(this, `recipient check failed, recipient accepted: ${String(err)}`)
    done()
  }
}

function checkRecipient(
  plugin: BackscatterPlugin,
  state: State,
  connection: Connection,
  txn: Transaction,
  pending: Pending,
  addr: EnvelopeAddress,
  done: Next,
): void {
  const { settings } = pending
  const batvOn = pending.checkTags
  const wire = wireAddress(addr)
  const { rcpt, tag, exempt } = checkBounceRecipient(wire, settings, state.now(), pending.checkTags)
  if (tag.original !== wire) untag(addr, tag.original, state.untagged)
  const recipient: DataRecipient = { address: tag.original, rcpt, tag }
  if (exempt) {
    if (batvOn) txn.results.push(plugin, { batv: tagResultText(tag) })
    pending.accepted.push(tag.result)
    pending.recipients.push(recipient)
    state.metrics.recipient('exempt')
    return done()
  }
  if (tag.result !== 'not checked') state.metrics.batv(tag.result)
  if (batvOn) txn.results.push(plugin, { batv: tagResultText(tag) })
  const answer = counted(done, state.metrics)
  withVerdict(
    pending,
    (verdict) => {
      const decision = decideBounceRecipient(verdict, rcpt, tag, settings)
      if (decision.action === 'accept') {
        pending.accepted.push(tag.result)
        pending.recipients.push(recipient)
        return answer()
      }
      const text = refusalText(decision, verdict, wire, tag, settings)
      if (holdsRefusals(state, settings)) {
        // The ledger may show at the end of DATA that this bounce is about our own mail.
        connection.loginfo(plugin, `${decision.action} held until the end of DATA for the ledger: ${text}`)
        pending.accepted.push(tag.result)
        pending.recipients.push(recipient)
        pending.held++
        return done()
      }
      connection.loginfo(plugin, `${decision.action} recipient: ${text}`)
      const reply = refusal(decision.action, text)
      const dsn = DSN.create(reply.code, reply.text, reply.subject, reply.detail)
      return answer(decision.action === 'reject' ? constants.DENY : constants.DENYSOFT, dsn)
    },
    (err) => {
      connection.logerror(plugin, `recipient check failed, recipient accepted: ${String(err)}`)
      answer()
    },
  )
}

/** Refusals wait for the end of DATA while the ledger decides ([ledger] mode = check) and can answer. */
function holdsRefusals(state: State, settings: Settings): boolean {
  return settings.ledger.mode === 'check' && state.ledger?.status().state === 'up'
}

/**
 * A refusal, by this plugin or any other: a recipient refused after its tag was
 * removed gets it back, so only accepted recipients are delivered untagged, and
 * Haraka's reply and log show the address as the client sent it.
 */
export function hook_deny(
  this: BackscatterPlugin,
  next: Next,
  connection: Connection,
  params: [unknown, unknown, unknown, unknown, unknown, unknown],
): void {
  try {
    const hook = params?.[5]
    const untagged = this.backscatter?.untagged
    if (untagged && (hook === 'rcpt' || hook === 'rcpt_ok')) {
      // The rcpt hook's params are [address, parameters]; rcpt_ok's, the address itself.
      const hookParams = params[4]
      const rcpt = (Array.isArray(hookParams) ? hookParams[0] : hookParams) as EnvelopeAddress | undefined
      const saved = rcpt && typeof rcpt === 'object' ? untagged.get(rcpt) : undefined
      if (rcpt && saved) {
        restore(rcpt, saved)
        untagged.delete(rcpt)
      }
    }
  } catch (err) {
    connection.logerror(this, `tag not put back on a refused recipient: ${String(err)}`)
  }
  next()
}

/**
 * After DATA: the Message-ID of relayed mail is made sure of, for the ledger;
 * a message a machine sent in reply is checked against the ledger; held
 * refusals are decided; the checked, accepted message gets the header. A copy
 * of the header the sender wrote is removed from every message, so a filter
 * downstream can trust it.
 */
export function hook_data_post(this: BackscatterPlugin, next: Next, connection: Connection): void {
  const done = once(next)
  recordProvenance(this, connection)
  try {
    const txn = connection.transaction
    const state = this.backscatter
    if (!txn || !state) return done()
    const signed = state.signed.get(txn)
    if (signed && !signed.restored) state.metrics.batv('signed')
    const pending = state.pending.get(txn)
    const settings = pending?.settings ?? state.settings
    if (settings.header) txn.remove_header(settings.header)
    const { ledger } = state
    // Mail from our own clients is our users' mail: recorded, never judged as a reply. Relaying
    // switched on for this transaction only (the relay plugin's dest_domains) is inbound mail.
    const own = ledger !== undefined && isOwnClient(connectionProvenance(connection))
    if (ledger && own) state.outgoing.set(txn, outgoingMessageId(txn))
    // Ordinary mail is never read: settled here, it takes no turn of the event loop for the ledger.
    // Nor is a reply from a client [skip] leaves alone: nothing it sends is refused or scored.
    const reply =
      ledger &&
      !own &&
      mayBeMachineReply(txn.mail_from, txn.header) &&
      !leftAlone(clientToCheck({ ip: connection.remote.ip, relaying: own }, settings))
        ? checkReply(txn, ledger, settings.ledger.timeoutMs).catch((err: unknown) => {
            connection.logerror(this, `ledger not asked, mail goes on: ${String(err)}`)
            return undefined
          })
        : undefined
    if (!pending && !reply) return done()
    const decide = (verdict: Verdict | undefined, check: ReplyCheck | undefined): void => {
      try {
        finishData(this, state, connection, txn, settings, pending, verdict, check, done)
      } catch (err) {
        connection.logerror(this, `end of DATA not checked, mail goes on: ${String(err)}`)
        done()
      }
    }
    const afterVerdict = (verdict: Verdict | undefined): void => {
      if (!reply) return decide(verdict, undefined)
      void reply.then((check) => decide(verdict, check))
    }
    if (!pending) return afterVerdict(undefined)
    withVerdict(pending, afterVerdict, (err) => {
      connection.logerror(this, `header not added: ${String(err)}`)
      done()
    })
  } catch (err) {
    connection.logerror(this, `end of DATA not checked, mail goes on: ${String(err)}`)
    done()
  }
}

/** The recipients of a message that was not checked at RCPT (not a bounce-type sender), for the ledger's decision. */
function uncheckedRecipients(txn: Transaction): DataRecipient[] {
  return (txn.rcpt_to ?? []).map((addr) => {
    const address = wireAddress(addr)
    return { address, rcpt: recipientName(address), tag: notChecked(address) }
  })
}

function finishData(
  plugin: BackscatterPlugin,
  state: State,
  connection: Connection,
  txn: Transaction,
  settings: Settings,
  pending: Pending | undefined,
  verdict: Verdict | undefined,
  check: ReplyCheck | undefined,
  done: Next,
): void {
  const result = check?.answer.result ?? 'unknown'
  if (check) {
    txn.results.add(plugin, {
      ledger: result,
      kind: check.kind,
      references: check.references.length,
      ...(check.answer.result === 'unknown' ? { ledger_reason: check.answer.reason } : {}),
    })
    state.metrics.ledgerCheck(check.kind, result)
    connection.loginfo(plugin, `${check.kind} checked against the ledger: ${result} (${check.answer.reason})`)
  }
  const recipients = pending ? pending.recipients : uncheckedRecipients(txn)
  const { scores } = settings.ledger
  const counted = settings.ledger.mode === 'check' ? result : 'unknown'
  const decision = decideAtData(verdict, recipients, ledgerScore(counted, scores), settings)
  const held = pending?.held ?? 0
  if (settings.ledger.mode === 'record' && check?.answer.noneFound) {
    // What check mode would do: counted per recipient domain, so senders that were never recorded show before
    // anything is refused. A young ledger's "none found" counts too (labelled young): it is when operators look.
    const young = result !== 'not-ours'
    const would = decideAtData(verdict, recipients, ledgerScore('not-ours', scores), settings)
    if (would.action !== 'accept') {
      const domain = would.recipient.rcpt.domain
      state.metrics.ledgerWouldRefuse(domain, young)
      const when = young
        ? ` once the ledger holds its window of ${settings.ledger.windowDays} days (${ledgerAge(check.answer.ageDays)})`
        : ''
      connection.loginfo(
        plugin,
        `would ${would.action} at the end of DATA in [ledger] mode = check${when}: ${check.kind} for ${domain} is about mail ${young ? 'not recorded here' : 'not sent from here'}`,
      )
    }
  }
  if (decision.action !== 'accept' && (held > 0 || decision.cause === 'ledger')) {
    const text =
      decision.cause === 'ledger'
        ? ledgerReplyText(check?.kind ?? 'none')
        : refusalText(decision, verdict, decision.recipient.address, decision.recipient.tag, settings)
    connection.loginfo(plugin, `${decision.action} message at the end of DATA: ${text}`)
    for (let i = 0; i < held; i++)
      state.metrics.recipient(decision.action === 'reject' ? 'refused' : 'deferred')
    state.metrics.dataRefusal(decision.action, decision.cause)
    const reply = refusal(decision.action, text)
    const dsn = DSN.create(reply.code, reply.text, reply.subject, reply.detail)
    return done(decision.action === 'reject' ? constants.DENY : constants.DENYSOFT, dsn)
  }
  for (let i = 0; i < held; i++) state.metrics.recipient('accepted')
  if (held > 0) {
    const why = decision.action === 'accept' ? decision.why : 'refused'
    connection.loginfo(
      plugin,
      `held recipients accepted at the end of DATA: ${why === 'ours' ? 'the ledger shows the bounce is about mail sent from here' : 'not every recipient would be refused, and one reply answers them all'}`,
    )
  }
  if (settings.header && (verdict || check)) {
    const batv = pending?.checkTags ? pending.accepted : undefined
    const ledgerPart = check ? { result } : undefined
    txn.add_header(
      settings.header,
      verdict ? headerValue(verdict, batv, ledgerPart) : ledgerHeaderValue(result),
    )
  }
  done()
}

/** How old a young ledger is, for the log. */
function ledgerAge(ageDays: number | undefined): string {
  if (ageDays === undefined) return 'nothing recorded yet'
  return `${ageDays} day${ageDays === 1 ? '' : 's'} old`
}

/**
 * Once a relayed message is queued: record the Message-ID it leaves with. The
 * 250 waits for it, at most RECORD_BATCH_MS + [ledger] timeout_ms: on a busy
 * relay the messages whose records share a round trip get their 250s together.
 */
export function hook_queue_ok(this: BackscatterPlugin, next: Next, connection: Connection): void {
  const done = once(next)
  try {
    const txn = connection.transaction
    const state = this.backscatter
    const id = txn ? state?.outgoing.get(txn) : undefined
    if (!txn || !state?.ledger || !id) return done()
    state.outgoing.delete(txn)
    // Ledger.record never rejects; whatever the metric does, the 250 goes.
    void state.ledger
      .record(id)
      .then((result) => state.metrics.ledgerRecord(result))
      .catch((err: unknown) => connection.logerror(this, `ledger record not counted: ${String(err)}`))
      .finally(() => done())
  } catch (err) {
    connection.logerror(this, `message not recorded in the ledger: ${String(err)}`)
    done()
  }
}
