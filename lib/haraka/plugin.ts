// The Haraka glue: translate hooks to the core and the core's answers to Haraka.
import constants from 'haraka-constants'
import DSN from 'haraka-dsn'

import { keepUnsignedFor, signSender, stripTag, untag, type SignedSender, type Untagged } from './batv-hooks'
import { configLinesReader, keysFileReader } from '../batv/keys-file'
import { clientToCheck, type SkipKind } from '../core/client'
import { restore } from './envelope-rewrite'
import { BackscatterMetrics } from '../metrics/metrics'
import { MeteredChecker } from '../metrics/checker'
import { answerClusterScrapes, clusterExposition, processExposition } from '../metrics/cluster'
import { MetricsEndpoint } from '../metrics/server'
import { recipientPluginsBefore } from './placement'
import { harakaFiles, renewSelfWatching, startSelfWatching, type SelfWatching } from './self-watch'
import { decideBounceRecipient, tagResultText, tagsCheckedFor } from '../core/recipient'
import { isBounceSender, wireAddress, type EnvelopeAddress } from '../core/sender'
import { withVerdict, type Pending } from './pending'
import { recordProvenance } from './outbound-guard'
import { parseSettings } from '../settings/parse'
import { startupLines } from './startup'
import { decideVerdict, headerValue, refusal, refusalText } from '../core/verdict'
import type { Settings, Verdict, ZoneOutcome } from '../core/types'
import { checkBounceRecipient } from '../batv/recipient'

export { hook_bounce } from './outbound-guard'

type Next = (code?: number, msg?: unknown) => void

interface Results {
  add(plugin: unknown, obj: Record<string, unknown>): unknown
  push(plugin: unknown, obj: Record<string, unknown>): unknown
}

interface Transaction {
  results: Results
  mail_from: EnvelopeAddress | null | undefined
  add_header(name: string, value: string): void
  remove_header(name: string): void
}

interface Connection {
  remote: { ip?: string | null }
  relaying: boolean
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
  metrics.observeState(() => checker.metricsState())
  const endpoint = previous?.endpoint
  const pending = previous?.pending ?? new WeakMap()
  const signed = previous?.signed ?? new WeakMap()
  const untagged = previous?.untagged ?? new WeakMap()
  const skipsLogged = previous?.skipsLogged ?? new Set()
  const selfWatching = previous?.selfWatching
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
  }
  void endpoint?.listen(settings.metrics.listen)
  if (selfWatching)
    renewSelfWatching(selfWatching, settings, checker, harakaFiles(this.config), selfLog(this))
  previous?.checker.retire()
  // Zone checks start with the process that handles mail (init hooks below),
  // or at the first lookup; a reload carries on where the old checker was.
  if (previous?.checker.isStarted) checker.start()
  for (const line of startupLines(settings)) this.loginfo(line)
}

/** Single-process Haraka (or a cluster's master, which handles no mail and checks no zones). */
export function hook_init_master(this: BackscatterPlugin, next: Next, server?: { cluster?: unknown }): void {
  const state = this.backscatter
  if (!server?.cluster) state?.checker.start()
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
  if (this.backscatter) answerClusterScrapes(this.backscatter.metrics.registry)
  next()
}

export function shutdown(this: BackscatterPlugin): void {
  if (this.backscatter) this.backscatter.shutDown = true
  this.backscatter?.checker.close()
  this.backscatter?.selfWatching?.watch?.stop()
  void this.backscatter?.endpoint?.close()
}

function selfLog(plugin: BackscatterPlugin): { info(msg: string): void; error(msg: string): void } {
  return { info: (msg) => plugin.loginfo(msg), error: (msg) => plugin.logerror(msg) }
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
  const pending: Pending = { settings, checkTags, verdict: undefined, accepted: [] }
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
  if (exempt) {
    if (batvOn) txn.results.push(plugin, { batv: tagResultText(tag) })
    pending.accepted.push(tag.result)
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
        return answer()
      }
      const text = refusalText(decision, verdict, wire, tag, settings)
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
 * After DATA: stamp the checked, accepted message with the header. A copy the
 * sender wrote is removed from every message, so a filter downstream can trust it.
 */
export function hook_data_post(this: BackscatterPlugin, next: Next, connection: Connection): void {
  const done = once(next)
  recordProvenance(this, connection)
  try {
    const txn = connection.transaction
    const state = this.backscatter
    const signed = txn ? state?.signed.get(txn) : undefined
    if (signed && !signed.restored) state?.metrics.batv('signed')
    const pending = txn ? state?.pending.get(txn) : undefined
    const name = pending ? pending.settings.header : state?.settings.header
    if (!txn || !name) return done()
    txn.remove_header(name)
    if (!pending) return done()
    withVerdict(
      pending,
      (verdict) => {
        const batv = pending.checkTags ? pending.accepted : undefined
        if (verdict) txn.add_header(name, headerValue(verdict, batv))
        done()
      },
      (err) => {
        connection.logerror(this, `header not added: ${String(err)}`)
        done()
      },
    )
  } catch (err) {
    connection.logerror(this, `header not added: ${String(err)}`)
    done()
  }
}
