// What in a Haraka setup invites a listing on ips.backscatterer.org: pure
// decisions over what `audit` read from the config folder. Each finding says
// what was found, why it gets a host listed, and the fix.
import { listedText, type SelfListing } from '../core/self-check'

export type AuditLevel = 'critical' | 'warning'

export interface AuditFinding {
  /** A short, stable name: accept-then-bounce, outbound-guard, guard-without-spf, own-ip-listed, auto-reply, sender-callout. */
  readonly id: string
  readonly level: AuditLevel
  readonly what: string
  readonly why: string
  readonly fix: string
}

/** What audit read from the config folder. */
export interface AuditInput {
  /** config/plugins, one plugin a line, comments and blank lines dropped. */
  readonly plugins: readonly string[]
  /** smtp_forward.ini `check_recipient`: it accepts a recipient whose domain has a route. */
  readonly forwardChecksRecipient: boolean
  /** recipient-routes.ini routes single addresses (or keeps them in Redis), not only domains. */
  readonly routesAddresses: boolean
  /** `[outbound_guard] mode` of backscatter.ini as written, lower case; undefined when unset. */
  readonly guardMode: string | undefined
  /** `[outbound_guard] unverified_spf` holds absent: a DSN is suppressed when no SPF result was recorded. */
  readonly absentUnverified: boolean
  /** What the relay plugin would do, when it is loaded. */
  readonly relay: RelaySetup
}

/** relay.ini and relay_dest_domains.ini, as haraka-plugin-relay 1.0 reads them. */
export interface RelaySetup {
  /** [relay] dest_domains: inbound mail to a listed domain is marked relayed at RCPT, so it leaves through outbound. */
  readonly destDomains: boolean
  /** [relay] force_routing (on unless set off): mail to a listed domain goes to its nexthop. */
  readonly forceRouting: boolean
  /** [relay] all: every recipient is accepted and relayed. */
  readonly all: boolean
  /** [domains] of relay_dest_domains.ini, each value's JSON read ('' for what it lacks). */
  readonly domains: readonly { readonly domain: string; readonly action: string; readonly nexthop: string }[]
}

/** Haraka's name for a plugin line: the npm prefix dropped, old names mapped as plugins.js maps them. */
export function pluginName(line: string): string {
  const name = line.trim().replace(/^haraka-plugin-/, '')
  const renamed: Record<string, string> = {
    'rcpt_to.ldap': 'rcpt-ldap',
    'rcpt_to.qmail_deliverable': 'qmail-deliverable',
  }
  return renamed[name] ?? name
}

/**
 * Queues that hand inbound mail on after the SMTP session has accepted it, and
 * what follows for a recipient nobody checked (queue/smtp_proxy is not here: it
 * passes every RCPT to its backend during the session).
 */
const ONWARD_QUEUES: Readonly<Record<string, string>> = {
  'queue/lmtp':
    "queue/lmtp delivers through Haraka's outbound queue: a user the LMTP server does not know is found after the message was accepted, and Haraka sends a DSN to the envelope sender",
  'queue/qmail-queue':
    'qmail-queue hands the message to qmail, which bounces a user it does not know to the envelope sender',
  'queue/smtp_forward':
    'queue/smtp_forward passes the message on after DATA: a backend that accepts it and bounces later sends the DSN to the envelope sender (one that refuses at RCPT makes Haraka refuse the whole message)',
  'queue/smtp_bridge':
    "queue/smtp_bridge sends the message on to its bridge host through Haraka's outbound queue: a recipient that host does not know is found after the message was accepted, and Haraka sends a DSN to the envelope sender",
  'queue/deliver':
    "queue/deliver sends what is relayed (inbound mail too, once a plugin marks it relayed) through Haraka's outbound queue: a recipient the next hop does not know is found after the message was accepted, and Haraka sends a DSN to the envelope sender",
}

/** A way inbound mail leaves after it was accepted: what it is, and what follows for a recipient nobody checked. */
interface OnwardPath {
  readonly does: string
  readonly why: string
}

const listed = (names: readonly string[]): string => names.join(', ')

/** The relay plugin's routes of inbound mail onward through Haraka's outbound queue. */
function relayPath(input: AuditInput): OnwardPath | undefined {
  const { destDomains, forceRouting, all, domains } = input.relay
  if (!input.plugins.map(pluginName).includes('relay')) return undefined
  if (all) {
    return {
      does: "relay (all = true) accepts every recipient and relays it through Haraka's outbound queue",
      why: 'an open relay: any recipient anywhere is accepted, and each one that fails later gets a DSN to the envelope sender',
    }
  }
  const marked = destDomains ? domains.filter((d) => d.action === 'accept' || d.action === 'continue') : []
  const routed = forceRouting ? domains.filter((d) => d.nexthop !== '') : []
  const names = [...new Set([...marked, ...routed].map((d) => d.domain))]
  if (!names.length) return undefined
  const keys = [marked.length ? 'dest_domains' : '', routed.length ? 'force_routing' : ''].filter(Boolean)
  const hops = [...new Set(routed.map((d) => d.nexthop))]
  const nextHop = hops.length ? `the next hop ${listed(hops)}` : 'the next hop'
  return {
    does: `relay (${listed(keys)}) sends inbound mail for ${listed(names)} on through Haraka's outbound queue`,
    why: `a recipient ${nextHop} does not know is found after the message was accepted, and Haraka sends a DSN to the envelope sender`,
  }
}

function onwardPaths(input: AuditInput): OnwardPath[] {
  const queues = input.plugins
    .map(pluginName)
    .filter((n) => Object.hasOwn(ONWARD_QUEUES, n))
    .map((queue) => ({ does: `${queue} queues inbound mail onward`, why: ONWARD_QUEUES[queue] ?? '' }))
  const relay = relayPath(input)
  return relay ? [relay, ...queues] : queues
}

/** Recipient plugins that accept every local part of a domain they know. */
const DOMAIN_ONLY = new Set(['rcpt_to.in_host_list', 'rcpt_to.host_list_base'])
/** rcpt_to.* plugins that check no recipient at all. */
const NO_CHECK = new Set(['rcpt_to.max_count'])
/** Plugins that look a recipient up at RCPT. */
const VALIDATORS = new Set(['qmail-deliverable', 'rcpt-ldap'])

export interface RecipientChecks {
  /** Plugins that look each recipient up at RCPT, in config/plugins order. */
  readonly validators: string[]
  /** Plugins that accept every local part of the domains they know, in config/plugins order. */
  readonly domainOnly: string[]
  /**
   * The domain-only ones listed before the first validator: they answer OK,
   * which ends Haraka's rcpt hook, so for their domains no validator is asked.
   */
  readonly shadowing: string[]
}

/** How each plugin in config/plugins answers at RCPT, in order (hooks of one priority run in that order). */
function rcptAnswers(input: AuditInput): { name: string; kind: 'validator' | 'domain-only' }[] {
  const out: { name: string; kind: 'validator' | 'domain-only' }[] = []
  const relay = input.relay
  for (const name of input.plugins.map(pluginName)) {
    if (DOMAIN_ONLY.has(name)) out.push({ name, kind: 'domain-only' })
    else if (name === 'recipient-routes')
      out.push({ name, kind: input.routesAddresses ? 'validator' : 'domain-only' })
    else if (VALIDATORS.has(name) || (name.startsWith('rcpt_to.') && !NO_CHECK.has(name)))
      out.push({ name, kind: 'validator' })
    // smtp_forward's check_recipient answers OK at RCPT for a domain it has a route for.
    else if (name === 'queue/smtp_forward' && input.forwardChecksRecipient)
      out.push({ name: 'smtp_forward check_recipient', kind: 'domain-only' })
    else if (name === 'relay' && relay.all) out.push({ name: 'relay (all = true)', kind: 'domain-only' })
    else if (name === 'relay' && relay.destDomains && relay.domains.some((d) => d.action === 'accept'))
      out.push({ name: 'relay (dest_domains accept)', kind: 'domain-only' })
  }
  return out
}

/** Which plugins check recipients at RCPT, which only accept domains, and which of those come first. */
export function recipientChecks(input: AuditInput): RecipientChecks {
  const answers = rcptAnswers(input)
  const first = answers.findIndex((a) => a.kind === 'validator')
  const named = (list: typeof answers): string[] => list.map((a) => a.name)
  return {
    validators: named(answers.filter((a) => a.kind === 'validator')),
    domainOnly: named(answers.filter((a) => a.kind === 'domain-only')),
    shadowing: first < 0 ? [] : named(answers.slice(0, first).filter((a) => a.kind === 'domain-only')),
  }
}

const FIX_RECIPIENTS =
  'check each recipient at RCPT, so an unknown user gets a 550 during the session and the sending server (not this one) tells its sender: qmail-deliverable, rcpt-ldap, or recipient-routes with one route per address'

const BACKSCATTER_WHY =
  "spam's sender is forged, so that DSN is backscatter, and the list lists the host that sends it"

function acceptThenBounce(input: AuditInput): AuditFinding[] {
  const { validators, domainOnly, shadowing } = recipientChecks(input)
  const [validator] = validators
  if (validator !== undefined && !shadowing.length) return []
  const finding = (what: string, why: string, fix: string): AuditFinding => ({
    id: 'accept-then-bounce',
    level: 'critical',
    what,
    why,
    fix,
  })
  return onwardPaths(input).map((path) => {
    if (validator !== undefined) {
      const accepts = shadowing.length > 1 ? 'accept' : 'accepts'
      return finding(
        `${path.does}, and ${listed(shadowing)} ${accepts} every local part of ${shadowing.length > 1 ? 'their' : 'its'} domains before ${validator} is asked: for those domains no recipient is checked at RCPT`,
        `a plugin that answers OK at RCPT ends Haraka's rcpt hook, so ${validator} never runs for them; ${path.why}; ${BACKSCATTER_WHY}`,
        `list ${validator} before ${listed(shadowing)} in config/plugins, so each recipient is looked up before its domain alone is accepted`,
      )
    }
    const only = domainOnly.length
      ? ` (${listed(domainOnly)} ${domainOnly.length > 1 ? 'check' : 'checks'} only the domain: every local part is accepted)`
      : ''
    return finding(
      `${path.does}, and nothing checks at RCPT that the recipient exists${only}`,
      `${path.why}; ${BACKSCATTER_WHY}`,
      FIX_RECIPIENTS,
    )
  })
}

const GUARD_FIX =
  'set [outbound_guard] mode = suppress (the default) in backscatter.ini: a DSN to a sender that was never verified is not sent'

function outboundGuard(input: AuditInput): AuditFinding[] {
  const names = input.plugins.map(pluginName)
  const finding = (what: string, why: string, fix = GUARD_FIX): AuditFinding[] => [
    { id: 'outbound-guard', level: 'warning', what, why, fix },
  ]
  if (!names.includes('backscatter')) {
    return finding(
      'backscatter is not in config/plugins: its outbound guard does not run',
      "nothing stops Haraka's own DSNs to forged senders",
      'list backscatter in config/plugins, before the rcpt_to.* plugins',
    )
  }
  const mode = input.guardMode ?? 'suppress'
  if (mode === 'off')
    return finding('[outbound_guard] mode = off', "Haraka's DSNs go to every sender, verified or not")
  if (mode === 'log')
    return finding(
      '[outbound_guard] mode = log',
      'a DSN to a sender whose SPF did not pass (and no aligned DKIM signature) is logged, then sent anyway',
    )
  if (mode !== 'suppress')
    return finding(
      `[outbound_guard] mode = ${mode} is not suppress, log or off`,
      'the guard may not do what was meant',
    )
  if (input.absentUnverified && !names.includes('spf')) {
    return [
      {
        id: 'guard-without-spf',
        level: 'warning',
        what: '[outbound_guard] mode = suppress, and spf is not in config/plugins',
        why: "the guard reads the sender's SPF result that haraka-plugin-spf records; without it every inbound DSN counts as SPF absent, and a real sender's DSN is suppressed unless a DKIM signature aligned with its domain passed",
        fix: 'list spf (haraka-plugin-spf) in config/plugins, so a DSN to a sender whose SPF passes is sent',
      },
    ]
  }
  return []
}

// Judged by name: a plugin whose name says it replies or calls back.
const AUTO_REPLY = /vacation|auto[-_.]?repl|auto[-_.]?respon|out[-_.]?of[-_.]?office/i
const CALLOUT = /callout|call[-_.]?back|sender[-_.]?verif|verify[-_.]?sender/i

function byName(input: AuditInput): AuditFinding[] {
  const out: AuditFinding[] = []
  for (const name of input.plugins.map(pluginName)) {
    if (AUTO_REPLY.test(name)) {
      out.push({
        id: 'auto-reply',
        level: 'warning',
        what: `${name} looks like an auto-reply plugin (judged by its name)`,
        why: 'an auto-reply to the envelope sender of spam goes to a forged address: backscatter',
        fix: 'reply only to senders whose SPF or aligned DKIM passed, never to <>, postmaster, mailer-daemon, lists or bulk mail, at most once per sender and week (RFC 3834)',
      })
    }
    if (CALLOUT.test(name)) {
      out.push({
        id: 'sender-callout',
        level: 'warning',
        what: `${name} looks like a sender-verification (callout) plugin (judged by its name)`,
        why: "probing a forged sender's server with RCPT is abuse of an innocent third party, and ips.backscatterer.org lists hosts that do it",
        fix: 'remove it; judge senders by SPF and DKIM instead',
      })
    }
  }
  return out
}

/** The findings of the configuration alone, worst first. */
export function auditConfig(input: AuditInput): AuditFinding[] {
  const all = [...acceptThenBounce(input), ...outboundGuard(input), ...byName(input)]
  return [...all.filter((f) => f.level === 'critical'), ...all.filter((f) => f.level === 'warning')]
}

/** A listing of one of our own IPs, as a finding. */
export function ownIpFinding(l: SelfListing, lookupUrl: string): AuditFinding {
  return {
    id: 'own-ip-listed',
    level: 'critical',
    what: `our own IP ${l.ip} is listed on ${l.zone}${l.reason ? ` (${l.reason})` : ''}`,
    why: 'this host sent backscatter or sender callouts, and servers that use the list may refuse its mail',
    fix: listedText(l, lookupUrl).replace(/^.*?Find the source/, 'find the source'),
  }
}
