// What in a Haraka setup invites a listing on ips.backscatterer.org: pure
// decisions over what `audit` read from the config folder. Each finding says
// what was found, why it gets a host listed, and the fix.
import { listedText, type SelfListing } from '../core/self-check'

export type AuditLevel = 'critical' | 'warning'

export interface AuditFinding {
  /** A short, stable name: accept-then-bounce, outbound-guard, own-ip-listed, auto-reply, sender-callout. */
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
}

/** Recipient plugins that accept every local part of a domain they know. */
const DOMAIN_ONLY = new Set(['rcpt_to.in_host_list', 'rcpt_to.host_list_base'])
/** rcpt_to.* plugins that check no recipient at all. */
const NO_CHECK = new Set(['rcpt_to.max_count'])
/** Plugins that look a recipient up at RCPT. */
const VALIDATORS = new Set(['qmail-deliverable', 'rcpt-ldap'])

/** Which plugins check recipients at RCPT, and which only accept domains. */
export function recipientChecks(input: AuditInput): { validators: string[]; domainOnly: string[] } {
  const names = input.plugins.map(pluginName)
  const validators: string[] = []
  const domainOnly: string[] = []
  for (const name of names) {
    if (DOMAIN_ONLY.has(name)) domainOnly.push(name)
    else if (name === 'recipient-routes')
      (input.routesAddresses ? validators : domainOnly).push('recipient-routes')
    else if (VALIDATORS.has(name) || (name.startsWith('rcpt_to.') && !NO_CHECK.has(name)))
      validators.push(name)
  }
  if (names.includes('queue/smtp_forward') && input.forwardChecksRecipient)
    domainOnly.push('smtp_forward check_recipient')
  return { validators, domainOnly }
}

const FIX_RECIPIENTS =
  'check each recipient at RCPT, so an unknown user gets a 550 during the session and the sending server (not this one) tells its sender: qmail-deliverable, rcpt-ldap, or recipient-routes with one route per address'

function acceptThenBounce(input: AuditInput): AuditFinding[] {
  const names = input.plugins.map(pluginName)
  const { validators, domainOnly } = recipientChecks(input)
  if (validators.length) return []
  return names
    .filter((n) => Object.hasOwn(ONWARD_QUEUES, n))
    .map((queue) => {
      const only = domainOnly.length
        ? ` (${domainOnly.join(', ')} ${domainOnly.length > 1 ? 'check' : 'checks'} only the domain: every local part is accepted)`
        : ''
      return {
        id: 'accept-then-bounce',
        level: 'critical',
        what: `${queue} queues inbound mail onward, and nothing checks at RCPT that the recipient exists${only}`,
        why: `${ONWARD_QUEUES[queue] ?? ''}; spam's sender is forged, so that DSN is backscatter, and the list lists the host that sends it`,
        fix: FIX_RECIPIENTS,
      }
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
